"""Parse fetched feed bytes: RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 (feedparser), JSON Feed 1.x.

Pure: bytes and response headers in, a :class:`ParsedFeed` out. feedparser is
given the bytes together with the headers (charset, Content-Location as the
base URL); it never touches the network here. A feed that is malformed but
recoverable still gives its items, with ``problem`` saying what was wrong.
Anything that is not a feed at all raises :class:`InputError`.
"""

from __future__ import annotations

import calendar
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

import feedparser

from . import content as html
from .errors import InputError
from .models import Author, Enclosure

# bozo exceptions that mean "parsed fine, but the bytes were not quite as declared".
_BENIGN = ("CharacterEncodingOverride", "NonXMLContentType")


@dataclass(frozen=True, slots=True)
class ParsedItem:
    """One item as the upstream feed has it, before normalization."""

    guid: str | None
    link: str | None
    #: Plain-text title ("" when the item has none).
    title: str
    #: Dates as written (for time zones feedparser cannot see), and as feedparser read them.
    published_text: str | None
    published: datetime | None
    updated_text: str | None
    updated: datetime | None
    authors: tuple[Author, ...]
    tags: tuple[str, ...]
    summary_html: str | None
    content_html: str | None
    enclosures: tuple[Enclosure, ...]
    image: str | None
    language: str | None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    #: "rss20", "atom10", "json11"...
    format: str
    title: str
    link: str | None
    id: str | None
    updated: datetime | None
    #: RSS <ttl>, in minutes.
    ttl: int | None
    language: str | None
    items: tuple[ParsedItem, ...]
    #: What was wrong with a feed that could still be read.
    problem: str | None = None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _text(value: Any, kind: str | None = None) -> str:
    if not value:
        return ""
    text = str(value)
    if kind in ("text/html", "application/xhtml+xml", "html", "xhtml") or ("<" in text and ">" in text):
        return html.html_to_text(html.clean_html(text))
    return html.plain_line(text)


def _authors(entry: Mapping[str, Any]) -> tuple[Author, ...]:
    out: list[Author] = []
    for a in entry.get("authors") or []:
        name = html.plain_line(str(a.get("name") or a.get("email") or ""))
        if name:
            author = Author(name, a.get("email") or None, a.get("href") or None)
            if author not in out:
                out.append(author)
    if not out and entry.get("author"):
        out.append(Author(html.plain_line(str(entry["author"]))))
    return tuple(out)


def _tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for t in entry.get("tags") or []:
        name = html.plain_line(str(t.get("label") or t.get("term") or ""))
        if name and name not in out:
            out.append(name)
    return tuple(out)


def _enclosures(entry: Mapping[str, Any]) -> tuple[Enclosure, ...]:
    out = []
    for e in entry.get("enclosures") or []:
        href = e.get("href")
        if href:
            length = str(e.get("length") or "0")
            out.append(Enclosure(href, e.get("type") or "application/octet-stream",
                                 int(length) if length.isdigit() else 0))
    return tuple(out)


def _image(entry: Mapping[str, Any]) -> str | None:
    for key in ("media_thumbnail", "media_content"):
        for m in entry.get(key) or []:
            if m.get("url") and (key == "media_thumbnail" or str(m.get("medium", "image")) == "image"):
                return str(m["url"])
    image = entry.get("image")
    if isinstance(image, Mapping) and image.get("href"):
        return str(image["href"])
    return None


def _own(d: Mapping[str, Any], key: str) -> Any:
    """``d[key]`` as stored: FeedParserDict.get would answer "updated" with "published"."""
    return dict.get(d, key) if isinstance(d, dict) else d.get(key)


def _item(entry: Mapping[str, Any]) -> ParsedItem:
    contents = entry.get("content") or []
    content = next((c.get("value") for c in contents if "html" in str(c.get("type", ""))), None)
    if content is None and contents:
        value = contents[0].get("value")
        content = html.plain_line(value) if value else None
    title_detail = entry.get("title_detail") or {}
    return ParsedItem(
        guid=(str(entry["id"]).strip() or None) if entry.get("id") else None,
        link=entry.get("link") or None,
        title=_text(entry.get("title"), title_detail.get("type")),
        published_text=entry.get("published"),
        published=_time(entry.get("published_parsed")),
        updated_text=_own(entry, "updated"),
        updated=_time(_own(entry, "updated_parsed")),
        authors=_authors(entry),
        tags=_tags(entry),
        summary_html=entry.get("summary") or None,
        content_html=content,
        enclosures=_enclosures(entry),
        image=_image(entry),
        language=(entry.get("language") or None),
    )


