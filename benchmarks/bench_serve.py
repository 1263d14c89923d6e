#!/usr/bin/env python3
"""`feeds serve` beside nginx on the same ~50 KB feed, at 1, 16 and 128 connections, with wrk.

    python benchmarks/bench_serve.py [--seconds 5] [--connections 1,16,128] [--workers 0] [--rounds 1]

Needs the Debian packages nginx and wrk (`apt-get install -y nginx wrk`). Both
servers read the same folder: nginx runs in the foreground on a loopback port
with a throwaway configuration (its usual two worker processes, sendfile, no
access log); `feeds serve` runs as a real subprocess on another port. Each
concurrency is measured on nginx, then on feeds, `--rounds` times in turn (the
machine may be shared, so taking turns keeps the comparison fair). Printed per
concurrency: requests/s of each, errors (non-2xx/3xx answers and socket errors),
and feeds' share of nginx. Aim: a quarter of nginx or more at every concurrency.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def feed_of_about(size: int) -> bytes:
    """A valid Atom feed of about ``size`` bytes, entries with HTML content, as `feeds` writes them."""
    head = ('<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            "<id>https://example.org/feeds/all.atom.xml</id><title>Benchmark</title>"
            "<updated>2026-01-01T00:00:00Z</updated>\n")
    entries = []
    n = 0
    while len(head) + sum(map(len, entries)) < size - 200:
        n += 1
        entries.append(
            f"<entry><id>tag:example.org,2026:{n}</id><title>Story number {n}</title>"
            f'<link href="https://example.org/{n}.html"/><updated>2026-01-01T00:00:00Z</updated>'
            f'<content type="html">&lt;p&gt;{"Paragraph text of the story, with words. " * 12}&lt;/p&gt;'
            "</content></entry>\n")
    return (head + "".join(entries) + "</feed>\n").encode()


def wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            sys.exit(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                r.read()
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{url}: no answer")


def wrk(url: str, connections: int, seconds: int) -> tuple[float, int]:
    """Requests per second, and errors (non-2xx/3xx answers plus socket errors)."""
    threads = str(min(connections, 2))
    out = subprocess.run(["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds:g}s", url],
                         capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, errors + (int(non_2xx.group(1)) if non_2xx else 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", default="1,16,128")
    parser.add_argument("--workers", type=int, default=0, help="feeds serve --workers (0: its default)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is missing: apt-get install -y nginx wrk", file=sys.stderr)
            return 2
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    levels = [int(c) for c in args.connections.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's workers drop to an unprivileged user and must read the folder
        output = work / "output"
        output.mkdir(mode=0o755)
        (output / "all.atom.xml").write_bytes(feed_of_about(50_000))
        (output / "all.atom.xml").chmod(0o644)
        size = (output / "all.atom.xml").stat().st_size
        (work / "config.yaml").write_text(
            'site: {title: Benchmark, base_url: "https://example.org/feeds/"}\noutput: {dir: output}\n')
        nginx_port, feeds_port = free_port(), free_port()
        (work / "nginx.conf").write_text(f"""
worker_processes 2;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ application/atom+xml atom.xml; }}
    client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
    uwsgi_temp_path {work}; scgi_temp_path {work};
    server {{ listen 127.0.0.1:{nginx_port}; root {output}; }}
}}
""")
        servers = {
            "nginx": subprocess.Popen([nginx, "-c", str(work / "nginx.conf"), "-p", str(work)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            "feeds": subprocess.Popen(
                [sys.executable, "-m", "feeds", "serve", "--config", str(work / "config.yaml"), "--port",
                 str(feeds_port), "--workers", str(args.workers), "-q"],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        }
        urls = {"nginx": f"http://127.0.0.1:{nginx_port}/all.atom.xml",
                "feeds": f"http://127.0.0.1:{feeds_port}/all.atom.xml"}
        try:
            for name, proc in servers.items():
                wait_until_up(urls[name], proc)
                wrk(urls[name], 16, 1)  # warm up
            print(f"{size} byte feed, {args.seconds:g} s per run, {args.rounds} round(s), cpus={os.cpu_count()}")
            print(f"{'connections':>11} {'nginx req/s':>12} {'errors':>7} {'feeds req/s':>12} {'errors':>7} "
                  f"{'feeds/nginx':>12}")
            worst = None
            for connections in levels:
                totals = {"nginx": [0.0, 0], "feeds": [0.0, 0]}
                for _ in range(args.rounds):
                    for name in ("nginx", "feeds"):
                        rate, errors = wrk(urls[name], connections, args.seconds)
                        totals[name][0] += rate / args.rounds
                        totals[name][1] += errors
                ratio = totals["feeds"][0] / totals["nginx"][0]
                worst = ratio if worst is None else min(worst, ratio)
                print(f"{connections:>11} {totals['nginx'][0]:>12.0f} {totals['nginx'][1]:>7} "
                      f"{totals['feeds'][0]:>12.0f} {totals['feeds'][1]:>7} {ratio:>12.2f}")
            print(f"lowest share of nginx: {worst:.2f} (aim: 0.25 or more)")
        finally:
            servers["feeds"].send_signal(signal.SIGTERM)
            servers["nginx"].send_signal(signal.SIGQUIT)  # nginx's graceful stop
            for proc in servers.values():
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
