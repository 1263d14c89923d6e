"""Aggregating source feeds end to end: a real loopback server, a real SQLite file,
real output files parsed back with feedparser."""

from __future__ import annotations

import html
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from feeds.pipeline import Report, generate, source_status

from .conftest import ROOT, Site
from .httpserver import FeedServer, Response, feed_response, item, rss

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"


def configure(site: Site, server: FeedServer, sources: dict[str, str], extra: str = "") -> None:
    lines = ["sources:"]
    for name, path in sources.items():
        url = server.url(path) if path.startswith("/") else path
        lines.append(f"  - {{name: {name}, url: '{url}', every: 60, tags: [From-{name}]}}")
    text = (site.root / "config.yaml").read_text().split("sources:")[0]
    site.write_config(text + "\n".join(lines) + "\nfetch: {host_gap: 0, read_timeout: 2, total_timeout: 4, "
                      "max_bytes: 500000}\n" + extra)


def run(site: Site, when: datetime = T0) -> Report:
    return generate(site.config(), now=when)


def entries(site: Site, name: str = "all.atom.xml") -> list[feedparser.FeedParserDict]:
    d = feedparser.parse((site.output / name).read_bytes())
    assert not d.bozo, d.get("bozo_exception")
    return list(d.entries)


def status(site: Site) -> dict[str, object]:
    return {s.name: s for s in source_status(site.config())}


def test_aggregates_with_attribution(site: Site, server: FeedServer) -> None:
    server.routes["/a.xml"] = feed_response(rss([item(1), item(2, category="Python")], title="Feed A"))
    configure(site, server, {"a": "/a.xml"})
    report = run(site)
    assert [o.status for o in report.sources] == ["ok"]
    got = entries(site)
    assert [e.title for e in got] == ["Story 2", "Story 1"]
    assert sorted(t.term for t in got[0].tags) == ["From-a", "Python"]
    assert (site.output / "tags/python.atom.xml").exists() and (site.output / "tags/from-a.rss.xml").exists()
    atom = etree.fromstring((site.output / "all.atom.xml").read_bytes())
    source = atom.find(f"{ATOM}entry/{ATOM}source")
    assert source is not None
    assert source.findtext(f"{ATOM}title") == "Feed A"
    assert source.findtext(f"{ATOM}id") == server.url("/a.xml")
    assert source.find(f"{ATOM}link[@rel='self']").get("href") == server.url("/a.xml")
    rss_doc = etree.fromstring((site.output / "all.rss.xml").read_bytes())
    src = rss_doc.find("channel/item/source")
    assert src is not None and src.get("url") == server.url("/a.xml") and src.text == "Feed A"


def test_conditional_get_and_body_hash_skip(site: Site, server: FeedServer) -> None:
    server.routes["/etag.xml"] = feed_response(rss([item(1)]))
    server.routes["/plain.xml"] = feed_response(rss([item(2)]), etag=None, modified=False)
    configure(site, server, {"etag": "/etag.xml", "plain": "/plain.xml"})
    run(site)
    report = run(site, T0 + timedelta(minutes=5))
    outcome = {o.name: o.status for o in report.sources}
    assert outcome == {"etag": "not modified", "plain": "unchanged"}
    assert server.hits("/etag.xml")[1].headers.get("if-none-match") == '"v1"'
    assert report.written == []


def test_not_due_sources_are_not_fetched(site: Site, server: FeedServer) -> None:
    server.routes["/a.xml"] = feed_response(rss([item(1)]))
    configure(site, server, {"a": "/a.xml"})
    run(site)
    assert run(site, T0 + timedelta(seconds=30)).sources == []
    assert len(server.hits("/a.xml")) == 1
    offline = generate(site.config(), now=T0 + timedelta(hours=5), offline=True)
    assert offline.sources == [] and len(server.hits("/a.xml")) == 1