def _looks_like_json(body: bytes, headers: Mapping[str, str]) -> bool:
    kind = headers.get("content-type", "").lower()
    return "json" in kind or body.lstrip()[:1] == b"{"


def parse_feed(body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
    """Parse a fetched body; :class:`InputError` (naming ``url``) when it is not a feed."""
    if not body.strip():
        raise InputError("empty body", where=url)
    if _looks_like_json(body, headers):
        return parse_json_feed(body, url)
    response_headers = dict(headers)
    response_headers.setdefault("content-location", url)
    # Sanitizing and resolving links are done later, for every source alike (``content``).
    # A stream, not bytes: feedparser opens bytes that name a file (b"/dev/zero") as that file.
    d = feedparser.parse(io.BytesIO(body), response_headers=response_headers, resolve_relative_uris=False,
                         sanitize_html=False)
    problem = None
    if d.get("bozo"):
        exc = d.get("bozo_exception")
        problem = f"{type(exc).__name__}: {exc}" if exc else "malformed feed"
        if type(exc).__name__ in _BENIGN:
            problem = None
    version = d.get("version") or ""
    feed = d.get("feed") or {}
    if not version:
        head = body.lstrip()[:200].lower()
        if b"<html" in head or b"<!doctype html" in head:
            raise InputError("the URL gives an HTML page, not a feed", where=url)
        raise InputError(f"not an RSS, Atom or JSON feed ({problem or 'unknown format'})", where=url)
    ttl = str(feed.get("ttl") or "").strip()
    return ParsedFeed(
        format=version,
        title=_text(feed.get("title"), (feed.get("title_detail") or {}).get("type")),
        link=feed.get("link") or None,
        id=feed.get("id") or None,
        updated=_time(_own(feed, "updated_parsed")),
        ttl=int(ttl) if ttl.isdigit() else None,
        language=feed.get("language") or None,
        items=tuple(_item(e) for e in d.get("entries") or []),
        problem=problem,
    )


def _json_date(value: Any) -> tuple[str | None, datetime | None]:
    if not isinstance(value, str) or not value.strip():
        return None, None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return value, None
    return value, (when.astimezone(UTC) if when.tzinfo else None)


def parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    """A JSON Feed (https://jsonfeed.org/version/1 or 1.1)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"invalid JSON: {exc}", where=url) from None
    if not isinstance(data, dict) or "jsonfeed.org/version/" not in str(data.get("version", "")):
        raise InputError("JSON, but not a JSON Feed (no jsonfeed.org version)", where=url)
    version = "json" + str(data["version"]).rsplit("/", 1)[-1].replace(".", "")
    items = []
    for raw in data.get("items") or []:
        if not isinstance(raw, dict):
            continue
        authors = raw.get("authors") or ([raw["author"]] if isinstance(raw.get("author"), dict) else [])
        published_text, published = _json_date(raw.get("date_published"))
        updated_text, updated = _json_date(raw.get("date_modified"))
        content = raw.get("content_html")
        if not content and raw.get("content_text"):
            content = "<p>" + escape(html.plain_line(str(raw["content_text"]))) + "</p>"
        items.append(ParsedItem(
            guid=str(raw["id"]).strip() or None if raw.get("id") is not None else None,
            link=raw.get("url") or raw.get("external_url") or None,
            title=_text(raw.get("title")),
            published_text=published_text, published=published,
            updated_text=updated_text, updated=updated,
            authors=tuple(Author(html.plain_line(str(a.get("name"))), None, a.get("url"))
                          for a in authors if isinstance(a, dict) and a.get("name")),
            tags=tuple(html.plain_line(str(t)) for t in raw.get("tags") or [] if str(t).strip()),
            summary_html=escape(str(raw["summary"])) if raw.get("summary") else None,  # plain text
            content_html=content or None,
            enclosures=tuple(Enclosure(a["url"], a.get("mime_type") or "application/octet-stream",
                                       int(a.get("size_in_bytes") or 0))
                             for a in raw.get("attachments") or [] if isinstance(a, dict) and a.get("url")),
            image=raw.get("image") or raw.get("banner_image") or None,
            language=raw.get("language") or None,
        ))
    return ParsedFeed(
        format=version, title=_text(data.get("title")), link=data.get("home_page_url") or None,
        id=data.get("feed_url") or None, updated=None, ttl=None, language=data.get("language") or None,
        items=tuple(items),
    )
