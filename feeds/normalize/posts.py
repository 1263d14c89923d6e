"""Posts: front matter to :class:`PostMeta`, a post's body to clean content, and its entry.

Pure functions: no files, network, database or clock. Front-matter spellings (Jekyll,
Hugo, Pelican) are mapped onto one set of fields here; dates go through ``dates``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, tzinfo
from email.utils import parseaddr
from pathlib import PurePosixPath
from typing import Any

from ..errors import PostError
from ..identity import absolute_url, canonical_link
from ..models import Author, Entry, PostMeta, Provenance, RawPost
from . import content as html
from .dates import parse_datetime

UPDATED_KEYS = ("updated", "last_modified_at", "lastmod", "modified", "last_modified")
LINK_KEYS = ("from", "link", "canonical_url", "source_url", "canonical", "url")
SUMMARY_KEYS = ("summary", "excerpt", "description")
ID_KEYS = ("id", "guid")
AUTHOR_KEYS = ("author", "authors")
IMAGE_KEYS = ("image", "cover", "thumbnail", "featured_image")

_FILENAME_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:-|$)")
_EPOCH_COMMENT = re.compile(r"^\s*<!--\s*(\d{9,13})\s*-->")


def key_line(raw: RawPost, key: str) -> int:
    """Line of ``key`` in the front matter (the front matter's start if not found)."""
    pattern = re.compile(r'^\s*["\']?' + re.escape(key) + r'["\']?\s*[:=]')
    for offset, line in enumerate(raw.front.split("\n")):
        if pattern.match(line):
            return raw.front_line + offset
    return raw.front_line


#: Dates before this are not dates: "0001-01-01" and "1900-01-01" are placeholders, and years


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


_YES = frozenset(("true", "yes", "on", "1", "y"))
_NO = frozenset(("false", "no", "off", "0", "n"))


def _flag(value: Any, words: frozenset[str]) -> bool:
    """Whether ``value`` is the flag ``words`` name: the YAML/TOML boolean, a number, or the
    word quoted ("true" or "no" as text: a quoted flag must not publish a draft)."""
    if isinstance(value, bool):
        return value is ("true" in words)
    if isinstance(value, int | float):
        return (value != 0) is ("true" in words)
    return isinstance(value, str) and value.strip().casefold() in words


def is_draft(meta: dict[str, Any]) -> bool:
    return _flag(meta.get("draft"), _YES) or _flag(meta.get("published"), _NO)


def _text(raw: RawPost, key: str, value: Any) -> str:
    """A scalar front-matter value as text; a list or mapping is a :class:`PostError` naming ``key``
    (its Python spelling, "['a', 'b']", is no title, id or summary)."""
    if isinstance(value, list | tuple | dict):
        kind = "mapping" if isinstance(value, dict) else "list"
        raise PostError(f"{key}: expected text, got a {kind}", where=raw.name, line=key_line(raw, key))
    return str(value)


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
    title = html.plain_line(_text(raw, "title", title_value)) if title_value not in (None, "") else ""
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
        link = canonical_link(_text(raw, found[0], found[1]), base_url)
        if link is None:
            raise fail(found[0], f"{found[0]}: not a usable http(s) URL: {found[1]!r}")

    explicit_id = None
    found = _first(meta, ID_KEYS)
    if found:
        explicit_id = _text(raw, found[0], found[1]).strip() or None

    summary = None
    found = _first(meta, SUMMARY_KEYS)
    if found:
        text = _text(raw, found[0], found[1])
        summary = html.html_to_text(html.clean_html(text)) if "<" in text else html.plain_line(text)

    image = None
    found = _first(meta, IMAGE_KEYS)
    if found:
        value = found[1]
        if isinstance(value, dict):
            value = value.get("path") or value.get("url") or value.get("src") or ""
        image = absolute_url(str(value), link or base_url)

    found = _first(meta, ("lang", "language"))
    language = _text(raw, found[0], found[1]) if found else None
    tags = html.name_list(meta.get("tags", meta.get("tag")))
    extra = html.name_list(list(extra_tags))
    # Names are plain lines already: a second pass joins the extra tags (a name made
    # printable by dropping characters may collapse further, so that one goes again too).
    if extra or not all(t.isprintable() for t in tags):
        tags = html.name_list(tags + extra)
    categories = html.name_list(meta.get("categories", meta.get("category")))
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
        tags=tuple(tags),
        categories=tuple(categories),
        summary=summary,
        language=html.plain_line(language) if language else None,
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

