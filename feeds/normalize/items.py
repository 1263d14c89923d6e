"""Items of source feeds: a parsed item to an :class:`Entry`, within its caps.

Pure functions: no files, network, database or clock (the current time is passed in).
Whatever an item holds, its entry is well-typed and safe; what a feed may bring is capped
(tags, content size), and the checks here say when a cap was hit. How an item is told
apart and which id it gets is ``identity``'s business, what a fetch means for its source
``sources.decide``'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from ..config import Limits
from ..identity import absolute_url, canonical_link
from ..models import Author, Enclosure, Entry, Provenance
from ..sources.parse import ParsedFeed, ParsedItem
from . import content as html
from .dates import EARLIEST, parse_datetime

# Sizes of what one item may bring, whatever its feed says (characters unless named bytes).
TITLE_CHARS = 500
NAME_CHARS = 200
TAG_CHARS = html.TAG_CHARS
ID_CHARS = 2000
LANGUAGE_CHARS = 35
TYPE_CHARS = 100

#: The caps of a source that sets none (``fetch.limits``' defaults).
_DEFAULT_LIMITS = Limits()


def _item_date(text: str | None, parsed: datetime | None, zone: tzinfo) -> datetime | None:
    when = parsed
    if text:
        with contextlib.suppress(ValueError, OverflowError, OSError):
            when = parse_datetime(text, zone)  # sees naive times, which feedparser takes as UTC
    return when if when is not None and when >= EARLIEST else None


def _capped(text: str | None, length: int) -> str | None:
    """A plain, XML-safe line of at most ``length`` characters, or None when blank."""
    if not isinstance(text, str):
        return None
    line = html.plain_line(text[: length * 4])
    return (html.shorten(line, length) if len(line) > length else line) or None


def _item_author(author: Author, base: str) -> Author | None:
    name = _capped(author.name, NAME_CHARS)
    if name is None:
        return None
    email = _capped(author.email, 254)
    if email is not None and (" " in email or "@" not in email):
        email = None
    return Author(name, email, absolute_url(author.uri, base) if isinstance(author.uri, str) else None)


def _item_content(body: str, limits: Limits, **clean: Any) -> str | None:
    """Clean content of an item, or None when it is over its cap (before or after cleaning)."""
    if len(body) > limits.content_bytes * 4:  # not worth cleaning
        return None
    content = html.clean_html(body, **clean)
    return content if len(content.encode("utf-8", "replace")) <= limits.content_bytes else None


def entry_from_item(
    item: ParsedItem,
    feed: ParsedFeed,
    *,
    entry_id: str,
    source: str,
    feed_url: str,
    zone: tzinfo,
    now: datetime,
    first_seen: datetime,
    extra_tags: Sequence[str] = (),
    remove: Sequence[str] = (),
    summary_only: bool = False,
    summary_length: int = 280,
    limits: Limits = _DEFAULT_LIMITS,
) -> Entry:
    """The entry for one item of a source feed.

    Dates written without a zone are read in ``zone``; an item without a date is
    dated when it was first seen; dates in the future are brought back to ``now``,
    dates before 1970 are read as missing.
    What comes out is always well-typed and safe, whatever the item held: every
    URL is absolute http(s) or left out, texts are XML-safe single lines of
    bounded length, numbers are non-negative ints. Content over its cap
    (``limits``) is left out; :func:`content_capped` tells when that happened.
    """
    published = _item_date(item.published_text, item.published, zone)
    updated = _item_date(item.updated_text, item.updated, zone)
    published = published or updated or first_seen
    updated = max(updated or published, published)
    published, updated = min(published, now), min(updated, now)
    feed_link = absolute_url(feed.link, feed_url) if isinstance(feed.link, str) else None
    link = canonical_link(item.link, feed_link or feed_url) if isinstance(item.link, str) else None
    base = link or feed_link or feed_url
    title = _capped(item.title, TITLE_CHARS)
    body = item.content_html or item.summary_html or ""
    content = _item_content(body, limits, title=title or "", base_url=base, remove=remove) if body else ""
    if item.summary_html and item.content_html:
        summary_html = item.summary_html[: limits.content_bytes]
        summary = html.shorten(html.html_to_text(html.clean_html(summary_html)), summary_length)
    else:
        summary = html.shorten(html.html_to_text(content or "", captions=False), summary_length)
    if content is None and not summary and item.summary_html:  # content too big, and the summary with it
        summary = html.shorten(html.html_to_text(html.clean_html(item.summary_html[:100_000])), summary_length)
    title = title or html.shorten(summary, 80) or "(untitled)"
    authors: list[Author] = []
    for a in item.authors:
        author = _item_author(a, base)
        if author is not None and author not in authors:
            authors.append(author)
    feed_tags = [t for t in item.tags if isinstance(t, str)]  # name_list makes them lines of TAG_CHARS at most
    return Entry(
        id=entry_id,
        title=title,
        link=link,
        published=published,
        updated=updated,
        authors=tuple(authors),
        tags=tuple(html.name_list([*html.name_list(feed_tags)[: limits.tags_per_entry], *extra_tags])),
        categories=(),
        summary=summary,
        content=None if summary_only else content,
        language=_capped(item.language, LANGUAGE_CHARS) or _capped(feed.language, LANGUAGE_CHARS),
        image=absolute_url(item.image, base) if isinstance(item.image, str) else None,
        enclosures=tuple(e for e in (_enclosure(x, base) for x in item.enclosures) if e),
        provenance=(Provenance(source=source, upstream_id=_capped(item.guid, ID_CHARS),
                               feed_title=_capped(feed.title, TITLE_CHARS), feed_link=feed_link,
                               feed_id=_capped(feed.id, ID_CHARS), feed_updated=feed.updated,
                               feed_url=feed_url),),
    )


def content_capped(item: ParsedItem, entry: Entry) -> bool:
    """Whether ``entry`` lost the content of ``item`` to the content cap."""
    return entry.content is None and bool(item.content_html or item.summary_html)


def tags_capped(item: ParsedItem, limits: Limits) -> bool:
    """Whether ``item`` has more tags than an entry keeps."""
    return len(item.tags) > limits.tags_per_entry


def _enclosure(enclosure: Enclosure, base: str) -> Enclosure | None:
    url = absolute_url(enclosure.url, base) if isinstance(enclosure.url, str) else None
    if url is None:
        return None
    kind = _capped(enclosure.type, TYPE_CHARS) or "application/octet-stream"
    length = enclosure.length if isinstance(enclosure.length, int) and enclosure.length > 0 else 0
    return Enclosure(url, kind, length)


def allowed_feed_tags(items: Sequence[ParsedItem], per_entry: int, per_source: int) -> tuple[set[str] | None, int]:
    """The feed tags a fetch may bring: the first ``per_source`` distinct ones (case-folded)
    in document order, as entries keep them, or None when the feed has no more than that;
    and how many distinct tags it has."""
    allowed: dict[str, None] = {}
    for item in items:
        for tag in item.tags[:per_entry]:
            allowed.setdefault(tag.casefold())
    if len(allowed) <= per_source:
        return None, len(allowed)
    return set(list(allowed)[:per_source]), len(allowed)
