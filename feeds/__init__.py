"""feeds: aggregate remote feeds and local posts into per-tag Atom and RSS files."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/feeds-project/feeds"
