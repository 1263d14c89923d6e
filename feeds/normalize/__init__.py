"""Build the entry model from what the sources produced.

Pure functions: no files, network, database or clock. This is the one place
where dates become aware UTC, where front-matter spellings (Jekyll, Hugo,
Pelican) are mapped onto one set of fields, and where an :class:`Entry` is
built.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import PurePosixPath
from typing import Any

from ..errors import PostError
from ..identity import absolute_url, canonical_link, id_from_content, id_from_value
from ..models import Author, Enclosure, Entry, PostMeta, Provenance
from ..posts import RawPost
from ..sources.parse import ParsedFeed, ParsedItem
from . import content as html

UPDATED_KEYS = ("updated", "last_modified_at", "lastmod", "modified", "last_modified")
LINK_KEYS = ("from", "link", "canonical_url", "source_url", "canonical", "url")
SUMMARY_KEYS = ("summary", "excerpt", "description")
ID_KEYS = ("id", "guid")
AUTHOR_KEYS = ("author", "authors")
IMAGE_KEYS = ("image", "cover", "thumbnail", "featured_image")

_FILENAME_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:-|$)")
_EPOCH_COMMENT = re.compile(r"^\s*<!--\s*(\d{9,13})\s*-->")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt ]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(?:([Zz]|UTC|GMT)|([+-])(\d{2}):?(\d{2})?)?$"
)


def key_line(raw: RawPost, key: str) -> int:
    """Line of ``key`` in the front matter (the front matter's start if not found)."""
    pattern = re.compile(r'^\s*["\']?' + re.escape(key) + r'["\']?\s*[:=]')
    for offset, line in enumerate(raw.front.split("\n")):
        if pattern.match(line):
            return raw.front_line + offset
    return raw.front_line


#: Dates before this are not dates: "0001-01-01" and "1900-01-01" are placeholders, and years
#: before 1000 cannot be written as RFC 822 or RFC 3339 dates that readers agree on.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
#: Dates after this are not dates either: readers that keep times in 32 bits (newsboat) wrap
#: them around to another year.
LATEST = datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC)


def parse_datetime(value: Any, zone: tzinfo) -> datetime:
    """A date as written in front matter to aware UTC; naive times are in ``zone``.

    Raises ValueError when ``value`` is not a date, or one before 1970 (:data:`EARLIEST`) or
    after 2038-01-19 (:data:`LATEST`).
    """
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime.combine(value, time())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        try:
            when = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError) as exc:
            raise ValueError(f"not a time: {value}") from exc
    elif isinstance(value, str):
        when = _parse_date_string(value.strip())
    else:
        raise ValueError(f"expected a date, got {type(value).__name__}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    if when.year < EARLIEST.year:  # before converting: year 1 in a zone east of UTC overflows
        raise ValueError(f"year {when.year} is before {EARLIEST.year}")
    when = max(when.astimezone(UTC), EARLIEST)
    if when > LATEST:
        raise ValueError(f"{when:%Y-%m-%d} is after {LATEST:%Y-%m-%d}, more than readers can hold")
    return when


def _parse_date_string(text: str) -> datetime:
    m = _DATETIME.match(text)
    if m:
        y, mo, d, hh, mi, ss, frac, z, sign, oh, om = m.groups()
        micro = int((frac or "0")[:6].ljust(6, "0"))
        when = datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), micro)
        if z:
            return when.replace(tzinfo=UTC)
        if sign:
            offset = timedelta(hours=int(oh), minutes=int(om or 0))
            return when.replace(tzinfo=timezone(-offset if sign == "-" else offset))
        return when
    try:
        return parsedate_to_datetime(text)  # RFC 822 / 2822, as in RSS
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"not a date: {text!r}") from None


def _strings(value: Any) -> list[str]:
    """A list of names from a YAML list or a space/comma separated string."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        parts = value.split(",") if "," in value else value.split()
    elif isinstance(value, list | tuple):
        parts = [str(v) for v in value if v is not None and not isinstance(v, dict | list)]
    else:
        parts = [str(value)]
    out: list[str] = []
    seen: set[str] = set()
    for part in parts:
        name = html.plain_line(part)
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
    return out


def _author(value: Any) -> Author | None:
    if isinstance(value, dict):
        name = str(value.get("name") or value.get("display_name") or "").strip()
        email = value.get("email")
        uri = value.get("uri") or value.get("url") or value.get("link")
        email = str(email).strip() if email else None
        if not name:
            name = email or ""
        uri_abs = absolute_url(str(uri)) if uri else None
        return Author(html.plain_line(name), email, uri_abs) if name else None
    if value is None:
        return None
    text = html.plain_line(str(value))
    if "@" in text and "<" in text:
        name, email = parseaddr(text)
        if email:
            return Author(name or email, email)
    return Author(text) if text else None


def _authors(meta: dict[str, Any]) -> tuple[Author, ...]:
    found: list[Author] = []
    for key in AUTHOR_KEYS:
        value = meta.get(key)
        values = value if isinstance(value, list) else [value]
        for v in values:
            author = _author(v)
            if author and author not in found:
                found.append(author)
    return tuple(found)


def _first(meta: dict[str, Any], keys: Sequence[str]) -> tuple[str, Any] | None:
    for key in keys:
        if meta.get(key) not in (None, "", []):
            return key, meta[key]
    return None


def is_draft(meta: dict[str, Any]) -> bool:
    return meta.get("draft") is True or meta.get("published") is False


def permalink_for(name: str, published: datetime, zone: tzinfo, pattern: str, home: str) -> str | None:
    """The post's address on the site, from a pattern like ``{year}/{month}/{day}/{slug}.html``."""
    stem = PurePosixPath(name).stem
    slug = _FILENAME_DATE.sub("", stem) or stem
    local = published.astimezone(zone)
    path = pattern.format(year=f"{local.year:04d}", month=f"{local.month:02d}", day=f"{local.day:02d}",
                          slug=slug)
    return absolute_url(path.lstrip("/") if not path.startswith("//") else path, home)


