"""Fetch source feeds: the only module that speaks HTTP.

Polite by construction: a global limit on requests in flight, at most one
request at a time per host with a pause between two, an honest User-Agent,
conditional GET (ETag and Last-Modified), bounded redirects, and timeouts on
connecting, on each read and on the whole fetch. Bodies are read as a stream
and dropped once they pass the size cap, counted after decompression, so
neither a huge body nor a gzip bomb can exhaust memory. Local files (a source
``url`` that is a path) are read here too.

Every failure becomes a :class:`FetchResult` with a one-line ``error``; nothing
here raises for a bad server. Deciding what a result means for the schedule
is not done here (see ``schedule``).
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from . import PROJECT_URL, __version__
from .identity import is_web_url

USER_AGENT = f"feeds/{__version__} (+{PROJECT_URL})"
ACCEPT = ("application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, "
          "application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5")


@dataclass(frozen=True, slots=True)
class FetchSettings:
    concurrency: int = 16
    host_gap: float = 1.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    max_bytes: int = 16 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = USER_AGENT


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One source to fetch, with what the last answer said about caching."""

    source: str
    #: http(s) URL, or a local file path.
    url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    source: str
    #: The URL asked for, and the one the body came from after redirects.
    url: str
    final_url: str
    #: HTTP status of the last response (None when no response came).
    status: int | None = None
    #: The body (decompressed); None when not modified or on error.
    body: bytes | None = None
    #: Response headers, names in lower case.
    headers: dict[str, str] = field(default_factory=dict)
    not_modified: bool = False
    #: Where a permanent (301/308) redirect chain led, if the first hop was permanent.
    moved_to: str | None = None
    #: One line saying what went wrong, or None.
    error: str | None = None
    #: Seconds the server asked us to wait (Retry-After), if any.
    retry_after: float | None = None
    #: Cache-Control max-age, in seconds, if any.
    max_age: float | None = None
    #: The source is gone for good (410).
    gone: bool = False
    seconds: float = 0.0

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


class _TooLarge(Exception):
    pass


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def _max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() in ("max-age", "s-maxage") and value.strip().strip('"').isdigit():
            return float(value.strip().strip('"'))
    return None


