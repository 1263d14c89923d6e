"""Render feeds to bytes with feedgen: Atom 1.0 and RSS 2.0, and JSON Feed 1.1.

Pure: no files, network, database or clock. Every date in the output comes
from the entries (feedgen would otherwise stamp "now"), entries keep the order
given, and the generator carries no version, so the same inputs always give
the same bytes.

Only safe output: each entry passes ``safe.safe_entry`` first, every URL of the
feed itself passes ``identity.web_url``, and an entry that still fails to render
is left out (and reported) rather than failing its feed. A feed stays within
its byte budget (``budget``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html import escape
from typing import Any, NamedTuple

import orjson
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from .. import PROJECT_URL
from ..errors import InputError
from ..identity import safe_id, web_url
from ..layout import FeedFormat
from ..models import EPOCH, Enclosure, Entry, Provenance
from .budget import Fitted, fit_entries
from .safe import SafeEntry, safe_entry, text


@dataclass(frozen=True, slots=True)
class FeedHead:
    """Feed-level metadata, the same for both formats."""

    title: str
    description: str
    #: Absolute URL where this feed file is published (rel=self), percent-encoded.
    self_url: str
    #: The site's home page.
    home_url: str
    language: str | None
    #: Feed-level author, required by Atom when an entry has none.
    author: str
    #: WebSub hub announcing this feed's changes, if any.
    hub: str | None = None
    #: URL of the XSL stylesheet that makes the feed readable in a browser, if any
    #: (percent-encoded, as ``layout.stylesheet_href`` makes it).
    stylesheet: str | None = None
    #: Whether entries carry full content (else only their summary).
    full_content: bool = True
    #: The feed's date when it has no entries (else the newest entry's).
    empty_updated: datetime | None = None
    #: Largest file to write, in bytes (older entries lose content, then the oldest go).
    max_bytes: int | None = None
    #: An entry whose content is larger (UTF-8 bytes of its HTML) shows summary and link.
    max_entry_bytes: int | None = None
    #: RFC 5005 links of an archived feed, (rel, href): "prev-archive" on the current feed;
    #: "current", "prev-archive" and "next-archive" on an archive page. Hrefs percent-encoded.
    archive_links: tuple[tuple[str, str], ...] = ()
    #: Whether the feed is an archive page (``<fh:archive/>``).
    archive_page: bool = False

    def archive_link(self, rel: str) -> str | None:
        return next((href for r, href in self.archive_links if r == rel), None)


class Rendered(NamedTuple):
    """A rendered feed, or None when it could not be; and what to report about it."""

    data: bytes | None
    notes: tuple[str, ...] = ()


#: The namespace of RFC 5005's ``<fh:archive/>`` and ``<fh:complete/>``.
FEED_HISTORY = "http://purl.org/syndication/history/1.0"


class _Attribution(BaseExtension):  # type: ignore[misc]
    """Feed-level half: the WebSub hub and archive links in RSS (feedgen writes only
    rel=self there), and ``<fh:archive/>`` on an archive page."""

    def __init__(self) -> None:
        self.hub: str | None = None
        self.archive_links: tuple[tuple[str, str], ...] = ()
        self.archive_page = False

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        if self.archive_page:
            etree.SubElement(feed, f"{{{FEED_HISTORY}}}archive", nsmap={"fh": FEED_HISTORY})
        return feed

    def extend_rss(self, feed: etree._Element) -> etree._Element:
        channel = feed.find("channel")
        if channel is None:
            return feed
        if self.hub:
            etree.SubElement(channel, "{http://www.w3.org/2005/Atom}link", href=self.hub, rel="hub")
        for rel, href in self.archive_links:
            etree.SubElement(channel, "{http://www.w3.org/2005/Atom}link", href=href, rel=rel,
                             type="application/rss+xml")
        if self.archive_page:
            etree.SubElement(channel, f"{{{FEED_HISTORY}}}archive", nsmap={"fh": FEED_HISTORY})
        return feed


class _EntryAttribution(BaseEntryExtension):  # type: ignore[misc]
    """Credits the upstream feed of an aggregated entry (Atom ``<source>``, RSS ``<source url>``)
    and writes an Atom entry's enclosures."""

    def __init__(self) -> None:
        self.origin: Provenance | None = None
        self.enclosures: tuple[Enclosure, ...] = ()

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        for enclosure in self.enclosures:
            link = etree.SubElement(entry, "link", rel="enclosure", href=enclosure.url, type=enclosure.type)
            if enclosure.length > 0:
                link.set("length", str(enclosure.length))
        p = self.origin
        if p is None or not (p.feed_url or p.feed_link):
            return entry
        # Unqualified names, as feedgen builds the entry: the feed's default namespace is Atom.
        source = etree.SubElement(entry, "source")
        etree.SubElement(source, "id").text = safe_id(p.feed_id or p.feed_url or p.feed_link)
        if p.feed_title:
            etree.SubElement(source, "title").text = p.feed_title
        if p.feed_link:
            etree.SubElement(source, "link", href=p.feed_link, rel="alternate")
        if p.feed_url:
            etree.SubElement(source, "link", href=p.feed_url, rel="self")
        if p.feed_updated:
            etree.SubElement(source, "updated").text = rfc3339(p.feed_updated)
        return entry

    def extend_rss(self, item: etree._Element) -> etree._Element:
        p = self.origin
        if p is not None and p.feed_url:
            etree.SubElement(item, "source", url=p.feed_url).text = p.feed_title or p.source
        return item


