"""Fetch source feeds: the only module that speaks HTTP.

Polite by construction: a global limit on requests in flight, one request at a
time per host (fetches already under way, following a redirect, go first), a
pause after each download or error from a host (none after a 304 or a
redirect, so a pass where nothing changed is not slowed down), and a host that
answers 429 with Retry-After is left alone as long as it asks. An honest
User-Agent, conditional GET (ETag and Last-Modified), bounded redirects, and
no cookies kept. Beside other workers on one PostgreSQL state, a host's turn is also
taken across the cluster (:class:`SharedTurns`, handed in by the daemon), so the one
request at a time per host and the pause after it hold for every worker together.

Timeouts (connect, each read, and the whole fetch) count only the time a
source's requests actually run: waiting for the host's turn, for the pause
or for a global slot never counts, and waiting for a pause holds no slot.

Bodies are read as a stream and every compression layer is undone and counted
toward the size cap as it streams (``decoding``), so no body, bomb or bomb in
a bomb can exhaust memory. The headers handed on describe the decoded body.

Redirects may lead only to http(s) URLs, and from a public address only to
public addresses (``addresses``): host names are judged by what they resolve
to, both before a redirect is followed and when its connection is made.

Local files (a source ``url`` that is a path) are read here too.

Every failure becomes a :class:`~.results.FetchResult` with a :class:`~.results.FetchFailure`:
its kind, and a one-line message for the user; nothing here raises for a bad server or a bad
URL. Deciding what a result means for the schedule is not done here (see ``schedule``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import email.utils
import functools
import heapq
import http.cookiejar
import itertools
import os
import re
import socket
import ssl
import stat
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC
from pathlib import Path
from urllib.parse import urljoin

import httpcore
import httpx

from .. import PROJECT_URL, __version__
from ..config import Fetch
from ..identity import is_web_url
from ..posts import is_racy
from .addresses import (
    Classify,
    IPAddress,
    address_class,
    after_hop,
    classes_of,
    parse_address,
    refusal,
    trusted_classes,
)
from .decoding import BodyDecoder, DecodeError, TooLarge
from .discover import COMMON_PATHS, choose, common_candidates, feed_links, is_feed, is_html_page
from .results import FetchFailure, FetchRequest, FetchResult, SourceHTTP

USER_AGENT = f"feeds/{__version__} (+{PROJECT_URL})"
ACCEPT = ("application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, "
          "application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5")
#: What an article page (``full_text``) is asked for as.
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
#: Response headers handed on with a body: all describe the decoded body (no
#: Content-Encoding or Content-Length, so no later stage decodes it again).
KEPT_HEADERS = ("content-type", "content-language", "content-location", "etag", "last-modified", "cache-control",
                "expires", "date", "retry-after", "link")
#: Longest wait a server can ask for (Retry-After, max-age) that is taken literally.
LONGEST_WAIT = 30 * 86400.0
#: Longest URL quoted in an error message.
QUOTED_URL = 200
#: Hosts whose connection is kept open, idle, for their next request (the least recently asked
#: ones are closed beyond that): a pass over many hosts connects to each once, not once a source.
IDLE_HOSTS = 256


#: How the fetcher's requests go out (tests hand in ``httpx.MockTransport`` or one of their
#: own); named here so that the modules passing one along need not import the HTTP client.
Transport = httpx.AsyncBaseTransport
#: The same, for the one blocking request (``post_form``, the WebSub announcement).
BlockingTransport = httpx.BaseTransport

_CONFIGURED = Fetch()


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """How the fetcher works: the ``fetch:`` settings it reads (their meaning and defaults
    are the config's, :class:`feeds.config.Fetch`), and what only tests change."""

    concurrency: int = _CONFIGURED.concurrency
    host_gap: float = _CONFIGURED.host_gap
    connect_timeout: float = _CONFIGURED.connect_timeout
    read_timeout: float = _CONFIGURED.read_timeout
    total_timeout: float = _CONFIGURED.total_timeout
    max_bytes: int = _CONFIGURED.max_bytes
    max_redirects: int = _CONFIGURED.max_redirects
    allow_private_redirects: bool = _CONFIGURED.allow_private_redirects
    #: Longest a 429's Retry-After keeps a whole host alone (``fetch.max_backoff``): one source
    #: there asking for a month must not silence the host's other sources for a month.
    longest_host_block: float = _CONFIGURED.max_backoff
    user_agent: str = USER_AGENT
    #: How an address is judged (``addresses.address_class``); tests pass one that calls a
    #: loopback address public, as no test may reach a real public address.
    classify: Classify = field(default=address_class, compare=False, repr=False)

    @classmethod
    def from_config(cls, fetch: Fetch) -> FetchSettings:
        """The settings ``fetch:`` gives: every key of the same name, and ``max_backoff``."""
        same = {f.name: getattr(fetch, f.name) for f in fields(cls) if f.name in Fetch.model_fields}
        return cls(**same, longest_host_block=fetch.max_backoff)


class _Refused(Exception):
    """A redirect leads somewhere it may not; the message is the source's error."""


def _wait(seconds: float) -> float:
    return min(max(seconds, 0.0), LONGEST_WAIT)


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After value (delay or HTTP date), bounded; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return _wait(float(value[:12]))
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return _wait(when.timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        value = value.strip().strip('"')
        if name.lower() in ("max-age", "s-maxage") and value.isdigit():
            return _wait(float(value[:12]))
    return None


def _quote(url: str) -> str:
    return url if len(url) <= QUOTED_URL else url[:QUOTED_URL] + "..."


def _one_line(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= 300 else text[:300] + "..."


def _describe(exc: BaseException, total: float) -> FetchFailure:
    """What a transport failure was, in one line for the user."""
    if isinstance(exc, httpx.ConnectTimeout):
        return FetchFailure("timeout", "timed out connecting")
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout):
        return FetchFailure("timeout", "timed out waiting for the server")
    if isinstance(exc, TimeoutError):
        return FetchFailure("timeout", f"took too long (total timeout of {total:g} s)")
    text = _one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, _Refused):
        return FetchFailure("refused", text)
    if isinstance(exc, TooLarge):
        return FetchFailure("too large", text)
    if isinstance(exc, DecodeError):
        return FetchFailure("decode", text)
    if isinstance(exc, httpx.ConnectError):
        # httpx says what failed only in its message.
        if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
            return FetchFailure("tls", f"TLS error: {text}")
        if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
            return FetchFailure("dns", f"cannot resolve host: {text}")
        return FetchFailure("connect", f"cannot connect: {text}")
    if isinstance(exc, socket.gaierror):
        return FetchFailure("dns", f"cannot resolve host: {text}")
    if isinstance(exc, httpx.DecodingError):
        return FetchFailure("decode", f"cannot decompress the body: {text}")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return FetchFailure("protocol", f"broken HTTP answer: {text}")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return FetchFailure("url", f"invalid URL: {text}")
    if isinstance(exc, OSError) and exc.strerror:
        return FetchFailure("network", f"network error: {exc.strerror}")
    return FetchFailure("unexpected", f"{type(exc).__name__}: {text}")


def parse_url(url: str) -> httpx.URL | str:
    """``url`` parsed, or a one-line reason it cannot be fetched over HTTP."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError) as exc:
        return f"invalid URL {_quote(url)!r}: {_one_line(str(exc))}"
    if parsed.scheme not in ("http", "https"):
        return f"not an http(s) URL: {_quote(url)}"
    if not parsed.raw_host:
        return f"URL without a host: {_quote(url)}"
    return parsed


def _next_url(url: str, location: str) -> str | None:
    try:
        return urljoin(url, location.strip())
    except ValueError:
        return None


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (getaddrinfo, as a connection would)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = [parse_address(str(info[4][0])) for info in infos]
    return [ip for ip in found if ip is not None]


#: Non-public address classes the current request may connect to; None: any (a configured URL).
_TRUSTED: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar("feeds_fetch_trusted",
                                                                                 default=None)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only where the request may go: resolves the host itself, checks each
    address, and connects to a checked address, so a host name that changes what it
    resolves to between the check and the connection (DNS rebinding) gains nothing."""

    def __init__(self, classify: Classify = address_class) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.classify = classify

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        trusted = _TRUSTED.get()
        if trusted is None:
            return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            addresses = await asyncio.wait_for(_resolve(host, port), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out resolving {host}") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        reason = refusal(trusted, addresses, self.classify)
        if reason is not None:
            raise _Refused(reason)
        last: Exception = httpcore.ConnectError(f"{host} has no address")
        for ip in dict.fromkeys(addresses):
            try:
                return await self.inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The certificate store, loaded once per process (it takes a good part of a second)."""
    return httpx.create_ssl_context(trust_env=False)


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS context of a source's ``tls_verify``: the certificate store (True), no check
    (False), or the CA bundle at that path; OSError or ssl.SSLError for an unusable bundle."""
    if verify is True:
        return _tls_context()
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify)


def tls_problem(verify: bool | str) -> str | None:
    """Why a source's ``tls_verify`` cannot be used (a CA bundle missing or not PEM), or None."""
    if isinstance(verify, bool):
        return None
    try:
        tls_context(verify)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return f"the CA bundle {verify} (tls_verify) cannot be used: {_one_line(str(exc)) or type(exc).__name__}"
    return None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


class _Asking(typing.NamedTuple):
    """What a source sends besides the URL: its headers and credentials (to its own origin only)."""

    origin: tuple[str, str, int | None] | None
    user_agent: str | None
    headers: dict[str, str]
    auth: httpx.BasicAuth | None

    def headers_for(self, target: httpx.URL) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        own = self.origin is not None and _origin(target) == self.origin
        headers = dict(self.headers) if own else {}
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        return headers, self.auth if own else None


_ASK_PLAINLY = _Asking(None, None, {}, None)


def _asking(http: SourceHTTP | None) -> _Asking | FetchFailure:
    """How ``http`` says to ask; the password is read from its environment variable now."""
    if http is None:
        return _ASK_PLAINLY
    home = parse_url(http.home)
    origin = _origin(home) if isinstance(home, httpx.URL) else None
    auth = None
    if http.username is not None and http.password_env is not None:
        password = os.environ.get(http.password_env)
        if not password:
            return FetchFailure("auth", f"the environment variable {http.password_env} (auth.password_env) is "
                                        "not set: it must hold the password for basic authentication")
        auth = httpx.BasicAuth(http.username, password)
    return _Asking(origin, http.user_agent, dict(http.headers), auth)


#: One host's transport, and its pool of connections.
_HostTransport = tuple[httpx.AsyncHTTPTransport, httpcore.AsyncConnectionPool]


class _HostTransports(httpx.AsyncBaseTransport):
    """The transport: one pool of connections for each host (and scheme and port), at most
    :data:`IDLE_HOSTS` of them kept, each with a network backend that checks where it connects.

    One pool for every host would keep only its last few connections alive while a pass
    asks one host after another: each request would connect anew. A host's pool is small
    (a host is asked one request at a time), so finding a connection never scans every
    other host's; the least recently asked pool is closed once it is idle and there are too many."""

    def __init__(self, tls: ssl.SSLContext, limits: httpx.Limits, backend: httpcore.AsyncNetworkBackend) -> None:
        self.tls = tls
        self.limits = limits
        self.backend = backend
        #: By origin, the most recently asked last: each transport and its pool.
        self.hosts: dict[tuple[str, str, int | None], _HostTransport] = {}

    def _new(self) -> _HostTransport:
        limits = self.limits
        transport = httpx.AsyncHTTPTransport(verify=self.tls, limits=limits, trust_env=False)
        # The pool httpx would build, with the checking backend.
        pool = transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=self.tls, max_connections=limits.max_connections, max_keepalive_connections=1,
            keepalive_expiry=limits.keepalive_expiry, network_backend=self.backend)
        return transport, pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = _origin(request.url)
        host = self.hosts.pop(origin, None) or self._new()
        self.hosts[origin] = host
        if len(self.hosts) > IDLE_HOSTS:
            for old in list(self.hosts)[:len(self.hosts) - IDLE_HOSTS]:
                transport, pool = self.hosts[old]
                if all(connection.is_idle() for connection in pool.connections):
                    del self.hosts[old]
                    await transport.aclose()
        return await host[0].handle_async_request(request)

    async def aclose(self) -> None:
        hosts, self.hosts = list(self.hosts.values()), {}
        for transport, _ in hosts:
            await transport.aclose()


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Keep no cookie: sources must not track the aggregator, nor one source affect another."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: typing.Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: typing.Any) -> bool:
        return False