def _describe(exc: BaseException) -> str:
    """One line for the user about a transport failure."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout):
        return "timed out waiting for the server"
    if isinstance(exc, TimeoutError):
        return "took too long (total timeout)"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc) or type(exc).__name__
        if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
            return f"TLS error: {text}"
        if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
            return f"cannot resolve host: {text}"
        return f"cannot connect: {text}"
    if isinstance(exc, httpx.DecodingError):
        return f"cannot decompress the body: {exc}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"broken HTTP answer: {exc}"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return f"invalid URL: {exc}"
    if isinstance(exc, _TooLarge):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Fetcher:
    """Fetches many sources concurrently, politely. ``transport`` is for tests."""

    def __init__(self, settings: FetchSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.transport = transport
        self._hosts: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}
        # One gate for every fetch_all on this fetcher: the global limit holds across calls.
        self._gate = asyncio.Semaphore(settings.concurrency)
        self._client: httpx.AsyncClient | None = None

    def _make_client(self) -> httpx.AsyncClient:
        s = self.settings
        timeout = httpx.Timeout(s.read_timeout, connect=s.connect_timeout)
        limits = httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency)
        headers = {"User-Agent": s.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
        return httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers, follow_redirects=False,
                                 transport=self.transport, trust_env=False)

    async def open(self) -> None:
        """Keep one client (and its connections) across ``fetch_all`` calls, as a daemon does."""
        if self._client is None:
            self._client = self._make_client()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch_all(self, requests: Sequence[FetchRequest]) -> list[FetchResult]:
        if self._client is not None:
            return await self._gather(self._client, requests)
        async with self._make_client() as client:
            return await self._gather(client, requests)

    async def _gather(self, client: httpx.AsyncClient, requests: Sequence[FetchRequest]) -> list[FetchResult]:
        max_bytes = self.settings.max_bytes

        async def one(request: FetchRequest) -> FetchResult:
            if not is_web_url(request.url):
                return await asyncio.to_thread(read_local, request, max_bytes)
            return await self._fetch(client, request)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _fetch(self, client: httpx.AsyncClient, request: FetchRequest) -> FetchResult:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.total_timeout):
                return await self._follow(client, request, started)
        except (httpx.HTTPError, TimeoutError, _TooLarge, OSError) as exc:
            return FetchResult(request.source, request.url, request.url, error=_describe(exc),
                               seconds=time.monotonic() - started)

    async def _follow(self, client: httpx.AsyncClient, request: FetchRequest, started: float) -> FetchResult:
        url = request.url
        seen = {url}
        moved_to: str | None = None
        permanent_chain = True
        conditional: dict[str, str] = {}
        if request.etag:
            conditional["If-None-Match"] = request.etag
        if request.last_modified:
            conditional["If-Modified-Since"] = request.last_modified
        for hop in range(self.settings.max_redirects + 1):
            host = urlsplit(url).netloc.lower()
            # One request at a time per host, a pause between two; the global gate is taken
            # only once it is this host's turn, so a slow host does not hold up the others.
            async with self._hosts.setdefault(host, asyncio.Lock()):
                wait = self._last.get(host, 0.0) + self.settings.host_gap - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    async with self._gate:
                        result = await self._get(client, request, url, conditional, started)
                finally:
                    self._last[host] = time.monotonic()
            if isinstance(result, FetchResult):
                if moved_to is not None and permanent_chain:
                    result = replace(result, moved_to=url)
                return replace(result, final_url=url)
            status, location = result
            if status in (301, 308):
                if hop == 0 or permanent_chain:
                    moved_to = urljoin(url, location)
            else:
                permanent_chain = False
            nxt = urljoin(url, location)
            if nxt in seen:
                return FetchResult(request.source, request.url, url, status=status,
                                   error=f"redirect loop at {nxt}", seconds=time.monotonic() - started)
            if not is_web_url(nxt):
                return FetchResult(request.source, request.url, url, status=status,
                                   error=f"redirect to a non-http URL: {nxt}", seconds=time.monotonic() - started)
            seen.add(nxt)
            url = nxt
        return FetchResult(request.source, request.url, url, error=f"more than {self.settings.max_redirects} redirects",
                           seconds=time.monotonic() - started)

    async def _get(self, client: httpx.AsyncClient, request: FetchRequest, url: str,
                   conditional: dict[str, str], started: float) -> FetchResult | tuple[int, str]:
        """The final result, or (status, Location) for a redirect to follow."""
        async with client.stream("GET", url, headers=conditional) as response:
            status = response.status_code
            headers = {k.lower(): v for k, v in response.headers.items()}
            now = time.time()
            if status in (301, 302, 303, 307, 308):
                location = headers.get("location")
                if not location:
                    return FetchResult(request.source, request.url, url, status=status, headers=headers,
                                       error=f"HTTP {status} without a Location header",
                                       seconds=time.monotonic() - started)
                return status, location
            base = FetchResult(request.source, request.url, url, status=status, headers=headers,
                               retry_after=_retry_after(headers.get("retry-after"), now),
                               max_age=_max_age(headers.get("cache-control")))
            if status == 304:
                return replace(base, not_modified=True, seconds=time.monotonic() - started)
            if status == 410:
                return replace(base, gone=True, error="HTTP 410 Gone: the source was removed for good",
                               seconds=time.monotonic() - started)
            if status >= 400:
                reason = f"HTTP {status} {response.reason_phrase or ''}".strip()
                return replace(base, error=reason, seconds=time.monotonic() - started)
            declared = headers.get("content-length", "")
            cap = self.settings.max_bytes
            if declared.isdigit() and int(declared) > cap and "content-encoding" not in headers:
                raise _TooLarge(f"body of {int(declared)} bytes is over the {cap}-byte limit")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise _TooLarge(f"body is over the {cap}-byte limit (after decompression)")
                chunks.append(chunk)
            return replace(base, body=b"".join(chunks), seconds=time.monotonic() - started)


def read_local(request: FetchRequest, max_bytes: int) -> FetchResult:
    """A local feed file, answered like HTTP: its mtime stands for Last-Modified."""
    path = Path(request.url.removeprefix("file://"))
    started = time.monotonic()
    try:
        st = path.stat()
        modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        if request.last_modified == modified:
            return FetchResult(request.source, request.url, request.url, status=304, not_modified=True,
                               headers={"last-modified": modified})
        if st.st_size > max_bytes:
            return FetchResult(request.source, request.url, request.url,
                               error=f"file of {st.st_size} bytes is over the {max_bytes}-byte limit")
        # O_NONBLOCK and a regular-file check: a FIFO or device opens at once and is refused.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return FetchResult(request.source, request.url, request.url, error="not a regular file")
            body = f.read(max_bytes + 1)
    except OSError as exc:
        return FetchResult(request.source, request.url, request.url, error=f"cannot read: {exc.strerror}")
    headers = {"last-modified": modified, "content-location": path.resolve().as_uri()}
    return FetchResult(request.source, request.url, request.url, status=200, body=body, headers=headers,
                       seconds=time.monotonic() - started)


def fetch_all(requests: Sequence[FetchRequest], settings: FetchSettings,
              transport: httpx.AsyncBaseTransport | None = None) -> list[FetchResult]:
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