def _origin(entry: Entry) -> Provenance | None:
    """The upstream feed to credit: the first remote one (local posts credit nobody)."""
    return next((p for p in entry.provenance if p.feed_url and web_url(p.feed_url)), None)


def _safe_head(head: FeedHead) -> FeedHead:
    """The feed's own texts and URLs as they may be written (they come from the config)."""
    self_url = web_url(head.self_url)
    if self_url is None:
        raise InputError("the feed's address is not an http(s) URL", where=head.self_url)
    links = tuple((rel, url) for rel, url in ((r, web_url(h)) for r, h in head.archive_links) if url is not None)
    return replace(head, title=text(head.title) or self_url, description=text(head.description),
                   self_url=self_url, home_url=web_url(head.home_url) or self_url,
                   author=text(head.author) or "feeds", hub=web_url(head.hub) if head.hub else None,
                   archive_links=links)


def _feed(head: FeedHead, entries: Sequence[SafeEntry], fmt: FeedFormat, failed: dict[str, str]) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension("attribution", _Attribution, _EntryAttribution, atom=True, rss=True)
    if fmt == "rss":
        fg.load_extension("dc", atom=False, rss=True)
    fg.id(head.self_url)
    fg.title(head.title)
    fg.subtitle(head.description)
    fg.link(href=head.self_url, rel="self", type="application/atom+xml" if fmt == "atom"
            else "application/rss+xml")
    if head.hub:
        fg.attribution.hub = head.hub
        if fmt == "atom":
            fg.link(href=head.hub, rel="hub")
    fg.attribution.archive_links = head.archive_links
    fg.attribution.archive_page = head.archive_page
    if fmt == "atom":
        for rel, href in head.archive_links:
            fg.link(href=href, rel=rel, type="application/atom+xml")
    fg.link(href=head.home_url, rel="alternate")  # last: feedgen takes RSS's <link> from it
    if head.language:
        fg.language(head.language)
    fg.author({"name": head.author})
    fg.generator("feeds", uri=PROJECT_URL)
    newest = max((e.updated for e in entries), default=head.empty_updated or EPOCH)
    fg.updated(_AtomTime.of(newest))
    fg.lastBuildDate(_AtomTime.of(newest))
    fg.pubDate(max((e.published for e in entries), default=head.empty_updated or EPOCH))
    for entry in entries:
        fe = fg.add_entry(order="append")
        try:
            _fill_entry(fe, entry, fmt, head.home_url)
        except Exception as exc:  # feedgen's own checks: one entry, not the feed
            fg.remove_entry(fe)
            failed.setdefault(entry.id, f"{entry.id}: entry left out: {type(exc).__name__}: {exc}")
    return fg