class _HostTurns:
    """Whose turn it is on one host: one request at a time, lowest priority first, then
    first come; ``free_at`` is when the pause after the last request ends."""

    def __init__(self) -> None:
        #: Priorities: 0 for a fetch under way (following a redirect), 1 for a first request.
        self.busy = False
        self.queue: list[tuple[int, int, asyncio.Future[None]]] = []
        self.order = itertools.count()
        self.free_at = 0.0
        #: The host asked to be left alone until then (429 with Retry-After).
        self.blocked_until = 0.0

    async def acquire(self, priority: int) -> None:
        if not self.busy and not self.queue:
            self.busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.queue, (priority, next(self.order), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed the turn just as it was cancelled: pass it on
            raise

    def release(self) -> None:
        while self.queue:
            _, _, turn = heapq.heappop(self.queue)
            if not turn.done():
                turn.set_result(None)  # the turn passes on; the host stays busy
                return
        self.busy = False


class SharedTurn(typing.Protocol):
    """A host's turn held across the cluster (see :class:`SharedTurns`)."""

    #: Seconds the pause after the host's last request, by any worker, still lasts.
    wait: float

    def give_back(self, pause: float) -> None:
        """Let the next worker ask the host, ``pause`` seconds from now at the earliest (blocks)."""


class SharedTurns(typing.Protocol):
    """Turns on hosts shared with other processes: one request in flight per host among them."""

    def take(self, host: str) -> SharedTurn:
        """Wait until nobody else asks ``host`` and hold its turn (blocks)."""

    def may_ask(self, source: str) -> bool:
        """Whether ``source`` may still be asked for now (this worker's lease on it holds),
        asked once the host's turn came, right before the request goes."""


class Fetcher:
    """Fetches many sources concurrently, politely. ``transport`` is for tests; ``shared``
    takes each host's turn across other workers too."""

    def __init__(self, settings: FetchSettings, transport: Transport | None = None,
                 shared: SharedTurns | None = None) -> None:
        self.settings = settings
        self.transport = transport
        self.shared = shared
        # Taking a turn blocks until the host is free; giving one back never waits for that.
        self._taking: concurrent.futures.ThreadPoolExecutor | None = None
        self._giving: concurrent.futures.ThreadPoolExecutor | None = None
        if shared is not None:
            self._taking = concurrent.futures.ThreadPoolExecutor(settings.concurrency, "host-turns")
            self._giving = concurrent.futures.ThreadPoolExecutor(2, "host-turns-back")
        self._hosts: dict[str, _HostTurns] = {}
        # One gate for every fetch_all on this fetcher: the global limit holds across calls.
        self._gate = asyncio.Semaphore(settings.concurrency)
        self._client: httpx.AsyncClient | None = None
        #: Clients for sources with their own ``tls_verify`` (by its value), made when first needed.
        self._tls_clients: dict[bool | str, httpx.AsyncClient] = {}

    def _make_client(self, tls: ssl.SSLContext | None = None) -> httpx.AsyncClient:
        s = self.settings
        timeout = httpx.Timeout(s.read_timeout, connect=s.connect_timeout, pool=s.connect_timeout)
        limits = httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency)
        headers = {"User-Agent": s.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
        transport = self.transport
        if transport is None:
            tls = tls or _tls_context()
            transport = _HostTransports(tls, limits, GuardedBackend(s.classify))
        jar = http.cookiejar.CookieJar(policy=_NoCookies())
        return httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers, follow_redirects=False,
                                 transport=transport, trust_env=False, cookies=jar)

    async def open(self) -> None:
        """Keep one client (and its connections) across ``fetch_all`` calls, as a daemon does."""
        if self._client is None:
            self._client = self._make_client()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await self._close_tls_clients()
        for pool in (self._taking, self._giving):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    async def _take_shared(self, host: str) -> SharedTurn | None:
        """This host's turn across the cluster (None without one to share with)."""
        if self.shared is None or self._taking is None:
            return None
        loop = asyncio.get_running_loop()
        taking = loop.run_in_executor(self._taking, self.shared.take, host)
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:
            # The turn may still come: then it goes straight back.
            taking.add_done_callback(lambda f: None if f.cancelled() or f.exception() is not None
                                     else self._give_back(f.result(), 0.0))
            raise

    def _give_back(self, turn: SharedTurn, pause: float) -> None:
        """Hand ``turn`` back from a thread of its own (the next worker's wait ends then)."""
        assert self._giving is not None
        future = self._giving.submit(turn.give_back, pause)
        future.add_done_callback(lambda f: None if f.cancelled() else f.exception())

    async def _close_tls_clients(self) -> None:
        clients, self._tls_clients = list(self._tls_clients.values()), {}
        for client in clients:
            await client.aclose()

    def _client_for(self, client: httpx.AsyncClient, request: FetchRequest) -> httpx.AsyncClient | FetchFailure:
        """``client``, or the one for the source's own ``tls_verify``."""
        verify = request.http.tls_verify if request.http is not None else True
        if verify is True or self.transport is not None:
            return client
        own = self._tls_clients.get(verify)
        if own is None:
            problem = tls_problem(verify)
            if problem is not None:
                return FetchFailure("tls", problem)
            own = self._tls_clients[verify] = self._make_client(tls_context(verify))
        return own

    async def fetch_all(self, requests: Sequence[FetchRequest]) -> list[FetchResult]:
        if self._client is not None:
            return await self._gather(self._client, requests)
        try:
            async with self._make_client() as client:
                return await self._gather(client, requests)
        finally:
            await self._close_tls_clients()

    async def _gather(self, client: httpx.AsyncClient, requests: Sequence[FetchRequest]) -> list[FetchResult]:
        return list(await asyncio.gather(*(self.fetch_one(client, r) for r in requests)))

    async def fetch_each(self, requests: Sequence[FetchRequest], handle: Callable[[int, FetchResult], None],
                         room: asyncio.Semaphore | None = None) -> None:
        """Fetch every request (concurrently), handing each result to ``handle(index, result)``
        as soon as it comes, rather than all of them at the end.

        With ``room``, a download takes one of its places before it starts (once its host's
        turn has come, so a host with many sources never holds up the others), and a result
        with a body keeps it: whoever consumes the body releases it. So at most that many
        bodies wait in memory when the network outpaces their consumer."""
        async def one(client: httpx.AsyncClient, index: int, request: FetchRequest) -> None:
            handle(index, await self.fetch_one(client, request, room))

        if self._client is not None:
            await asyncio.gather(*(one(self._client, i, r) for i, r in enumerate(requests)))
            return
        try:
            async with self._make_client() as client:
                await asyncio.gather(*(one(client, i, r) for i, r in enumerate(requests)))
        finally:
            await self._close_tls_clients()

    async def fetch_one(self, client: httpx.AsyncClient, request: FetchRequest,
                        room: asyncio.Semaphore | None = None) -> FetchResult:
        """One source's result; whatever happens, never an exception. ``room``: see :meth:`fetch_each`."""
        try:
            match = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):", request.url)
            scheme = match[1].lower() if match else ""
            if scheme not in ("http", "https"):
                if scheme not in ("", "file"):
                    return FetchResult(request.source, request.url, request.url,
                                       failure=FetchFailure("url", f"not an http(s) URL or a file: "
                                                                   f"{_quote(request.url)}"))
                if room is not None:
                    await room.acquire()
                try:
                    local = await asyncio.to_thread(read_local, request, self.settings.max_bytes)
                finally:
                    if room is not None and not _has_body(local):
                        room.release()
                return local
            own = self._client_for(client, request)
            if isinstance(own, FetchFailure):
                return FetchResult(request.source, request.url, request.url, failure=own)
            return await self._follow(own, request, room)
        except Exception as exc:  # the promise: a fetch never raises for a bad server or URL
            return FetchResult(request.source, request.url, request.url,
                               failure=_describe(exc, self.settings.total_timeout))

    async def _follow(self, client: httpx.AsyncClient, request: FetchRequest,
                      room: asyncio.Semaphore | None = None, *, discover: bool = True) -> FetchResult:
        """The source's result: its URL and redirects followed and, when that gives an HTML
        page (and ``discover``), the feed the page leads to (:meth:`_discover`). An article
        page (``request.page_of``) is never searched for a feed."""
        spent = [0.0]
        chain: list[frozenset[str] | None] = [None]
        if request.page_of is not None:
            return await self._article_page(client, request, spent)
        result = await self._chain(client, request, room, trusted=None, spent=spent, chain=chain)
        if (not discover or result.body is None
                or not is_html_page(result.body, result.headers.get("content-type"))):
            return result
        return await self._discover(client, request, result, room, chain[0], spent)

    async def _article_page(self, client: httpx.AsyncClient, request: FetchRequest, spent: list[float]
                            ) -> FetchResult:
        """An item's article page (``full_text``), asked for as a redirect from the feed that
        links to it would be: from a feed on a public address, only a public address (unless
        ``fetch.allow_private_redirects``); from a local feed file, anywhere, as configured."""
        s = self.settings
        assert request.page_of is not None
        trusted: frozenset[str] | None = None
        feed_url = parse_url(request.page_of)
        if not s.allow_private_redirects and isinstance(feed_url, httpx.URL):
            target = parse_url(request.url)
            if not isinstance(target, str) and target.userinfo:
                return FetchResult(request.source, request.url, request.url, failure=FetchFailure(
                    "refused", f"an article link with a user name or password refused: {_quote(request.url)}"))
            try:
                classes = await asyncio.wait_for(self._classes(feed_url, check=None), s.connect_timeout)
            except (OSError, TimeoutError) as exc:
                return FetchResult(request.source, request.url, request.url, failure=FetchFailure(
                    "dns", "cannot resolve host: " + (_one_line(str(exc)) or type(exc).__name__)))
            trusted = after_hop(trusted_classes(classes), classes)
        return await self._chain(client, request, None, trusted=trusted, spent=spent, chain=[None])

    async def _discover(self, client: httpx.AsyncClient, request: FetchRequest, page: FetchResult,
                        room: asyncio.Semaphore | None, trusted: frozenset[str] | None,
                        spent: list[float]) -> FetchResult:
        """The feed an HTML ``page`` leads to: the one its feed links name, else the first
        of the common paths at its site's root that answers with a feed.

        A feed found is asked for as a redirect from the page would be: from a public
        page, only a public address (unless ``fetch.allow_private_redirects``)."""
        s = self.settings
        assert page.body is not None
        links = feed_links(page.body, page.final_url)
        if room is not None:
            room.release()  # the page's body is let go here
        page_url = parse_url(page.final_url)
        if not s.allow_private_redirects and isinstance(page_url, httpx.URL):
            try:
                classes = await asyncio.wait_for(self._classes(page_url, check=None), s.connect_timeout)
            except (OSError, TimeoutError) as exc:
                return FetchResult(request.source, request.url, page.final_url, status=page.status, seconds=spent[0],
                                   failure=FetchFailure("dns", "cannot resolve host: "
                                                               + (_one_line(str(exc)) or type(exc).__name__)))
            trusted = after_hop(trusted_classes(classes) if trusted is None else trusted, classes)
        else:
            trusted = None

        async def attempt(url: str) -> FetchResult:
            parsed = parse_url(url)
            if not isinstance(parsed, str) and parsed.userinfo and not s.allow_private_redirects:
                return FetchResult(request.source, url, url, failure=FetchFailure(
                    "refused", f"a feed link with a user name or password refused: {_quote(url)}"))
            found = await self._chain(client, replace(request, url=url, etag=None, last_modified=None), room,
                                      trusted=trusted, spent=spent, chain=[None])
            if found.body is not None and not is_feed(found.body) and room is not None:
                room.release()
            return found

        def fail(message: str) -> FetchResult:
            return FetchResult(request.source, request.url, page.final_url, status=page.status, seconds=spent[0],
                               failure=FetchFailure("discovery", message))

        chosen = choose(links)
        if chosen is not None:
            found = await attempt(chosen)
            if found.body is not None and is_feed(found.body):
                return replace(found, url=request.url, discovered=chosen, seconds=spent[0])
            why = found.error or "it is not an RSS, Atom or JSON feed"
            return fail(f"the URL gives an HTML page whose feed link {_quote(chosen)} failed: {why}")
        for candidate in common_candidates(page.final_url):
            found = await attempt(candidate)
            if found.body is not None and is_feed(found.body):
                return replace(found, url=request.url, discovered=candidate, seconds=spent[0])
            if found.failure is not None and found.failure.kind in ("timeout", "throttled", "refused"):
                break  # the site is not answering, or may not be asked: no use trying the others
        return fail("the URL gives an HTML page, not a feed, and no feed was found from it (no <link "
                    'rel="alternate"> of RSS, Atom or JSON Feed type, and none at ' + ", ".join(COMMON_PATHS) + ")")

    async def _chain(self, client: httpx.AsyncClient, request: FetchRequest, room: asyncio.Semaphore | None, *,
                     trusted: frozenset[str] | None, spent: list[float],
                     chain: list[frozenset[str] | None]) -> FetchResult:
        """``request``'s URL with its redirects followed; ``trusted``: the non-public
        address classes it may reach (None: any, for a configured URL); ``chain[0]`` is set
        to what the last request of the chain was trusted with."""
        s = self.settings
        url = request.url
        target = parse_url(url)
        if isinstance(target, str):
            return FetchResult(request.source, request.url, url, failure=FetchFailure("url", target))
        seen = {url}
        moved_to: str | None = None
        permanent_chain = True
        conditional: dict[str, str] = {}
        if request.etag:
            conditional["If-None-Match"] = request.etag
        if request.last_modified:
            conditional["If-Modified-Since"] = request.last_modified
        asking = _asking(request.http)
        if isinstance(asking, FetchFailure):
            return FetchResult(request.source, request.url, url, failure=asking)

        def failed(failure: FetchFailure, status: int | None = None) -> FetchResult:
            return FetchResult(request.source, request.url, url, status=status, failure=failure, seconds=spent[0])

        for hop in range(s.max_redirects + 1):
            chain[0] = trusted
            try:
                result = await self._hop(client, request, target, conditional, trusted, priority=0 if hop else 1,
                                         spent=spent, room=room, asking=asking)
            except TimeoutError:
                return failed(FetchFailure("timeout", f"took too long (total timeout of {s.total_timeout:g} s)"))
            except httpx.InvalidURL:
                # ``target`` is already a parsed URL: only a redirect's Location can be invalid here
                # (httpx reads it before handing the answer over, e.g. "javascript:alert(1)").
                return failed(FetchFailure("redirect", "redirect to an unusable URL (a Location that is not an "
                                                       "http(s) address)"))
            except Exception as exc:
                return failed(_describe(exc, s.total_timeout))
            if isinstance(result, FetchResult):
                if moved_to is not None and permanent_chain:
                    result = replace(result, moved_to=url)
                return replace(result, final_url=url, seconds=spent[0])
            status, location, hop_classes = result
            nxt = _next_url(url, location)
            parsed = parse_url(nxt) if nxt is not None else f"invalid URL {_quote(location)!r}"
            if nxt is None or isinstance(parsed, str):
                return failed(FetchFailure("redirect", f"HTTP {status} redirect to an unusable URL: {parsed}"), status)
            if status in (301, 308):
                if hop == 0 or permanent_chain:
                    moved_to = nxt
            else:
                permanent_chain = False
            if nxt in seen:
                return failed(FetchFailure("redirect", f"redirect loop at {_quote(nxt)}"), status)
            if not s.allow_private_redirects:
                if parsed.userinfo:
                    return failed(FetchFailure("refused", "redirect to a URL with a user name or password refused: "
                                                          + _quote(nxt)), status)
                try:
                    if hop_classes is None:  # the configured URL: the classes it resolves to are trusted
                        hop_classes = await asyncio.wait_for(self._classes(target, check=None), s.connect_timeout)
                except (OSError, TimeoutError) as exc:
                    return failed(FetchFailure("dns", "cannot resolve host: "
                                                          + (_one_line(str(exc)) or type(exc).__name__)), status)
                trusted = after_hop(trusted_classes(hop_classes) if trusted is None else trusted, hop_classes)
            seen.add(nxt)
            url, target = nxt, parsed
        return failed(FetchFailure("redirect", f"more than {s.max_redirects} redirects"))

    async def _hop(self, client: httpx.AsyncClient, request: FetchRequest, target: httpx.URL,
                   conditional: dict[str, str], trusted: frozenset[str] | None, *, priority: int,
                   spent: list[float], room: asyncio.Semaphore | None = None, asking: _Asking = _ASK_PLAINLY
                   ) -> FetchResult | tuple[int, str, frozenset[str] | None]:
        """One request, when its host's turn comes; only the request itself counts toward the timeouts.

        Returns the final result, or (status, Location, classes of the addresses
        checked for this hop) for a redirect to follow."""
        s = self.settings
        host = self._hosts.setdefault(target.host, _HostTurns())
        await host.acquire(priority)
        pause = True
        shared: SharedTurn | None = None
        try:
            now = time.monotonic()
            if host.blocked_until > now:
                wait = host.blocked_until - now
                pause = False
                return FetchResult(request.source, request.url, str(target), retry_after=wait,
                                   failure=FetchFailure("throttled", f"not fetched: {target.host} answered HTTP 429 "
                                                                     f"with Retry-After; left alone for {wait:.0f} s"))
            if host.free_at > now:
                await asyncio.sleep(host.free_at - now)
            shared = await self._take_shared(target.host)
            if shared is not None and shared.wait > 0:
                await asyncio.sleep(shared.wait)
            if self.shared is not None and request.page_of is None and not self.shared.may_ask(request.source):
                # The wait outlasted the lease: another worker may be asking for it already.
                pause = False
                return FetchResult(request.source, request.url, str(target), failure=FetchFailure(
                    "lease", "not fetched: the lease on this source lapsed while waiting for its host's turn"))
            if room is not None:
                await room.acquire()
            result = None
            try:
                async with self._gate:
                    started = time.monotonic()
                    try:
                        async with asyncio.timeout(max(s.total_timeout - spent[0], 0.001)):
                            hop_classes = None if trusted is None else await self._classes(target, check=trusted)
                            token = _TRUSTED.set(trusted)
                            try:
                                result = await self._get(client, request, target, conditional, asking)
                            finally:
                                _TRUSTED.reset(token)
                    finally:
                        spent[0] += time.monotonic() - started
            finally:
                if room is not None and not _has_body(result):
                    room.release()
            if isinstance(result, FetchResult):
                pause = result.status != 304
                # 429 is about how often this client asks the host: it holds for every source there.
                # A 503 may be one site among many on a shared host, so it holds for its source only.
                if result.status == 429 and result.retry_after:
                    host.blocked_until = time.monotonic() + min(result.retry_after, s.longest_host_block)
                return result
            pause = False
            return (*result, hop_classes)
        finally:
            host.free_at = time.monotonic() + (s.host_gap if pause else 0.0)
            if shared is not None:
                self._give_back(shared, s.host_gap if pause else 0.0)
            host.release()

    async def _classes(self, target: httpx.URL, check: frozenset[str] | None) -> frozenset[str]:
        """The address classes of ``target``'s host; with ``check``, refuse one it may not reach.

        A configured URL is resolved only once it redirects (its classes say where
        the chain may go), so a pass without redirects costs no look-up."""
        host = target.raw_host.decode("ascii", "replace")
        addresses = await _resolve(host, target.port or (443 if target.scheme == "https" else 80))
        if check is not None:
            reason = refusal(check, addresses, self.settings.classify)
            if reason is not None:
                raise _Refused(reason)
        return classes_of(addresses, self.settings.classify)

    async def _get(self, client: httpx.AsyncClient, request: FetchRequest, target: httpx.URL,
                   conditional: dict[str, str], asking: _Asking = _ASK_PLAINLY) -> FetchResult | tuple[int, str]:
        """The final result, or (status, Location) for a redirect to follow."""
        url = str(target)
        headers, auth = asking.headers_for(target)
        headers.update(conditional)
        if request.page_of is not None:
            headers["Accept"] = PAGE_ACCEPT
        async with client.stream("GET", target, headers=headers, auth=auth) as response:
            status = response.status_code
            raw_headers = response.headers
            headers = {name: _one_line(raw_headers[name])[:1000] for name in KEPT_HEADERS if name in raw_headers}
            now = time.time()
            if status in (301, 302, 303, 307, 308):
                location = raw_headers.get("location", "").strip()
                if not location:
                    return FetchResult(request.source, request.url, url, status=status, headers=headers,
                                       failure=FetchFailure("http", f"HTTP {status} without a Location header"))
                return status, location
            base = FetchResult(request.source, request.url, url, status=status, headers=headers,
                               retry_after=_retry_after(raw_headers.get("retry-after"), now),
                               max_age=_max_age(raw_headers.get("cache-control")))
            if status == 304:
                # HTTP gives a 304 no body: reading its end lets the connection serve the next request.
                await response.aread()
                return replace(base, not_modified=True)
            if status == 410:
                return replace(base, failure=FetchFailure("gone", "HTTP 410 Gone: the source was removed for good"))
            if status >= 400 or status < 200:
                reason = f"HTTP {status} {_one_line(response.reason_phrase or '')[:100]}".strip()
                return replace(base, failure=FetchFailure("http", reason))
            return replace(base, body=await self._read_body(response))

    async def _read_body(self, response: httpx.Response) -> bytes:
        """The decoded body; every layer counts toward the cap as it streams."""
        cap = self.settings.max_bytes
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared[:20]) > cap:
            raise TooLarge(f"body of {int(declared[:20])} bytes is over the size limit of {cap} bytes")
        decoder = BodyDecoder(response.headers.get("content-encoding"), cap)
        chunks: list[bytes] = []
        raw = 0
        # A response built in memory (a test's mock transport) has its bytes already, as sent.
        stream = _once(response.content) if response.is_stream_consumed else response.aiter_raw()
        async for chunk in stream:
            raw += len(chunk)
            if raw > cap:
                raise TooLarge(f"body is over the size limit of {cap} bytes")
            chunks.extend(decoder.feed(chunk))
        chunks.extend(decoder.finish())
        return b"".join(chunks)