def test_one_failing_source_affects_nothing_else(site: Site, server: FeedServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A name that does not resolve, answered by a stub: no query leaves the machine.
    real_getaddrinfo = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: object, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.endswith(".invalid"):
            asked.append(name)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    server.routes["/good.xml"] = feed_response(rss([item(1)]))
    server.routes["/bad.xml"] = Response(500, b"oops")
    configure(site, server, {"good": "/good.xml", "bad": "/bad.xml", "dns": "http://no-such-host.invalid/f"})
    report = run(site)
    by_name = {o.name: o for o in report.sources}
    assert by_name["good"].status == "ok"
    assert "HTTP 500" in (by_name["bad"].error or "")
    assert "cannot resolve host" in (by_name["dns"].error or ""), by_name["dns"].error
    assert asked and all(host == "no-such-host.invalid" for host in asked)
    assert [e.title for e in entries(site)] == ["Story 1"]
    assert sum("bad: error" in w for w in report.warnings) == 1
    # Failures back off: the next attempt waits longer each time, but never stops.
    first_due = status(site)["bad"].next_due
    run(site, first_due)
    second_due = status(site)["bad"].next_due
    assert second_due - first_due > first_due - T0


def test_gone_throttled_and_moved(site: Site, server: FeedServer) -> None:
    server.routes["/gone.xml"] = Response(410, b"")
    server.routes["/busy.xml"] = Response(503, b"", {"Retry-After": "7200"})
    server.routes["/new.xml"] = feed_response(rss([item(3)]))
    server.routes["/old.xml"] = Response(301, headers={"Location": "/new.xml"})
    configure(site, server, {"gone": "/gone.xml", "busy": "/busy.xml", "moved": "/old.xml"})
    report = run(site)
    by_name = {o.name: o for o in report.sources}
    assert by_name["gone"].status == "gone"
    assert by_name["busy"].status == "throttled"
    assert status(site)["busy"].next_due >= T0 + timedelta(seconds=7200)
    assert by_name["moved"].status == "ok"
    when = T0
    for _ in range(2):
        when += timedelta(minutes=2)
        report = run(site, when)
    moved = status(site)["moved"]
    assert moved.fetch_url == server.url("/new.xml")
    assert any("moved permanently" in w for w in report.warnings)
    hits_before = len(server.hits("/old.xml"))
    run(site, when + timedelta(minutes=2))
    assert len(server.hits("/old.xml")) == hits_before  # the new address is fetched directly


def test_every_kind_of_bad_body_is_a_clear_error(site: Site, server: FeedServer) -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
            + ']><rss version="2.0"><channel><title>&i;</title><item><title>x</title></item></channel></rss>')
    xxe = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           '<rss version="2.0"><channel><title>t</title><item><title>&x;</title><link>https://s.example/1</link>'
           "</item></channel></rss>")
    server.routes["/empty.xml"] = Response(200, b"", {"Content-Type": "application/rss+xml"})
    server.routes["/page.html"] = Response(200, b"<!DOCTYPE html><html><body>Hi</body></html>",
                                           {"Content-Type": "text/html"})
    server.routes["/bomb.xml"] = Response(200, bomb.encode())
    server.routes["/xxe.xml"] = Response(200, xxe.encode())
    server.routes["/junk.json"] = Response(200, b'{"not": "a feed"}', {"Content-Type": "application/json"})
    configure(site, server, {"empty": "/empty.xml", "page": "/page.html", "bomb": "/bomb.xml", "xxe": "/xxe.xml",
                             "junk": "/junk.json"})
    started = time.monotonic()
    report = run(site)
    assert time.monotonic() - started < 20
    by_name = {o.name: o for o in report.sources}
    assert "empty body" in (by_name["empty"].error or "")
    assert "HTML page" in (by_name["page"].error or "")
    assert "not a JSON Feed" in (by_name["junk"].error or "")
    assert by_name["bomb"].error or by_name["bomb"].entries <= 1
    for name in ("all.atom.xml", "all.rss.xml"):
        text = (site.output / name).read_text()
        assert "root:" not in text and "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" not in text


