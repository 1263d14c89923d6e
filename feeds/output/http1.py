"""HTTP/1.1 connections for `feeds serve`: parsing, keep-alive, pipelining, flow control, limits.

httptools (the llhttp parser) reads requests; this module turns them into
:class:`Request` records in arrival order, hands each to an ``answer``
function, and writes what it returns: a whole response in one write, or a
:class:`Stream` (a response head and an open file) sent chunk by chunk as the
client takes it. It never reads request bodies beyond a small cap, never
queues more than a few pipelined requests (reading pauses instead), and
answers anything malformed with a 4xx and a close, never an exception.

A connection records when it last made progress (opened, a request completed,
the client took response bytes); :meth:`Connections.sweep` closes those that
made none for too long: idle, trickling or never-reading clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import BinaryIO, NamedTuple

import httptools

log = logging.getLogger("feeds")

MAX_TARGET = 8192  # bytes of request target (path and query)
MAX_HEADER_BYTES = 32 * 1024
MAX_HEADERS = 100
MAX_BODY = 64 * 1024  # GET and HEAD have no use for a body: more than this closes the connection
SEND_BUFFER = 256 * 1024  # kernel socket buffer for a large answer (Linux doubles it for its own use)
MAX_QUEUE = 16  # pipelined requests waiting for their turn; past this, reading pauses
QUEUE_BYTES = 64 * 1024  # ... or past this many bytes of their targets and kept header fields
# The header fields that answers and this module read; the others are counted against the limits, not kept.
KEPT = frozenset({"host", "accept", "accept-encoding", "if-none-match", "if-modified-since", "expect",
                  "content-length", "transfer-encoding"})
CHUNK = 64 * 1024  # larger bodies are sent this much at a time, each once the one before is all sent


class Request(NamedTuple):
    method: str
    target: str
    headers: dict[str, str]  # the KEPT fields, names in lower case; repeated fields joined with ", "
    keep_alive: bool
    version: str  # "1.1" or "1.0"
    size: int = 0  # bytes of target and kept fields, while it waits in line


class Stream(NamedTuple):
    """A response whose body is read from ``file`` (``size`` bytes) as the client takes it."""

    head: bytes
    file: BinaryIO
    size: int


Answer = Callable[[Request], "bytes | Stream"]


class _Refused(Exception):
    """A request over one of the limits (``Connection.over`` says which)."""


_date: tuple[int, str] = (0, "")


def http_now() -> str:
    """The Date header's value, made once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


def response_head(request: Request | None, status: int, fields: list[tuple[str, str]], length: int | None) -> bytes:
    """Status line and header fields, with Date, Server, Content-Length and the connection's fate."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Date: {http_now()}", "Server: feeds"]
    lines += [f"{name}: {value}" for name, value in fields]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if request is None or not request.keep_alive:
        lines.append("Connection: close")
    elif request.version == "1.0":
        lines.append("Connection: keep-alive")
    lines += ("", "")
    return "\r\n".join(lines).encode("latin-1")


def plain(request: Request | None, status: int, text: str, fields: list[tuple[str, str]] | None = None) -> bytes:
    body = text.encode()
    head = response_head(request, status, [("Content-Type", "text/plain; charset=utf-8"),
                                           ("Cache-Control", "no-cache"), *(fields or [])], len(body))
    return head if request is not None and request.method == "HEAD" else head + body


def reset(transport: asyncio.Transport) -> None:
    """Drop a connection at once with what it never read: a reset, not a FIN queued behind the data."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class Connections:
    """The open connections of one server: a limit on their number, and the idle sweep."""

    def __init__(self, answer: Answer, idle_timeout: float, limit: int) -> None:
        self.answer = answer
        self.idle_timeout = idle_timeout
        self.limit = limit
        self.open: set[Connection] = set()
        self.stopping = False

    def __call__(self) -> asyncio.Protocol:
        if len(self.open) >= self.limit:
            return _Busy()
        return Connection(self)

    def sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self.open):
            transport = conn.transport
            if transport is None or transport.is_closing():
                continue
            size = transport.get_write_buffer_size()
            if size < conn.buffered:
                conn.progress = now
            conn.buffered = size
            if now - conn.progress > self.idle_timeout:
                if size or conn.streaming is not None:
                    reset(transport)
                else:
                    transport.close()

    def stop(self) -> None:
        """Answer nothing new: close idle connections now, the others after their current answer."""
        self.stopping = True
        for conn in list(self.open):
            if conn.streaming is None and conn.transport is not None:
                conn.transport.close()

    def abort(self) -> None:
        for conn in list(self.open):
            if conn.transport is not None:
                conn.transport.abort()


