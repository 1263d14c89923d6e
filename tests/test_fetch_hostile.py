"""The fetcher against servers that misbehave, on purpose or not: real servers on loopback.

Hosts shared by many sources, redirects to other schemes and to internal
addresses, compression bombs, and servers that drip, never close, or answer
with broken headers. Whatever a server does, each source gets a result with at
most a one-line error, and the other sources are fetched as usual.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import os
import resource
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.config import parse_config
from feeds.errors import InputError
from feeds.sources import fetch
from feeds.sources.addresses import IPAddress, address_class, after_hop, refusal, trusted_classes
from feeds.sources.decoding import MAX_LAYERS, DecodeError, decode_all
from feeds.sources.fetch import LONGEST_WAIT, FetchSettings, GuardedBackend, fetch_all
from feeds.sources.parse import parse_feed
from feeds.sources.results import FetchRequest, FetchResult
from feeds.sources.schedule import after_fetch, new_state

from .conftest import Site
from .httpserver import FeedServer, Response, feed_response, item, rss, running

FAST = FetchSettings(concurrency=8, host_gap=0.0, connect_timeout=2, read_timeout=1, total_timeout=3,
                     max_bytes=200_000, max_redirects=4)
FEED = rss([item(1)]).encode()


def get(server: FeedServer, path: str, settings: FetchSettings = FAST) -> FetchResult:
    return fetch_all([FetchRequest("s", server.url(path))], settings)[0]


def one_line(result: FetchResult) -> str:
    assert result.error is not None, result
    assert "\n" not in result.error and len(result.error) < 600, result.error
    return result.error


@pytest.fixture
def other() -> Iterator[FeedServer]:
    """A second server, on 127.0.0.2: another host as far as the fetcher is concerned."""
    with running("127.0.0.2") as s:
        yield s


# --- Hosts: waiting for a turn never counts ------------------------------------------------

def busy(server: FeedServer, delay: float = 0.01) -> None:
    """Record whether two requests were ever in flight at once on ``server``."""
    lock = threading.Lock()
    state = {"active": 0, "peak": 0}

    def route(headers: dict[str, str]) -> Response:
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        time.sleep(delay)
        with lock:
            state["active"] -= 1
        return Response(200, FEED, {"Content-Type": "application/rss+xml"}, conditional=False)

    server.routes["/f"] = route
    server.peak = state  # type: ignore[attr-defined]


def test_300_sources_on_one_host_all_succeed(server: FeedServer) -> None:
    # 300 requests of >= 20 ms in a row take 6 s or more, more than the total timeout:
    # only a fetcher that starts each source's clock at its turn gets them all. (The
    # timeout leaves a loaded machine room for one request; the point is the sum.)
    busy(server, 0.02)
    settings = FetchSettings(concurrency=16, host_gap=0, read_timeout=4, total_timeout=4)
    results = fetch_all([FetchRequest(f"s{n}", server.url(f"/f?n={n}")) for n in range(300)], settings)
    assert [r.error for r in results if r.error] == []
    assert all(b"Story 1" in (r.body or b"") for r in results)
    assert len(server.seen) == 300
    assert server.peak["peak"] == 1  # type: ignore[attr-defined]  # one request at a time on one host
    assert all(r.seconds < 4 for r in results)  # the time a source's own request took


def test_redirect_chain_on_a_busy_host(server: FeedServer) -> None:
    busy(server, 0.05)  # 60 of them in a row: 3 s or more
    server.routes["/r1"] = Response(302, headers={"Location": "/r2"})
    server.routes["/r2"] = Response(301, headers={"Location": "/r3"})
    server.routes["/r3"] = Response(307, headers={"Location": "/f?end"})
    settings = FetchSettings(concurrency=4, host_gap=0, read_timeout=2, total_timeout=2)
    requests = [FetchRequest("chain", server.url("/r1"))]
    requests += [FetchRequest(f"s{n}", server.url(f"/f?n={n}")) for n in range(60)]
    results = fetch_all(requests, settings)
    assert [r.error for r in results if r.error] == []
    assert results[0].final_url == server.url("/f?end")
    # A fetch under way goes before sources still waiting for their first turn.
    paths = [s.path for s in server.seen]
    assert paths.index("/f?end") < 10


def test_a_slow_source_holds_its_host_only_for_its_own_timeout(server: FeedServer) -> None:
    server.routes["/slow"] = Response(200, FEED, delay=3)
    server.routes["/f"] = Response(200, FEED, conditional=False)
    settings = FetchSettings(concurrency=4, host_gap=0, read_timeout=0.5, total_timeout=1)
    results = fetch_all([FetchRequest("slow", server.url("/slow"))]
                        + [FetchRequest(f"s{n}", server.url(f"/f?n={n}")) for n in range(20)], settings)
    assert "timed out" in one_line(results[0]) or "too long" in one_line(results[0])
    assert [r.error for r in results[1:] if r.error] == []


def test_a_drip_is_stopped_by_the_total_timeout(server: FeedServer) -> None:
    def drip(out: BinaryIO) -> None:
        out.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(100):
            out.write(b"<")
            out.flush()
            time.sleep(0.05)

    server.routes["/drip"] = Response(raw=drip)
    server.routes["/f"] = Response(200, FEED)
    settings = FetchSettings(host_gap=0, read_timeout=1, total_timeout=1)
    results = fetch_all([FetchRequest("drip", server.url("/drip")), FetchRequest("ok", server.url("/f"))], settings)
    assert "total timeout" in one_line(results[0])
    assert results[1].error is None


def test_waiting_out_a_pause_holds_no_global_slot(server: FeedServer, other: FeedServer) -> None:
    server.routes["/f"] = Response(200, FEED, conditional=False)
    other.routes["/f"] = Response(200, FEED, conditional=False)
    settings = FetchSettings(concurrency=1, host_gap=0.5, read_timeout=2, total_timeout=2)
    requests = [FetchRequest("a1", server.url("/f?1")), FetchRequest("a2", server.url("/f?2"))]
    requests += [FetchRequest(f"b{n}", other.url(f"/f?{n}")) for n in range(1)]
    assert [r.error for r in fetch_all(requests, settings)] == [None] * 3
    # While the first host pauses after a1, the only global slot serves the other host.
    assert other.seen[0].at < server.hits("/f?2")[0].at


def test_no_pause_after_a_304_but_one_after_a_download(server: FeedServer) -> None:
    server.routes["/f"] = feed_response(rss([item(1)]))
    settings = FetchSettings(concurrency=4, host_gap=0.4, read_timeout=2, total_timeout=3)
    fetch_all([FetchRequest(f"s{n}", server.url("/f"), etag='"v1"') for n in range(3)]
              + [FetchRequest(f"d{n}", server.url("/f")) for n in range(3)], settings)
    times = [s.at for s in server.seen]
    # After the first download, each further download waited for the pause.
    assert times[4] - times[3] >= 0.35 and times[5] - times[4] >= 0.35

    async def pause_after(requests: list[FetchRequest]) -> float:
        fetcher = fetch.Fetcher(FetchSettings(host_gap=600, read_timeout=2, total_timeout=3))
        await fetcher.fetch_all(requests)
        return fetcher._hosts["127.0.0.1"].free_at - time.monotonic()

    assert asyncio.run(pause_after([FetchRequest(f"s{n}", server.url("/f"), etag='"v1"') for n in range(3)])) <= 0
    assert asyncio.run(pause_after([FetchRequest("d", server.url("/f"))])) > 500


def test_retry_after_leaves_the_host_alone_for_the_run(server: FeedServer) -> None:
    server.routes["/f"] = Response(429, b"slow down", {"Retry-After": "120"})
    results = fetch_all([FetchRequest(f"s{n}", server.url(f"/f?{n}")) for n in range(5)], FAST)
    assert len(server.seen) == 1
    assert results[0].status == 429 and results[0].retry_after == 120
    for r in results[1:]:
        assert "Retry-After" in one_line(r) and r.retry_after is not None and 100 < r.retry_after <= 120


def test_a_month_long_retry_after_keeps_the_host_alone_no_longer_than_max_backoff(server: FeedServer) -> None:
    server.routes["/f"] = Response(429, b"slow down", {"Retry-After": "99999999999999999999"})
    results = fetch_all([FetchRequest(f"s{n}", server.url(f"/f?{n}")) for n in range(3)],
                        FetchSettings(host_gap=0, longest_host_block=600))
    assert len(server.seen) == 1
    for r in results[1:]:
        assert r.retry_after is not None and 0 < r.retry_after <= 600
        assert "600 s" in one_line(r) or "599 s" in one_line(r)


@pytest.mark.parametrize("value", ["-5", "99999999999999999999999", "1e9", "soon", "",
                                   "Fri, 01 Jan 1990 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
                                   "Fri, 31 Dec 9999 23:59:59 -0000", "Mon, 99 Foo 2020 99:99:99 GMT"])
def test_absurd_retry_after_values(server: FeedServer, value: str) -> None:
    server.routes["/busy"] = Response(503, b"", {"Retry-After": value, "Cache-Control": f"max-age={value}"})
    result = get(server, "/busy")
    assert result.status == 503 and "HTTP 503" in one_line(result)
    assert result.retry_after is None or 0 <= result.retry_after <= LONGEST_WAIT
    assert result.max_age is None or 0 <= result.max_age <= LONGEST_WAIT
    # ...and the schedule can use whatever came out.
    state, _ = after_fetch(new_state("s", result.url), result, every=60, now=datetime(2026, 1, 1, tzinfo=UTC),
                           max_backoff=86400)
    assert state.next_due is not None


# --- URLs and redirects: only http(s), never an exception ------------------------------------

BAD_LOCATIONS = ["data:text/plain,hello", "file:///etc/passwd", "file:feed.xml", "javascript:alert(1)",
                 "ftp://127.0.0.1/feed", "gopher://127.0.0.1/", "mailto:a@b.example", "http://[::1",
                 "http://exa mple.org/", "http://127.0.0.1:99999/", "http://", "https:///nohost", "x" * 60_000,
                 "http://" + "a" * 70_000 + ".example/", "http://\u2603\u0000/"]


@pytest.fixture
def numeric_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Host names resolve only when they are addresses (or localhost): no query leaves the
    machine, and any other name fails as a name that does not exist would."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str | bytes | None, port: str | bytes | int | None, family: int = 0, type: int = 0,
                    proto: int = 0, flags: int = 0) -> object:
        name = host.decode() if isinstance(host, bytes) else host
        if name == "localhost":
            return real(host, port, family, type, proto, flags)
        try:
            return real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield


@pytest.mark.parametrize("location", BAD_LOCATIONS, ids=lambda s: s[:30])
@pytest.mark.usefixtures("numeric_resolver")
def test_redirect_to_an_unusable_url_is_one_line(server: FeedServer, location: str) -> None:
    def answer(out: BinaryIO) -> None:
        out.write(b"HTTP/1.1 302 Found\r\nLocation: " + location.encode("utf-8") + b"\r\nContent-Length: 0\r\n\r\n")

    server.routes["/r"] = Response(raw=answer)
    result = get(server, "/r")
    assert result.body is None
    one_line(result)
    if location.startswith(("javascript:", "data:", "mailto:", "gopher:", "ftp:", "file:")):
        assert "redirect" in one_line(result)
    if location == "http://exa mple.org/":
        assert one_line(result).startswith("cannot resolve host"), result.error


@pytest.mark.parametrize("url", ["data:text/plain,hello", "javascript:alert(1)", "ftp://127.0.0.1/feed",
                                 "http://[::1", "http://127.0.0.1:99999/", "http:///", "gopher://x/"])
def test_configured_url_that_cannot_be_fetched_is_one_line(url: str) -> None:
    one_line(fetch_all([FetchRequest("s", url)], FAST)[0])


def test_empty_location_and_loops_across_hosts(server: FeedServer, other: FeedServer) -> None:
    def empty(out: BinaryIO) -> None:
        out.write(b"HTTP/1.1 301 Moved\r\nLocation: \r\nContent-Length: 0\r\n\r\n")

    server.routes["/empty"] = Response(raw=empty)
    server.routes["/a"] = Response(302, headers={"Location": other.url("/b")})
    other.routes["/b"] = Response(302, headers={"Location": server.url("/a")})
    server.routes["/grow"] = lambda h: Response(302, headers={"Location": other.url(f"/grow?{time.monotonic()}")})
    other.routes["/grow"] = lambda h: Response(302, headers={"Location": server.url(f"/grow?{time.monotonic()}")})
    settings = FAST
    empty_r, loop_r, grow_r = fetch_all([FetchRequest("e", server.url("/empty")), FetchRequest("l", server.url("/a")),
                                         FetchRequest("g", server.url("/grow"))], settings)
    assert "without a Location" in one_line(empty_r)
    assert "redirect loop" in one_line(loop_r)
    assert "more than 4 redirects" in one_line(grow_r)


# Whatever follows these stays on loopback: no slash or backslash, so never a host name to look up.
PREFIXES = [b"", b"http:", b"https:", b"http://127.0.0.1:1/", b"http://[", b"http://[::1]", b"data:", b"file:",
            b"javascript:", b"?", b"#", b"%", b" "]


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(PREFIXES),
       rest=st.binary(max_size=200).filter(lambda b: not any(c in b for c in b"\r\n/\\")))
def test_any_location_bytes_give_a_result_never_an_exception(server: FeedServer, prefix: bytes, rest: bytes) -> None:
    location = prefix + rest
    server.routes["/f"] = Response(200, FEED)

    def answer(out: BinaryIO) -> None:
        out.write(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")

    server.routes["/r"] = Response(raw=answer)
    result = get(server, "/r")
    assert result.error is None or "\n" not in result.error


# --- No server-side request forgery --------------------------------------------------------

def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("::127.0.0.1", "loopback"), ("64:ff9b::7f00:1", "loopback"),
    ("2002:7f00:1::", "loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("100.64.0.1", "private"), ("fc00::1", "private"), ("fd12:3456::1", "private"), ("::ffff:10.0.0.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("::ffff:169.254.169.254", "link-local"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("192.0.2.1", "reserved"), ("198.18.0.1", "reserved"),
    ("2001:db8::1", "reserved"), ("fec0::1", "reserved"),
    ("93.184.216.34", "public"), ("8.8.8.8", "public"), ("2606:4700:4700::1111", "public"),
    ("::ffff:8.8.8.8", "public"), ("172.32.0.1", "public"),
])
def test_address_classes(address: str, kind: str) -> None:
    assert address_class(ip(address)) == kind


@pytest.mark.parametrize("spelling", ["2130706433", "0x7f000001", "0177.0.0.1", "0x7f.0.0.1", "127.1", "017700000001"])
def test_odd_ip_spellings_are_judged_by_what_they_resolve_to(spelling: str) -> None:
    # getaddrinfo reads these numeric forms itself, with no name server involved.
    addresses = [ip(str(info[4][0])) for info in socket.getaddrinfo(spelling, 80, type=socket.SOCK_STREAM)]
    assert {address_class(a) for a in addresses} == {"loopback"}
    assert refusal(frozenset(), addresses) is not None


def test_refusal_rules() -> None:
    public, loop, private = ip("8.8.8.8"), ip("127.0.0.1"), ip("10.0.0.1")
    from_public = after_hop(trusted_classes(frozenset({"public"})), frozenset({"public"}))
    assert refusal(from_public, [public]) is None
    assert "loopback" in (refusal(from_public, [loop]) or "")
    assert refusal(from_public, [public, private]) is not None  # any address of the name counts
    from_loopback = after_hop(trusted_classes(frozenset({"loopback"})), frozenset({"loopback"}))
    assert refusal(from_loopback, [loop]) is None
    assert refusal(from_loopback, [private]) is not None  # the same class only
    assert refusal(from_loopback, [public]) is None
    # Once a public server chose the next hop, only public addresses remain.
    assert after_hop(from_loopback, frozenset({"public"})) == frozenset()


def as_public(address: IPAddress) -> str:
    """Judges 127.0.0.2 public: the stand-in for an internet server, since no test may reach one."""
    return "public" if address == ip("127.0.0.2") else address_class(address)


PUBLIC_2 = FetchSettings(host_gap=0, read_timeout=2, total_timeout=3, classify=as_public)


def internal_targets(server: FeedServer) -> list[str]:
    port = server.port
    return [server.url("/secret"), f"http://localhost:{port}/secret", f"http://[::1]:{port}/secret",
            f"http://[::ffff:127.0.0.1]:{port}/secret", f"http://2130706433:{port}/secret",
            f"http://0x7f000001:{port}/secret", f"http://0177.0.0.1:{port}/secret", f"http://0.0.0.0:{port}/secret",
            f"http://127.1:{port}/secret", f"http://[::]:{port}/secret", "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/", "http://[fc00::1]/", "http://224.0.0.1/"]


def test_redirect_from_public_to_internal_addresses_is_refused(server: FeedServer, other: FeedServer) -> None:
    server.routes["/secret"] = Response(200, FEED)
    targets = internal_targets(server)
    for n, target in enumerate(targets):
        other.routes[f"/r{n}"] = Response(302, headers={"Location": target})
    other.routes["/auth"] = Response(302, headers={"Location": f"http://user:pass@127.0.0.2:{other.port}/f"})
    other.routes["/f"] = Response(200, FEED)
    other.routes["/fine"] = Response(301, headers={"Location": "/f"})
    requests = [FetchRequest(f"s{n}", other.url(f"/r{n}")) for n in range(len(targets))]
    results = fetch_all([*requests, FetchRequest("auth", other.url("/auth")), FetchRequest("ok", other.url("/fine"))],
                        PUBLIC_2)
    for target, result in zip(targets, results, strict=False):
        error = one_line(result)
        assert "refused" in error or "Invalid IPv4" in error, (target, error)  # httpx rejects 0177.0.0.1
    assert "user name or password" in one_line(results[-2])
    assert results[-1].error is None and results[-1].body == FEED  # public to public is fine
    assert server.hits("/secret") == []


def test_redirect_via_a_public_host_back_inside_is_refused(server: FeedServer, other: FeedServer) -> None:
    server.routes["/secret"] = Response(200, FEED)
    server.routes["/start"] = Response(302, headers={"Location": other.url("/bounce")})
    other.routes["/bounce"] = Response(302, headers={"Location": server.url("/secret")})
    result = fetch_all([FetchRequest("s", server.url("/start"))], PUBLIC_2)[0]
    assert "loopback address" in one_line(result) and server.hits("/secret") == []


def test_loopback_sources_may_redirect_within_loopback(server: FeedServer) -> None:
    with running() as second:
        second.routes["/f"] = Response(200, FEED)
        server.routes["/moved"] = Response(301, headers={"Location": second.url("/f")})
        server.routes["/local"] = Response(302, headers={"Location": f"http://localhost:{second.port}/f"})
        moved, local = fetch_all([FetchRequest("a", server.url("/moved")), FetchRequest("b", server.url("/local"))],
                                 FAST)
    assert moved.error is None and moved.body == FEED and moved.moved_to == second.url("/f")
    assert local.error is None and local.body == FEED


def test_the_operator_can_allow_private_redirects(server: FeedServer, other: FeedServer) -> None:
    server.routes["/secret"] = Response(200, FEED)
    other.routes["/r"] = Response(302, headers={"Location": server.url("/secret")})
    allowed = FetchSettings(host_gap=0, classify=as_public, allow_private_redirects=True)
    assert fetch_all([FetchRequest("s", other.url("/r"))], allowed)[0].body == FEED
    config = parse_config("site: {title: t, base_url: 'https://example.org/'}\n"
                          "fetch: {allow_private_redirects: true}\n")
    assert config.fetch.allow_private_redirects is True
    assert parse_config("site: {title: t, base_url: 'https://example.org/'}\n").fetch.allow_private_redirects is False


def test_a_name_that_turns_internal_after_the_check_is_refused_at_connection(other: FeedServer) -> None:
    """DNS rebinding: the redirect target looks public when checked, then internal when connected to."""
    asked: list[IPAddress] = []

    def rebinding(address: IPAddress) -> str:
        if address == ip("127.0.0.3"):
            asked.append(address)
            return "public" if len(asked) <= 2 else "loopback"  # the check asks twice, then the connection
        return as_public(address)

    with running("127.0.0.3") as inside:
        inside.routes["/secret"] = Response(200, FEED)
        other.routes["/r"] = Response(302, headers={"Location": inside.url("/secret")})
        result = fetch_all([FetchRequest("s", other.url("/r"))],
                           FetchSettings(host_gap=0, read_timeout=2, total_timeout=3, classify=rebinding))[0]
        assert "loopback address" in one_line(result) and len(asked) == 3
        assert inside.hits("/secret") == []


def test_connections_are_checked_where_they_are_made(server: FeedServer) -> None:
    """The check at connection time, which a host name that changes its answers cannot dodge."""
    async def connect(host: str) -> None:
        token = fetch._TRUSTED.set(frozenset())  # a hop chosen by a public server
        try:
            stream = await GuardedBackend().connect_tcp(host, server.port, timeout=2)
            await stream.aclose()
        finally:
            fetch._TRUSTED.reset(token)

    for host in ("localhost", "127.0.0.1", "2130706433"):
        with pytest.raises(fetch._Refused):
            asyncio.run(connect(host))

    async def configured() -> None:  # a configured URL's hop: no check
        stream = await GuardedBackend().connect_tcp("localhost", server.port, timeout=2)
        await stream.aclose()

    asyncio.run(configured())


# --- Compression bombs, and bombs in bombs -------------------------------------------------

def gzip_bomb(gigabytes: int) -> bytes:
    """A valid gzip file of ``gigabytes`` GB of zeros in a few MB: one 64 MB member, repeated."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    zeros = b"\0" * (1 << 20)
    member = b"".join(deflate.compress(zeros) for _ in range(64)) + deflate.flush()  # little memory held
    return member * (gigabytes * 16)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb(4)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_bombs_inside_bombs_stop_at_the_cap(server: FeedServer, bomb: bytes) -> None:
    routes = {
        "/gzip-in-gzip": ({"Content-Encoding": "gzip"}, gzip.compress(bomb)),
        "/gzip-gzip": ({"Content-Encoding": "gzip, gzip"}, gzip.compress(bomb)),
        "/deflate": ({"Content-Encoding": "deflate"}, zlib.compress(bomb)),
        "/raw-deflate": ({"Content-Encoding": "deflate"}, zlib.compressobj(9, zlib.DEFLATED, -15).compress(bomb)),
        "/a-gzip-file": ({"Content-Type": "application/gzip"}, bomb),
        "/x-gzip-chunked": ({"Content-Encoding": "x-gzip", "Transfer-Encoding": "chunked"}, b""),
    }
    inner = gzip.compress(bomb)

    def chunked(out: BinaryIO) -> None:
        out.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: x-gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(inner), 65536):
            piece = inner[start:start + 65536]
            out.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        out.write(b"0\r\n\r\n")

    for path, (headers, body) in routes.items():
        server.routes[path] = Response(200, body, headers)
    server.routes["/x-gzip-chunked"] = Response(raw=chunked)
    settings = FetchSettings(host_gap=0, read_timeout=5, total_timeout=20, max_bytes=16 << 20)
    before = peak_mb()
    results = fetch_all([FetchRequest(p, server.url(p)) for p in routes], settings)
    for path, result in zip(routes, results, strict=True):
        assert "over the size limit" in one_line(result), (path, result.error)
    assert peak_mb() - before < 200