def _fill_entry(fe: Any, entry: SafeEntry, fmt: FeedFormat, home_url: str) -> None:
    origin = fe.attribution.origin = _origin(entry)
    fe.id(entry.id)
    fe.title(entry.title)
    if entry.link:
        fe.link(href=entry.link, rel="alternate")
    elif fmt == "atom":
        # Readers take an Atom entry's id as its link when it has none (some do, some do not):
        # an entry without a link of its own points to where it came from.
        upstream = web_url(origin.feed_link) if origin is not None and origin.feed_link else None
        fe.link(href=upstream or home_url, rel="alternate")
    # Media files (podcast audio...): each one in Atom (written by the extension: feedgen
    # drops a link's rel and type there); RSS holds one per item, the first.
    if fmt == "atom":
        fe.attribution.enclosures = entry.enclosures
    elif entry.enclosures:
        first = entry.enclosures[0]
        fe.link(href=first.url, rel="enclosure", type=first.type, length=str(max(first.length, 0)))
    fe.published(_AtomTime.of(entry.published))
    fe.updated(_AtomTime.of(entry.updated))
    names = entry.tags + tuple(c for c in entry.categories if c not in entry.tags)
    if names:  # in one call: feedgen re-reads every category it holds on each call
        fe.category([{"term": name} for name in names])
    # Atom needs content or an alternate link; an entry with neither shows its summary.
    content = entry.content or (None if entry.link else (entry.summary or entry.title))
    if fmt == "atom":
        for author in entry.authors:
            fe.author({k: v for k, v in (("name", author.name), ("email", author.email),
                                         ("uri", author.uri)) if v})
        if entry.summary or not content:  # an entry whose content was all removed says its title
            fe.summary(entry.summary or entry.title)
        if content:
            fe.content(content, type="html")
    else:
        if entry.link and entry.id == entry.link:
            fe.guid(entry.id, permalink=True)
        for author in entry.authors:
            if author.email:
                fe.author({"name": author.name, "email": author.email})
            else:
                fe.dc.dc_creator(author.name)
        if content:
            fe.content(content)
        # RSS readers take <description> as HTML: plain text must be escaped as HTML first.
        fe.description(escape(entry.summary or entry.title, quote=False))


def render_feed(head: FeedHead, entries: Sequence[Entry], fmt: FeedFormat) -> bytes:
    """The feed as bytes in ``fmt`` ("atom", "rss" or "json"); raises if it cannot be rendered."""
    result = render_checked(head, entries, fmt)
    if result.data is None:
        raise InputError("; ".join(result.notes), where=head.self_url)
    return result.data


def render_checked(head: FeedHead, entries: Sequence[Entry], fmt: FeedFormat) -> Rendered:
    """The feed in ``fmt``, never raising: entries that cannot be written are left out,
    the feed is fitted to its budget, and each of these is one note. Data is None (and a
    note says why) only when the feed as a whole cannot be rendered."""
    notes: list[str] = []
    safe: list[SafeEntry] = []
    for entry in entries:
        try:
            safe.append(safe_entry(entry))
        except InputError as exc:
            notes.append(str(exc))
    if not head.full_content:
        safe = [replace(e, content=None) for e in safe]
    failed: dict[str, str] = {}
    try:
        head = _safe_head(head)
        try:
            fitted: Fitted = fit_entries(safe, lambda chosen: _render(head, chosen, fmt, failed),
                                         max_bytes=head.max_bytes, max_entry_bytes=head.max_entry_bytes)
        except InputError:
            raise
        except Exception:  # an entry that feedgen accepted but cannot write: find it, go on without it
            safe = [e for e in safe if _renders_alone(head, e, fmt, failed)]
            fitted = fit_entries(safe, lambda chosen: _render(head, chosen, fmt, failed),
                                 max_bytes=head.max_bytes, max_entry_bytes=head.max_entry_bytes)
    except InputError as exc:
        return Rendered(None, (*notes, *failed.values(), exc.message))
    except Exception as exc:  # one feed fails alone; the run goes on
        return Rendered(None, (*notes, *failed.values(), f"cannot render: {type(exc).__name__}: {exc}"))
    notes.extend(failed.values())
    if fitted.note:
        notes.append(fitted.note)
    return Rendered(fitted.data, tuple(notes))


