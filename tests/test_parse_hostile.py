"""Hostile source feeds: wrong types, odd values, deep nesting, empty content, failures in
worker processes. Each bad field drops that field (or item), never the source; anything
unreadable is that source's one-line error, and the run goes on."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import feedparser
import pytest
from lxml import etree

from feeds.config import Limits, Source
from feeds.errors import InputError
from feeds.identity import natural_item_id
from feeds.models import Entry
from feeds.normalize import content
from feeds.normalize.items import entry_from_item
from feeds.sources.decide import Decider
from feeds.sources.parse import ParsedFeed, parse_feed
from feeds.sources.results import FetchFailure, FetchResult
from feeds.sources.update import ReadJob, _read_job, update_sources
from feeds.store import Store
from feeds.workers import JobFailed, run_jobs

from .conftest import Site
from .httpserver import FeedServer, Response, feed_response, item, rss

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "https://f.example/feed"


def json_feed(items: Any, **top: Any) -> bytes:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items, **top}).encode()


def entries_of(feed: ParsedFeed) -> list[Entry]:
    return [entry_from_item(i, feed, entry_id=f"urn:x:{n}", source="s", feed_url=URL, zone=UTC, now=NOW,
                            first_seen=NOW) for n, i in enumerate(feed.items)]


def assert_well_typed(e: Entry) -> None:
    assert isinstance(e.title, str) and e.title and content.xml_safe(e.title) == e.title
    for url in (e.link, e.image, *(a.uri for a in e.authors), *(x.url for x in e.enclosures),
                *(p.feed_link for p in e.provenance)):
        assert url is None or (isinstance(url, str) and url.split(":", 1)[0] in ("http", "https")), url
    assert all(isinstance(a.name, str) and a.name for a in e.authors)
    assert all(isinstance(a.email, str | None) for a in e.authors)
    assert all(isinstance(t, str) and t for t in e.tags)
    assert all(type(x.length) is int and x.length >= 0 and isinstance(x.type, str) for x in e.enclosures)
    assert isinstance(e.summary, str) and isinstance(e.content, str | None)
    assert isinstance(e.language, str | None)
    assert e.published.tzinfo is UTC and e.updated.tzinfo is UTC and e.updated >= e.published


WRONG_TYPES = [
    {"id": "1", "url": ["https://x.example/1"], "title": "url a list"},
    {"id": "2", "title": "size big", "attachments": [{"url": "https://x.example/a.mp3", "size_in_bytes": "big",
                                                       "mime_type": 5}]},
    {"id": "3", "title": "content a number", "content_html": 12345},
    {"id": "4", "title": "image a number", "image": 7, "banner_image": {"a": 1}},
    {"id": "5", "title": "author url a number", "authors": [{"name": "A", "url": 42}, {"name": 3}, "x"]},
    {"id": "6", "title": "authors a string", "authors": "Bob", "author": {"name": "Old", "url": "javascript:x"}},
    {"id": "7", "title": "tags a number", "tags": 17},
    {"id": "8", "title": "tags mixed", "tags": ["ok", 3, None, {"a": 1}, ["b"], "  "]},
    {"id": "9", "title": "dates", "date_published": 20210101, "date_modified": ["2021-01-01"]},
    {"id": "10", "title": "bad dates", "date_published": "0000-01-01T00:00:00Z", "date_modified": "99999-01-01"},
    {"id": None, "url": None, "title": None, "content_html": None, "summary": None, "tags": None, "image": None,
     "authors": None, "attachments": None, "language": None, "date_published": None, "content_text": "nulls"},
    {"id": {"x": 1}, "title": ["a"], "summary": 5, "content_text": 5, "language": 5, "attachments": "x",
     "external_url": 5, "url": "javascript:alert(1)"},
    {"id": 12.5, "title": "huge " + "x" * 2_000_000, "content_html": "<p>" + "y " * 1_000_000 + "</p>"},
    {"id": "13", "title": "numbers", "attachments": [{"url": "https://x.example/b", "size_in_bytes": -5},
                                                     {"url": "https://x.example/c", "size_in_bytes": 10**30},
                                                     {"url": "https://x.example/d", "size_in_bytes": True}]},
    "not an item", 5, None, ["list"],
]


def test_json_feed_with_wrong_types_keeps_valid_fields() -> None:
    feed = parse_feed(json_feed(WRONG_TYPES, home_page_url=5, feed_url=["x"], language={}), {}, URL)
    assert len(feed.items) == 14 and feed.link is None and feed.id is None and feed.language is None
    entries = entries_of(feed)
    for e in entries:
        assert_well_typed(e)
    by_id = {i.guid: (i, e) for i, e in zip(feed.items, entries, strict=True)}
    assert by_id["1"][1].link is None and by_id["1"][1].title == "url a list"
    [mp3] = by_id["2"][1].enclosures
    assert (mp3.url, mp3.length, mp3.type) == ("https://x.example/a.mp3", 0, "application/octet-stream")
    assert by_id["3"][1].content == ""
    assert by_id["5"][1].authors[0].name == "A" and by_id["5"][1].authors[0].uri is None
    assert by_id["6"][1].authors[0].name == "Old" and by_id["6"][1].authors[0].uri is None
    assert by_id["8"][1].tags == ("ok",)
    assert by_id["10"][1].published == NOW  # undated: first seen
    assert by_id["12.5"][1].content is None  # over the content cap: summary and link only
    assert len(by_id["12.5"][1].title) <= 500
    assert [x.length for x in by_id["13"][1].enclosures] == [0, 2**63 - 1, 0]
    nulls, wrong = feed.items[10], entries[11]
    assert nulls.content_html == "<p>nulls</p>" and nulls.guid is None
    assert wrong.link is None and wrong.title == "(untitled)"


@pytest.mark.parametrize("body", [
    json_feed({"a": 1}), json_feed("items"), json_feed(5), b'{"version": 1.1, "items": []}',
    b'{"version": ["https://jsonfeed.org/version/1"]}', b"[]", b'"https://jsonfeed.org/version/1"',
    b"\xef\xbb\xbf" + json_feed([]), json_feed([], title=5, home_page_url="javascript:x"),
])
def test_json_feed_odd_shapes(body: bytes) -> None:
    try:
        feed = parse_feed(body, {"content-type": "application/feed+json"}, URL)
    except InputError as exc:
        assert str(exc).startswith(URL + ": ")
    else:
        assert feed.items == () and isinstance(feed.title, str)


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_json_nested_deeply_is_a_clear_error(depth: int) -> None:
    body = b'{"version": "https://jsonfeed.org/version/1", "items": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(InputError, match="nested too deeply"):
        parse_feed(body, {"content-type": "application/json"}, URL)
    deep_object = b'{"a":' * depth + b"1" + b"}" * depth
    with pytest.raises(InputError, match="nested too deeply"):
        parse_feed(deep_object, {}, URL)


def test_xml_nested_deeply() -> None:
    body = rss([item(1, description="<b>" * 30_000 + "x" + "</b>" * 30_000)]).encode()
    try:
        feed = parse_feed(body, {}, URL)
    except InputError:
        return
    for e in entries_of(feed):
        assert_well_typed(e)


ODD_RSS = rss([
    item(1, enclosure='', ttl="x"),
    {"title": "Odd values", "guid": "   ", "link": "javascript:alert(1)", "pubDate": "Mon, 01 Jan 0000 00:00:00 GMT",
     "description": "x"},
    {"title": "Far future", "pubDate": "Fri, 01 Jan 99999 00:00:00 GMT", "link": "http://[::1", "guid": "http://[x"},
    {"title": "Year 0 ISO", "dc:date": "0000-00-00T00:00:00Z", "link": "https://ok.example/3"},
    {"title": "  ", "description": "&lt;p&gt;only a summary&lt;/p&gt;", "category": "   "},
], extra="<ttl>soon</ttl>").replace(
    "<enclosure></enclosure>", '<enclosure url="https://x.example/a.mp3" length="big" type=""/>'
    '<enclosure url="data:x" length="-1"/><enclosure length="5"/>'
).replace("<rss ", '<rss xmlns:dc="http://purl.org/dc/elements/1.1/" ')


def test_rss_odd_values() -> None:
    feed = parse_feed(ODD_RSS.encode(), {}, URL)
    assert feed.ttl is None and len(feed.items) == 5
    entries = entries_of(feed)
    for e in entries:
        assert_well_typed(e)
    first, odd, future, _year0, untitled = entries
    assert [(x.url, x.length) for x in first.enclosures] == [("https://x.example/a.mp3", 0)]
    assert feed.items[1].guid is None and odd.link is None
    assert future.link is None and future.published == NOW
    assert untitled.title == "only a summary"


@pytest.mark.parametrize("body", ["<!---->", "", "   ", "\x00\x00", "<!DOCTYPE html>", "<!-- only -->",
                                  "<html></html>", "<html><head></head></html>", "<!DOCTYPE html><!-- c -->"])
def test_empty_content_documents(body: str) -> None:
    """lxml refuses these ("Document is empty", "too many bodies"); cleaning gives nothing."""
    assert content.clean_html(body, title="T", base_url="https://x.example/") == ""
    assert content.clean_html("<html></html>Text", base_url="https://x.example/") == "Text"


def atom_with_empty_content(variant: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
            f'<id>urn:a</id><updated>2021-01-01T00:00:00Z</updated><entry><title>E</title><id>urn:e</id>'
            f'<updated>2021-01-01T00:00:00Z</updated><content type="html">{variant}</content></entry>'
            f"</feed>").encode()


def unpicklable(job: int, shared: object) -> int:
    if job == 3:
        etree.fromstring(b"<a><b></a>")  # XMLSyntaxError carries an unpicklable error log
    return job


@pytest.mark.skipif(not hasattr(os, "fork"), reason="worker processes are forked")
def test_worker_exceptions_come_back_as_text() -> None:
    with pytest.raises(JobFailed, match="XMLSyntaxError"):
        run_jobs(unpicklable, list(range(8)), 1, shared={"x": 1})


def read_shared(zone: str) -> list[ReadJob]:
    decider = Decider(Source(name="s", url=URL), Limits(), NOW, zone, 100, 86400.0, "f")
    result = FetchResult("s", URL, URL, 200, rss([item(1)]).encode())
    return [ReadJob(decider, result, {})]


def test_read_job_turns_any_failure_into_the_sources_line() -> None:
    failure = _read_job(0, read_shared("No/Such_Zone"))
    assert isinstance(failure, FetchFailure) and failure.kind == "feed"
    assert "ZoneInfoNotFoundError" in failure.message and "\n" not in failure.message
    assert not isinstance(_read_job(0, read_shared("UTC")), FetchFailure)


def configure(site: Site, server: FeedServer, names: list[str], extra: str = "") -> None:
    text = (site.root / "config.yaml").read_text().split("sources:")[0]
    lines = ["sources:"] + [f"  - {{name: {n}, url: '{server.url('/' + n)}', every: 60}}" for n in names]
    site.write_config(text + "\n".join(lines) + "\nfetch: {host_gap: 0, read_timeout: 5, total_timeout: 10}\n"
                      + extra)


def feeds_cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feeds", *args, "--config", str(site.root / "config.yaml")],
                          capture_output=True, text=True, timeout=300, cwd=site.root)


HOSTILE: dict[str, bytes] = {
    "wrongtypes": json_feed(WRONG_TYPES[:12]),
    "deepjson": b'{"version": "https://jsonfeed.org/version/1", "items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "emptycontent": atom_with_empty_content(""),
    "doctypecontent": atom_with_empty_content("&lt;!DOCTYPE html&gt;&lt;!-- c --&gt;"),
    "htmlcontent": atom_with_empty_content("&lt;html&gt;&lt;/html&gt;"),
    "notafeed": b"<html><body>hello</body></html>",
    "garbage": b"\x00\xff\xfe" * 1000,
    "oddrss": ODD_RSS.encode(),
}


def test_hostile_sources_never_stop_the_run(site: Site, server: FeedServer) -> None:
    """Enough sources that parsing runs in worker processes; each bad one is its own error."""
    good = [f"good{n}" for n in range(4)]
    for n, name in enumerate(good):
        server.routes["/" + name] = feed_response(rss([item(10 * n + 1), item(10 * n + 2)], title=name))
    for name, body in HOSTILE.items():
        kind = "application/json" if name in ("wrongtypes", "deepjson") else "application/xml"
        server.routes["/" + name] = Response(200, body, {"Content-Type": kind})
    configure(site, server, good + list(HOSTILE))
    done = feeds_cli(site, "generate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line.removeprefix("warning: ") for line in (done.stdout + done.stderr).splitlines()]
    assert any(line.startswith("deepjson: ") and "nested too deeply" in line for line in lines), lines
    assert any(line.startswith("notafeed: ") and "HTML page" in line for line in lines), lines
    assert any(line.startswith("garbage: ") for line in lines), lines
    d = feedparser.parse((site.output / "all.atom.xml").read_bytes())
    assert not d.bozo
    titles = {e.title for e in d.entries}
    assert {f"Story {10 * n + k}" for n in range(4) for k in (1, 2)} <= titles
    assert {"url a list", "author url a number", "E", "Odd values"} <= titles
    status = feeds_cli(site, "status")
    assert status.returncode == 0
    assert "nested too deeply" in status.stdout
    health = json.loads((site.output / "status.json").read_text())
    assert "nested too deeply" in json.dumps(health)
    strict = feeds_cli(site, "generate", "--strict")
    assert strict.returncode == 1 and "Traceback" not in strict.stdout + strict.stderr


def test_a_bad_stored_item_never_breaks_later_runs(site: Site, server: FeedServer) -> None:
    server.routes["/a"] = feed_response(rss([item(1), item(2), item(3)]))
    configure(site, server, ["a"])
    assert feeds_cli(site, "generate").returncode == 0
    db = site.root / "state" / "feeds.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT ukey, data FROM items ORDER BY ukey").fetchall()
        assert len(rows) == 3
        data = json.loads(rows[0][1])
        # As an older version stored it: an author whose URL is a number, an enclosure length as text.
        data["authors"] = [["Num", None, 42], [7, None, None]]
        data["enclosures"] = [["https://x.example/a.mp3", None, "big"]]
        data["tags"] = ["ok", 5]
        conn.execute("UPDATE items SET data = ? WHERE ukey = ?", (json.dumps(data), rows[0][0]))
        conn.execute("UPDATE items SET data = ? WHERE ukey = ?", ("{garbled", rows[1][0]))
        conn.execute("UPDATE items SET data = ? WHERE ukey = ?", (json.dumps({"id": 5}), rows[2][0]))
    for output in site.output.rglob("*.xml"):
        output.unlink()  # so the next run renders from the store
    for _ in range(2):
        done = feeds_cli(site, "generate", "--offline")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert sum("cannot be read" in line for line in done.stderr.splitlines()) == 2, done.stderr
    d = feedparser.parse((site.output / "all.atom.xml").read_bytes())
    assert not d.bozo and [e.title for e in d.entries] == ["Story 1"]
    assert d.entries[0].author == "Num" and "href" not in d.entries[0].get("author_detail", {})


def test_local_file_sources_with_odd_encodings(site: Site, tmp_path: Path) -> None:
    feeds = {
        "bom8": b"\xef\xbb\xbf" + rss([item(1)]).encode(),
        "utf16": rss([item(2, title="Sixteen")], encoding="UTF-16").encode("utf-16"),
        "lies": rss([item(3, title="Caf\u00e9")], encoding="x-no-such-charset").encode("latin-1"),
        "jsonbom": b"\xef\xbb\xbf" + json_feed([{"id": "j", "title": "JSON with BOM"}]),
    }
    text = (site.root / "config.yaml").read_text().split("sources:")[0] + "sources:\n"
    for name, body in feeds.items():
        (site.root / f"{name}.feed").write_bytes(body)
        text += f"  - {{name: {name}, url: '{name}.feed'}}\n"
    site.write_config(text)
    done = feeds_cli(site, "generate")
    assert done.returncode == 0 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    titles = {e.title for e in feedparser.parse((site.output / "all.atom.xml").read_bytes()).entries}
    assert {"Story 1", "Sixteen", "JSON with BOM"} <= titles, done.stdout


def test_zone_of_source_is_read_as_given() -> None:
    feed = parse_feed(rss([item(1, pubDate="2021-03-05 10:00:00")]).encode(), {}, URL)
    [e] = [entry_from_item(feed.items[0], feed, entry_id="urn:x", source="s", feed_url=URL,
                           zone=ZoneInfo("Asia/Tokyo"), now=NOW, first_seen=NOW)]
    assert e.published == datetime(2021, 3, 5, 1, 0, tzinfo=UTC)


def test_lone_surrogates_and_controls_in_json() -> None:
    body = json.dumps({"version": "https://jsonfeed.org/version/1", "title": "\ud800T", "items": [
        {"id": "\ud800", "url": "https://x.example/\udfff", "title": "a\x00b\ud800", "summary": "\ud800s",
         "tags": ["\ud800", "ok\x01"], "authors": [{"name": "\udfffN"}], "content_html": "<p>\ud800c</p>"},
        {"id": "\ud801", "title": "second"}]}).encode()
    feed = parse_feed(body, {}, URL)
    entries = entries_of(feed)
    assert [e.title for e in entries] == ["ab", "second"] and entries[0].tags == ("ok",)
    for e in entries:
        assert_well_typed(e)
        e.title.encode("utf-8")
        (e.content or "").encode("utf-8")


def test_one_item_with_thirty_thousand_tags_and_odd_digits() -> None:
    cats = "".join(f"<category>c{n}</category>" for n in range(30_000))  # minutes, were it quadratic
    body = rss([item(1, category="x")], extra="<ttl>\u00b2</ttl>").replace("<category>x</category>", cats)
    body = body.replace("<item>", '<item><enclosure url="https://x.example/a" length="\u00b2\u00b3"/>', 1)
    feed = parse_feed(body.encode(), {}, URL)
    assert feed.ttl is None and len(feed.items[0].tags) == 1000
    [e] = entries_of(feed)
    assert len(e.tags) == 20 and e.enclosures[0].length == 0


def test_unsafe_and_huge_guids_make_safe_ids() -> None:
    feed = parse_feed(json_feed([{"id": "javascript:alert(1)", "title": "a"}, {"id": "g" * 100_000, "title": "b"},
                                 {"id": "tag:x.example,2020:1", "title": "c"}]), {}, URL)
    ids = [natural_item_id(i, "guid", None) for i in feed.items]
    assert ids[0].startswith("urn:uuid:") and ids[1].startswith("urn:uuid:") and ids[2] == "tag:x.example,2020:1"
    assert all(len(i.guid or "") <= 1000 for i in feed.items)


class StoreFailingFor(Store):
    """A real store whose writes for one source fail (a full disk, a damaged page)."""

    def __init__(self, path: Path, failing: str) -> None:
        super().__init__(path)
        self.failing = failing

    def save_fetch(self, state: Any, *args: Any, **kwargs: Any) -> int:
        if state.name == self.failing:
            raise RuntimeError("disk I/O error\nsecond line")
        return super().save_fetch(state, *args, **kwargs)


def test_storing_one_source_failing_is_that_sources_error(site: Site, tmp_path: Path) -> None:
    text = (site.root / "config.yaml").read_text().split("sources:")[0]
    site.write_config(text + "sources:\n  - {name: good, url: 'https://g.example/f'}\n"
                      "  - {name: bad, url: 'https://b.example/f'}\n")
    config = site.config()
    bodies = {"good": rss([item(1)]).encode(), "bad": rss([item(2)]).encode()}

    def fetch(requests: Any) -> list[FetchResult]:
        return [FetchResult(r.source, r.url, r.url, 200, bodies[r.source]) for r in requests]

    store = StoreFailingFor(tmp_path / "state.db", "bad")
    try:
        outcomes = {o.name: o for o in update_sources(config, store, now=NOW, fetch=fetch)}
        assert outcomes["good"].status == "ok" and outcomes["good"].new == 1
        assert outcomes["bad"].error == "could not be handled (RuntimeError: disk I/O error second line)"
        assert store.load_sources()["bad"].error == outcomes["bad"].error
        assert store.item_counts() == {"good": 1}
    finally:
        store.close()
