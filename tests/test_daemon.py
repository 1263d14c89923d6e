"""`feeds run` end to end: a real subprocess, a loopback source server, real signals,
and a real feed reader (newsboat) subscribed to what it serves."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest

from feeds.output import websub

from .conftest import Site
from .httpserver import FeedServer, Hub, feed_response, item, rss


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Running:
    def __init__(self, site: Site, *args: str) -> None:
        self.port = free_port()
        self.log = site.root / "run.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "feeds", "run", "--config", str(site.root / "config.yaml"), "--serve",
                 "--port", str(self.port), *args], stdout=subprocess.DEVNULL, stderr=log)

    def get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return bytes(r.read())
        except OSError:
            return None

    def titles(self, path: str) -> list[str]:
        data = self.get(path)
        return [e.title for e in feedparser.parse(data).entries] if data else []

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)


def daemon_config(site: Site, server: FeedServer, extra: str = "") -> None:
    text = (site.root / "config.yaml").read_text()
    site.write_config(text + f"""sources:
  - {{name: wire, url: '{server.url("/wire.xml")}', every: 1s, tags: [Wire]}}
fetch: {{host_gap: 0, read_timeout: 2, total_timeout: 4}}
schedule: {{generate: 1h, debounce: 0.3s}}
{extra}""")


def test_new_entries_reach_the_served_feed_and_sigterm_is_clean(site: Site, server: FeedServer, hub: Hub) -> None:
    server.routes["/wire.xml"] = feed_response(rss([item(1)]), etag='"1"')
    daemon_config(site, server, f"websub: {{hub: '{hub.url}'}}\n")
    run = Running(site, "--log-format", "json")
    try:
        wait_for(lambda: run.titles("/tags/wire.atom.xml") == ["Story 1"], 20, "the first entry")
        server.routes["/wire.xml"] = feed_response(rss([item(1), item(2)]), etag='"2"')
        started = time.monotonic()
        wait_for(lambda: "Story 2" in run.titles("/tags/wire.atom.xml"), 15, "the new entry")
        assert time.monotonic() - started < 10
        rss_doc = run.get("/tags/wire.rss.xml") or b""
        assert f'href="{hub.url}" rel="hub"'.encode() in rss_doc
        wait_for(lambda: any(any(u.endswith("tags/wire.atom.xml") for u in p) for p in hub.published), 5,
                 "the hub announcement")
        # The source keeps being fetched on its 1-second interval.
        wait_for(lambda: len(server.hits("/wire.xml")) >= 5, 10, "fetches every second")
    finally:
        code = run.stop()
    assert code == 0
    assert not [p for p in site.output.rglob(".*")], "temporary files left behind"
    lines = [json.loads(line) for line in run.log.read_text().splitlines()]
    assert {"time", "level", "message"} <= set(lines[0])
    assert any("wire: ok" in line["message"] for line in lines)
    assert any(line["message"].startswith("generate:") for line in lines)
    # Only changed feeds are announced: never a feed whose bytes stayed the same.
    announced = [u for p in hub.published for u in p]
    assert not any(u.endswith("categories/") for u in announced)


def test_sighup_reloads_and_bad_config_is_kept_out(site: Site, server: FeedServer) -> None:
    server.routes["/wire.xml"] = feed_response(rss([item(1)]))
    server.routes["/more.xml"] = feed_response(rss([item(7)]))
    daemon_config(site, server)
    good = (site.root / "config.yaml").read_text()
    run = Running(site)
    try:
        wait_for(lambda: run.titles("/all.atom.xml") == ["Story 1"], 20, "the first generation")
        site.write_config(good + "colour: blue\n")
        run.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "keeping the running configuration" in run.log.read_text(), 5, "the reload error")
        assert run.proc.poll() is None
        site.write_config(good.replace("fetch:", f"""  - {{name: more, url: '{server.url("/more.xml")}', every: 1s}}
