"""Caps on what one source can make: tags per entry and per source, items per fetch, stored
items per source, content per item; each is reported when hit, and memory stays bounded.
Real loopback servers, real runs, real files and a real state database."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import feedparser

from feeds.pipeline import Report, generate

from .conftest import Site
from .httpserver import FeedServer, Response

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def tagged_rss(items: int, tags_per_item: int, *, first: int = 0, content: str = "") -> bytes:
    body = []
    for n in range(first, first + items):
        cats = "".join(f"<category>t{n}-{k}</category>" for k in range(tags_per_item))
        body.append(f"<item><title>S{n}</title><link>https://h.example/{n}</link><guid>g{n}</guid>"
                    f"<pubDate>Mon, 01 Mar 2021 10:00:00 +0000</pubDate>{cats}{content}</item>")
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>https://h.example/</link>'
            "<description>d</description>" + "".join(body) + "</channel></rss>").encode()


def configure(site: Site, server: FeedServer, sources: dict[str, str], fetch: str = "") -> None:
    text = (site.root / "config.yaml").read_text().split("sources:")[0]
    lines = ["sources:"] + [f"  - {{name: {n}, url: '{server.url('/' + n)}', every: 60{extra}}}"
                            for n, extra in sources.items()]
    site.write_config(text + "\n".join(lines) + "\nfetch: {host_gap: 0, read_timeout: 10, total_timeout: 30, "
                      f"max_bytes: 20000000{fetch}}}\n")


def serve(server: FeedServer, name: str, body: bytes) -> None:
    server.routes["/" + name] = Response(200, body, {"Content-Type": "application/rss+xml"})


def item_rows(site: Site) -> dict[str, int]:
    with sqlite3.connect(site.root / "state" / "feeds.db") as conn:
        return dict(conn.execute("SELECT source, count(*) FROM items GROUP BY source").fetchall())


def notes(report: Report, source: str) -> list[str]:
    return [w for w in report.warnings if w.startswith(source + ": ") and "limits." in w]


def test_tags_per_entry_and_per_source(site: Site, server: FeedServer) -> None:
    serve(server, "many", tagged_rss(400, 30))  # 12,000 distinct tags, 30 per item
    serve(server, "few", tagged_rss(10, 3, first=1000))
    configure(site, server, {"many": "", "few": ", limits: {tags_per_entry: 2}"})
    report = generate(site.config(), now=T0)
    assert {o.name: o.status for o in report.sources} == {"many": "ok", "few": "ok"}
    tag_files = sorted(p.name for p in (site.output / "tags").iterdir())
    # 200 tags from "many" (the first 10 items' 20 each), 2 from each of "few"'s 10 items, two formats each.
    assert len(tag_files) == (200 + 20) * 2
    assert "t0-19.atom.xml" in tag_files and "t0-20.atom.xml" not in tag_files
    assert "t9-19.rss.xml" in tag_files and "t10-0.rss.xml" not in tag_files
    assert "t1000-1.atom.xml" in tag_files and "t1000-2.atom.xml" not in tag_files
    assert len(notes(report, "many")) == 2 and "8000 distinct tags" in " ".join(notes(report, "many"))
    assert len(notes(report, "few")) == 1
    entries = feedparser.parse((site.output / "all.atom.xml").read_bytes()).entries
    assert max(len(e.get("tags", [])) for e in entries) == 20
    # The same feed again: the same tags, the same files.
    before = site.outputs()
    generate(site.config(), now=T0 + timedelta(hours=2))
    assert site.outputs().keys() == before.keys()


def test_items_per_fetch_and_stored_items(site: Site, server: FeedServer) -> None:
    serve(server, "huge", tagged_rss(5000, 0))
    serve(server, "rotating", tagged_rss(100, 0))
    configure(site, server, {"huge": "", "rotating": ", limits: {items_per_fetch: 80, stored_items: 150}"})
    report = generate(site.config(), now=T0)
    assert item_rows(site) == {"huge": 1000, "rotating": 80}
    assert any("5000 items; read the first 1000" in n for n in notes(report, "huge"))
    assert any("100 items; read the first 80" in n for n in notes(report, "rotating"))
    entries = feedparser.parse((site.output / "all.atom.xml").read_bytes()).entries
    assert entries and all(int(e.title[1:]) < 1000 for e in entries)  # the first ones in document order
    for run in range(1, 4):  # new stories each time: the store keeps 150, always the latest listing
        serve(server, "rotating", tagged_rss(100, 0, first=run * 1000))
        report = generate(site.config(), now=T0 + timedelta(hours=run * 2))
        assert item_rows(site)["rotating"] == min(150, 80 * (run + 1))
        with sqlite3.connect(site.root / "state" / "feeds.db") as conn:
            guids = {r[0] for r in conn.execute("SELECT ukey FROM items WHERE source = 'rotating'")}
        assert all(any(k.endswith(f"/g{n}") or k.endswith(f":g{n}") for k in guids)
                   for n in range(run * 1000, run * 1000 + 80))
    assert any("dropped the 80 oldest stored items, keeping 150" in n for n in notes(report, "rotating"))


def test_content_over_its_cap_keeps_summary_and_link(site: Site, server: FeedServer) -> None:
    big = "<description>&lt;p&gt;" + "word " * 250_000 + "&lt;/p&gt;</description>"  # 1.25 MB of HTML
    serve(server, "big", tagged_rss(2, 0, content=big))
    configure(site, server, {"big": ""})
    report = generate(site.config(), now=T0)
    assert any("2 items have content over 1000000 bytes" in n for n in notes(report, "big"))
    entries = feedparser.parse((site.output / "all.atom.xml").read_bytes()).entries
    assert len(entries) == 2 and all("content" not in e for e in entries)
    assert all(e.link.startswith("https://h.example/") and e.summary.startswith("word word") for e in entries)
    assert (site.root / "state" / "feeds.db").stat().st_size < 2_000_000


def peak_rss_mb(site: Site) -> tuple[int, float, str]:
    """Run `feeds generate` in a child and return its exit code, its own peak RSS and its output."""
    log = site.root / "run.log"
    with log.open("wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "feeds", "generate", "--config",
                                  str(site.root / "config.yaml")], stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss / 1024, log.read_text()


def test_memory_stays_bounded_on_hostile_sizes(site: Site, server: FeedServer) -> None:
    """100,000 distinct tags (3 MB) and 500,000 items (16 MB) in one fetch each."""
    serve(server, "tags", tagged_rss(5000, 20))
    server.routes["/items"] = Response(200, (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>https://h.example/</link>'
        + "".join(f"<item><guid>{n}</guid></item>" for n in range(500_000)) + "</channel></rss>").encode(),
        {"Content-Type": "application/rss+xml"})
    configure(site, server, {"tags": "", "items": ""})
    code, peak, output = peak_rss_mb(site)
    assert code == 0 and "Traceback" not in output, output
    assert item_rows(site) == {"tags": 1000, "items": 1000}
    files = sum(1 for p in site.output.rglob("*") if p.is_file())
    assert files < 500, files
    # Without the caps this took well over a gigabyte; loosely, a few hundred megabytes at most.
    assert peak < 600, peak