def _has_body(result: object) -> bool:
    return isinstance(result, FetchResult) and result.body is not None


async def _once(data: bytes) -> typing.AsyncIterator[bytes]:
    yield data


def read_local(request: FetchRequest, max_bytes: int) -> FetchResult:
    """A local feed file, answered like HTTP: its mtime stands for Last-Modified.

    Only regular files: a FIFO, device or socket is refused, never read (it is
    opened without blocking, then checked)."""
    path = Path(request.url.removeprefix("file://"))
    started = time.monotonic()
    read_at = time.time_ns()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return FetchResult(request.source, request.url, request.url,
                               failure=FetchFailure("file", "not a regular file (a FIFO, device or folder cannot "
                                                            "be a source)"))
        with open(fd, "rb") as f:
            modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            if request.last_modified == modified:
                return FetchResult(request.source, request.url, request.url, status=304, not_modified=True,
                                   headers={"last-modified": modified})
            if st.st_size > max_bytes:
                return FetchResult(request.source, request.url, request.url,
                                   failure=FetchFailure("too large", f"file of {st.st_size} bytes is over the size "
                                                                     f"limit of {max_bytes} bytes"))
            body = f.read(max_bytes + 1)
    except OSError as exc:
        return FetchResult(request.source, request.url, request.url,
                           failure=FetchFailure("file", f"cannot read: {exc.strerror or type(exc).__name__}"))
    if len(body) > max_bytes:
        return FetchResult(request.source, request.url, request.url,
                           failure=FetchFailure("too large", f"file is over the size limit of {max_bytes} bytes"))
    headers = {"last-modified": modified, "content-location": path.resolve().as_uri()}
    if is_racy(st.st_mtime_ns, read_at):
        # Saved again within the same second, it would keep this Last-Modified: not kept, so
        # the next fetch reads the file again.
        del headers["last-modified"]
    return FetchResult(request.source, request.url, request.url, status=200, body=body, headers=headers,
                       seconds=time.monotonic() - started)


