#!/usr/bin/env python3
"""Several `feeds run` workers on one PostgreSQL state: throughput, duplicates, losses, failover.

    python benchmarks/bench_cluster.py [--feeds 10000] [--hosts 200] [--seconds 40] [--workers 1,2,4]

A loopback feed server (its own process, asyncio) serves ``--feeds`` feeds on 127.0.0.1 ..
127.0.0.<hosts>, each host answering after its own latency (50-200 ms), and counts every
request: per feed, and how many requests each host has in flight at once. A throw-away
PostgreSQL server (tests/postgres.py) holds one new database per run, where every feed is
stored as due a minute ago. For each W, W `feeds run` processes start together; once all
are up, the requests the server sees in the next ``--seconds`` give fetches/s. Each feed is
fetched once an hour, so any second request for a feed is a duplicate.

Then one run with ``--kill-workers`` workers and ``--kill-feeds`` feeds goes on until every feed is
stored: once a third are, one
worker that is not the leader and then the leader get SIGKILL. Printed: duplicates (at most
the killed workers' fetches in flight), lost feeds (due, and never stored), how long
until another worker held the leadership, and terms that overlapped (a generation of an
older term logged after a newer term started). Log times have one-second resolution. The
CPU the workers used (cores, and milliseconds per fetch) says whether a run was bound by
the machine rather than by the network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import installed  # noqa: E402  (beside this file)

PORT = 8767


def latency(host: int) -> float:
    """Each host's own answer time, spread over 50-200 ms."""
    return 0.05 + (host * 37 % 151) / 1000


def serve(hosts: int) -> None:
    """The feed server: every host on its own loopback address, one feed per path."""
    hits: dict[str, list[float]] = {}
    in_flight = [0] * (hosts + 1)
    most = [0] * (hosts + 1)

    def body(path: str) -> bytes:
        n = path.strip("/").removesuffix(".xml")
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Feed {n}</title>'
                f"<link>https://site.example/{n}/</link><description>d</description><item><title>Story of {n}"
                f"</title><link>https://site.example/{n}/1</link><guid>{n}-1</guid>"
                "<pubDate>Mon, 01 Mar 2021 10:00:00 +0000</pubDate><description>Text.</description></item>"
                "</channel></rss>\n").encode()

    async def answer(host: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path == "/__stats":
                    data = json.dumps({"hits": hits, "most": max(most)}).encode()
                elif path == "/__reset":
                    hits.clear()
                    most[:] = [0] * (hosts + 1)
                    data = b"{}"
                else:
                    in_flight[host] += 1
                    most[host] = max(most[host], in_flight[host])
                    hits.setdefault(path, []).append(time.time())
                    try:
                        await asyncio.sleep(latency(host))
                    finally:
                        in_flight[host] -= 1
                    data = body(path)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                             b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(lambda r, w, h=h: answer(h, r, w), f"127.0.0.{h}", PORT)
                   for h in range(1, hosts + 1)]
        print("ready", flush=True)
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(main())


def ask(path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=60) as r:
        return dict(json.loads(r.read()))


def write_site(folder: Path, url: str, feeds: int, hosts: int, lease: float) -> Path:
    from feeds.sources.schedule import SourceState
    from feeds.store import Store

    folder.mkdir(parents=True)
    urls = [f"http://127.0.0.{i % hosts + 1}:{PORT}/f{i:05d}.xml" for i in range(feeds)]
    sources = "".join(f"  - {{name: f{i:05d}, url: '{u}', every: 1h}}\n" for i, u in enumerate(urls))
    config = folder / "config.yaml"
    config.write_text(
        "site: {title: Cluster, base_url: 'https://example.org/feeds/'}\n"
        f"state: {url}\n"
        "fetch: {concurrency: 32, host_gap: 0, read_timeout: 10, total_timeout: 30}\n"
        f"schedule: {{generate: 1h, debounce: 5s, lease: {lease:g}s}}\n"
        f"sources:\n{sources}")
    store = Store(url)
    try:
        past = datetime.now(UTC) - timedelta(minutes=1)
        store.save_states([SourceState(name=f"f{i:05d}", url=u, fetch_url=u, next_due=past)
                           for i, u in enumerate(urls)])
    finally:
        store.close()
    return config


