"""Parse fetched feed bytes: RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 (feedparser), JSON Feed 1.x.

Pure: bytes and response headers in, a :class:`ParsedFeed` out. feedparser is
given the bytes together with the headers (charset, Content-Location as the
base URL); it never touches the network here. A feed that is malformed but
recoverable still gives its items, with ``problem`` saying what was wrong.
Anything that is not a feed at all raises :class:`InputError`, and nothing else
is ever raised: every field is type-checked here, at the boundary, and a field
of the wrong type is left out (the rest of its item is kept).
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape, unescape
from typing import Any

import feedparser

from ..errors import InputError
from ..models import Author, Enclosure
from ..normalize import content as html

# bozo exceptions that mean "parsed fine, but the bytes were not quite as declared".
_BENIGN = ("CharacterEncodingOverride", "NonXMLContentType")
_UTF8_BOM = b"\xef\xbb\xbf"
# No real link is longer; a longer one is left out rather than stored.
_URL_CHARS = 8192
# Text fields are cut to this before cleaning (normalize cuts them much shorter).
_TEXT_CHARS = 65536
# Longer guids are replaced by their hash (they are stored as keys).
_GUID_CHARS = 1000
# Tags, authors or enclosures read from one item at most (entries keep far fewer).
_MANY = 1000


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
    """A source feed as its bytes say, every field type-checked: the feed's own fields and its items."""

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
    #: Items the document had beyond the ones read (see ``max_items``).
    dropped: int = 0


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _str(value: Any) -> str | None:
    """A non-blank string field (numbers are read as their text), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = html.xml_safe(value)
    return value if value.strip() else None


def _only_str(value: Any) -> str | None:
    """A non-blank string field; anything else (numbers too) is None."""
    return _str(value) if isinstance(value, str) else None


def _url(value: Any) -> str | None:
    """A URL field: a non-blank string of sane length, else None (whether it is http(s) is decided later)."""
    if not isinstance(value, str) or len(value) > _URL_CHARS:
        return None
    value = html.xml_safe(value).strip()
    return value or None


def _guid(value: Any) -> str | None:
    """An item's guid, stripped; one too long to be a key is named by its hash."""
    text = _str(value)
    if text is None:
        return None
    text = text.strip()
    return text if len(text) <= _GUID_CHARS else "long guid " + hashlib.sha1(text.encode()).hexdigest()