def test_malformed_gbk_gzip_and_json_feeds(site: Site, server: FeedServer) -> None:
    broken = rss([item(1), item(2)]).replace("</channel></rss>", "<item><title>unclosed")
    server.routes["/broken.xml"] = Response(200, broken.encode(), {"Content-Type": "application/rss+xml"})
    gbk = rss([item(4, title="中文标题：经济")], encoding="gb2312").encode("gbk")
    server.routes["/gbk.xml"] = Response(200, gbk, {"Content-Type": "text/xml"})
    server.routes["/wrong.xml"] = Response(200, rss([item(5, title="Café — naïve")]).encode(),
                                           {"Content-Type": "text/xml; charset=iso-8859-1"})
    server.routes["/gz.xml"] = feed_response(rss([item(6)]), gz=True)
    server.routes["/feed.json"] = Response(200, json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "J", "home_page_url": "https://j.example/",
        "items": [{"id": "j1", "url": "https://j.example/1", "title": "JSON item",
                   "content_html": "<p>Hi <b>there</b></p>", "date_published": "2021-03-05T10:00:00+08:00",
                   "tags": ["Json"], "authors": [{"name": "Jo"}]}]}).encode(),
        {"Content-Type": "application/feed+json"})
    configure(site, server, {"broken": "/broken.xml", "gbk": "/gbk.xml", "wrong": "/wrong.xml", "gz": "/gz.xml",
                             "json": "/feed.json"})
    report = run(site)
    by_name = {o.name: o for o in report.sources}
    assert by_name["broken"].entries >= 2 and any("malformed" in n for n in by_name["broken"].notes)
    titles = {e.title for e in entries(site)}
    assert {"Story 1", "Story 2", "中文标题：经济", "Café — naïve", "Story 6", "JSON item"} <= titles
    j = next(e for e in entries(site) if e.title == "JSON item")
    assert j.published_parsed[:5] == (2021, 3, 5, 2, 0) and j.author == "Jo"


def test_repeated_guids_downgrade_to_links(site: Site, server: FeedServer) -> None:
    server.routes["/same.xml"] = feed_response(rss([item(n, guid="same") for n in range(1, 4)]))
    configure(site, server, {"same": "/same.xml"})
    report = run(site)
    assert len(entries(site)) == 3
    assert any("repeated guids" in w for w in report.warnings)


def test_one_entry_per_story_across_sources_and_posts(site: Site, server: FeedServer) -> None:
    site.add("2021-03-02-post.md", "---\ntitle: The post\ndate: 2021-03-02\nfrom: https://site.example/s/1\n"
                                   "tags: [Local]\n---\nBody of the post.\n")
    server.routes["/a.xml"] = feed_response(rss([item(1), item(2)]))
    server.routes["/b.xml"] = feed_response(rss([item(2, guid="other-guid-2", title="Story 2, as B titles it"),
                                                  item(1, guid="b-1")]))
    configure(site, server, {"a": "/a.xml", "b": "/b.xml"})
    run(site)
    got = entries(site)
    assert len(got) == 2
    post = next(e for e in got if e.link == "https://site.example/s/1")
    assert post.title == "The post" and post.id == "https://site.example/s/1"
    assert sorted(t.term for t in post.tags) == ["From-a", "From-b", "Local"]
    story2 = next(e for e in got if e.link == "https://site.example/s/2")
    assert sorted(t.term for t in story2.tags) == ["From-a", "From-b"]


def test_title_edit_or_guid_change_keeps_one_entry(site: Site, server: FeedServer) -> None:
    server.routes["/a.xml"] = feed_response(rss([item(1)]), etag='"1"')
    configure(site, server, {"a": "/a.xml"})
    run(site)
    first_id = entries(site)[0].id
    server.routes["/a.xml"] = feed_response(rss([item(1, title="Story 1 (corrected)")]), etag='"2"')
    run(site, T0 + timedelta(minutes=2))
    server.routes["/a.xml"] = feed_response(rss([item(1, title="Story 1 (corrected)", guid="new-scheme-1")]),
                                            etag='"3"')
    run(site, T0 + timedelta(minutes=4))
    got = entries(site)
    assert [(e.id, e.title) for e in got] == [(first_id, "Story 1 (corrected)")]