class _Busy(asyncio.Protocol):
    """Answers a connection over the limit with 503 and closes it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(plain(None, 503, "too many connections\n", [("Retry-After", "5")]))
        transport.close()


class Connection(asyncio.Protocol):
    def __init__(self, owner: Connections) -> None:
        self.owner = owner
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[Request | int] = deque()  # an int: answer with that error status and close
        self.progress = time.monotonic()
        self.buffered = 0
        self.paused = False
        self.reading = True
        self.drained: asyncio.Future[None] | None = None
        self.streaming: asyncio.Task[None] | None = None
        self.done = False  # no more requests are read: the last one is queued
        self.target = bytearray()
        self.headers: dict[str, str] = {}
        self.header_bytes = 0
        self.header_count = 0
        self.body_bytes = 0
        self.over = 0  # the status of the limit a request went over
        self.partial = False  # part of a request has come, not all of it
        self.queued_bytes = 0  # the size of the requests in the queue
        self.ended = False  # the client sent its end (FIN)
        self.lingering = False  # an error was answered and the sending side shut: reading only to drop

    # -- the transport's side ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # Pipelined answers wait while a CHUNK is unsent; see stream() for large ones.
        transport.set_write_buffer_limits(high=CHUNK, low=0)
        self.owner.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.open.discard(self)
        self.done = True
        self.queue.clear()
        self.wake()
        if self.streaming is not None:
            self.streaming.cancel()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.progress = time.monotonic()
        self.wake()
        self.process()

    def wake(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    def eof_received(self) -> bool:
        # The client sent all it will: answer what it asked, then close; half a request gets a 400.
        if not self.done and self.partial:
            self.refuse(400, _Refused("the request ends before its headers do"))
        self.done = self.ended = True
        self.process()
        return True

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self.refuse(self.over or 400, exc)
        except httptools.HttpParserUpgrade:
            self.done = True  # not upgraded: what came before is answered, then the connection closes
            if self.queue and isinstance(self.queue[-1], Request):
                self.queue[-1] = self.queue[-1]._replace(keep_alive=False)
        except httptools.HttpParserError as exc:
            self.refuse(400, exc)
        self.process()

    def refuse(self, status: int, exc: Exception) -> None:
        log.debug("serve: bad request (%d): %s", status, " ".join(str(exc).split())[:200])
        self.queue.append(status)
        self.done = True

    # -- the parser's callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        self.partial = True
        self.target = bytearray()
        self.headers = {}
        self.header_bytes = 0
        self.header_count = 0
        self.body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.target += url
        if len(self.target) > MAX_TARGET:
            self.over = 414
            raise _Refused(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        self.header_count += 1
        if self.header_bytes > MAX_HEADER_BYTES or self.header_count > MAX_HEADERS:
            self.over = 431
            raise _Refused(431)
        key = name.decode("latin-1").lower()
        if key not in KEPT:
            return
        text = value.decode("latin-1")
        if key == "host" and key in self.headers:  # which host is meant? (RFC 9112 3.2)
            self.over = 400
            raise _Refused(400)
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        if self.parser.get_http_version() == "1.1" and "host" not in self.headers:
            self.over = 400  # RFC 9112 3.2: an HTTP/1.1 request names its host
            raise _Refused(400)
        expect = self.headers.get("expect")
        if expect is None:
            return
        if expect.strip().lower() != "100-continue":
            self.over = 417
            raise _Refused(417)
        # The client waits for a go-ahead before its body: give it when nothing is ahead in line.
        body = "content-length" in self.headers or "transfer-encoding" in self.headers
        if body and not self.queue and self.streaming is None and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > MAX_BODY:
            self.over = 413
            raise _Refused(413)

    def on_message_complete(self) -> None:
        self.partial = False
        self.progress = time.monotonic()
        size = len(self.target) + sum(len(k) + len(v) for k, v in self.headers.items())
        # Reading paused long ago, and still this one chunk of input goes on:
        if len(self.queue) >= MAX_QUEUE * 16 or self.queued_bytes + size > QUEUE_BYTES * 4:
            self.over = 429
            raise _Refused(429)
        self.queue.append(Request(self.parser.get_method().decode("latin-1"),
                                  self.target.decode("utf-8", "surrogateescape"),
                                  self.headers, bool(self.parser.should_keep_alive()),
                                  self.parser.get_http_version(), size))
        self.queued_bytes += size
        if ((len(self.queue) >= MAX_QUEUE or self.queued_bytes >= QUEUE_BYTES)
                and self.reading and self.transport is not None):
            self.transport.pause_reading()
            self.reading = False

    # -- answers ------------------------------------------------------------------------------

    def process(self) -> None:
        """Answer queued requests in order while the client keeps up."""
        transport = self.transport
        if transport is None:
            return
        while self.queue and not self.paused and self.streaming is None and not transport.is_closing():
            item = self.queue.popleft()
            if isinstance(item, Request):
                self.queued_bytes -= item.size
            else:
                transport.write(plain(None, item, "bad request\n" if item == 400 else HTTPStatus(item).phrase + "\n"))
                self.linger(transport)
                return
            try:
                answer = self.owner.answer(item)
            except Exception as exc:  # a request never gets a traceback, only a 500 and one line
                log.error("serve: %.200r: %s", item.target, exc)
                answer = plain(item, 500, "internal error\n")
                item = item._replace(keep_alive=False)
            if log.isEnabledFor(logging.DEBUG):
                self.log(item, answer.head if isinstance(answer, Stream) else answer)
            if isinstance(answer, Stream):
                self.streaming = asyncio.get_running_loop().create_task(self.stream(item, answer))
                return
            transport.write(answer)
            if not item.keep_alive or self.owner.stopping:
                transport.close()
                return
        if (not self.reading and len(self.queue) < MAX_QUEUE // 2 and self.queued_bytes < QUEUE_BYTES // 2
                and not transport.is_closing()):
            transport.resume_reading()
            self.reading = True
        if self.done and not self.queue and self.streaming is None and (self.ended or not self.lingering):
            transport.close()

    def linger(self, transport: asyncio.Transport) -> None:
        """End a connection after an error answer without a reset that would destroy the answer:
        stop sending, then drop what the client still sends until it ends (or the idle sweep)."""
        if not transport.can_write_eof():
            transport.close()
            return
        self.lingering = True
        transport.write_eof()
        if self.ended:
            transport.close()
        elif not self.reading:
            transport.resume_reading()
            self.reading = True

    def log(self, request: Request, answer: bytes) -> None:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        log.debug('serve: %s "%s %.200s HTTP/%s" %s %d', peer[0] if peer else "-", request.method, request.target,
                  request.version, answer[9:12].decode("latin-1"), len(answer))

    async def stream(self, request: Request, answer: Stream) -> None:
        transport = self.transport
        assert transport is not None
        try:
            with answer.file:
                # The kernel would take megabytes for each client that never reads: a fixed buffer
                # keeps that in check (it still fills a fast link: the client reading drains it).
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
                # Writing pauses as soon as anything is left unsent and resumes when all is: a client
                # that reads slowly or never holds at most one CHUNK of the file here.
                transport.set_write_buffer_limits(high=0, low=0)
                transport.write(answer.head)
                left = answer.size if request.method != "HEAD" else 0
                while left > 0 and not transport.is_closing():
                    if self.paused:
                        self.drained = asyncio.get_running_loop().create_future()
                        await self.drained
                        continue
                    chunk = answer.file.read(min(CHUNK, left))
                    if not chunk:  # cut short in place by another program: never pass it off as whole
                        reset(transport)
                        return
                    transport.write(chunk)
                    left -= len(chunk)
                    self.progress = time.monotonic()
        finally:
            self.streaming = None
            if not transport.is_closing():
                transport.set_write_buffer_limits(high=CHUNK, low=0)
        if not request.keep_alive or self.owner.stopping:
            transport.close()
        else:
            self.process()