def meta_from_post(raw: RawPost, *, zone: tzinfo, base_url: str, home_url: str | None = None,
                   permalink: str = "{year}/{month}/{day}/{slug}.html",
                   extra_tags: Iterable[str] = ()) -> PostMeta:
    """Normalize a post's front matter. Raises :class:`PostError` naming the line."""
    meta = raw.meta

    def fail(key: str, message: str) -> PostError:
        return PostError(message, where=raw.name, line=key_line(raw, key))

    title_value = meta.get("title")
    title = html.plain_line(str(title_value)) if title_value not in (None, "") else ""
    if not title:
        return_line = key_line(raw, "title") if "title" in meta else raw.front_line
        raise PostError("the post has no title", where=raw.name, line=return_line)

    published: datetime | None = None
    if meta.get("date") not in (None, ""):
        try:
            published = parse_datetime(meta["date"], zone)
        except (ValueError, OverflowError) as exc:
            raise fail("date", f"invalid date: {exc}") from None
    if published is None:
        m = _FILENAME_DATE.match(PurePosixPath(raw.name).name)
        if m:
            try:
                published = parse_datetime(date(int(m[1]), int(m[2]), int(m[3])), zone)
            except ValueError:
                raise PostError(f"invalid date in the file name {PurePosixPath(raw.name).name!r}",
                                where=raw.name) from None
    if published is None:
        m = _EPOCH_COMMENT.match(raw.body)
        if m:
            try:
                published = parse_datetime(int(m[1]), zone)
            except ValueError as exc:
                raise PostError(f"invalid date in the leading comment: {exc}", where=raw.name) from None
    if published is None:
        raise PostError("the post has no date (front matter `date`, a YYYY-MM-DD- file name, "
                        "or a leading <!--epoch-ms--> comment)", where=raw.name, line=raw.front_line)

    updated = published
    found = _first(meta, UPDATED_KEYS)
    if found:
        try:
            updated = max(published, parse_datetime(found[1], zone))
        except (ValueError, OverflowError) as exc:
            raise fail(found[0], f"invalid date: {exc}") from None

    link = None
    found = _first(meta, LINK_KEYS)
    if found:
        link = canonical_link(str(found[1]), base_url)
        if link is None:
            raise fail(found[0], f"{found[0]}: not a usable http(s) URL: {found[1]!r}")

    explicit_id = None
    found = _first(meta, ID_KEYS)
    if found:
        explicit_id = str(found[1]).strip() or None

    summary = None
    found = _first(meta, SUMMARY_KEYS)
    if found:
        text = str(found[1])
        summary = html.html_to_text(html.clean_html(text)) if "<" in text else html.plain_line(text)

    image = None
    found = _first(meta, IMAGE_KEYS)
    if found:
        value = found[1]
        if isinstance(value, dict):
            value = value.get("path") or value.get("url") or value.get("src") or ""
        image = absolute_url(str(value), link or base_url)

    language = meta.get("lang") or meta.get("language")
    tags = _strings(meta.get("tags", meta.get("tag"))) + _strings(list(extra_tags))
    categories = _strings(meta.get("categories", meta.get("category")))
    return PostMeta(
        path=raw.name,
        digest=raw.digest,
        title=title,
        published=published,
        updated=updated,
        explicit_id=explicit_id,
        link=link,
        permalink=None if link else permalink_for(raw.name, published, zone, permalink, home_url or base_url),
        authors=_authors(meta),
        tags=tuple(_strings(tags)),
        categories=tuple(categories),
        summary=summary,
        language=html.plain_line(str(language)) if language else None,
        image=image,
        body_line=raw.body_line,
    )