def test_dates_missing_naive_and_future(site: Site, server: FeedServer) -> None:
    undated = {"title": "Undated", "link": "https://site.example/u", "guid": "u"}
    naive = item(7, pubDate="2021-03-05T10:00:00")  # no zone: read in the source's time zone
    future = item(8, pubDate="Mon, 01 Mar 2100 10:00:00 +0000")
    server.routes["/a.xml"] = feed_response(rss([undated, naive, future]), etag=None, modified=False)
    configure(site, server, {"a": "/a.xml"})
    text = (site.root / "config.yaml").read_text().replace("tags: [From-a]}", "tags: [From-a], timezone: Asia/Tokyo}")
    site.write_config(text)
    run(site)
    server.routes["/a.xml"] = feed_response(rss([undated, naive, future, item(9)]), etag=None, modified=False)
    run(site, T0 + timedelta(days=3))
    got = {e.title: e for e in entries(site)}
    assert got["Undated"].published_parsed[:4] == (2026, 3, 1, 12)  # first seen, kept
    assert got["Story 7"].published_parsed[:4] == (2021, 3, 5, 1)  # 10:00 in Tokyo
    assert got["Story 8"].published_parsed[:4] == (2026, 3, 1, 12)  # not in the future


def test_outputs_are_byte_stable_with_sources(site: Site, server: FeedServer) -> None:
    server.routes["/a.xml"] = feed_response(rss([item(1), item(2)]), etag=None, modified=False)
    configure(site, server, {"a": "/a.xml"})
    run(site)
    before, mtimes = site.outputs(), site.mtimes()
    run(site, T0 + timedelta(hours=1))
    assert site.outputs() == before and site.mtimes() == mtimes


