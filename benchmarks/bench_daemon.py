#!/usr/bin/env python3
"""Soak `feeds run`: 200 sources fetched every second for a minute, from loopback.

    python benchmarks/bench_daemon.py [--sources 200] [--seconds 60] [--hosts 16]

A recording server (its own process) serves the feeds on 127.0.0.1..127.0.0.<hosts>
with ETag/304 and logs when each request started and ended. `feeds run` runs as a
real subprocess; its resident memory is sampled every 5 seconds. At the end it gets
SIGTERM. Printed: memory over time, fetches per source, the gaps between a source's
fetches (every source should be fetched about once a second), any request of a
source that started before the previous one ended (a job overlapping itself: must
be 0), and how long the daemon took to exit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import installed  # noqa: E402  (beside this file)


def serve(folder: Path, hosts: int, log_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies = {f"/{p.name}": p.read_bytes() for p in (folder / "sources").iterdir()}
    lock = threading.Lock()
    log = log_path.open("a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            started = time.time()
            body = bodies.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            etag = f'"{len(body)}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            with lock:
                log.write(json.dumps([self.path, started, time.time()]) + "\n")

    for k in range(1, hosts + 1):
        httpd = ThreadingHTTPServer((f"127.0.0.{k}", 8766), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    installed.compile_program()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=30, help="seconds before the steady-state figures start")
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.hosts, args.log)
        return

    work = Path(tempfile.mkdtemp(prefix="feeds-soak-"))
    subprocess.run([sys.executable, str(HERE / "make_corpus.py"), str(work), "--posts", "1", "--feeds",
                    str(args.sources)], check=True, stdout=subprocess.DEVNULL)
    names = sorted(p.name for p in (work / "sources").iterdir())
    sources = "".join(f"  - {{name: s{i:03d}, url: 'http://127.0.0.{i % args.hosts + 1}:8766/{n}', every: 1s}}\n"
                      for i, n in enumerate(names))
    (work / "config.yaml").write_text(
        "site: {title: Soak, base_url: 'https://example.org/feeds/'}\n"
        "fetch: {concurrency: 32, host_gap: 0, read_timeout: 5, total_timeout: 10}\n"
        "schedule: {generate: 1h, debounce: 2s}\n"
        f"sources:\n{sources}")
    log_path = work / "requests.jsonl"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(work), "--log", str(log_path),
                               "--hosts", str(args.hosts)], stdout=subprocess.PIPE)
    assert server.stdout is not None
    server.stdout.readline()
    err_path = work / "daemon.log"
    with err_path.open("w") as err:
        daemon = subprocess.Popen([sys.executable, "-m", "feeds", "run", "--config", str(work / "config.yaml"),
                                   "-q"], stderr=err)
    samples = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            time.sleep(5)
            samples.append((round(time.monotonic() - started), rss_mb(daemon.pid)))
        stop = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
        exit_seconds = time.monotonic() - stop
    finally:
        server.kill()
        if daemon.poll() is None:
            daemon.kill()
    errors = err_path.read_text()

    spans_all = [json.loads(line) for line in log_path.read_text().splitlines()]
    first = min(b for _, b, _ in spans_all)
    warm = first + args.warmup
    print(f"{args.sources} sources every 1 s for {args.seconds} s, from {args.hosts} loopback hosts")
    print("memory (RSS, MB) by second: " + ", ".join(f"{t}s {mb:.0f}" for t, mb in samples))
    steady = [mb for t, mb in samples if t >= args.warmup]
    if steady:
        print(f"memory after {args.warmup} s of warm-up: min {min(steady):.0f} MB, max {max(steady):.0f} MB")
    for label, lo in (("whole run", 0.0), (f"after {args.warmup} s", warm)):
        by_path: dict[str, list[tuple[float, float]]] = {}
        for path, begin, end in spans_all:
            if begin >= lo:
                by_path.setdefault(path, []).append((begin, end))
        gaps, overlaps, counts = [], 0, []
        for spans in by_path.values():
            spans.sort()
            counts.append(len(spans))
            for (b0, e0), (b1, _e1) in itertools.pairwise(spans):
                gaps.append(b1 - b0)
                overlaps += b1 < e0
        gaps.sort()
        if not gaps:
            continue
        print(f"[{label}] sources fetched: {len(by_path)} of {args.sources}; fetches per source: "
              f"min {min(counts)}, median {statistics.median(counts):.0f}, max {max(counts)}; "
              f"gap between fetches: median {statistics.median(gaps):.2f} s, "
              f"p95 {gaps[int(len(gaps) * 0.95)]:.2f} s, max {gaps[-1]:.2f} s; "
              f"a request starting before the same source's previous one ended: {overlaps}")
    print(f"exit after SIGTERM: status {code} in {exit_seconds:.1f} s")
    if errors.strip():
        print("daemon stderr (first lines):\n" + "\n".join(errors.splitlines()[:10]))
    if not os.environ.get("KEEP"):
        os.system(f"rm -rf {work}")


if __name__ == "__main__":
    main()
