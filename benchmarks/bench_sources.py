#!/usr/bin/env python3
"""Time updating 1,000 source feeds served from loopback, against `reader` and plain feedparser.

    python benchmarks/bench_sources.py [--feeds 1000] [--work /tmp/feeds-bench-src] [--hosts 250] [--fetch '{}']

Builds the feeds with make_corpus.py (``--posts 10 --feeds N``) and serves them from
a separate process on 127.0.0.1..127.0.0.<hosts> (one server per loopback address,
so per-host politeness does not serialise everything). Each measured run is its own
process; wall time, CPU time (with its workers') and peak RSS are printed:

  feeds cold     fetch + parse + normalize + store every feed, empty state
  feeds warm     the same again: every answer is a 304
  reader cold    the `reader` library (PyPI) updating the same feeds, empty database
  reader warm    again, every answer a 304
  feedparser     plain feedparser parsing the same bytes from memory: the floor

`reader` is optional (pip install reader); without it its rows are skipped.
Compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import installed  # noqa: E402  (beside this file)


def serve(folder: Path, hosts: int) -> None:
    """Serve ``folder`` on 127.0.0.1..127.0.0.<hosts>:8765 until killed (Last-Modified and 304s)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        # Keep-alive, as real feed servers have (HTTP/1.0 made every request a new connection),
        # and headers and body not held back for the client's delayed ACK on a kept connection.
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    servers = []
    for k in range(1, hosts + 1):
        httpd = ThreadingHTTPServer((f"127.0.0.{k}", 8765), handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
    print("ready", flush=True)
    threading.Event().wait()


def urls(folder: Path, hosts: int) -> list[str]:
    names = sorted(os.listdir(folder / "sources"))
    return [f"http://127.0.0.{i % hosts + 1}:8765/sources/{name}" for i, name in enumerate(names)]


def run_feeds(folder: Path, hosts: int) -> None:
    from datetime import UTC, datetime, timedelta

    from feeds.config import load_config
    from feeds.sources.update import update_sources
    from feeds.store import Store

    config = load_config(folder / "config.yaml")
    store = Store(config.state_path)
    try:
        # A later "now" makes every source due again on the warm run.
        now = datetime.now(UTC) + (timedelta(days=2) if (folder / "state" / ".warm").exists() else timedelta())
        outcomes = update_sources(config, store, now=now)
    finally:
        store.close()
    (folder / "state" / ".warm").touch()
    failed = [o.line() for o in outcomes if o.error]
    if failed:
        sys.exit("\n".join(failed[:5]))


def run_reader(folder: Path, hosts: int) -> None:
    from reader import make_reader

    db = folder / "reader.sqlite"
    fresh = not db.exists()
    r = make_reader(str(db))
    if fresh:
        for url in urls(folder, hosts):
            r.add_feed(url)
    r.update_feeds(workers=16, scheduled=False)
    broken = [f.url for f in r.get_feeds(broken=True)]
    if broken:
        sys.exit(f"reader: {len(broken)} feeds failed, e.g. {broken[0]}")


def run_feedparser(folder: Path, hosts: int) -> None:
    import feedparser

    blobs = [(folder / "sources" / name).read_bytes() for name in sorted(os.listdir(folder / "sources"))]
    for blob in blobs:
        feedparser.parse(blob, response_headers={"content-type": "application/xml"})


def measure(args: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (the run and its worker processes) and peak RSS in MB
    (of its largest process) of one run in its own process."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{args} failed:\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    installed.compile_program()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=250)
    ap.add_argument("--work", type=Path, default=Path("/tmp/feeds-bench-src"))
    ap.add_argument("--fetch", default="{concurrency: 16, host_gap: 0}",
                    help="the fetch: settings, as YAML ('{}' for the defaults, politeness included)")
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--run", choices=["feeds", "reader", "feedparser"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    folder = args.work / f"feeds-{args.feeds}"
    if args.serve:
        serve(args.serve, args.hosts)
        return
    if args.run:
        {"feeds": run_feeds, "reader": run_reader, "feedparser": run_feedparser}[args.run](folder, args.hosts)
        return

    if not (folder / "sources").is_dir():
        subprocess.run([sys.executable, str(HERE / "make_corpus.py"), str(folder), "--posts", "10",
                        "--feeds", str(args.feeds)], check=True)
    for stale in ("state", "reader.sqlite", "reader.sqlite-wal", "reader.sqlite-shm", "output"):
        path = folder / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    sources = "".join(f"  - {{name: f{i:04d}, url: '{url}', every: 1h}}\n"
                      for i, url in enumerate(urls(folder, args.hosts)))
    (folder / "config.yaml").write_text(
        "site: {title: Bench, base_url: 'https://example.org/feeds/'}\n"
        f"fetch: {args.fetch}\n"
        f"sources:\n{sources}")
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(folder), "--hosts", str(args.hosts),
                               "--feeds", str(args.feeds)], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        server.stdout.readline()
        rows = [("feeds cold", *measure(["--run", "feeds", "--feeds", str(args.feeds), "--work", str(args.work)])),
                ("feeds warm", *measure(["--run", "feeds", "--feeds", str(args.feeds), "--work", str(args.work)]))]
        try:
            import reader  # noqa: F401
            import sgmllib  # type: ignore[import-not-found] # noqa: F401  (reader's feedparser needs it)

            common = ["--feeds", str(args.feeds), "--work", str(args.work), "--hosts", str(args.hosts)]
            rows.append(("reader cold", *measure(["--run", "reader", *common])))
            rows.append(("reader warm", *measure(["--run", "reader", *common])))
        except ImportError:
            print("reader is not installed: pip install reader sgmllib3k (its rows are skipped)")
        rows.append(("feedparser", *measure(["--run", "feedparser", "--feeds", str(args.feeds), "--work",
                                             str(args.work)])))
    finally:
        server.kill()
    floor = rows[-1][1]
    print(f"{args.feeds} feeds from {args.hosts} loopback hosts, fetch: {args.fetch}")
    print(f"{'run':<12} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'vs floor':>9}")
    for label, seconds, cpu, mb in rows:
        print(f"{label:<12} {seconds:>8.2f} {cpu:>8.2f} {mb:>8.0f} {seconds / floor:>9.2f}")


if __name__ == "__main__":
    main()