def post_content(body: str, *, path: str, title: str, base_url: str, summary: str | None = None,
                 remove: Sequence[str] = (), summary_length: int = 280) -> tuple[str, str]:
    """Clean HTML content and a plain-text summary for a post's body (Markdown, or HTML by suffix).

    ``base_url`` is what relative URLs in the body are resolved against (the post's own link).
    """
    is_html = path.endswith((".html", ".htm"))
    rendered = body if is_html else html.render_markdown(body)
    cleaned = html.clean_html(rendered, title=title, base_url=base_url, remove=remove)
    return cleaned, summary or html.shorten(html.html_to_text(cleaned, captions=False), summary_length)


def entry_from_post(
    post: PostMeta,
    *,
    entry_id: str,
    content: str,
    summary: str,
    tags: Sequence[str],
    categories: Sequence[str],
    source: str,
    summary_only: bool = False,
    merged: Sequence[PostMeta] = (),
) -> Entry:
    """The entry for a local post, from its front matter and cleaned content."""
    return Entry(
        id=entry_id,
        title=post.title,
        link=post.link or post.permalink,
        published=post.published,
        updated=post.updated,
        authors=post.authors,
        tags=tuple(tags),
        categories=tuple(categories),
        summary=summary,
        content=None if summary_only else content,
        language=post.language,
        image=post.image,
        provenance=tuple(Provenance(source=source, path=p.path, upstream_id=p.explicit_id)
                         for p in (post, *merged)),
    )


# -- remote items ------------------------------------------------------------


def id_mode(items: Sequence[ParsedItem]) -> str:
    """How a feed's items are told apart: "guid", else "link", else "hash".

    A feed whose guids are missing or repeated cannot be trusted with them; one
    whose links are also missing or repeated is identified by content.
    """
    def consistent(pairs: Iterable[tuple[str | None, object]]) -> bool:
        seen: dict[str, object] = {}
        return all(key and seen.setdefault(key, other) == other for key, other in pairs)

    # A guid listed twice for the same story is a duplicate item, not a broken scheme.
    if consistent((i.guid, (i.link, i.title)) for i in items):
        return "guid"
    if consistent((i.link, i.title) for i in items):
        return "link"
    return "hash"


def item_key(item: ParsedItem, mode: str, feed_link: str | None) -> str:
    """What identifies an item within its source, under ``mode``."""
    if mode == "guid" and item.guid:
        return "guid:" + item.guid
    if mode in ("guid", "link") and item.link:
        return "link:" + (canonical_link(item.link, feed_link) or item.link)
    text = html.html_to_text(item.content_html or item.summary_html or "")[:500]
    return "hash:" + id_from_content(item.title, item.link or "", text)


_UNSAFE_ID_SCHEMES = {"javascript", "vbscript", "data", "file", "about", "blob", "filesystem"}


def natural_item_id(item: ParsedItem, mode: str, feed_link: str | None) -> str:
    """The id an item gets when nothing is known of it yet.

    A guid that reads as a script or local URI (``javascript:``, ``data:``, ``file:``...)
    is never an id as it is: it is named by a URN instead."""
    if mode == "guid" and item.guid:
        minted = id_from_value(item.guid)
        if minted.split(":", 1)[0].lower() in _UNSAFE_ID_SCHEMES:
            minted = id_from_content("guid", item.guid)
        return minted
    link = canonical_link(item.link, feed_link) if item.link else None
    if mode in ("guid", "link") and link:
        return link
    return item_key(item, "hash", feed_link).removeprefix("hash:")


# Sizes of what one item may bring, whatever its feed says (characters unless named bytes).
TITLE_CHARS = 500
NAME_CHARS = 200
TAG_CHARS = 100
ID_CHARS = 2000
LANGUAGE_CHARS = 35
TYPE_CHARS = 100


@dataclass(frozen=True, slots=True)
class ItemLimits:
    """Caps on one item of a source feed (``fetch.limits`` / a source's ``limits``)."""

    #: Tags an entry keeps from its feed, in the feed's order (the source's own tags come on top).
    tags: int = 20
    #: Clean content larger than this (UTF-8 bytes) is left out: the entry keeps its summary and link.
    content_bytes: int = 1_000_000


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


def _item_content(body: str, limits: ItemLimits, **clean: Any) -> str | None:
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
    limits: ItemLimits = ItemLimits(),
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
    feed_tags = [t for t in (_capped(t, TAG_CHARS) for t in item.tags) if t]
    return Entry(
        id=entry_id,
        title=title,
        link=link,
        published=published,
        updated=updated,
        authors=tuple(authors),
        tags=tuple(_strings([*_strings(feed_tags)[: limits.tags], *extra_tags])),
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


def tags_capped(item: ParsedItem, limits: ItemLimits) -> bool:
    """Whether ``item`` has more tags than an entry keeps."""
    return len(item.tags) > limits.tags


def _enclosure(enclosure: Enclosure, base: str) -> Enclosure | None:
    url = absolute_url(enclosure.url, base) if isinstance(enclosure.url, str) else None
    if url is None:
        return None
    kind = _capped(enclosure.type, TYPE_CHARS) or "application/octet-stream"
    length = enclosure.length if isinstance(enclosure.length, int) and enclosure.length > 0 else 0
    return Enclosure(url, kind, length)
