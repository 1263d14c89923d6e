"""A real HTTP server on 127.0.0.1 for fetcher tests, with scripted routes."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO, NamedTuple
from urllib.parse import parse_qs

import pytest


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (to test timeouts).
    delay: float = 0.0
    #: Honour If-None-Match / If-Modified-Since with a 304.
    conditional: bool = True
    #: Writes the whole answer itself (status line, headers, body), for servers that
    #: break the rules; the connection is closed afterwards.
    raw: Callable[[BinaryIO], None] | None = None


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    at: float
    #: The client's port: one per connection it made.
    port: int = 0


Route = Callable[[dict[str, str]], Response] | Response


class FeedServer:
    """Serves ``routes`` (path -> Response, or a function of the request headers)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, each answer on a
            # kept-alive connection waits for the client's delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.seen.append(Seen(self.path, headers, time.monotonic(), self.client_address[1]))
                route = server.routes.get(self.path)
                if route is None:  # /f?n=1 is served by /f unless it has a route of its own
                    route = server.routes.get(self.path.partition("?")[0])
                if route is None:
                    resp = Response(404, b"not found", {"Content-Type": "text/plain"})
                else:
                    resp = route(headers) if callable(route) else route
                if resp.delay:
                    time.sleep(resp.delay)
                if resp.raw is not None:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        resp.raw(self.wfile)
                    return
                etag = resp.headers.get("ETag")
                modified = resp.headers.get("Last-Modified")
                if resp.conditional and resp.status == 200 and (
                        (etag and headers.get("if-none-match") == etag)
                        or (modified and not etag and headers.get("if-modified-since") == modified)):
                    self.send_response(304)
                    if etag:
                        self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(resp.status)
                for name, value in resp.headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in resp.headers:
                    self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(resp.body)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients hanging up early (size caps, timeouts) are expected here

        self.httpd = Server((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        # A short poll: shutting down (after every test) then takes milliseconds, not half a second.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def hits(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


@contextlib.contextmanager
def running(host: str = "127.0.0.1") -> Iterator[FeedServer]:
    """A server on ``host`` (any loopback address) for the duration of the block."""
    s = FeedServer(host)
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with running() as s:
        yield s


def rss(items: list[dict[str, str]], *, title: str = "Test feed", link: str = "https://site.example/",
        extra: str = "", encoding: str = "UTF-8") -> str:
    """An RSS 2.0 document; each item a dict of element name -> text (already escaped)."""
    body = "".join("<item>" + "".join(f"<{k}>{v}</{k}>" for k, v in item.items()) + "</item>" for item in items)
    return (f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel><title>{title}</title>'
            f"<link>{link}</link><description>d</description>{extra}{body}</channel></rss>\n")


def item(n: int, **more: str) -> dict[str, str]:
    d = {"title": f"Story {n}", "link": f"https://site.example/s/{n}", "guid": f"guid-{n}",
         "pubDate": f"Mon, 0{n % 9 + 1} Mar 2021 10:00:00 +0000", "description": f"Text of story {n}."}
    d.update(more)
    return d


def feed_response(text: str, *, etag: str | None = '"v1"', modified: bool = True,
                  content_type: str = "application/rss+xml; charset=utf-8", gz: bool = False) -> Response:
    body = text.encode("utf-8")
    headers = {"Content-Type": content_type}
    if etag:
        headers["ETag"] = etag
    if modified:
        headers["Last-Modified"] = formatdate(1_600_000_000, usegmt=True)
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return Response(200, body, headers)


class HubPost(NamedTuple):
    """One POST a :class:`Hub` received."""

    path: str
    form: dict[str, list[str]]
    user_agent: str | None
    content_type: str | None


class Hub:
    """A WebSub hub on 127.0.0.1 that records every POST (and the feed URLs of each
    ``hub.mode=publish``) and answers ``status``, with ``location`` if set."""

    def __init__(self) -> None:
        self.posts: list[HubPost] = []
        #: The feed URLs of each publish announcement, sorted.
        self.published: list[list[str]] = []
        self.status = 204
        self.location: str | None = None
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
                hub.posts.append(HubPost(self.path, form, self.headers.get("User-Agent"),
                                         self.headers.get("Content-Type")))
                if form.get("hub.mode") == ["publish"]:
                    hub.published.append(sorted(form.get("hub.url", [])))
                self.send_response(hub.status)
                if hub.location:
                    self.send_header("Location", hub.location)
                body = b"x" * 10_000 if hub.status >= 300 else b""
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hub"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def hub() -> Iterator[Hub]:
    h = Hub()
    yield h
    h.close()