def _size(value: Any) -> int:
    """A byte count: a non-negative integer, as a number or as digits; anything else is 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, min(value, 2**63 - 1))
    text = value.strip() if isinstance(value, str) else ""
    return min(int(text), 2**63 - 1) if text.isascii() and text.isdigit() and len(text) < 20 else 0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any, kind: Any = None) -> str:
    text = _str(value)
    if text is None:
        return ""
    text = text[:_TEXT_CHARS]
    if kind == "text/plain":  # said to be plain (JSON Feed's titles): "<" is a character
        return html.plain_line(text)
    if kind in ("text/html", "application/xhtml+xml", "html", "xhtml") or ("<" in text and ">" in text):
        return html.html_to_text(html.clean_html(text))
    return html.plain_line(text)


_MAILBOX = r"([^\s()<>@,;]+@[^\s()<>@,;]+)"
# An RSS <author> as "mail (Name)", "Name <mail>" or "mail": feedparser's own split takes
# a top-level domain of at most four letters, and cuts longer ones ("news.exam" + "ple").
_RSS_AUTHOR = (re.compile(rf"^\s*{_MAILBOX}\s*\((.*)\)\s*$", re.DOTALL),
               re.compile(rf"^\s*(.*?)\s*<{_MAILBOX}>\s*$", re.DOTALL),
               re.compile(rf"^\s*{_MAILBOX}\s*$"))


def _split_author(text: str) -> tuple[str, str] | None:
    """(name, mail) of a one-string author that holds a mail address."""
    for index, pattern in enumerate(_RSS_AUTHOR):
        m = pattern.match(text)
        if m:
            if index == 0:
                return m[2].strip() or m[1], m[1]
            if index == 1:
                return m[1].strip() or m[2], m[2]
            return m[1], m[1]
    return None


def _authors(entry: Mapping[str, Any]) -> tuple[Author, ...]:
    out: list[Author] = []
    listed = _list(entry.get("authors"))[:_MANY]
    raw = _str(entry.get("author"))
    split = _split_author(raw[:_TEXT_CHARS]) if raw and "@" in raw and len(listed) == 1 else None
    for a in listed:
        a = _mapping(a)
        if split is not None:
            a = {**a, "name": split[0], "email": split[1]}
        name = html.plain_line(_str(a.get("name")) or _str(a.get("email")) or "")
        if name:
            author = Author(name, _str(a.get("email")), _url(a.get("href")))
            if author not in out:
                out.append(author)
    if not out and _str(entry.get("author")):
        out.append(Author(html.plain_line(str(entry["author"]))))
    return tuple(a for a in out if a.name)


def _tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for t in _list(entry.get("tags"))[:_MANY]:
        t = _mapping(t)
        name = html.plain_line(_str(t.get("label")) or _str(t.get("term")) or "")
        if name:
            out.setdefault(name)
    return tuple(out)


def _enclosures(entry: Mapping[str, Any]) -> tuple[Enclosure, ...]:
    out = []
    for e in _list(entry.get("enclosures"))[:_MANY]:
        e = _mapping(e)
        href = _url(e.get("href"))
        if href:
            out.append(Enclosure(href, _str(e.get("type")) or "application/octet-stream", _size(e.get("length"))))
    return tuple(out)


def _image(entry: Mapping[str, Any]) -> str | None:
    for key in ("media_thumbnail", "media_content"):
        for m in _list(entry.get(key)):
            m = _mapping(m)
            if _url(m.get("url")) and (key == "media_thumbnail" or str(m.get("medium", "image")) == "image"):
                return _url(m.get("url"))
    return _url(_mapping(entry.get("image")).get("href"))


def _own(d: Mapping[str, Any], key: str) -> Any:
    """``d[key]`` as stored: FeedParserDict.get would answer "updated" with "published"."""
    return dict.get(d, key) if isinstance(d, dict) else d.get(key)


def _item(entry: Mapping[str, Any], *, loose: bool = False) -> ParsedItem:
    if loose:
        entry = _unescaped_names(entry)
    contents = [_mapping(c) for c in _list(entry.get("content"))]
    content = next((_str(c.get("value")) for c in contents if "html" in str(c.get("type", ""))), None)
    if content is None and contents:
        value = _str(contents[0].get("value"))
        content = html.plain_line(value) if value else None
    return ParsedItem(
        guid=_guid(entry.get("id")),
        link=_url(entry.get("link")),
        title=_text(entry.get("title"), _mapping(entry.get("title_detail")).get("type")),
        published_text=_str(entry.get("published")),
        published=_time(entry.get("published_parsed")),
        updated_text=_str(_own(entry, "updated")),
        updated=_time(_own(entry, "updated_parsed")),
        authors=_authors(entry),
        tags=_tags(entry),
        summary_html=_str(entry.get("summary")),
        content_html=content,
        enclosures=_enclosures(entry),
        image=_image(entry),
        language=_str(entry.get("language")),
    )


def _unescaped_names(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """The entry with its tags' and authors' names as text. The forgiving parser (used for a
    malformed document) leaves them escaped, "A &amp; B", where the strict one unescapes."""
    out: dict[str, Any] = feedparser.FeedParserDict(entry)  # derives "enclosures" from "links"

    def plain(value: Any) -> Any:
        return unescape(value) if isinstance(value, str) else value

    out["tags"] = [{k: plain(v) if k in ("term", "label") else v for k, v in _mapping(t).items()}
                   for t in _list(entry.get("tags"))[:_MANY]]
    out["authors"] = [{k: plain(v) if k in ("name", "email") else v for k, v in _mapping(a).items()}
                      for a in _list(entry.get("authors"))[:_MANY]]
    out["author"] = plain(entry.get("author"))
    return out


def _looks_like_json(body: bytes, headers: Mapping[str, str]) -> bool:
    kind = headers.get("content-type", "").lower()
    return "json" in kind or body.removeprefix(_UTF8_BOM).lstrip()[:1] == b"{"


def parse_feed(body: bytes, headers: Mapping[str, str], url: str, *, max_items: int | None = None) -> ParsedFeed:
    """Parse a fetched body; :class:`InputError` (naming ``url``) when it is not a feed.

    Only the first ``max_items`` items (in document order) are read; ``dropped`` says how
    many more there were. Whatever the bytes, nothing but :class:`InputError` is raised:
    a field of the wrong type is left out, and a failure inside the XML or JSON parser
    is this feed's error.
    """
    if not body.strip():
        raise InputError("empty body", where=url)
    try:
        if _looks_like_json(body, headers):
            return parse_json_feed(body, url, max_items=max_items)
        return _parse_xml_feed(body, headers, url, max_items)
    except InputError:
        raise
    except RecursionError:
        raise InputError("the feed is nested too deeply to read", where=url) from None
    except Exception as exc:  # a parser failing on input it should have refused
        raise InputError(f"unreadable feed ({type(exc).__name__}: {_one_line(exc)})", where=url) from None


def _one_line(exc: BaseException) -> str:
    return html.shorten(str(exc), 200) or "no details"


def _ttl(value: Any) -> int | None:
    text = _str(value)
    text = text.strip() if text else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 9 else None


_ITEM_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")
_ITEM_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>")


def _first_items(body: bytes, count: int) -> tuple[bytes, int] | None:
    """The document with only its first ``count`` items (and its closing tags), and how
    many items were cut; None when it has no more than that, or no such shape.

    feedparser takes seconds and hundreds of megabytes for half a million items, all
    but the first few to be thrown away; cut them from the bytes instead."""
    starts = _ITEM_START.finditer(body)
    cut = next((m.start() for i, m in enumerate(starts) if i == count), None)
    if cut is None:
        return None
    ends = list(_ITEM_END.finditer(body, cut))
    if not ends:
        return None
    rest = 1 + sum(1 for _ in starts)
    return body[:cut] + body[ends[-1].end():], rest


def _bound_feedparser_tags() -> None:
    """feedparser compares each new tag of an entry with every tag before it: one item with
    100,000 categories would take many minutes. Entries keep far fewer, so it stops
    collecting at ``_MANY`` per entry (or feed), whatever the document's encoding."""
    mixin = getattr(getattr(feedparser, "mixin", None), "_FeedParserMixin", None)
    add_tag = getattr(mixin, "_add_tag", None)
    if mixin is None or add_tag is None or getattr(add_tag, "bounded", False):
        return

    def bounded_add_tag(self: Any, term: Any, scheme: Any, label: Any) -> None:
        if len(self._get_context().get("tags") or ()) < _MANY:
            add_tag(self, term, scheme, label)

    bounded_add_tag.bounded = True  # type: ignore[attr-defined]
    mixin._add_tag = bounded_add_tag


