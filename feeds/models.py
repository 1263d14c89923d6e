"""The common entry model and the small records handed between stages.

Everything downstream of normalization reads only :class:`Entry`. Datetimes in
these records are always aware and in UTC; the boundary that builds them
(``normalize``) is the only place that deals with naive or local times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

#: 1970-01-01 UTC: the earliest date an entry can carry (``normalize.dates``), and the date
#: of a feed or report with nothing in it.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The latest date an entry can carry: readers that keep times in 32 bits (newsboat) wrap
#: later ones around to another year.
LATEST = datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RawPost:
    """A post's front matter and body, as written: what ``posts`` reads and ``normalize`` maps."""

    name: str
    digest: str
    meta: dict[str, Any]
    #: The front matter as text, to find the line of a key.
    front: str
    body: str
    #: 1-based line where the front matter's text starts, and where the body starts.
    front_line: int
    body_line: int


@dataclass(frozen=True, slots=True)
class Author:
    """A person or organisation credited with an entry."""

    #: Display name (plain text).
    name: str
    #: E-mail address, when known (RSS ``<author>`` needs one).
    email: str | None = None
    #: Home page of the author.
    uri: str | None = None


@dataclass(frozen=True, slots=True)
class Enclosure:
    """A media file attached to an entry (podcast audio, a lead image...)."""

    url: str
    type: str = "application/octet-stream"
    length: int = 0


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an entry came from."""

    #: ``posts:<folder>`` for local posts, the source name for remote feeds.
    source: str
    #: Path of the post file (relative to the config folder), for local posts.
    path: str | None = None
    #: The id the entry had upstream (guid / atom:id / front-matter id).
    upstream_id: str | None = None
    #: Title and link of the upstream feed, for remote entries.
    feed_title: str | None = None
    feed_link: str | None = None
    #: atom:id and updated time of the upstream feed, for remote entries.
    feed_id: str | None = None
    feed_updated: datetime | None = None
    #: The address the upstream feed was fetched from.
    feed_url: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One story, whatever it came from. Built by ``normalize`` only."""

    #: Output id: minted once, never changes (an absolute URI).
    id: str
    #: Plain-text title.
    title: str
    #: Absolute, percent-encoded link to the story, if any.
    link: str | None
    #: When the story was first published (aware UTC).
    published: datetime
    #: When it was last changed (aware UTC, >= published).
    updated: datetime
    authors: tuple[Author, ...] = ()
    #: Display names of tags and categories, after the alias map.
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    #: Plain-text summary.
    summary: str = ""
    #: Clean, sanitized HTML; ``None`` when only the summary may be published.
    content: str | None = None
    language: str | None = None
    #: Lead image URL.
    image: str | None = None
    enclosures: tuple[Enclosure, ...] = ()
    provenance: tuple[Provenance, ...] = field(default=())


class PostMeta(NamedTuple):
    """What a post's front matter says, normalized; enough to choose feeds.

    Rendering the body is costly, so it is done later and only for the posts
    some feed selects. This hand-off is cached in the store between runs, and
    made in bulk (tens of thousands per run), hence a light NamedTuple.
    """

    #: Path of the post file, relative to the config folder (POSIX form).
    path: str
    #: SHA-1 of the file's bytes: changes whenever the post does.
    digest: str
    title: str
    published: datetime
    updated: datetime
    #: ``id``/``guid`` from the front matter, if any.
    explicit_id: str | None
    #: Canonical link (tracking parameters stripped), if the front matter gives one.
    link: str | None
    #: The post's address on the site, from the folder's permalink pattern (used when
    #: there is no ``link``; never used for the id, as it changes with the file name).
    permalink: str | None
    authors: tuple[Author, ...]
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    #: Summary given in the front matter (plain text), if any.
    summary: str | None
    language: str | None
    image: str | None
    #: 1-based line of the body's first line in the file, for messages.
    body_line: int