def test_layers_decoded_and_the_headers_describe_the_decoded_body(server: FeedServer) -> None:
    server.routes["/twice"] = Response(200, gzip.compress(gzip.compress(FEED)),
                                       {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"})
    server.routes["/declared-twice"] = Response(200, gzip.compress(zlib.compress(FEED)),
                                                {"Content-Encoding": "deflate, gzip"})
    server.routes["/file"] = Response(200, gzip.compress(FEED), {"Content-Type": "application/x-gzip"})
    for path in ("/twice", "/declared-twice", "/file"):
        result = get(server, path)
        assert result.error is None and result.body == FEED, path
        assert "content-encoding" not in result.headers and "content-length" not in result.headers
        assert parse_feed(result.body, result.headers, result.final_url).items[0].title == "Story 1"


def test_unknown_or_broken_encodings(server: FeedServer) -> None:
    server.routes["/br"] = Response(200, b"\x1b\x00\x00", {"Content-Encoding": "br"})
    server.routes["/cut"] = Response(200, gzip.compress(FEED)[:-30], {"Content-Encoding": "gzip"})
    server.routes["/junk"] = Response(200, b"not gzip at all", {"Content-Encoding": "gzip"})
    server.routes["/deep"] = Response(200, FEED, {"Content-Encoding": ", ".join(["gzip"] * (MAX_LAYERS + 1))})
    br, cut, junk, deep = fetch_all([FetchRequest(p, server.url(p)) for p in ("/br", "/cut", "/junk", "/deep")], FAST)
    assert "unsupported Content-Encoding 'br'" in one_line(br)
    assert "cut short" in one_line(cut)
    assert "cannot decompress" in one_line(junk)
    assert "layers" in one_line(deep)
    sent = server.seen[0].headers["accept-encoding"]
    assert "br" not in sent and "gzip" in sent


def test_decoding_in_small_steps_is_the_same() -> None:
    body = gzip.compress(gzip.compress(FEED) + gzip.compress(FEED))
    assert decode_all(body, "gzip", 1 << 20) == FEED * 2
    assert decode_all(gzip.compress(FEED) + b"trailing junk", "gzip", 1 << 20) == FEED
    with pytest.raises(DecodeError):
        decode_all(gzip.compress(b"x" * 5000), "gzip", 4000)


def test_feedparser_is_never_asked_to_decompress_or_read_a_file(tmp_path: Path) -> None:
    # Given bytes and Content-Encoding: gzip, feedparser must not inflate them again.
    with pytest.raises(InputError):
        parse_feed(gzip.compress(FEED), {"content-encoding": "gzip"}, "http://127.0.0.1/f")
    # A body that reads like a path is a body, not a file to open.
    local = tmp_path / "local.xml"
    local.write_bytes(rss([item(7)]).encode())
    with pytest.raises(InputError):
        parse_feed(str(local).encode(), {"content-type": "application/rss+xml"}, "http://127.0.0.1/f")


# --- Servers that break the rules ------------------------------------------------------------

def raw_route(head: bytes, body: bytes = b"", then: float = 0.0) -> Response:
    def answer(out: BinaryIO) -> None:
        out.write(head + body)
        out.flush()
        if then:
            time.sleep(then)

    return Response(raw=answer)


def test_rule_breaking_servers_each_fail_alone(server: FeedServer) -> None:
    ok_head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
    cookies = b"".join(b"Set-Cookie: c%d=%s; Path=/\r\n" % (n, b"v" * 20) for n in range(2500))

    def endless(out: BinaryIO) -> None:
        out.write(ok_head + b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"<item>" * 10_000
        while True:
            out.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")

    server.routes.update({
        "/huge-headers": raw_route(ok_head + b"X-Big: " + b"a" * 300_000 + b"\r\nContent-Length: 5\r\n\r\n", b"<rss>"),
        "/many-headers": raw_route(ok_head + b"".join(b"X-%d: 1\r\n" % n for n in range(20_000)) + b"\r\n"),
        "/bad-length": raw_route(ok_head + b"Content-Length: abc\r\n\r\n", FEED),
        "/negative-length": raw_route(ok_head + b"Content-Length: -5\r\n\r\n", FEED),
        "/two-lengths": raw_route(ok_head + b"Content-Length: 5\r\nContent-Length: 9\r\n\r\n", FEED),
        "/short-body": raw_route(ok_head + b"Content-Length: 99999\r\n\r\n", FEED),
        "/never-closes": raw_route(ok_head + b"\r\n", FEED, then=5),
        "/endless": Response(raw=endless),
        "/garbage": raw_route(b"\x00\xff\xfe garbage \r\n\r\n"),
        "/nothing": raw_route(b""),
        "/status-999": raw_route(b"HTTP/1.1 999 Whatever\r\nContent-Length: 0\r\n\r\n"),
        "/cookies": raw_route(ok_head + cookies + b"Content-Length: %d\r\n\r\n" % len(FEED), FEED),
        "/good": Response(200, FEED),
    })
    settings = FetchSettings(concurrency=8, host_gap=0, read_timeout=0.5, total_timeout=2, max_bytes=1 << 20)
    paths = [p for p in server.routes if p != "/good"]
    results = dict(zip([*paths, "/good", "/after-cookies"], fetch_all(
        [FetchRequest(p, server.url(p)) for p in paths] + [FetchRequest("good", server.url("/good"))], settings)
        + fetch_all([FetchRequest("again", server.url("/good"))], settings), strict=True))
    for path in ("/huge-headers", "/many-headers", "/bad-length", "/negative-length", "/two-lengths", "/short-body",
                 "/never-closes", "/endless", "/garbage", "/nothing", "/status-999"):
        assert results[path].body is None, path
        one_line(results[path])
    assert "size limit" in (results["/endless"].error or "")
    assert results["/good"].error is None and results["/good"].body == FEED
    assert results["/cookies"].error is None and results["/cookies"].body == FEED
    assert "set-cookie" not in results["/cookies"].headers
    assert "cookie" not in server.hits("/good")[-1].headers  # nothing kept, nothing sent back


def test_local_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "feed.fifo"
    os.mkfifo(fifo)
    results = fetch_all([FetchRequest("fifo", str(fifo)), FetchRequest("dev", "/dev/zero"),
                         FetchRequest("dir", str(tmp_path)), FetchRequest("file", f"file://{fifo}")], FAST)
    for result in results:
        assert "not a regular file" in one_line(result)


def test_a_run_goes_on_past_every_hostile_source(site: Site, server: FeedServer, tmp_path: Path) -> None:
    local = tmp_path / "private.xml"  # a feed on the aggregator's disk, named by a server's body
    local.write_text(rss([item(7)]))
    server.routes["/good.xml"] = feed_response(rss([item(1)]))
    server.routes["/data"] = Response(302, headers={"Location": "data:text/plain,hi"})
    server.routes["/file"] = Response(302, headers={"Location": "file:feed.xml"})
    bomb = gzip.compress(gzip.compress(b"\0" * (8 << 20)))
    server.routes["/bomb"] = Response(200, bomb, {"Content-Encoding": "gzip"})
    server.routes["/path"] = Response(200, str(local).encode(), {"Content-Type": "application/rss+xml"})
    names = ["good", "data", "file", "bomb", "path"]
    sources = "".join(f"  - {{name: {n}, url: '{server.url('/good.xml' if n == 'good' else '/' + n)}'}}\n"
                      for n in names)
    text = (site.root / "config.yaml").read_text()
    site.write_config(text + "sources:\n" + sources + "fetch: {host_gap: 0, total_timeout: 5, max_bytes: 1000000}\n")
    report = site.generate()
    by_name = {o.name: o for o in report.sources}
    assert by_name["good"].status == "ok"
    for name in names[1:]:
        assert by_name[name].error and "\n" not in by_name[name].error, name
    assert "size limit" in (by_name["bomb"].error or "")
    assert [e.title for e in feedparser.parse((site.output / "all.atom.xml").read_bytes()).entries] == ["Story 1"]
