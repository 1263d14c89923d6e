"""The fetcher against a real HTTP server on 127.0.0.1: every way a server can answer."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import os
import time
from dataclasses import replace

import httpx
import pytest

from feeds.sources import fetch
from feeds.sources.fetch import USER_AGENT, Fetcher, FetchSettings, fetch_all
from feeds.sources.results import FetchRequest

from .httpserver import FeedServer, Response, feed_response, item, rss, running

FAST = FetchSettings(concurrency=8, host_gap=0.0, connect_timeout=2, read_timeout=1, total_timeout=3,
                     max_bytes=200_000, max_redirects=4)


def get(server: FeedServer, path: str, settings: FetchSettings = FAST, **kw: str | None):  # type: ignore[no-untyped-def]
    return fetch_all([FetchRequest("s", server.url(path), **kw)], settings)[0]  # type: ignore[arg-type]


def test_200_then_304_with_validators(server: FeedServer) -> None:
    server.routes["/f"] = feed_response(rss([item(1)]))
    first = get(server, "/f")
    assert first.status == 200 and first.error is None and b"Story 1" in (first.body or b"")
    assert first.etag == '"v1"' and first.last_modified
    second = get(server, "/f", etag=first.etag, last_modified=first.last_modified)
    assert second.not_modified and second.body is None and second.error is None
    sent = server.hits("/f")[1].headers
    assert sent["if-none-match"] == '"v1"' and sent["if-modified-since"] == first.last_modified
    assert server.hits("/f")[0].headers["user-agent"] == USER_AGENT
    assert "feeds/" in USER_AGENT and "http" in USER_AGENT


def test_permanent_and_temporary_redirects(server: FeedServer) -> None:
    server.routes["/f"] = feed_response(rss([item(1)]))
    server.routes["/old"] = Response(301, headers={"Location": "/f"})
    server.routes["/older"] = Response(308, headers={"Location": server.url("/old")})
    server.routes["/temp"] = Response(302, headers={"Location": "/f"})
    server.routes["/perm-then-temp"] = Response(301, headers={"Location": "/temp"})
    moved = get(server, "/older")
    assert moved.error is None and moved.final_url == server.url("/f")
    assert moved.moved_to == server.url("/f")
    temp = get(server, "/temp")
    assert temp.error is None and temp.moved_to is None
    mixed = get(server, "/perm-then-temp")
    assert mixed.error is None and mixed.moved_to is None  # only a wholly permanent chain moves a source


def test_redirect_loop_and_too_many_redirects(server: FeedServer) -> None:
    server.routes["/a"] = Response(302, headers={"Location": "/b"})
    server.routes["/b"] = Response(302, headers={"Location": "/a"})
    assert "redirect loop" in (get(server, "/a").error or "")
    for n in range(10):
        server.routes[f"/r{n}"] = Response(302, headers={"Location": f"/r{n + 1}"})
    assert "more than 4 redirects" in (get(server, "/r0").error or "")


@pytest.mark.parametrize(("status", "words"), [(404, "HTTP 404"), (500, "HTTP 500"), (410, "410 Gone")])
def test_http_errors(server: FeedServer, status: int, words: str) -> None:
    server.routes["/x"] = Response(status, b"no")
    result = get(server, "/x")
    assert words in (result.error or "") and result.body is None
    assert result.gone == (status == 410)


def test_429_with_retry_after_and_max_age(server: FeedServer) -> None:
    server.routes["/busy"] = Response(429, b"", {"Retry-After": "120"})
    busy = get(server, "/busy")
    assert busy.status == 429 and busy.retry_after == 120
    server.routes["/cached"] = Response(200, rss([item(1)]).encode(), {"Cache-Control": "public, max-age=7200"})
    assert get(server, "/cached").max_age == 7200


def test_slow_server_times_out(server: FeedServer) -> None:
    server.routes["/slow"] = Response(200, rss([item(1)]).encode(), delay=2.5)
    started = time.monotonic()
    result = get(server, "/slow")
    assert "timed out" in (result.error or "") or "too long" in (result.error or "")
    assert time.monotonic() - started < 3.5


def test_body_over_the_cap(server: FeedServer) -> None:
    server.routes["/big"] = Response(200, b"<rss>" + b"x" * 300_000 + b"</rss>")
    assert "limit" in (get(server, "/big").error or "")
    server.routes["/big-gz"] = Response(200, gzip.compress(b"x" * 300_000), {"Content-Encoding": "gzip"})
    assert "after decompression" in (get(server, "/big-gz").error or "")


def test_gzip_and_gzip_bomb(server: FeedServer) -> None:
    server.routes["/gz"] = feed_response(rss([item(1)]), gz=True)
    ok = get(server, "/gz")
    assert ok.error is None and b"Story 1" in (ok.body or b"")
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    server.routes["/bomb"] = Response(200, bomb, {"Content-Encoding": "gzip"})
    result = get(server, "/bomb")
    assert "limit" in (result.error or "")


def test_connection_refused(server: FeedServer) -> None:
    result = fetch_all([FetchRequest("s", "http://127.0.0.1:9/feed")], FAST)[0]
    assert "cannot connect" in (result.error or "")


def test_one_request_at_a_time_per_host_with_a_gap(server: FeedServer) -> None:
    server.routes["/f"] = Response(200, rss([item(1)]).encode(), delay=0.2, conditional=False)
    settings = FetchSettings(concurrency=8, host_gap=0.3, read_timeout=5, total_timeout=10)
    requests = [FetchRequest(f"s{n}", server.url("/f")) for n in range(3)]
    results = fetch_all(requests, settings)
    assert all(r.error is None for r in results)
    times = sorted(s.at for s in server.hits("/f"))
    # Each request starts after the previous one finished (0.2 s) plus the gap (0.3 s).
    assert all(b - a >= 0.45 for a, b in itertools.pairwise(times))


def test_global_limit_with_a_mock_transport() -> None:
    active = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        import asyncio

        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return httpx.Response(200, content=rss([item(1)]).encode())

    requests = [FetchRequest(f"s{n}", f"http://host{n}.test/feed") for n in range(12)]
    results = fetch_all(requests, FetchSettings(concurrency=3, host_gap=0), httpx.MockTransport(handler))
    assert all(r.error is None for r in results)
    assert peak == 3


def test_local_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "feed.xml"
    path.write_text(rss([item(1)]))
    os.utime(path, (1_600_000_000, 1_600_000_000))  # settled: a file just saved is read again each time
    first = fetch_all([FetchRequest("s", str(path))], FAST)[0]
    assert first.error is None and first.body and first.last_modified
    again = fetch_all([FetchRequest("s", str(path), last_modified=first.last_modified)], FAST)[0]
    assert again.not_modified
    missing = fetch_all([FetchRequest("s", str(tmp_path / "nope.xml"))], FAST)[0]
    assert "cannot read" in (missing.error or "")


def _pass_twice(servers: list[FeedServer], settings: FetchSettings = FAST) -> list[list[int]]:
    """Three sources on each server, asked host after host, then again with their
    validators (304s), on one open fetcher: the client ports each server saw."""
    for s in servers:
        for n in range(3):
            s.routes[f"/f{n}"] = feed_response(rss([item(n)]))
    requests = [FetchRequest(f"s{n}{k}", s.url(f"/f{n}")) for n in range(3) for k, s in enumerate(servers)]

    async def run() -> None:
        fetcher = Fetcher(settings)
        await fetcher.open()
        try:
            first = await fetcher.fetch_all(requests)
            assert [r.status for r in first] == [200] * len(requests)
            again = [FetchRequest(r.source, r.url, f.etag, f.last_modified)
                     for r, f in zip(requests, first, strict=True)]
            second = await fetcher.fetch_all(again)
            assert all(r.not_modified for r in second)
        finally:
            await fetcher.aclose()

    asyncio.run(run())
    return [[seen.port for seen in s.seen] for s in servers]


def test_a_connection_serves_each_host_again(server: FeedServer) -> None:
    """One connection to each host for all its sources, 200s and 304s alike, while the
    requests go from host to host."""
    with running("127.0.0.2") as other:
        for ports in _pass_twice([server, other]):
            assert len(ports) == 6 and len(set(ports)) == 1


def test_the_least_recently_asked_hosts_connections_close(server: FeedServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond ``IDLE_HOSTS`` hosts, the connection of the one asked longest ago is closed
    (and made anew when it is asked again). One request at a time: they alternate hosts."""
    monkeypatch.setattr(fetch, "IDLE_HOSTS", 1)
    with running("127.0.0.2") as other:
        for ports in _pass_twice([server, other], replace(FAST, concurrency=1)):
            assert len(ports) == 6 and len(set(ports)) == 6