class Cluster:
    """W `feeds run` processes on one config, each logging to its own file."""

    def __init__(self, config: Path, count: int) -> None:
        self.logs = [config.parent / f"worker{i}.log" for i in range(count)]
        self.procs = []
        for log in self.logs:
            with log.open("w") as f:
                self.procs.append(subprocess.Popen([sys.executable, "-m", "feeds", "run", "--config", str(config)],
                                                   stdout=subprocess.DEVNULL, stderr=f))

    def text(self, i: int) -> str:
        return self.logs[i].read_text(errors="replace")

    def wait_up(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not all("run: " in self.text(i) and "sources scheduled" in self.text(i) for i in range(len(self.logs))):
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start: " + self.text(0)[-2000:])
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def leader(url: str) -> tuple[str | None, int, bool]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT owner, term, expires > now() FROM leadership")).first()
    finally:
        engine.dispose()
    return (None, 0, False) if row is None else (row[0], int(row[1]), bool(row[2]))


def stored(url: str) -> int:
    """How many feeds have their fetch stored."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM sources WHERE status = 'ok'")).scalar() or 0)
    finally:
        engine.dispose()


def held_by(url: str, pid: int) -> int:
    """How many source leases the worker with ``pid`` holds (still in its name after a kill)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM source_leases WHERE owner LIKE :pattern"),
                                    {"pattern": f"%:{pid}:%"}).scalar() or 0)
    finally:
        engine.dispose()


def overlapping_terms(texts: list[str]) -> int:
    """Terms under which a generation was logged after a newer term had started."""
    started: dict[int, str] = {}
    finished: dict[int, str] = {}
    for text in texts:
        for when, term in re.findall(r"^(\S+) info\s+cluster: leading, term (\d+)", text, re.MULTILINE):
            started[int(term)] = min(started.get(int(term), when), when)
        for when, term in re.findall(r"^(\S+) info\s+generate: .* \(term (\d+)", text, re.MULTILINE):
            finished[int(term)] = max(finished.get(int(term), when), when)
    return sum(1 for t, last in finished.items() if any(n > t and begun < last for n, begun in started.items()))


@contextmanager
def database(server: object) -> Iterator[str]:
    name = server.new_database()  # type: ignore[attr-defined]
    try:
        yield server.url(name)  # type: ignore[attr-defined]
    finally:
        server.drop_database(name)  # type: ignore[attr-defined]


def throughput(server: object, work: Path, w: int, args: argparse.Namespace) -> dict[str, float]:
    with database(server) as url:
        config = write_site(work / f"w{w}", url, args.feeds, args.hosts, args.lease)
        ask("/__reset")
        cluster = Cluster(config, w)
        try:
            cluster.wait_up()
            pids = [proc.pid for proc in cluster.procs]
            t0, cpu0 = time.time(), cpu_seconds(pids)
            time.sleep(args.seconds)
            t1, cpu1 = time.time(), cpu_seconds(pids)
            stats = ask("/__stats")
        finally:
            cluster.stop()
    hits: dict[str, list[float]] = stats["hits"]  # type: ignore[assignment]
    window = sum(1 for times in hits.values() for t in times if t0 <= t < t1)
    duplicates = sum(len(times) - 1 for times in hits.values() if len(times) > 1)
    return {"fetches": window, "rate": window / (t1 - t0), "duplicates": duplicates,
            "most": float(stats["most"]), "cores": (cpu1 - cpu0) / (t1 - t0),  # type: ignore[arg-type]
            "cpu_ms": 1000 * (cpu1 - cpu0) / max(window, 1)}