fetch:"""))
        run.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "Story 7" in run.titles("/all.atom.xml"), 20, "the added source's entry")
    finally:
        assert run.stop() == 0


def test_status_while_the_daemon_runs(site: Site, server: FeedServer) -> None:
    server.routes["/wire.xml"] = feed_response(rss([item(1)]))
    daemon_config(site, server)
    run = Running(site)
    try:
        wait_for(lambda: run.titles("/all.atom.xml") == ["Story 1"], 20, "the first generation")
        result = subprocess.run([sys.executable, "-m", "feeds", "status", "--config", str(site.root / "config.yaml")],
                                capture_output=True, text=True, timeout=20)
        assert result.returncode == 0 and "last fetch: 20" in result.stdout and "entries:    1" in result.stdout
    finally:
        assert run.stop() == 0


def test_websub_announce_only_what_changed(hub: Hub) -> None:
    assert websub.announce(hub.url, "https://example.org/feeds/", ["tags/联合早报.atom.xml", "index.html"])
    assert hub.published == [["https://example.org/feeds/tags/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.atom.xml"]]
    assert websub.announce(hub.url, "https://example.org/feeds/", [])
    assert len(hub.published) == 1
    assert not websub.announce("http://127.0.0.1:9/hub", "https://example.org/feeds/", ["all.atom.xml"])


@pytest.mark.skipif(shutil.which("newsboat") is None, reason="newsboat is not installed (apt install newsboat)")
def test_newsboat_reads_the_served_feeds(site: Site, server: FeedServer, tmp_path: Path) -> None:
    server.routes["/wire.xml"] = feed_response(rss([item(1), item(2)]))
    daemon_config(site, server)
    run = Running(site, "-v")
    try:
        wait_for(lambda: len(run.titles("/tags/wire.atom.xml")) == 2, 60, "the served feed")
        urls = tmp_path / "urls"
        urls.write_text(f"http://127.0.0.1:{run.port}/tags/wire.atom.xml\n"
                        f"http://127.0.0.1:{run.port}/all.rss.xml\n")
        cache = tmp_path / "cache.db"
        home = tmp_path / "home"
        home.mkdir()
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_DATA_HOME": str(home)}
        config = tmp_path / "newsboat.conf"
        config.write_text("")
        cmd = ["newsboat", "-u", str(urls), "-c", str(cache), "-C", str(config), "-x", "reload"]
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        with sqlite3.connect(cache) as db:
            rows = db.execute("SELECT feedurl, title FROM rss_item").fetchall()
        assert {t for _, t in rows} == {"Story 1", "Story 2"}
        assert len({f for f, _ in rows}) >= 1
        # newsboat 2.21 stores a feed's validators only from its second download on
        # (newsboat issue 2734), so the third reload is the first conditional one.
        for _ in range(2):
            again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
            assert again.returncode == 0, again.stderr
        wait_for(lambda: run.log.read_text().count('" 304 ') >= 2, 30, "304 answers")
        with sqlite3.connect(cache) as db:
            assert len(db.execute("SELECT title FROM rss_item").fetchall()) == len(rows)  # nothing doubled
    finally:
        assert run.stop() == 0


def test_sighup_moving_state_and_output_stores_and_serves_where_generation_works(site: Site,
                                                                                server: FeedServer) -> None:
    server.routes["/wire.xml"] = feed_response(rss([item(1)]), etag='"1"')
    daemon_config(site, server)
    run = Running(site)
    try:
        wait_for(lambda: run.titles("/all.atom.xml") == ["Story 1"], 20, "the first generation")
        text = (site.root / "config.yaml").read_text()
        site.write_config(text.replace("state: state/feeds.db", "state: moved/other.db")
                          .replace("dir: output", "dir: output2"))
        run.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload:" in run.log.read_text(), 5, "the reload")
        server.routes["/wire.xml"] = feed_response(rss([item(1), item(2)]), etag='"2"')
        wait_for(lambda: "Story 2" in run.titles("/all.atom.xml"), 20, "the entry fetched after the reload")
        assert (site.root / "output2" / "all.atom.xml").is_file()
    finally:
        assert run.stop() == 0
    # The folder published before the reload is left as it was.
    assert [e.title for e in feedparser.parse(site.output / "all.atom.xml").entries] == ["Story 1"]
    with sqlite3.connect(site.root / "moved" / "other.db") as db:
        assert db.execute("SELECT count(*) FROM items").fetchone()[0] >= 2


def test_state_rebuilt_by_another_run_gets_the_daemons_fetches(site: Site, server: FeedServer) -> None:
    server.routes["/wire.xml"] = feed_response(rss([item(1)]), etag='"1"')
    daemon_config(site, server)
    run = Running(site)
    try:
        wait_for(lambda: run.titles("/all.atom.xml") == ["Story 1"], 20, "the first generation")
        rebuilt = subprocess.run([sys.executable, "-m", "feeds", "generate", "--rebuild-state", "--wait", "30",
                                  "--config", str(site.root / "config.yaml")], capture_output=True, text=True)
        assert rebuilt.returncode == 0, rebuilt.stderr
        server.routes["/wire.xml"] = feed_response(rss([item(1), item(2)]), etag='"2"')
        wait_for(lambda: "Story 2" in run.titles("/all.atom.xml"), 20, "the entry fetched after the rebuild")
    finally:
        assert run.stop() == 0