_bound_feedparser_tags()


#: How many distinct (base, reference) pairs each remembered URL join keeps.
_JOINS_KEPT = 4096


def _remembered(join: Any) -> Any:
    """``join`` (a pure function of two strings), remembering its recent answers."""
    @functools.lru_cache(maxsize=_JOINS_KEPT)
    def cached(base: str, rel: str | None) -> Any:
        return join(base, rel)

    def remembered(base: Any, rel: Any = None) -> Any:
        if type(base) is str and (rel is None or type(rel) is str):
            return cached(base, rel)
        return join(base, rel)

    remembered.remembered = True  # type: ignore[attr-defined]
    remembered.original = join  # type: ignore[attr-defined]
    return remembered


def _remember_feedparser_joins() -> None:
    """feedparser joins the base URL with itself at every element's start (to follow
    ``xml:base``) and each link with the base: a fifth of its time on a typical feed,
    for a handful of distinct pairs per feed. Those joins are pure, so their answers
    are remembered (``tests/test_parse_properties.py`` checks them against feedparser's)."""
    mixin = getattr(feedparser, "mixin", None)
    for name in ("_urljoin", "make_safe_absolute_uri"):
        join = getattr(mixin, name, None)
        if join is not None and not getattr(join, "remembered", False):
            setattr(mixin, name, _remembered(join))


