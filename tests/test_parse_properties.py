"""Property-based: hostile RSS 2.0, RSS 1.0, Atom and JSON Feed documents never make parsing
and normalizing raise anything but the project's own error, and every entry that comes out
is well-typed (and survives the store's round trip unchanged)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import feedparser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.config import Limits, Source
from feeds.errors import FeedsError
from feeds.models import Entry
from feeds.sources.decide import Decider, FeedReading
from feeds.sources.parse import parse_feed
from feeds.sources.results import FetchResult
from feeds.store import entry_from_json, entry_to_json

from .test_parse_hostile import assert_well_typed

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "https://f.example/feed"
SETTINGS = settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
LIMITS = Limits(tags_per_entry=5, tags_per_source=8, items_per_fetch=6, content_bytes=2048)

# -- hostile pieces ------------------------------------------------------------

ENTITIES = ["&amp;", "&lt;", "&#0;", "&#x1;", "&#xD800;", "&#xFFFE;", "&#99999999;", "&nbsp;", "&undefined;",
            "&", "&#;", "&#x;", "&lt;script&gt;", "&lt;!DOCTYPE html&gt;", "&lt;html&gt;&lt;/html&gt;"]
MARKUP = ["<b>", "</b>", "<![CDATA[<p>x</p>]]>", "<!-- c -->", "<?pi x?>", "<p>", "<br/>", "<x:y xmlns:x='u'/>"]
CONTROL = st.sampled_from(["\x00", "\x01", "\x0b", "\x1f", "\x7f", "\x85", "\u2028", "\ufeff", "\ufffe", "\U0001f600",
                           "\u202e", " ", "\t", "\n"])
URLS = ["https://ok.example/a", "http://ok.example/b?utm_source=x", "/relative", "javascript:alert(1)",
        "data:text/html,x", "file:///etc/passwd", "http://[::1", "http://h:99999/", "mailto:a@b", "//proto.example/x",
        "https://ünï.example/ü", " ", "", "http://user:pw@h.example/", "h" * 5000, "https://ok.example/%zz"]
DATES = ["Mon, 01 Jan 0000 00:00:00 GMT", "Fri, 01 Jan 99999 00:00:00 GMT", "2021-13-45T99:99:99Z", "0000-01-01",
         "9999-12-31T23:59:59+14:00", "Tue, 10 Jun 2003 04:00:00 GMT", "2003-06-10T04:00:00-25:00", "yesterday",
         "2021-03-05 10:00:00", "", "1" * 40, "-1", "Mon, 32 Foo 2003"]


def xml_text() -> st.SearchStrategy[str]:
    """Text for inside an element: plain, entities, markup, control characters, huge or empty."""
    piece = st.one_of(st.text(max_size=8), st.sampled_from(ENTITIES), st.sampled_from(MARKUP), CONTROL,
                      st.sampled_from(URLS), st.sampled_from(DATES))
    small = st.lists(piece, max_size=6).map("".join)
    huge = small.map(lambda s: s * 100)  # rare: big values cost time, and one per document makes the point
    return st.one_of(small, small, small, small, small, small, small, small, st.just(""), huge)


def attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


@st.composite
def rss20(draw: st.DrawFn) -> str:
    items = []
    for _ in range(draw(st.integers(0, 8))):
        fields = draw(st.lists(st.sampled_from(["title", "link", "guid", "pubDate", "description", "category",
                                                "author", "dc:creator", "content:encoded", "comments", "ttl"]),
                               max_size=10))
        body = "".join(f"<{f}>{draw(xml_text())}</{f}>" for f in fields)
        if draw(st.booleans()):
            body += (f'<enclosure url="{attr(draw(st.sampled_from(URLS)))}" length="{attr(draw(xml_text()))}" '
                     f'type="{attr(draw(xml_text()))}"/>')
        if draw(st.booleans()):
            body += f'<media:thumbnail url="{attr(draw(st.sampled_from(URLS)))}"/>'
        items.append(f"<item>{body}</item>")
    return ('<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:media="http://search.yahoo.com/mrss/">'
            f"<channel><title>{draw(xml_text())}</title><link>{draw(xml_text())}</link>"
            f"<ttl>{draw(xml_text())}</ttl><language>{draw(xml_text())}</language>"
            + "".join(items) + "</channel></rss>")


@st.composite
def rss10(draw: st.DrawFn) -> str:
    items = "".join(
        f'<item rdf:about="{attr(draw(st.sampled_from(URLS)))}"><title>{draw(xml_text())}</title>'
        f"<link>{draw(xml_text())}</link><description>{draw(xml_text())}</description>"
        f"<dc:date>{draw(st.sampled_from(DATES))}</dc:date><dc:subject>{draw(xml_text())}</dc:subject></item>"
        for _ in range(draw(st.integers(0, 6))))
    return ('<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f'<channel rdf:about="x"><title>{draw(xml_text())}</title><link>{draw(xml_text())}</link></channel>'
            + items + "</rdf:RDF>")


@st.composite
def atom(draw: st.DrawFn) -> str:
    entries = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["text", "html", "xhtml", "bogus/type"]))
        content = draw(xml_text())
        if kind == "xhtml":
            content = f'<div xmlns="http://www.w3.org/1999/xhtml">{content}</div>'
        entries.append(
            f"<entry><id>{draw(xml_text())}</id><title type='{kind}'>{draw(xml_text())}</title>"
            f'<link href="{attr(draw(st.sampled_from(URLS)))}" rel="{attr(draw(xml_text()))}"/>'
            f"<updated>{draw(st.sampled_from(DATES))}</updated><published>{draw(xml_text())}</published>"
            f"<author><name>{draw(xml_text())}</name><uri>{draw(xml_text())}</uri><email>{draw(xml_text())}</email>"
            f'</author><category term="{attr(draw(xml_text()))}" label="{attr(draw(xml_text()))}"/>'
            f'<summary>{draw(xml_text())}</summary><content type="{kind}">{content}</content></entry>')
    nest = draw(st.sampled_from([0, 0, 0, 10, 3000]))
    return (f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{attr(draw(xml_text()))}">'
            f"<title>{draw(xml_text())}</title><id>{draw(xml_text())}</id>"
            f"<link href=\"{attr(draw(st.sampled_from(URLS)))}\"/>"
            + "<x>" * nest + "</x>" * nest + "".join(entries) + "</feed>")


ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "lies", "utf-32"]


@st.composite
def xml_document(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    text = draw(st.one_of(rss20(), rss10(), atom()))
    encoding = draw(st.sampled_from(ENCODINGS))
    declared = draw(st.sampled_from(["utf-8", "UTF-16", "iso-8859-1", "x-no-such", "utf-32", ""]))
    prolog = f'<?xml version="1.0" encoding="{declared}"?>' if declared else ""
    if draw(st.booleans()):
        prolog += '<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        text = text.replace("<title>", "<title>&b;", 1)
    document = prolog + text
    if encoding == "lies":
        body = document.encode("utf-8").replace(b"<title>", b"<title>\xff\xfe\x80\xc3", 1)  # not what it says
    else:
        body = document.encode(encoding, "replace")
    charset = draw(st.sampled_from(["", "; charset=utf-8", "; charset=utf-16", "; charset=bogus", "; charset="]))
    kind = draw(st.sampled_from(["application/rss+xml", "application/atom+xml", "text/xml", "text/html",
                                 "application/octet-stream", ""]))
    return body, {"content-type": kind + charset} if kind else {}


# -- JSON Feed -----------------------------------------------------------------

LONE = st.sampled_from(["\ud800", "x\udfff", "\x00", "\ufffe"])  # reach JSON as escapes
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=10), LONE,
                   st.sampled_from(URLS), st.sampled_from(DATES), st.just("x" * 20_000))
ANY_JSON = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                            inner, max_size=3),
                        max_leaves=8)
ITEM_KEYS = ["id", "url", "external_url", "title", "content_html", "content_text", "summary", "image",
             "banner_image", "date_published", "date_modified", "authors", "author", "tags", "language",
             "attachments"]


def json_value(key: str) -> st.SearchStrategy[Any]:
    if key in ("authors", "attachments"):
        member = st.dictionaries(st.sampled_from(["name", "url", "avatar", "mime_type", "size_in_bytes"]), ANY_JSON,
                                 max_size=4)
        return st.one_of(st.lists(member | ANY_JSON, max_size=3), ANY_JSON)
    if key == "tags":
        return st.one_of(st.lists(LEAVES, max_size=6), ANY_JSON)
    return ANY_JSON


@st.composite
def json_feed(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    items = []
    for _ in range(draw(st.integers(0, 8))):
        keys = draw(st.lists(st.sampled_from(ITEM_KEYS), max_size=10, unique=True))
        items.append({k: draw(json_value(k)) for k in keys} if draw(st.integers(0, 9)) else draw(ANY_JSON))
    top: dict[str, Any] = {"version": draw(st.sampled_from(["https://jsonfeed.org/version/1.1",
                                                            "https://jsonfeed.org/version/1", 1.1, None]))}
    for key in draw(st.lists(st.sampled_from(["title", "home_page_url", "feed_url", "language"]), unique=True)):
        top[key] = draw(ANY_JSON)
    top["items"] = items if draw(st.integers(0, 5)) else draw(ANY_JSON)
    text = json.dumps(top)
    depth = draw(st.sampled_from([0, 0, 0, 50, 5_000, 100_000]))
    if depth:
        text = text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]))
    kind = draw(st.sampled_from(["application/feed+json", "application/json", "text/plain", ""]))
    return text.encode(encoding), {"content-type": kind} if kind else {}


# -- the properties ------------------------------------------------------------


def digest(body: bytes, headers: dict[str, str]) -> FeedReading[Entry] | None:
    decider = Decider(Source(name="s", url=URL, tags=["Extra"]), LIMITS, NOW, "Asia/Tokyo", 120, 86400.0, "f")
    result = FetchResult("s", URL, URL, 200, body, headers)
    try:
        return decider.read(result, parse_feed(body, headers, URL, max_items=LIMITS.items_per_fetch), {})
    except FeedsError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(URL + ": ")
        return None


def check(body: bytes, headers: dict[str, str]) -> None:
    done = digest(body, headers)
    if done is None:
        return
    assert len(done.listed) <= LIMITS.items_per_fetch
    tags: set[str] = set()
    for item in done.items:
        data = entry_to_json(item.entry)
        entry = entry_from_json(data)
        assert entry_from_json(data) == entry
        assert_well_typed(entry)
        assert entry.published <= NOW
        assert len(entry.title) <= 500 and "\n" not in entry.title
        assert entry.content is None or len(entry.content.encode()) <= LIMITS.content_bytes
        feed_tags = [t for t in entry.tags if t != "Extra"]
        assert len(feed_tags) <= LIMITS.tags_per_entry
        tags.update(t.casefold() for t in feed_tags)
    assert len(tags) <= LIMITS.tags_per_source


@SETTINGS
@given(xml_document())
def test_hostile_xml_feeds(document: tuple[bytes, dict[str, str]]) -> None:
    check(*document)


@SETTINGS
@given(json_feed())
def test_hostile_json_feeds(document: tuple[bytes, dict[str, str]]) -> None:
    check(*document)


@settings(deadline=None, max_examples=60)
@given(st.binary(max_size=300), st.sampled_from(["", "application/json", "application/rss+xml"]))
def test_any_bytes(body: bytes, kind: str) -> None:
    check(body, {"content-type": kind} if kind else {})


# -- the remembered URL joins are feedparser's own ---------------------------------

URL_PARTS = st.sampled_from([*URLS, "a/b", "../c", "./d?x#y", "?q", "#f", "https://o.example/base/", "x:y",
                             "HTTP://UP.example//a", "https:///x", "..", "/", "https://h.example:8080/p/q"])
URL_TEXT = st.lists(st.one_of(URL_PARTS, st.text(max_size=6)), max_size=3).map("".join)


@settings(deadline=None, max_examples=300)
@given(st.lists(st.tuples(URL_TEXT, st.one_of(st.none(), URL_TEXT)), min_size=1, max_size=8))
def test_remembered_joins_answer_as_feedparser_does(pairs: list[tuple[str, str | None]]) -> None:
    """Asked the same pairs (each twice, the second answer from memory), the remembered
    joins give what feedparser's own functions give."""
    for name in ("_urljoin", "make_safe_absolute_uri"):
        remembered = getattr(feedparser.mixin, name)
        original = remembered.original
        for base, rel in [*pairs, *pairs]:
            if name == "_urljoin":
                rel = rel or ""
            assert remembered(base, rel) == original(base, rel)


