"""The render stage: fixed entries and feed heads beside the Atom, RSS and JSON Feed
bytes they render to (``tests/data/stages/render/<head>.<suffix>``), and unit tests
of ``render_feed`` / ``render_checked``.

The entries (``entries.json``) have tags, categories, enclosures, authors and the
provenance of an upstream feed (Atom ``<source>``, RSS ``<source url>``, JSON
``_source``); the heads (``heads.json``) are plain, with a stylesheet and a WebSub
hub, summary-only, and empty. Rendered files are compared byte for byte; see
``stage_golden`` for how to regenerate them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import feedparser
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

# Stage entry points, in one place (they move as the stages are split).
from feeds.errors import InputError
from feeds.layout import FORMATS
from feeds.models import Author, Enclosure, Entry, Provenance
from feeds.render.feed import FeedHead, render_checked, render_feed, rfc3339

from .stage_golden import STAGES, check_bytes

FOLDER = STAGES / "render"
ATOM = "{http://www.w3.org/2005/Atom}"


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def load_entries() -> list[Entry]:
    entries = []
    for raw in json.loads((FOLDER / "entries.json").read_text(encoding="utf-8")):
        raw = dict(raw)
        raw["published"], raw["updated"] = _when(raw["published"]), _when(raw["updated"])
        raw["authors"] = tuple(Author(**a) for a in raw.get("authors", ()))
        raw["enclosures"] = tuple(Enclosure(**e) for e in raw.get("enclosures", ()))
        raw["provenance"] = tuple(Provenance(**{**p, "feed_updated": _when(p.get("feed_updated"))})
                                  for p in raw.get("provenance", ()))
        for key in ("tags", "categories"):
            raw[key] = tuple(raw.get(key, ()))
        entries.append(Entry(**raw))
    return entries


def load_head(name: str, fmt: str) -> tuple[FeedHead, bool]:
    """The head called ``name``, published as ``fmt``; and whether its feed has entries."""
    raw: dict[str, Any] = dict(json.loads((FOLDER / "heads.json").read_text(encoding="utf-8"))[name])
    with_entries = raw.pop("entries", True)
    raw["self_url"] += FORMATS[fmt]  # as the pipeline names a feed: its path and its format's suffix
    raw["empty_updated"] = _when(raw.get("empty_updated"))
    raw["archive_links"] = tuple((rel, href + FORMATS[fmt]) for rel, href in raw.get("archive_links", ()))
    return FeedHead(**raw), with_entries


HEADS = ("plain", "styled", "summary", "empty", "archived", "page")
CASES = [(head, fmt) for head in HEADS for fmt in FORMATS]


def rendered(name: str, fmt: str) -> bytes:
    head, with_entries = load_head(name, fmt)
    return render_feed(head, load_entries() if with_entries else [], fmt)


@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_rendered_feed_is_its_golden_file(name: str, fmt: str) -> None:
    check_bytes(FOLDER / (name + FORMATS[fmt]), rendered(name, fmt))


def test_nothing_else_lies_beside_the_goldens() -> None:
    files = {p.name for p in FOLDER.iterdir()}
    assert files == {"entries.json", "heads.json"} | {name + FORMATS[fmt] for name, fmt in CASES}


# What the goldens hold that matters most, read back with a parser.

def test_atom_has_categories_source_enclosures_and_authors() -> None:
    doc = etree.fromstring(rendered("plain", "atom"))
    remote, local, bare = doc.findall(f"{ATOM}entry")
    assert [c.get("term") for c in remote.findall(f"{ATOM}category")] == ["Food", "Local Life", "From-news",
                                                                          "Harbour"]
    # A term that is both a tag and a category is written once.
    assert [c.get("term") for c in local.findall(f"{ATOM}category")] == ["联合早报", "Climate", "China"]
    source = remote.find(f"{ATOM}source")
    assert source is not None
    assert source.findtext(f"{ATOM}id") == "https://news.example/feed.xml"
    assert source.findtext(f"{ATOM}title") == "Harbour & Hills News"
    assert source.find(f"{ATOM}link[@rel='self']").get("href") == "https://news.example/feed.xml"
    assert source.find(f"{ATOM}link[@rel='alternate']").get("href") == "https://news.example/"
    assert source.findtext(f"{ATOM}updated") == "2026-02-28T11:00:00Z"
    assert local.find(f"{ATOM}source") is None  # a local post credits nobody
    assert [(a.findtext(f"{ATOM}name"), a.findtext(f"{ATOM}email")) for a in remote.findall(f"{ATOM}author")] == [
        ("Ann Editor", "ann@news.example")]
    assert remote.findtext(f"{ATOM}updated") == "2026-02-28T10:00:00.25Z"
    # An entry without a link points to the feed it came from.
    assert [link.get("href") for link in bare.findall(f"{ATOM}link")] == ["https://notes.example/"]
    # Neither content nor a link of its own: its summary stands in for the content.
    assert bare.findtext(f"{ATOM}content") == bare.findtext(f"{ATOM}summary") == "Only a summary: no content, no link."
    parsed = feedparser.parse(rendered("plain", "atom"))
    assert not parsed.bozo and [e.id for e in parsed.entries] == [e.id for e in load_entries()]


def test_rss_has_source_guid_and_creators() -> None:
    doc = etree.fromstring(rendered("plain", "rss"))
    remote, local, bare = doc.findall("channel/item")
    assert remote.find("source").get("url") == "https://news.example/feed.xml"
    assert remote.findtext("source") == "Harbour & Hills News"
    assert bare.findtext("source") == "Notes without links"
    assert local.find("source") is None
    assert remote.find("guid").get("isPermaLink") == "true"  # the id is the link
    assert local.find("guid").get("isPermaLink") == bare.find("guid").get("isPermaLink") == "false"
    assert [c.text for c in remote.findall("category")] == ["Food", "Local Life", "From-news", "Harbour"]
    assert remote.findtext("author") == "ann@news.example (Ann Editor)"
    assert bare.findtext("{http://purl.org/dc/elements/1.1/}creator") == "Bo Writer"
    # Plain text escaped as HTML; angle brackets in a summary are shown as look-alikes.
    assert remote.findtext("description") == "A week of fish &amp; chips \u2039by the sea\u203a."


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_enclosures_reach_atom_and_rss(fmt: str) -> None:
    parsed = feedparser.parse(rendered("plain", fmt))
    expected = [("https://cdn.news.example/audio/chips.mp3", "audio/mpeg"),
                ("https://cdn.news.example/menu.pdf", "application/pdf")]
    # RSS holds one enclosure per item (more is what validators warn of): the first.
    assert [(x.href, x.type) for x in parsed.entries[0].enclosures] == (expected if fmt == "atom" else expected[:1])


def test_json_feed_has_tags_attachments_and_source() -> None:
    doc = json.loads(rendered("plain", "json"))
    remote, local, bare = doc["items"]
    assert remote["tags"] == ["Food", "Local Life", "From-news", "Harbour"]
    assert local["tags"] == ["联合早报", "Climate", "China"]
    assert remote["attachments"] == [
        {"url": "https://cdn.news.example/audio/chips.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 123456},
        {"url": "https://cdn.news.example/menu.pdf", "mime_type": "application/pdf"}]
    assert remote["_source"] == {"title": "Harbour & Hills News", "feed_url": "https://news.example/feed.xml",
                                 "home_page_url": "https://news.example/"}
    assert "_source" not in local and "url" not in bare and bare["content_text"].startswith("Only a summary")
    assert "hubs" not in doc


def test_stylesheet_and_hub() -> None:
    atom = rendered("styled", "atom")
    assert atom.split(b"\n")[1] == b'<?xml-stylesheet type="text/xsl" href="../feed.xsl"?>'
    assert b'<link href="https://hub.example/" rel="hub"/>' in atom
    rss = rendered("styled", "rss")
    assert rss.split(b"\n")[1] == b'<?xml-stylesheet type="text/xsl" href="../feed.xsl"?>'
    assert b'<atom:link href="https://hub.example/" rel="hub"/>' in rss
    assert json.loads(rendered("styled", "json"))["hubs"] == [{"type": "WebSub", "url": "https://hub.example/"}]
    for fmt in ("atom", "rss"):
        plain = rendered("plain", fmt)
        assert b"xml-stylesheet" not in plain and b'rel="hub"' not in plain


def test_summary_only_and_empty_feeds() -> None:
    # Only the entry without a link shows content: its summary, as Atom needs one or the other.
    assert rendered("summary", "atom").count(b"<content") == 1
    assert rendered("summary", "rss").count(b"<content:encoded>") == 1
    assert all("content_html" not in i for i in json.loads(rendered("summary", "json"))["items"])
    empty = etree.fromstring(rendered("empty", "atom"))
    assert empty.findall(f"{ATOM}entry") == [] and empty.findtext(f"{ATOM}updated") == "2026-01-01T00:00:00Z"


# -- render_feed and render_checked ---------------------------------------------------------

def test_the_same_entries_give_the_same_bytes_in_the_order_given() -> None:
    head, _ = load_head("plain", "atom")
    entries = load_entries()
    assert render_feed(head, entries, "atom") == render_feed(head, list(entries), "atom")
    reordered = etree.fromstring(render_feed(head, entries[::-1], "atom"))
    assert [e.findtext(f"{ATOM}id") for e in reordered.findall(f"{ATOM}entry")] == [e.id for e in entries[::-1]]


def test_a_feed_whose_address_is_not_http_cannot_be_rendered() -> None:
    head, _ = load_head("plain", "rss")
    bad = replace(head, self_url="javascript:alert(1)")
    checked = render_checked(bad, load_entries(), "rss")
    assert checked.data is None and checked.notes == ("the feed's address is not an http(s) URL",)
    with pytest.raises(InputError, match="not an http"):
        render_feed(bad, load_entries(), "rss")


def test_an_entry_that_cannot_be_written_is_left_out_with_a_note() -> None:
    head, _ = load_head("plain", "atom")
    good = load_entries()
    broken = replace(good[0], id="https://news.example/broken", published="yesterday")  # type: ignore[arg-type]
    checked = render_checked(head, [broken, *good], "atom")
    assert checked.data == render_feed(head, good, "atom")
    assert checked.notes == ("https://news.example/broken: entry left out: its published date is not a date (str)",)


def test_a_feed_over_its_budget_loses_content_then_entries() -> None:
    head, _ = load_head("plain", "json")
    entries = load_entries()
    full = render_checked(head, entries, "json")
    assert full.notes == () and full.data is not None
    tight = render_checked(replace(head, max_bytes=len(full.data) - 1), entries, "json")
    assert tight.data is not None and len(tight.data) <= len(full.data) - 1 and len(tight.notes) == 1
    items = json.loads(tight.data)["items"]
    assert [i["id"] for i in items] == [e.id for e in entries]  # content went, every entry stayed
    assert "content_html" not in items[-2]  # the oldest with content lost it first
    nothing_fits = render_checked(replace(head, max_bytes=10), entries, "json")
    assert nothing_fits.data is None and "budget" in nothing_fits.notes[-1]


def test_rfc3339_writes_only_the_fraction_needed() -> None:
    assert rfc3339(datetime(2021, 9, 3, 13, 37, 42, 888000, tzinfo=UTC)) == "2021-09-03T13:37:42.888Z"
    assert rfc3339(datetime(2021, 9, 3, 13, 37, 42, tzinfo=UTC)) == "2021-09-03T13:37:42Z"
    assert rfc3339(datetime.fromisoformat("2021-09-03T21:37:42+08:00")) == "2021-09-03T13:37:42Z"


_JSON_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12) | \
    st.sampled_from(["", "\x7f", "\u2028\u2029", "\x00\x1f\x08\x0c\t\n\r", '"\\/', "é中😀", "</script>"])
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | _JSON_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_TEXT, inner, max_size=4),
    max_leaves=20)


@given(_JSON_VALUES)
def test_json_feed_documents_are_the_bytes_the_standard_library_writes(value: object) -> None:
    import json

    from feeds.render.feed import json_document

    assert json_document(value) == (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

