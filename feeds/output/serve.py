"""Serve the output folder over HTTP, for feed readers and previews.

Reads files in the output folder and nothing else. :mod:`feeds.output.http1` speaks
HTTP (parsing, keep-alive, pipelining, limits, timeouts); this module decides
what each request gets (with the pure rules in :mod:`feeds.output.negotiate`, and
the names and media types of :mod:`feeds.layout`): the
right Content-Type, a browser's HTML view of a feed at the feed's own address (its page, or its
stylesheet applied here, as browsers no longer apply XSLT), a strong ETag and
Last-Modified with 304 answers, HEAD, gzip when the client accepts it, 405 for
other methods, and nothing outside the folder or hidden in it.

Files are looked up with one ``stat`` per request, so a file the publisher
replaced (temp file + rename) is served from its next request on; the bytes of
a small file are cached with their ETag and gzip form, keyed on the file's
device, inode, size and mtime, under a total byte budget. Large files are
streamed from an open descriptor, so a rename mid-answer never mixes versions.

One event loop serves any number of connections. A connection that makes no
progress for ``idle_timeout`` seconds (no complete request, no response bytes
taken by the client) is closed, so idle, trickling or never-reading clients
cannot pile up; past ``max_connections`` new ones get a 503.

:class:`BackgroundServer` runs on its own thread (``feeds run --serve``);
:func:`serve_forever` is ``feeds serve``: worker processes sharing one
listening socket, stopped cleanly by SIGTERM or SIGINT; SIGHUP does not stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import logging
import os
import resource
import signal
import socket
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..layout import FORMATS, INDEX_NAME, MEDIA_TYPES, PAGE_SUFFIX, XML_FORMATS, XSL_NAME, is_feed_file
from ..render.view import feed_page
from . import http1, negotiate

log = logging.getLogger("feeds")

IDLE_TIMEOUT = 15.0  # seconds without progress before a connection is closed
GRACE = 3.0  # seconds that requests in flight get to finish when the server stops
CACHE_BYTES = 32 * 1024 * 1024  # bytes and gzip bytes kept per process
CACHE_FILE_MAX = 2 * 1024 * 1024  # larger files are streamed, never held in memory
CACHE_ENTRIES = 4096
#: Where the page made of a feed is cached (a name no request can look up: it starts with NUL).
VIEW_PREFIX = "\x00view:"
GZIP_MIN = 256  # smaller bodies gain nothing from gzip
MAX_CONNECTIONS = 10_000
REPLACED_RETRIES = 5  # lookups of a large file that keeps being replaced before a 503

#: A name answered by a function: the body and its Content-Type, made for each request.
Endpoint = Callable[[], tuple[bytes, str]]


@dataclass
class _File:
    """One version of one file: what its answers need."""

    key: tuple[int, int, int, int]  # device, inode, size, mtime in ns
    real: str
    etag: str
    modified: str  # the Last-Modified value
    mtime: float
    data: bytes | None  # None: too large to cache, streamed from disk
    zipped: bytes | None = None  # b"": gzip does not make it smaller
    made_from: str = ""  # a page made of a feed: the ETags of the feed and the stylesheet it was made from

    @property
    def weight(self) -> int:
        return len(self.data or b"") + len(self.zipped or b"")


class _Cache:
    """Least recently used files, under a budget of bytes and of entries."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.files: OrderedDict[str, _File] = OrderedDict()

    def get(self, name: str) -> _File | None:
        hit = self.files.get(name)
        if hit is not None:
            self.files.move_to_end(name)
        return hit

    def put(self, name: str, file: _File) -> None:
        self.drop(name)
        self.files[name] = file
        self.used += file.weight
        self.trim()

    def drop(self, name: str) -> None:
        old = self.files.pop(name, None)
        if old is not None:
            self.used -= old.weight

    def grew(self, extra: int) -> None:
        self.used += extra
        self.trim()

    def trim(self) -> None:
        while self.files and (self.used > self.budget or len(self.files) > CACHE_ENTRIES):
            _, old = self.files.popitem(last=False)
            self.used -= old.weight


class _Redirect:
    """The target is a folder named without its trailing slash."""

    def __init__(self, location: str) -> None:
        self.location = location