XML_BASE_FEED = (b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
                 b'xml:base="https://a.example/blog/"><title>T</title><id>urn:t</id>'
                 b'<updated>2021-01-01T00:00:00Z</updated><link href="home"/>'
                 b'<entry xml:base="posts/"><title>One</title><id>urn:1</id><link href="one.html"/>'
                 b'<updated>2021-01-01T00:00:00Z</updated></entry>'
                 b'<entry xml:base="https://b.example/x/"><title>Two</title><id>urn:2</id><link href="../two"/>'
                 b'<updated>2021-01-01T00:00:00Z</updated></entry>'
                 b'<entry><title>Three</title><id>urn:3</id><link href="/three"/>'
                 b'<updated>2021-01-01T00:00:00Z</updated></entry></feed>')


def test_xml_base_resolves_as_without_remembering(monkeypatch: Any) -> None:
    """A feed nesting xml:base parses the same with the remembered joins as with feedparser's."""
    remembered = parse_feed(XML_BASE_FEED, {}, URL)
    for name in ("_urljoin", "make_safe_absolute_uri"):
        monkeypatch.setattr(feedparser.mixin, name, getattr(feedparser.mixin, name).original)
    assert parse_feed(XML_BASE_FEED, {}, URL) == remembered
    assert [i.link for i in remembered.items] == ["https://a.example/blog/posts/one.html", "https://b.example/two",
                                                  "https://a.example/three"]