_remember_feedparser_joins()


_CHARREF = re.compile(r"(?:x[0-9a-f]{1,8}|[0-9]{1,10})", re.IGNORECASE)


def _a_character(ref: str) -> bool:
    """Whether a character reference's ``ref`` ("233", "xE9") names a Unicode scalar value."""
    if not _CHARREF.fullmatch(ref):
        return False
    c = int(ref[1:], 16) if ref[:1] in "xX" else int(ref)
    return c <= 0x10FFFF and not 0xD800 <= c <= 0xDFFF


def _guard_feedparser_charrefs() -> None:
    """feedparser's forgiving parser turns ``&#xD800;``, ``&#x110000;`` or a reference of
    thousands of digits into an exception that loses the whole feed. Such a reference is
    left out instead, in the feed's text and in the HTML inside it (the characters XML
    forbids but Unicode has, like ``&#1;``, are removed later with the rest)."""
    owners = (getattr(getattr(feedparser, "mixin", None), "_FeedParserMixin", None),
              getattr(getattr(feedparser, "html", None), "_BaseHTMLProcessor", None))
    for owner in owners:
        original = getattr(owner, "handle_charref", None) if owner is not None else None
        if original is None or getattr(original, "guarded", False):
            continue

        def guarded(self: Any, ref: str, _original: Any = original) -> None:
            if _a_character(ref):
                _original(self, ref)

        guarded.guarded = True  # type: ignore[attr-defined]
        owner.handle_charref = guarded  # type: ignore[union-attr]


_guard_feedparser_charrefs()


def _feedparser(body: bytes, headers: dict[str, str]) -> Any:
    # Sanitizing and resolving links are done later, for every source alike (``content``).
    # A stream, not bytes: feedparser opens bytes that name a file (b"/dev/zero") as that file.
    return feedparser.parse(io.BytesIO(body), response_headers=headers, resolve_relative_uris=False,
                            sanitize_html=False)


def _parse_xml_feed(body: bytes, headers: Mapping[str, str], url: str, max_items: int | None) -> ParsedFeed:
    response_headers = dict(headers)
    response_headers.setdefault("content-location", url)
    cut = _first_items(body, max_items) if max_items is not None else None
    d = None
    if cut is not None:
        d = _feedparser(cut[0], response_headers)
        if len(_list(d.get("entries"))) != max_items or (
                d.get("bozo") and type(d.get("bozo_exception")).__name__ not in _BENIGN):
            d = cut = None  # the cut went wrong ("<item>" inside CDATA or a comment?): read it all
    if d is None:
        d = _feedparser(body, response_headers)
    problem = None
    if d.get("bozo"):
        exc = d.get("bozo_exception")
        problem = f"{type(exc).__name__}: {_one_line(exc)}" if exc else "malformed feed"
        if type(exc).__name__ in _BENIGN:
            problem = None
    version = _str(d.get("version")) or ""
    feed = _mapping(d.get("feed"))
    if not version:
        head = body.lstrip()[:200].lower()
        if b"<html" in head or b"<!doctype html" in head:
            raise InputError("the URL gives an HTML page, not a feed", where=url)
        raise InputError(f"not an RSS, Atom or JSON feed ({problem or 'unknown format'})", where=url)
    entries = _list(d.get("entries"))
    kept = entries if max_items is None else entries[:max_items]
    return ParsedFeed(
        format=version,
        title=_text(feed.get("title"), _mapping(feed.get("title_detail")).get("type")),
        link=_url(feed.get("link")),
        id=_str(feed.get("id")),
        updated=_time(_own(feed, "updated_parsed")),
        ttl=_ttl(feed.get("ttl")),
        language=_str(feed.get("language")),
        items=tuple(_item(_mapping(e), loose=problem is not None) for e in kept),
        problem=problem,
        dropped=len(entries) - len(kept) + (cut[1] if cut is not None else 0),
    )


