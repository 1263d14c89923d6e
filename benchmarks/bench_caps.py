#!/usr/bin/env python3
"""What one hostile source can make: files, database rows and memory of `feeds generate`.

A loopback HTTP server serves one generated feed; `feeds generate` runs on it in a
child process, and its peak RSS (from wait4), the files in output/ and the rows and
size of the state database are reported.

    bench_caps.py [CASE ...]      cases: tags20k tags100k items500k (default: all)

Run from the project root with the project's virtualenv.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FEEDS = [sys.executable, "-m", "feeds"]


def tags_feed(distinct: int, per_item: int = 20) -> bytes:
    """RSS whose items share out ``distinct`` tags, ``per_item`` each."""
    items = []
    for n in range(distinct // per_item):
        cats = "".join(f"<category>t{n * per_item + k}</category>" for k in range(per_item))
        items.append(f"<item><title>S{n}</title><link>https://h.example/{n}</link><guid>g{n}</guid>{cats}</item>")
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>https://h.example/</link>'
            "<description>d</description>" + "".join(items) + "</channel></rss>").encode()


def items_feed(count: int) -> bytes:
    """RSS with ``count`` tiny items (about 30 bytes each)."""
    body = "".join(f"<item><guid>{n}</guid></item>" for n in range(count))
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>https://h.example/</link>'
            "<description>d</description>" + body + "</channel></rss>").encode()


CASES = {
    "tags20k": lambda: tags_feed(20_000),
    "tags100k": lambda: tags_feed(100_000),
    "items500k": lambda: items_feed(500_000),
}


def serve(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def run_case(name: str) -> None:
    body = CASES[name]()
    httpd = serve(body)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.yaml").write_text(
            'site: {title: T, base_url: "https://example.org/f/"}\n'
            "output: {dir: output}\nstate: state/feeds.db\nposts: []\n"
            f"sources:\n  - {{name: big, url: 'http://127.0.0.1:{httpd.server_address[1]}/f.xml'}}\n"
            "fetch: {host_gap: 0, max_bytes: 20000000}\n", encoding="utf-8")
        start = time.monotonic()
        with open(root / "err.txt", "wb") as err_file:
            proc = subprocess.Popen([*FEEDS, "generate", "--config", str(root / "config.yaml")],
                                    stdout=err_file, stderr=subprocess.STDOUT)
            _pid, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS (kB on Linux)
            proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - start
        err = (root / "err.txt").read_bytes()
        peak_kb = usage.ru_maxrss
        files = sum(1 for p in (root / "output").rglob("*") if p.is_file())
        db = root / "state" / "feeds.db"
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        size = sum(p.stat().st_size for p in db.parent.iterdir())
        notes = [line for line in err.decode(errors="replace").splitlines() if "limits" in line]
        print(f"{name}: feed {len(body) / 1e6:.1f} MB, exit {proc.returncode}, {files} files, {rows} item rows, "
              f"state {size / 1e6:.1f} MB, peak RSS {peak_kb / 1024:.0f} MB, {seconds:.1f} s")
        for line in notes:
            print("   ", line.strip())
    httpd.shutdown()


def main() -> None:
    for name in sys.argv[1:] or list(CASES):
        run_case(name)


if __name__ == "__main__":
    main()
