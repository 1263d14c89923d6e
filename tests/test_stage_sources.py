"""Golden pairs for the source stage: a feed document beside the items it parses to
and the entries they normalize to (``tests/data/stages/sources/<name>.expected.json``).

Covers RSS 2.0, RSS 1.0 (RDF), Atom 1.0 and JSON Feed 1.1: categories, enclosures,
authors, relative links, missing and repeated guids, HTML in titles, undated and
future-dated items, and a malformed feed that can still be read. See ``stage_golden``
for how to regenerate the expectations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

import pytest

# Stage entry points, in one place (they move as the stages are split).
from feeds.identity import id_mode, item_key, natural_item_id
from feeds.normalize.items import entry_from_item
from feeds.sources.parse import ParsedFeed, parse_feed

from .stage_golden import STAGES, check_json

FOLDER = STAGES / "sources"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIRST_SEEN = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Singapore")  # for dates written without a zone
# Each sample: where it was fetched from, and the Content-Type it came with.
SAMPLES = {
    "rss20-categories.xml": ("https://news.example/feed.xml", "application/rss+xml"),
    "rss20-missing-guids.xml": ("http://blog.example/rss", "application/rss+xml"),
    "rss20-no-links.xml": ("https://notes.example/feed", "text/xml"),
    "rss20-malformed.xml": ("https://sloppy.example/rss", "application/rss+xml"),
    "atom10.xml": ("https://atom.example/blog/atom.xml", "application/atom+xml"),
    "jsonfeed11.json": ("https://pod.example/feed.json", "application/feed+json"),
    "rdf10.xml": ("https://rdf.example/index.rdf", "application/rdf+xml"),
}


def stage(name: str) -> tuple[ParsedFeed, dict[str, Any]]:
    """Parse and normalize one sample as the updater does for a source seen for the first time."""
    url, content_type = SAMPLES[name]
    feed = parse_feed((FOLDER / name).read_bytes(), {"content-type": content_type}, url)
    mode = id_mode(feed.items)
    items = []
    for item in feed.items:
        entry = entry_from_item(item, feed, entry_id=natural_item_id(item, mode, feed.link), source="src",
                                feed_url=url, zone=ZONE, now=NOW, first_seen=FIRST_SEEN, extra_tags=("From-src",))
        items.append({"parsed": item, "key": item_key(item, mode, feed.link), "entry": entry})
    head = {k: getattr(feed, k) for k in ("format", "title", "link", "id", "updated", "ttl", "language",
                                          "problem", "dropped")}
    return feed, {"feed": head, "id_mode": mode, "items": items}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_source_feed_gives_its_golden_items(name: str) -> None:
    check_json(FOLDER / (name.rsplit(".", 1)[0] + ".expected.json"), stage(name)[1])


def test_every_sample_has_its_expectation_and_nothing_else_lies_there() -> None:
    files = {p.name for p in FOLDER.iterdir()}
    expected = {n.rsplit(".", 1)[0] + ".expected.json" for n in SAMPLES}
    assert files == set(SAMPLES) | expected


# What the goldens hold that matters most, said once more in words: a regenerated
# golden that lost one of these still fails here.

def test_rss_categories_enclosures_authors_and_links() -> None:
    feed, staged = stage("rss20-categories.xml")
    assert (feed.format, feed.ttl, feed.language) == ("rss20", 90, "en-GB")
    assert staged["id_mode"] == "link"  # two items have no guid: none is trusted
    first, second, undated = (i["entry"] for i in staged["items"])
    assert first.title == "Fish & Chips week"  # an RSS title is read as HTML
    assert first.link == first.id == "https://news.example/2026/02/fish-and-chips?id=7"  # tracking dropped
    assert first.provenance[0].upstream_id == "news-example-7"
    assert first.tags == ("Food", "Local Life", "From-src")
    assert [(e.url, e.type, e.length) for e in first.enclosures] == [
        ("https://cdn.news.example/audio/chips.mp3", "audio/mpeg", 123456)]
    content = first.content or ""
    assert "<script" not in content and 'src="https://news.example/img/chips.jpg"' in content
    assert first.published == datetime(2026, 2, 28, 8, 30, tzinfo=UTC)
    assert second.link == "https://news.example/2026/02/ferry"  # relative, against the channel link
    assert second.id == second.link  # no guid: the canonical link
    assert [(e.url, e.length) for e in second.enclosures] == [("https://news.example/files/timetable.pdf", 0)]
    assert second.tags == ("Transport", "food", "From-src")
    assert undated.published == FIRST_SEEN and undated.link == "https://news.example/notices/1"
    assert {p.feed_url for e in (first, second, undated) for p in e.provenance} == {"https://news.example/feed.xml"}


def test_repeated_guids_fall_back_to_links_and_missing_links_to_content() -> None:
    _, staged = stage("rss20-missing-guids.xml")
    assert staged["id_mode"] == "link"
    assert [i["entry"].id for i in staged["items"]] == [
        "http://blog.example/first", "http://blog.example/second", "http://blog.example/third"]
    _, staged = stage("rss20-no-links.xml")
    assert staged["id_mode"] == "hash"
    entries = [i["entry"] for i in staged["items"]]
    assert all(e.id.startswith("urn:uuid:") for e in entries) and len({e.id for e in entries}) == 3
    assert entries[1].title.startswith("A note with no title")
    assert entries[1].published == datetime(2026, 2, 2, 2, 0, tzinfo=UTC)  # naive: read in the zone
    assert entries[2].published == NOW  # the future is brought back to now


def test_a_malformed_feed_still_gives_its_items_and_says_what_was_wrong() -> None:
    feed, staged = stage("rss20-malformed.xml")
    assert feed.problem and len(staged["items"]) == 1
    entry = staged["items"][0]["entry"]
    assert entry.link == "https://sloppy.example/cafe" and entry.tags == ("Food & Drink", "From-src")


def test_atom_base_authors_and_html_titles() -> None:
    feed, staged = stage("atom10.xml")
    assert feed.format == "atom10" and feed.id == "tag:atom.example,2020:blog"
    first, second = (i["entry"] for i in staged["items"])
    assert first.id == "tag:atom.example,2020:blog/42"
    assert first.title == "Café crème" and first.link == "https://atom.example/blog/posts/42.html"
    assert [(a.name, a.uri) for a in first.authors] == [("Claire Dupont", "https://atom.example/about")]
    assert first.tags == ("Café", "Paris", "From-src")  # a category's label, else its term
    assert [(e.url, e.type, e.length) for e in first.enclosures] == [
        ("https://atom.example/blog/media/42.ogg", "audio/ogg", 2048)]  # against xml:base
    # Links in content are resolved against the entry's own link.
    assert "onclick" not in (first.content or "") and "https://atom.example/blog/menu.html" in (first.content or "")
    assert second.published == second.updated == datetime(2026, 2, 18, 12, 0, tzinfo=UTC)


def test_json_feed_attachments_tags_and_missing_ids() -> None:
    feed, staged = stage("jsonfeed11.json")
    assert feed.format == "json11"
    episode, note, linked = (i["entry"] for i in staged["items"])
    assert episode.link == "https://pod.example/episodes/9" and episode.image == "https://pod.example/art/9.png"
    assert episode.language == "de-AT" and episode.summary == "Notes & links"
    assert [e.url for e in episode.enclosures] == ["https://media.pod.example/9.mp3"]  # javascript: left out
    assert episode.tags == ("Audio", "Tech", "From-src")
    assert note.id == "https://pod.example/notes/1" and note.content == "<p>Plain text &amp; &lt;not html&gt;</p>"
    assert linked.link == "https://elsewhere.example/article"


def test_rdf_subjects_and_creators() -> None:
    feed, staged = stage("rdf10.xml")
    assert feed.format == "rss10" and feed.language == "ja"
    first, second = (i["entry"] for i in staged["items"])
    assert first.tags == ("季節", "From-src") and [a.name for a in first.authors] == ["山田"]
    assert first.published == datetime(2026, 2, 10, 0, 0, tzinfo=UTC)
    assert second.title == "Second & last" and "<b>HTML</b>" in (second.content or "")


def test_a_json_feed_title_is_plain_text() -> None:
    _, staged = stage("jsonfeed11.json")
    assert staged["items"][0]["entry"].title == "Episode 9: <Streams>"


def test_an_rss_author_with_a_long_top_level_domain() -> None:
    _, staged = stage("rss20-categories.xml")
    assert [(a.name, a.email) for a in staged["items"][0]["entry"].authors] == [("Ann Editor", "editor@news.example")]


@pytest.mark.parametrize(("raw", "expected"), [
    ("editor@news.example (Ann Editor)", ("Ann Editor", "editor@news.example")),
    ("Ann Editor <ann@x.museum>", ("Ann Editor", "ann@x.museum")),
    ("ann@x.com", ("ann@x.com", "ann@x.com")),
    ("Just Name", ("Just Name", None)),
])
def test_rss_authors_keep_long_top_level_domains(raw: str, expected: tuple[str, str | None]) -> None:
    body = (f'<rss version="2.0"><channel><title>t</title><item><title>a</title><link>https://n.example/a</link>'
            f'<author>{escape(raw)}</author></item></channel></rss>').encode()
    (item,) = parse_feed(body, {}, "https://n.example/feed").items
    assert [(a.name, a.email) for a in item.authors] == [expected]
