"""Serve the output folder over HTTP, for feed readers and previews.

Reads files in the output folder and nothing else: the right Content-Type for
feeds and pages (UTF-8 declared), a strong ETag and Last-Modified with 304
answers, HEAD, gzip when the client accepts it, and no way to reach a file
outside the folder.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger("feeds")

TYPES = {
    ".atom.xml": "application/atom+xml; charset=utf-8",
    ".rss.xml": "application/rss+xml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".xsl": "text/xsl; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


def content_type(name: str) -> str:
    for suffix, kind in TYPES.items():
        if name.endswith(suffix):
            return kind
    return "application/octet-stream"


class _Cache:
    """Bytes, gzip bytes and ETag of each file, kept while its size and mtime stay the same."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[Path, tuple[int, int, bytes, str, bytes | None]] = {}

    def get(self, path: Path, want_gzip: bool) -> tuple[bytes, str, float, bool]:
        st = path.stat()
        key = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._files.get(path)
        if hit is None or hit[:2] != key:
            data = path.read_bytes()
            hit = (*key, data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"', None)
        size, mtime_ns, data, etag, zipped = hit
        body, used_gzip = data, False
        if want_gzip and len(data) > 512 and content_type(path.name).split(";")[0] != "application/octet-stream":
            if zipped is None:
                zipped = gzip.compress(data, compresslevel=6, mtime=0)
                hit = (size, mtime_ns, data, etag, zipped)
            body, used_gzip = zipped, True
            etag = etag[:-1] + '-gz"'  # a different representation has a different strong ETag
        with self._lock:
            self._files[path] = hit
        return body, etag, st.st_mtime, used_gzip


def make_handler(root: Path) -> type[BaseHTTPRequestHandler]:
    root = root.resolve()
    cache = _Cache()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return "feeds"

        def log_message(self, format: str, *args: object) -> None:
            log.debug("serve: %s %s", self.address_string(), format % args)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_GET(self) -> None:
            self._answer(head=False)

        def _target(self) -> Path | None:
            path = unquote(urlsplit(self.path).path)
            if "\0" in path:
                return None
            target = (root / path.lstrip("/")).resolve()
            if target != root and root not in target.parents:
                return None
            if target.is_dir():
                target = target / "index.html"
            return target if target.is_file() else None

        def _answer(self, head: bool) -> None:
            target = self._target()
            if target is None:
                self._plain(404, "not found\n", head)
                return
            want_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
            try:
                body, etag, mtime, zipped = cache.get(target, want_gzip)
            except OSError:
                self._plain(404, "not found\n", head)
                return
            modified = formatdate(mtime, usegmt=True)
            if self._fresh(etag, mtime):
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", modified)
                self.send_header("Vary", "Accept, Accept-Encoding")
                self.end_headers()
                return
            self.send_response(200)
            kind = content_type(target.name)
            if kind.startswith(("application/atom+xml", "application/rss+xml")) and \
                    "text/html" in self.headers.get("Accept", ""):
                # A browser (it asks for HTML first): as generic XML it applies the feed's XSL view;
                # given the feed types it would show the raw text. Feed readers get the feed types.
                kind = "application/xml; charset=utf-8"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Vary", "Accept, Accept-Encoding")
            if zipped:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _fresh(self, etag: str, mtime: float) -> bool:
            match = self.headers.get("If-None-Match")
            if match is not None:
                tags = {t.strip().removeprefix("W/") for t in match.split(",")}
                return etag in tags or "*" in tags
            since = self.headers.get("If-Modified-Since")
            if since:
                try:
                    return int(mtime) <= parsedate_to_datetime(since).timestamp()
                except (TypeError, ValueError, IndexError):
                    return False
            return False

        def _plain(self, status: int, text: str, head: bool) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(root: Path, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """An HTTP server for ``root`` (call ``serve_forever``; ``shutdown`` from another thread)."""
    return _Server((host, port), make_handler(root))