def fetch_all(requests: Sequence[FetchRequest], settings: FetchSettings,
              transport: Transport | None = None) -> list[FetchResult]:
    """Fetch every request (concurrently) and return the results in the same order."""
    if not requests:
        return []
    return asyncio.run(Fetcher(settings, transport).fetch_all(requests))


def resolve_local(url: str, root: Path) -> str:
    """A source URL with a relative file path made absolute against ``root``."""
    if is_web_url(url):
        return url
    path = Path(url.removeprefix("file://")).expanduser()
    return str(path if path.is_absolute() else (root / path).resolve())



@dataclass(frozen=True, slots=True)
class PostResult:
    """What a form POST (a WebSub hub's ``hub.mode=publish``) came to."""

    url: str
    #: HTTP status of the answer; None when none came.
    status: int | None = None
    #: One line saying why no answer came, or None.
    error: str | None = None


def post_form(url: str, form: dict[str, str | list[str]], *, timeout: float,
              transport: BlockingTransport | None = None) -> PostResult:
    """POST ``form`` (a list value repeats its field) to the configured ``url``: the fetcher's
    User-Agent, no cookies, no proxy from the environment, no redirect followed, the answer's
    body never read. Whatever happens, never an exception. ``transport`` is for tests."""
    target = parse_url(url)
    if isinstance(target, str):
        return PostResult(url, error=target)
    try:
        with httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False,
                          transport=transport, trust_env=False, verify=_tls_context(),
                          cookies=http.cookiejar.CookieJar(policy=_NoCookies())) as client, \
                client.stream("POST", target, data=form) as response:
            return PostResult(url, status=response.status_code)
    except Exception as exc:  # the promise: a bad hub or URL is a result, not an exception
        return PostResult(url, error=_describe(exc, timeout).message)