def _json_date(value: Any) -> tuple[str | None, datetime | None]:
    if not isinstance(value, str) or not value.strip():
        return None, None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return value, (when.astimezone(UTC) if when.tzinfo else None)
    except (ValueError, OverflowError):
        return value, None


def _json_item(raw: Mapping[str, Any]) -> ParsedItem:
    authors = _list(raw.get("authors"))[:_MANY] or [raw.get("author")]
    published_text, published = _json_date(raw.get("date_published"))
    updated_text, updated = _json_date(raw.get("date_modified"))
    content = _only_str(raw.get("content_html"))
    text = raw.get("content_text")
    if not content and isinstance(text, str) and text.strip():
        content = "<p>" + escape(html.plain_line(text)) + "</p>"
    summary = _only_str(raw.get("summary"))
    tags = raw.get("tags")
    return ParsedItem(
        guid=_guid(raw.get("id")),
        link=_url(raw.get("url")) or _url(raw.get("external_url")),
        title=_text(_only_str(raw.get("title")), "text/plain"),
        published_text=published_text, published=published,
        updated_text=updated_text, updated=updated,
        authors=tuple(Author(html.plain_line(a["name"]), None, _url(a.get("url"))) for a in authors
                      if isinstance(a, Mapping) and isinstance(a.get("name"), str)
                      and html.plain_line(a["name"])),
        tags=tuple(html.plain_line(t) for t in (tags if isinstance(tags, list) else [])[:_MANY]
                   if isinstance(t, str) and html.plain_line(t)),
        summary_html=escape(summary) if summary else None,  # plain text
        content_html=content,
        enclosures=tuple(Enclosure(url, _only_str(a.get("mime_type")) or "application/octet-stream",
                                   _size(a.get("size_in_bytes")))
                         for a in _list(raw.get("attachments"))[:_MANY] if isinstance(a, Mapping)
                         for url in [_url(a.get("url"))] if url),
        image=_url(raw.get("image")) or _url(raw.get("banner_image")),
        language=_only_str(raw.get("language")),
    )


def parse_json_feed(body: bytes, url: str, *, max_items: int | None = None) -> ParsedFeed:
    """A JSON Feed (https://jsonfeed.org/version/1 or 1.1); fields of the wrong type are left out."""
    try:
        data = json.loads(body.removeprefix(_UTF8_BOM))
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply", where=url) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"invalid JSON: {_one_line(exc)}", where=url) from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or "jsonfeed.org/version/" not in version:
        raise InputError("JSON, but not a JSON Feed (no jsonfeed.org version)", where=url)
    raws = [raw for raw in _list(data.get("items")) if isinstance(raw, dict)]
    kept = raws if max_items is None else raws[:max_items]
    return ParsedFeed(
        format="json" + html.plain_line(version.rsplit("/", 1)[-1].replace(".", ""))[:8],
        title=_text(_only_str(data.get("title")), "text/plain"),
        link=_url(data.get("home_page_url")),
        id=_url(data.get("feed_url")), updated=None, ttl=None,
        language=_only_str(data.get("language")),
        items=tuple(_json_item(raw) for raw in kept),
        dropped=len(raws) - len(kept),
    )
