"""Updating many sources at once: bodies read on worker processes as they arrive, sources
stored as their readings come back. Against real loopback servers and a real SQLite file;
what is stored must be what reading every source in-process stores."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feeds.config import load_config
from feeds.sources.fetch import Fetcher, FetchSettings
from feeds.sources.results import FetchRequest, FetchResult
from feeds.sources.update import update_sources
from feeds.store import Store
from feeds.workers import JobFailed, JobPool, use_processes

from .httpserver import FeedServer, Response, feed_response, item, rss

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
forking = pytest.mark.skipif(not hasattr(os, "fork") or (os.cpu_count() or 1) < 2,
                             reason="worker processes are forked, on two cores or more")


def write_config(folder: Path, server: FeedServer, names: list[str], state: str) -> Path:
    sources = "".join(f"  - {{name: {n}, url: '{server.url('/' + n)}', every: 1h}}\n" for n in names)
    path = folder / f"{state}.yaml"
    path.write_text("site: {title: T, base_url: 'https://example.org/feeds/'}\n"
                    f"state: {state}.db\nfetch: {{host_gap: 0, read_timeout: 10, total_timeout: 20}}\n"
                    f"sources:\n{sources}")
    return path


def stored(path: Path) -> tuple[list[Any], dict[tuple[str, str], str]]:
    config = load_config(path)
    store = Store(config.state_path)
    try:
        heads = store.load_item_heads([s.name for s in config.sources])
        return heads, store.load_item_data((h.source, h.ukey) for h in heads)
    finally:
        store.close()


def update(path: Path, *, fork: bool) -> list[str]:
    config = load_config(path)
    store = Store(config.state_path)
    use_processes(fork)
    try:
        return [o.line() for o in update_sources(config, store, now=NOW)]
    finally:
        use_processes(True)
        store.close()


def serve_sources(server: FeedServer, names: list[str]) -> None:
    for k, name in enumerate(names):
        server.routes["/" + name] = feed_response(
            rss([item(k * 10 + j, guid=f"urn:{name}:{j}", link=f"https://site.example/{name}/{j}")
                 for j in range(5)], title=name))


@forking
def test_workers_store_what_reading_in_process_stores(tmp_path: Path, server: FeedServer) -> None:
    names = [f"s{k:02d}" for k in range(12)]
    serve_sources(server, names)
    # A story that two sources list, new in this run: the first source in the configured
    # order names it for both, though its answer comes last.
    shared = item(99, guid="urn:first", link="https://site.example/shared")
    server.routes["/s00"] = Response(**{**feed_response(rss([shared], title="s00")).__dict__, "delay": 0.5})
    server.routes["/s07"] = feed_response(rss([{**shared, "guid": "urn:second"}], title="s07"))
    # One source that is no feed: only its own error.
    server.routes["/s03"] = Response(200, b"<html><body>no feed</body></html>", {"Content-Type": "text/html"})
    forked = write_config(tmp_path, server, names, "forked")
    alone = write_config(tmp_path, server, names, "alone")

    lines = update(forked, fork=True)
    assert lines == update(alone, fork=False)
    assert [line.split(":")[0] for line in lines] == names
    assert "HTML page" in lines[3] and sum("error" in line or "HTML" in line for line in lines) == 1
    assert stored(forked) == stored(alone)
    heads, _ = stored(forked)
    assert len(heads) == 9 * 5 + 2
    assert {h.entry_id for h in heads if h.link == "https://site.example/shared"} == {"urn:first"}
    # Again: every answer a 304, nothing read, nothing changed.
    again = update(forked, fork=True)
    assert all("not modified" in line or "HTML" in line for line in again)
    assert stored(forked) == stored(alone)


def twice(job: int, shared: dict[str, int]) -> int:
    if job < 0:
        raise ValueError("negative")
    return job * shared["factor"]


@forking
def test_job_pool_answers_each_job_as_run_jobs_would() -> None:
    with JobPool(twice, {"factor": 2}, expected=10, threshold=4) as pool:
        assert pool.parallel
        futures = [pool.submit(j) for j in range(10)]
        failed = pool.submit(-1)
        assert [f.result() for f in futures] == [j * 2 for j in range(10)]
        with pytest.raises(JobFailed, match="ValueError: negative"):
            failed.result()


def test_job_pool_runs_few_jobs_in_process() -> None:
    with JobPool(twice, {"factor": 3}, expected=2, threshold=4) as pool:
        assert not pool.parallel
        done = pool.submit(5)
        assert done.done() and done.result() == 15
        with pytest.raises(ValueError):
            pool.submit(-1).result()


def test_fetch_each_hands_on_every_result_and_holds_bodies_to_room(server: FeedServer) -> None:
    names = [f"r{k}" for k in range(6)]
    serve_sources(server, names)
    server.routes["/r2"] = Response(304)
    got: dict[int, FetchResult] = {}

    async def run() -> None:
        room = asyncio.Semaphore(2)

        def handle(index: int, result: FetchResult) -> None:
            got[index] = result
            if result.body is not None:
                room.release()  # the consumer is done with the body

        requests = [FetchRequest(n, server.url("/" + n)) for n in names]
        await Fetcher(FetchSettings(host_gap=0)).fetch_each(requests, handle, room)

    asyncio.run(run())
    assert sorted(got) == list(range(6))
    assert [got[i].source for i in range(6)] == names
    assert got[2].body is None and all(got[i].body for i in (0, 1, 3, 4, 5))