def with_kills(server: object, work: Path, w: int, args: argparse.Namespace) -> None:
    feeds = args.kill_feeds
    with database(server) as url:
        config = write_site(work / "kills", url, feeds, args.hosts, args.lease)
        ask("/__reset")
        cluster = Cluster(config, w)
        try:
            cluster.wait_up()
            started = time.time()
            while stored(url) < feeds // 3:
                time.sleep(0.5)
            pids = [proc.pid for proc in cluster.procs]
            owner, term, _ = leader(url)
            victim = next(pid for pid in pids if owner is None or pid != int(owner.split(":")[1]))
            os.kill(victim, signal.SIGKILL)
            in_flight = held_by(url, victim)
            print(f"  killed worker pid {victim} at {time.time() - started:.0f}s ({stored(url)} feeds stored, "
                  f"it held {in_flight} leases)")
            time.sleep(2)
            owner, term, _ = leader(url)
            while owner is None or int(owner.split(":")[1]) == victim:
                time.sleep(0.1)
                owner, term, _ = leader(url)
            leader_pid = int(owner.split(":")[1])
            os.kill(leader_pid, signal.SIGKILL)
            killed_at = time.monotonic()
            held = held_by(url, leader_pid)
            in_flight += held
            print(f"  killed the leader (pid {leader_pid}, term {term}; it held {held} leases)")
            failover = None
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if failover is None:
                    now_owner, now_term, live = leader(url)
                    if live and now_term > term and now_owner is not None and \
                            int(now_owner.split(":")[1]) not in (leader_pid, victim):
                        failover = time.monotonic() - killed_at
                        print(f"  new leader {now_owner}, term {now_term}, after {failover:.1f}s")
                if failover is not None and stored(url) >= feeds:
                    break
                time.sleep(0.5)
            done = time.time() - started
            time.sleep(args.lease + 2)  # late duplicates, if any, arrive now
            stats = ask("/__stats")
            lost = feeds - stored(url)
        finally:
            cluster.stop()
        texts = [cluster.text(i) for i in range(w)]
    hits: dict[str, list[float]] = stats["hits"]  # type: ignore[assignment]
    duplicates = sum(len(times) - 1 for times in hits.values() if len(times) > 1)
    print(f"  every feed stored after {done:.0f}s; duplicates {duplicates} (at most the {in_flight} leases the "
          f"killed workers held), lost {lost}, most requests in flight on one host {stats['most']}, "
          f"leader failover {failover if failover is None else round(failover, 1)}s (lease {args.lease:g}s), "
          f"overlapping terms {overlapping_terms(texts)}")


def main() -> None:
    installed.compile_program()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=10_000)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=40)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--kill-workers", type=int, default=3)
    ap.add_argument("--kill-feeds", type=int, default=2000)
    ap.add_argument("--lease", type=float, default=10.0)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    from tests.postgres import running_server

    # Stopped by a signal, it still stops the workers, the feed server and PostgreSQL.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    work = Path(tempfile.mkdtemp(prefix="feeds-cluster-"))
    feed_server = subprocess.Popen([sys.executable, __file__, "--serve", str(args.hosts)], stdout=subprocess.PIPE)
    assert feed_server.stdout is not None
    feed_server.stdout.readline()
    print(f"{args.feeds} loopback feeds on {args.hosts} hosts (50-200 ms each), all due; "
          f"{args.seconds}s per run, lease {args.lease:g}s; {os.cpu_count()} CPUs")
    try:
        with running_server(max_connections=600) as server:
            base = None
            for w in [int(x) for x in args.workers.split(",")]:
                r = throughput(server, work, w, args)
                base = base or r["rate"]
                print(f"W={w}: {r['rate']:.1f} fetches/s ({r['fetches']:.0f} in {args.seconds}s), speed-up "
                      f"{r['rate'] / base:.2f}x, duplicates {r['duplicates']:.0f}, most requests in flight on "
                      f"one host {r['most']:.0f}; the workers used {r['cores']:.2f} cores, "
                      f"{r['cpu_ms']:.0f} ms of CPU per fetch", flush=True)
            if args.kill_workers < 3:  # 0: no such run; it needs a worker left after two kills
                return
            print(f"W={args.kill_workers}, {args.kill_feeds} feeds, one worker and then the leader killed (SIGKILL) "
                  "midway:")
            with_kills(server, work, args.kill_workers, args)
    finally:
        feed_server.kill()
        feed_server.wait()


if __name__ == "__main__":
    main()
