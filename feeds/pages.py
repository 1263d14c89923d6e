"""Pages for people: the HTML index, optional per-feed pages, the OPML list, the XSL view.

Pure: Jinja2 templates (the package's, or those in a folder named in the config,
which win) rendered to bytes from what the pipeline hands over. Every piece of
text is escaped by the template engine. Nothing here depends on the clock, so
the pages are as byte-stable as the feeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

import jinja2

from .config import Site
from .models import Entry

LINK_TYPES = {"atom": ("Atom", "application/atom+xml"), "rss": ("RSS", "application/rss+xml"),
              "json": ("JSON", "application/feed+json")}
XSL_NAME = "feed.xsl"
OPML_NAME = "feeds.opml"
INDEX_NAME = "index.html"


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    type: str
    #: Relative to the output folder's root (where index.html is).
    href: str


@dataclass(frozen=True, slots=True)
class Listing:
    """One feed as the index shows it."""

    kind: str
    name: str
    title: str
    count: int
    #: Newest entry's date, as shown ("2021-09-03").
    newest: str | None
    links: tuple[Link, ...]
    #: Absolute URL for OPML (Atom if written, else RSS, else JSON).
    xml: str | None
    #: Path of the feed's HTML page, if pages are made.
    page: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    heading: str
    feeds: tuple[Listing, ...]


def environment(templates: Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.PackageLoader("feeds", "templates"))
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=False, lstrip_blocks=False)


def newest_label(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%d") if when else None


def render_index(env: jinja2.Environment, site: Site, main: Listing, groups: Sequence[Group]) -> bytes:
    template = env.get_template(INDEX_NAME)
    total = 1 + sum(len(g.feeds) for g in groups)
    return template.render(site=site, main=main, groups=groups, total=total, opml=OPML_NAME).encode("utf-8")


def render_opml(env: jinja2.Environment, site: Site, groups: Sequence[Group]) -> bytes:
    template = env.get_template(OPML_NAME)
    return template.render(site=site, groups=groups, home=site.link or site.base_url).encode("utf-8")


def render_feed_page(env: jinja2.Environment, site: Site, feed: Listing, entries: Sequence[Entry],
                     home: str) -> bytes:
    return env.get_template("feed.html").render(site=site, feed=feed, entries=entries, home=home).encode("utf-8")


def stylesheet(templates: Path | None) -> bytes:
    """The XSL view of feeds: the config's template folder's, else the package's."""
    if templates is not None and (templates / XSL_NAME).is_file():
        return (templates / XSL_NAME).read_bytes()
    return resources.files("feeds").joinpath("templates", XSL_NAME).read_bytes()


def template_stats(templates: Path | None) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of every template file that can be used: the package's and
    those in the config's folder, so that editing one counts as a change."""
    found = []
    folders = [Path(str(resources.files("feeds").joinpath("templates")))]
    if templates is not None:
        folders.append(templates)
    for index, folder in enumerate(folders):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            try:
                st = path.stat()
            except OSError:
                continue
            if path.is_file():
                found.append((f"{index}:{path.relative_to(folder).as_posix()}", st.st_size, st.st_mtime_ns))
    return found