def _renders_alone(head: FeedHead, entry: SafeEntry, fmt: FeedFormat, failed: dict[str, str]) -> bool:
    try:
        _render(head, [entry], fmt, failed)
    except Exception as exc:  # this entry, not the feed
        failed.setdefault(entry.id, f"{entry.id}: entry left out: {type(exc).__name__}: {exc}")
        return False
    return entry.id not in failed


def _render(head: FeedHead, entries: Sequence[SafeEntry], fmt: FeedFormat, failed: dict[str, str]) -> bytes:
    if fmt == "json":
        return render_json(head, entries)
    fg = _feed(head, entries, fmt, failed)
    data: bytes = fg.atom_str(pretty=True) if fmt == "atom" else fg.rss_str(pretty=True)
    if head.stylesheet:
        # Browsers show the feed through the stylesheet; feed readers ignore the instruction.
        declaration, _, rest = data.partition(b"\n")
        pi = f'<?xml-stylesheet type="text/xsl" href="{escape(head.stylesheet)}"?>'.encode()
        data = declaration + b"\n" + pi + b"\n" + rest
    return data


def render_json(head: FeedHead, entries: Sequence[SafeEntry]) -> bytes:
    """A JSON Feed 1.1 document (https://www.jsonfeed.org/version/1.1/) of safe entries
    (``render_checked`` makes them so)."""
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": head.title,
        "home_page_url": head.home_url,
        "feed_url": head.self_url,
        "description": head.description,
        "authors": [{"name": head.author}],
    }
    if head.language:
        feed["language"] = head.language
    if head.hub:
        feed["hubs"] = [{"type": "WebSub", "url": head.hub}]
    older = head.archive_link("prev-archive")
    if older:  # JSON Feed's paging: the next (older) page of the archive
        feed["next_url"] = older
    items = []
    for e in entries:
        item: dict[str, Any] = {"id": e.id, "title": e.title}
        if e.link:
            item["url"] = e.link
        if e.content:
            item["content_html"] = e.content
        else:
            item["content_text"] = e.summary or e.title
        if e.summary:
            item["summary"] = e.summary
        if e.image:
            item["image"] = e.image
        item["date_published"] = rfc3339(e.published)
        item["date_modified"] = rfc3339(e.updated)
        if e.authors:
            item["authors"] = [{k: v for k, v in (("name", a.name), ("url", a.uri)) if v} for a in e.authors]
        names = list(dict.fromkeys((*e.tags, *e.categories)))
        if names:
            item["tags"] = names
        if e.language:
            item["language"] = e.language
        if e.enclosures:
            item["attachments"] = [{"url": x.url, "mime_type": x.type, **({"size_in_bytes": x.length}
                                                                          if x.length else {})}
                                   for x in e.enclosures]
        origin = _origin(e)
        if origin is not None:
            item["_source"] = {k: v for k, v in (("title", origin.feed_title), ("feed_url", origin.feed_url),
                                                  ("home_page_url", origin.feed_link)) if v}
        items.append(item)
    feed["items"] = items
    return json_document(feed)


def json_document(value: Any) -> bytes:
    """``value`` (strings, integers, booleans, None, lists and string-keyed mappings of
    them: no floats, which the two write differently) as ``json.dumps(value,
    ensure_ascii=False, indent=2)`` writes it, with a newline, as UTF-8; made by orjson (the
    same bytes, ten times as fast) unless it cannot take the value (an integer over 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:  # (a TypeError, as json's own refusals are)
        return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def rfc3339(when: datetime) -> str:
    """``2021-09-03T13:37:42.888Z``: UTC, "Z", and only as many fractional digits as needed."""
    when = when.astimezone(UTC)
    text = f"{when.year:04d}-" + when.strftime("%m-%dT%H:%M:%S")  # %Y writes year 1 as "1"
    if when.microsecond:
        text += f".{when.microsecond:06d}".rstrip("0")
    return text + "Z"


class _AtomTime(datetime):
    """A datetime that feedgen writes as :func:`rfc3339` (it calls ``isoformat``)."""

    @classmethod
    def of(cls, when: datetime) -> _AtomTime:
        u = when.astimezone(UTC)
        return cls(u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond, tzinfo=UTC)

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return rfc3339(self)
