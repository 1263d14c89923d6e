"""`feeds serve` as a real process: worker processes, `feeds generate` writing under it, SIGTERM, a lost parent."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import pytest

from .conftest import Site


class Serving:
    def __init__(self, site: Site, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "feeds", "serve", "--config", str(site.root / "config.yaml"), "--port", "0",
             *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        first = self.proc.stderr.readline()
        found = re.search(r"serve: http://127\.0\.0\.1:(\d+)/", first)
        assert found, first + self.proc.stderr.read()
        self.port = int(found.group(1))

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, body

    def children(self) -> list[int]:
        text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in text.split()]

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, err


@pytest.fixture
def serving(sample_site: Site) -> Iterator[Callable[..., Serving]]:
    started: list[Serving] = []

    def run(*args: str) -> Serving:
        started.append(Serving(sample_site, *args))
        return started[-1]

    yield run
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.communicate()
        if s.proc.stderr is not None:
            s.proc.stderr.close()


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {seconds}s for {what}")
        time.sleep(0.1)


def test_serves_what_generate_writes_and_stops_cleanly_on_sigterm(
        sample_site: Site, serving: Callable[..., Serving]) -> None:
    sample_site.generate()
    s = serving("--workers", "2")
    helpers = s.children()
    assert len(helpers) == 1
    status, body = s.get("/all.atom.xml")
    titles = [e.title for e in feedparser.parse(body).entries]
    assert status == 200 and titles
    sample_site.add("2030-01-01-new.md", """
        ---
        title: A brand new story
        date: 2030-01-01 08:00:00
        tags: [联合早报]
        ---
        Fresh.
        """)
    sample_site.generate()  # rewrites the feeds under the running server (temp file + rename)
    for _ in range(4):  # whichever process answers, it has the new bytes
        status, body = s.get("/all.atom.xml")
        assert status == 200 and feedparser.parse(body).entries[0].title == "A brand new story"
    # A hangup (the terminal closed, the whole process group signalled) stops nothing.
    for pid in (s.proc.pid, *helpers):
        os.kill(pid, signal.SIGHUP)
    for _ in range(4):
        assert s.get("/all.rss.xml")[0] == 200
    assert s.proc.poll() is None and s.children() == helpers
    # SIGTERM while a client that never reads is in the middle of a large file: still a clean stop.
    (sample_site.output / "large.xml").write_bytes(b"<x>" + b"y" * 6_000_000 + b"</x>")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", s.port))
    slow.sendall(b"GET /large.xml HTTP/1.1\r\nHost: x\r\n\r\n")
    assert slow.recv(12) == b"HTTP/1.1 200"
    code, err = s.stop()
    slow.close()
    assert code == 0 and "Traceback" not in err and "serve: stopped" in err and "SIGHUP" in err
    assert all(gone(pid) for pid in helpers)


def test_helpers_stop_when_the_main_process_is_killed(sample_site: Site, serving: Callable[..., Serving]) -> None:
    sample_site.generate()
    s = serving("--workers", "3")
    helpers = s.children()
    assert len(helpers) == 2
    s.proc.kill()
    s.proc.communicate()
    wait_for(lambda: all(gone(pid) for pid in helpers), 20, "the helpers to stop")

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
            return False
        except OSError:
            return True

    wait_for(refused, 10, "the port to close")


def test_a_busy_port_is_one_line_and_exit_1(sample_site: Site) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "feeds", "serve", "--config", str(sample_site.root / "config.yaml"),
             "--port", str(port)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot listen on" in result.stderr, result.stderr