def raise_fd_limit() -> int:
    """Lift this process's soft limit on open files to the hard one (within reason); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 65536 if soft == resource.RLIM_INFINITY else soft


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6; port 0 picks a free one)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Broken connections and the like: worth a debug line, never a traceback.
    exc = context.get("exception")
    log.debug("serve: %s%s", context.get("message", "event loop error"), f": {exc}" if exc else "")


class FileServer:
    """Serves one folder on the running event loop: ``await start(sock)``, then ``await close()``."""

    def __init__(self, root: Path, *, idle_timeout: float = IDLE_TIMEOUT,
                 max_connections: int | None = None, cache_bytes: int = CACHE_BYTES,
                 endpoints: Mapping[str, Endpoint] | None = None) -> None:
        #: Names answered by a function instead of a file (``/metrics`` in ``feeds run --serve``).
        self.endpoints = dict(endpoints or {})
        self.root = os.path.abspath(root)  # resolved again on each cache miss: it may be a symlink that moves
        if max_connections is None:
            max_connections = max(64, min(MAX_CONNECTIONS, raise_fd_limit() // 2))
        self.connections = http1.Connections(self.answer, idle_timeout, max_connections)
        self.cache = _Cache(cache_bytes)
        self.listener: asyncio.Server | None = None
        self.sweeper: asyncio.Task[None] | None = None

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_loop_error)
        self.listener = await loop.create_server(self.connections, sock=sock, backlog=1024)
        self.sweeper = loop.create_task(self.sweep())

    async def sweep(self) -> None:
        interval = min(1.0, self.connections.idle_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            self.connections.sweep()

    async def close(self) -> None:
        """Stop accepting, let answers in flight finish (for a few seconds), close every connection."""
        if self.listener is not None:
            self.listener.close()
        self.connections.stop()
        deadline = time.monotonic() + GRACE
        while self.connections.open and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.connections.abort()
        if self.sweeper is not None:
            self.sweeper.cancel()

    # -- answers -----------------------------------------------------------------

    def answer(self, request: http1.Request) -> bytes | http1.Stream:
        # A large file replaced between its lookup and its opening is looked up again.
        for _ in range(REPLACED_RETRIES):
            answer = self.answer_once(request)
            if answer is not None:
                return answer
        return http1.plain(request, 503, "the file is being replaced; try again\n", [("Retry-After", "1")])

    def answer_once(self, request: http1.Request) -> bytes | http1.Stream | None:
        if request.method not in ("GET", "HEAD"):
            return http1.plain(request, 405, "method not allowed\n", [("Allow", "GET, HEAD")])
        target = negotiate.request_target(request.target)
        if target is not None and not target.folder and target.relative in self.endpoints:
            return self.answer_endpoint(request, self.endpoints[target.relative])
        found = None
        if target is not None:
            for name in negotiate.spellings(target.relative):
                found = self.lookup(target._replace(relative=name))
                if found is not None:
                    break
        if found is None:
            return http1.plain(request, 404, "not found\n")
        if isinstance(found, _Redirect):
            return http1.plain(request, 301, "moved\n", [("Location", found.location)])
        name, file = found
        headers = request.headers
        kind = negotiate.content_type(name)
        varies = is_feed_file(name)  # a browser gets a page (or XML for the XSL) where readers get the feed
        if varies and negotiate.prefers_page(headers.get("accept"), kind):
            page = self.page_of(name, file)
            if page is not None:
                file, kind = page, MEDIA_TYPES[PAGE_SUFFIX]
            elif kind.startswith(negotiate.FEED_TYPES):
                kind = negotiate.BROWSER_FEED_TYPE
        body, etag, zipped = file.data, file.etag, False
        if (body is not None and len(body) >= GZIP_MIN and negotiate.compressible(kind)
                and negotiate.accepts_gzip(headers.get("accept-encoding"))):
            packed = self.gzipped(file)
            if packed:
                body, etag, zipped = packed, file.etag[:-1] + '-gz"', True
        fields = [
            ("ETag", etag),
            ("Last-Modified", file.modified),
            ("Cache-Control", "no-cache"),
            ("Vary", "Accept, Accept-Encoding" if varies else "Accept-Encoding"),
        ]
        if negotiate.is_fresh(headers.get("if-none-match"), headers.get("if-modified-since"), etag, file.mtime,
                              time.time()):
            return http1.response_head(request, 304, fields, None)
        fields += [("Content-Type", kind), ("X-Content-Type-Options", "nosniff")]
        if zipped:
            fields.append(("Content-Encoding", "gzip"))
        if body is None:
            return self.stream(request, file, fields)
        head = http1.response_head(request, 200, fields, len(body))
        if request.method == "HEAD":
            return head
        if len(body) > http1.CHUNK:  # sent a CHUNK at a time: a client that never reads holds no copy of it
            return http1.Stream(head, io.BytesIO(body), len(body))
        return head + body

    def answer_endpoint(self, request: http1.Request, endpoint: Endpoint) -> bytes:
        """What a function answers: made afresh for each request, never cached."""
        try:
            body, kind = endpoint()
        except Exception:
            log.exception("serve: %s failed", request.target)
            return http1.plain(request, 500, "internal error\n")
        head = http1.response_head(request, 200, [("Content-Type", kind), ("Cache-Control", "no-store"),
                                                  ("X-Content-Type-Options", "nosniff")], len(body))
        return head if request.method == "HEAD" else head + body

    def page_of(self, name: str, feed: _File) -> _File | None:
        """What a browser gets for feed ``name``: the feed's own HTML page (``output.pages``), else the
        page its stylesheet makes of it (browsers no longer apply XSLT themselves); None: the feed
        itself (it is too large to be held, or there is no usable stylesheet)."""
        stem = name[: -len(next(s for s in FORMATS.values() if name.endswith(s)))]
        own = self.lookup(negotiate.Target(stem + PAGE_SUFFIX, False))
        if isinstance(own, tuple):
            return own[1]
        if feed.data is None or not is_feed_file(name, XML_FORMATS):
            return None
        sheet = self.lookup(negotiate.Target(XSL_NAME, False))
        if not isinstance(sheet, tuple) or sheet[1].data is None:
            return None
        made_from = f"{feed.etag} {sheet[1].etag}"
        cached = self.cache.get(VIEW_PREFIX + name)
        if cached is not None and cached.made_from == made_from:
            return cached
        body = feed_page(feed.data, sheet[1].data)
        if body is None:
            return None
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        newer = max(feed, sheet[1], key=lambda f: f.mtime)  # a new stylesheet is a new page too
        view = _File(feed.key, feed.real, etag, newer.modified, newer.mtime, body, made_from=made_from)
        self.cache.put(VIEW_PREFIX + name, view)
        return view

    def prefix(self) -> str:
        real = os.path.realpath(self.root)
        return real if real.endswith(os.sep) else real + os.sep

    def lookup(self, target: negotiate.Target) -> tuple[str, _File] | _Redirect | None:
        """The file a target names and its current version; a redirect for a folder; None: 404."""
        name = target.relative
        path = os.path.join(self.root, name) if name else self.root
        try:
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                if not target.folder:
                    inside = os.path.realpath(path).startswith(self.prefix())
                    return _Redirect(quote(name.rsplit("/", 1)[-1]) + "/") if inside else None
                name = f"{name}/{INDEX_NAME}" if name else INDEX_NAME
                path = os.path.join(path, INDEX_NAME)
                st = os.stat(path)
        except (OSError, ValueError):
            self.cache.drop(name)
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        hit = self.cache.get(name)
        if hit is not None and hit.key == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
            return name, hit
        file = self.load(path)
        if file is None:
            self.cache.drop(name)
            return None
        if file.data is None or len(file.data) == st.st_size:  # not caught mid-write by another program
            self.cache.put(name, file)
        return name, file

    def load(self, path: str) -> _File | None:
        real = os.path.realpath(path)
        if not real.startswith(self.prefix()):  # a symlink out of the folder
            return None
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            modified = formatdate(st.st_mtime, usegmt=True)
            if st.st_size > CACHE_FILE_MAX:
                etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'
                return _File(key, real, etag, modified, st.st_mtime, None)
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read(CACHE_FILE_MAX + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(data) > CACHE_FILE_MAX:
            return None  # grew past the cap while read: never half an answer
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        return _File(key, real, etag, modified, st.st_mtime, data)

    def gzipped(self, file: _File) -> bytes:
        if file.zipped is None:
            assert file.data is not None
            packed = gzip.compress(file.data, compresslevel=6, mtime=0)
            file.zipped = packed if len(packed) < len(file.data) else b""
            self.cache.grew(len(file.zipped))
        return file.zipped

    def stream(self, request: http1.Request, file: _File,
               fields: list[tuple[str, str]]) -> bytes | http1.Stream | None:
        """A large file from an open descriptor: the version whose ETag is sent, whole or not at
        all; None when the file was replaced since it was looked up."""
        try:
            f = os.fdopen(os.open(file.real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
        except OSError:
            return http1.plain(request, 404, "not found\n")
        st = os.fstat(f.fileno())
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != file.key:
            f.close()
            return None
        return http1.Stream(http1.response_head(request, 200, fields, st.st_size), f, st.st_size)


class BackgroundServer:
    """A :class:`FileServer` on its own thread and event loop, listening as soon as it is made."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 8080, **options: Any) -> None:
        sock = listen(host, port)
        self.port: int = sock.getsockname()[1]
        self.server = FileServer(root, **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="serve", daemon=True)
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.server.start(sock), self.loop).result()
        except BaseException:
            sock.close()
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise

    def set_root(self, root: Path) -> None:
        """Serve another folder from now on (cached files are checked against the new one)."""
        self.loop.call_soon_threadsafe(setattr, self.server, "root", os.path.abspath(root))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(timeout=GRACE + 2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class _CompatServer:
    """The ``socketserver`` face that callers of :func:`make_server` use: answering starts at once."""

    def __init__(self, root: Path, host: str, port: int) -> None:
        self.background = BackgroundServer(root, host, port)
        self.server_address = (host, self.background.port)
        self.stopped = threading.Event()

    def serve_forever(self) -> None:
        self.stopped.wait()

    def shutdown(self) -> None:
        if not self.stopped.is_set():
            self.background.stop()
            self.stopped.set()

    def server_close(self) -> None:
        self.shutdown()


def make_server(root: Path, host: str = "127.0.0.1", port: int = 8080) -> _CompatServer:
    """A server for ``root`` with ``serve_forever``/``shutdown``/``server_close``/``server_address``."""
    return _CompatServer(root, host, port)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def serve_forever(root: Path, host: str, port: int, workers: int = 0) -> int:
    """``feeds serve``: listen, fork ``workers - 1`` helpers onto the same socket, serve until SIGTERM/SIGINT.

    Raises OSError when the address cannot be had. Returns the exit status.
    """
    raise_fd_limit()
    sock = listen(host, port)
    children = []
    # Taken before forking: a helper that first runs after the main process died must see it gone.
    main = os.getpid()
    for _ in range(max(1, workers or default_workers()) - 1):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = asyncio.run(_serve_process(root, sock, parent=main))
            finally:
                os._exit(code)
        children.append(pid)
    shown = f"[{host}]" if ":" in host else host
    log.info("serve: http://%s:%d/ (%s, %d processes)", shown, sock.getsockname()[1], root, len(children) + 1)
    if not root.is_dir():
        log.warning("serve: %s does not exist yet; answering 404 until feeds generate writes it", root)
    code = asyncio.run(_serve_process(root, sock, parent=None))
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    sock.close()
    log.info("serve: stopped")
    return code


def _hangup(main: bool) -> None:
    if main:
        log.info("serve: SIGHUP: nothing to reload, files are read afresh on each request; SIGTERM stops")


async def _serve_process(root: Path, sock: socket.socket, parent: int | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # SIGHUP (a closed terminal, `systemctl reload`) is no reason to stop: every request looks its file up anew.
    loop.add_signal_handler(signal.SIGHUP, _hangup, parent is None)
    server = FileServer(root)
    await server.start(sock)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if parent is not None and os.getppid() != parent:
            break  # the main process is gone: so are its helpers
    await server.close()
    return 0