def test_status_command(site: Site, server: FeedServer) -> None:
    server.routes["/a.xml"] = feed_response(rss([item(1)]))
    server.routes["/b.xml"] = Response(404, b"")
    configure(site, server, {"a": "/a.xml", "b": "/b.xml"})
    run(site)
    result = subprocess.run([sys.executable, "-m", "feeds", "status", "--config", str(site.root / "config.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert "a\n" in result.stdout and "(ok)" in result.stdout and "1 in the feed, 1 stored" in result.stdout
    assert "last error: HTTP 404" in result.stdout and "next due:" in result.stdout


def test_strict_exits_1_on_a_source_error(site: Site, server: FeedServer) -> None:
    server.routes["/b.xml"] = Response(500, b"")
    configure(site, server, {"b": "/b.xml"})
    cmd = [sys.executable, "-m", "feeds", "generate", "--config", str(site.root / "config.yaml")]
    normal = subprocess.run(cmd, capture_output=True, text=True)
    assert normal.returncode == 0 and "b: error: HTTP 500" in normal.stderr
    (site.root / "state").rename(site.root / "state-old")  # make it due again
    assert subprocess.run([*cmd, "--strict"], capture_output=True, text=True).returncode == 1


def test_killed_midway_loses_and_duplicates_nothing(site: Site, server: FeedServer) -> None:
    for n in range(6):
        delay = 3.0 if n == 5 else 0.0
        server.routes[f"/s{n}.xml"] = Response(200, rss([item(10 * n + k) for k in range(1, 4)]).encode(),
                                               {"Content-Type": "application/rss+xml"}, delay=delay)
    configure(site, server, {f"s{n}": f"/s{n}.xml" for n in range(6)})
    text = (site.root / "config.yaml").read_text().replace("read_timeout: 2, total_timeout: 4",
                                                           "read_timeout: 10, total_timeout: 20")
    site.write_config(text)
    cmd = [sys.executable, "-m", "feeds", "generate", "--config", str(site.root / "config.yaml")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while len(server.hits("/s5.xml")) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    server.routes["/s5.xml"] = Response(200, rss([item(50 + k) for k in range(1, 4)]).encode())
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    got = entries(site)
    assert len(got) == 18 and len({e.id for e in got}) == 18
    leftovers = [p for p in site.output.rglob(".*")]
    assert leftovers == []


def test_summary_only_source(site: Site, server: FeedServer) -> None:
    server.routes["/a.xml"] = feed_response(rss([item(1, description=html.escape("<p>Full <b>text</b> here.</p>"))]))
    configure(site, server, {"a": "/a.xml"})
    text = (site.root / "config.yaml").read_text().replace("tags: [From-a]}", "tags: [From-a], summary_only: true}")
    site.write_config(text)
    run(site)
    e = entries(site)[0]
    assert "content" not in e and e.summary == "Full text here."


def generate_shipped(work: Path) -> Path:
    """A copy of the shipped project (config, posts, sources) in ``work``, generated."""
    work.mkdir()
    for part in ("config.yaml", "posts", "sources"):
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, work / part)
        else:
            shutil.copy(ROOT / part, work / part)
    result = subprocess.run([sys.executable, "-m", "feeds", "generate", "--config", str(work / "config.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return work


def test_shipped_config_aggregates_the_bundled_source(tmp_path: Path) -> None:
    work = generate_shipped(tmp_path / "repo")
    d = feedparser.parse((work / "output/tags/wire.atom.xml").read_bytes())
    assert len(d.entries) == 3 and not d.bozo


def test_entries_outlive_their_upstream_listing_within_retention(site: Site, server: FeedServer) -> None:
    server.routes["/a.xml"] = feed_response(rss([item(1), item(2)]), etag='"1"')
    configure(site, server, {"a": "/a.xml"}, extra="")
    text = (site.root / "config.yaml").read_text().replace("max_bytes: 500000}", "max_bytes: 500000, retention: 7d}")
    site.write_config(text)
    run(site)
    server.routes["/a.xml"] = feed_response(rss([item(2), item(3)]), etag='"2"')
    run(site, T0 + timedelta(days=1))
    assert {e.title for e in entries(site)} == {"Story 1", "Story 2", "Story 3"}  # 1 dropped off upstream, kept
    run(site, T0 + timedelta(days=9))
    assert {e.title for e in entries(site)} == {"Story 2", "Story 3"}  # past retention


def test_disabled_or_removed_sources_leave_the_outputs(site: Site, server: FeedServer) -> None:
    server.routes["/a.xml"] = feed_response(rss([item(1)]))
    server.routes["/b.xml"] = feed_response(rss([item(2)]))
    configure(site, server, {"a": "/a.xml", "b": "/b.xml"})
    run(site)
    assert len(entries(site)) == 2
    text = (site.root / "config.yaml").read_text().replace("tags: [From-b]}", "tags: [From-b], enabled: false}")
    site.write_config(text)
    run(site, T0 + timedelta(hours=2))
    assert [e.title for e in entries(site)] == ["Story 1"]
    assert not (site.output / "tags/from-b.atom.xml").exists()
    assert len(server.hits("/b.xml")) == 1


def test_two_fresh_checkouts_write_the_same_bytes(tmp_path: Path) -> None:
    """The shipped project, generated in two places at two times, gives identical files."""
    outputs = []
    for name in ("one", "two"):
        work = generate_shipped(tmp_path / name)
        outputs.append({p.relative_to(work / "output").as_posix(): p.read_bytes()
                        for p in sorted((work / "output").rglob("*")) if p.is_file()})
        time.sleep(1.1)
    assert outputs[0] == outputs[1]
    assert "index.html" in outputs[0] and "status.atom" in outputs[0] and "all.feed.json" in outputs[0]


def test_two_sites_whose_guids_are_the_same_number_keep_both_stories(site: Site, tmp_path: Path) -> None:
    # Both stories had the guid "1001": one entry came out, tagged with both sources, and the
    # second story was published nowhere.
    for name in ("one", "two"):
        (site.root / f"{name}.xml").write_text(
            f'<rss version="2.0"><channel><title>{name}</title><link>https://{name}.example/</link>'
            f"<description>d</description><item><title>Story of {name}</title><link>https://{name}.example/s"
            '</link><guid isPermaLink="false">1001</guid><pubDate>Mon, 01 Jan 2024 10:00:00 GMT</pubDate>'
            "</item></channel></rss>")
    text = (site.root / "config.yaml").read_text().split("sources:")[0]
    site.write_config(text + "sources:\n  - {name: one, url: one.xml, tags: [One]}\n"
                             "  - {name: two, url: two.xml, tags: [Two]}\n")
    run(site)
    got = {e.title: e for e in entries(site)}
    assert {"Story of one", "Story of two"} <= set(got)
    assert got["Story of one"].id != got["Story of two"].id
    assert [t.term for t in got["Story of two"].tags] == ["Two"]
