"""Pages for people: the HTML index, optional per-feed pages, the OPML list, the XSL view.

Pure: Jinja2 templates (from the environment ``templates`` makes) rendered to bytes
from what the pipeline hands over; touches no file, network, database or clock itself. Every piece of
text is escaped by the template engine, shown as ``safe.text`` makes it (no reader
can take it for markup), and every absolute URL passes ``identity.web_url``; links
between our own files are relative paths we percent-encode ourselves. Nothing here
depends on the clock, so the pages are as byte-stable as the feeds, and each stays
within the byte budget: a feed page shows fewer entries, the index and the OPML
list fewer feeds per group (the biggest are kept) when they would grow past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import jinja2

from ..config import Site
from ..errors import InputError
from ..identity import web_url
from ..layout import INDEX_NAME, OPML_NAME, PAGE_TEMPLATE, FeedKind
from ..models import Entry
from .budget import fit_count
from .safe import text


@dataclass(frozen=True, slots=True)
class Link:
    """A link to one format of a feed, as the index and the pages show it."""

    label: str
    type: str
    #: Relative to the output folder's root (where the index is).
    href: str


@dataclass(frozen=True, slots=True)
class Listing:
    """One feed as the index shows it."""

    kind: FeedKind
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
    """A heading of the index or the OPML list ("Tags", "Categories") and its feeds."""

    heading: str
    feeds: tuple[Listing, ...]
    #: Feeds of the group not shown, to stay within the byte budget.
    omitted: int = 0


def _shown(listing: Listing) -> Listing:
    return replace(listing, name=text(listing.name), title=text(listing.title),
                   xml=web_url(listing.xml) if listing.xml else None)


def _trim(groups: Sequence[Group], most: int) -> list[Group]:
    """Each group with at most ``most`` feeds: those with the most entries, in their order."""
    out = []
    for g in groups:
        feeds = tuple(_shown(f) for f in g.feeds)
        if len(feeds) > most:
            kept = sorted(sorted(range(len(feeds)), key=lambda i: (-feeds[i].count, i))[:most])
            out.append(Group(g.heading, tuple(feeds[i] for i in kept), g.omitted + len(feeds) - most))
        else:
            out.append(Group(g.heading, feeds, g.omitted))
    return out


def _fit_groups(groups: Sequence[Group], render: jinja2.Template, max_bytes: int | None,
                **context: object) -> bytes:
    widest = max((len(g.feeds) for g in groups), default=0)
    data, _ = fit_count(widest, lambda most: render.render(groups=_trim(groups, most), **context).encode("utf-8"),
                        max_bytes)
    return data


def newest_label(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%d") if when else None


def render_index(env: jinja2.Environment, site: Site, main: Listing, groups: Sequence[Group],
                 max_bytes: int | None = None) -> bytes:
    total = 1 + sum(len(g.feeds) for g in groups)
    return _fit_groups(groups, env.get_template(INDEX_NAME), max_bytes, site=site, main=_shown(main),
                       total=total, opml=OPML_NAME)


def render_opml(env: jinja2.Environment, site: Site, groups: Sequence[Group], max_bytes: int | None = None) -> bytes:
    return _fit_groups(groups, env.get_template(OPML_NAME), max_bytes, site=site,
                       home=web_url(site.link or site.base_url) or site.base_url)


def render_feed_page(env: jinja2.Environment, site: Site, feed: Listing, entries: Sequence[Entry],
                     home: str, max_bytes: int | None = None) -> tuple[bytes, int]:
    """The page, and how many of ``entries`` (newest first) it shows."""
    template = env.get_template(PAGE_TEMPLATE)
    shown = _shown(feed)
    data, count = fit_count(len(entries), lambda n: template.render(site=site, feed=shown, entries=entries[:n],
                                                                    home=web_url(home) or "").encode("utf-8"),
                            max_bytes)
    if max_bytes and len(data) > max_bytes:  # as a feed: not written at all, the one published before kept
        raise InputError(f"over its {max_bytes:,}-byte budget even without entries")
    return data, count
