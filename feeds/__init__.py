"""feeds: aggregate remote feeds and local posts into Atom, RSS and JSON Feed files: one for
everything, one per tag and one per category."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/feeds-project/feeds"
