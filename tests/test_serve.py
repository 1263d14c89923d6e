"""`feeds serve`: what each request gets (types, validators, 304, HEAD, gzip, 405, nothing outside output/),
and what hostile clients cannot do (idle and trickling connections, clients that never read, odd requests),
against a real server on 127.0.0.1 and real sockets."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import pytest

from feeds.output.serve import BackgroundServer

FEED = "<feed>" + "x" * 2000 + "</feed>"


@dataclass
class Served:
    root: Path
    port: int
    server: BackgroundServer


def start(tmp_path: Path, **options: float) -> Served:
    root = tmp_path / "output"
    (root / "tags").mkdir(parents=True, exist_ok=True)
    (root / "all.atom.xml").write_text(FEED)
    (root / "all.rss.xml").write_text("<rss/>")
    (root / "tags" / "联合早报.atom.xml").write_text("<feed>中文</feed>")
    (root / "tags" / "index.html").write_text("<html>tags</html>")
    (root / "index.html").write_text("<html></html>")
    (tmp_path / "secret.txt").write_text("do not serve")
    server = BackgroundServer(root, "127.0.0.1", 0, **options)
    return Served(root, server.port, server)


@pytest.fixture
def served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Served]:
    caplog.set_level(logging.DEBUG)
    s = start(tmp_path)
    try:
        yield s
    finally:
        s.server.stop()
    # Whatever the clients sent: no traceback and no error in the log.
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def request(port: int, path: str, method: str = "GET",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def read_response(f: object) -> tuple[int, dict[str, str], bytes]:
    """One response from a buffered socket file: status, headers, the body by Content-Length."""
    assert hasattr(f, "readline") and hasattr(f, "read")
    status_line = f.readline()
    if not status_line:
        raise ConnectionError("closed before a response")
    status = int(status_line.split()[1])
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = f.read(int(headers.get("content-length", "0")))
    return status, headers, body


def raw(port: int, data: bytes) -> bytes:
    """Send ``data`` and the end of what this client sends, read until the server closes (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server may refuse and close before it has read everything
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def closed_by_server(sock: socket.socket, seconds: float = 20) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (reading and dropping what it sends)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# -- what a request gets ------------------------------------------------------------------------


def test_content_types(served: Served) -> None:
    port = served.port
    assert request(port, "/all.atom.xml")[1]["content-type"] == "application/atom+xml; charset=utf-8"
    assert request(port, "/all.rss.xml")[1]["content-type"] == "application/rss+xml; charset=utf-8"
    status, headers, _ = request(port, "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    status, _, body = request(port, "/tags/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.atom.xml")
    assert status == 200 and "中文" in body.decode()
    assert request(port, "/tags/")[2] == b"<html>tags</html>"
    status, headers, _ = request(port, "/tags?x=1")
    assert status == 301 and headers["location"] == "tags/"


def test_browsers_get_feeds_as_xml_for_the_xsl_view(served: Served) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    assert request(served.port, "/all.atom.xml", headers=browser)[1]["content-type"] == \
        "application/xml; charset=utf-8"
    reader = {"Accept": "application/atom+xml, application/rss+xml, */*;q=0.5"}
    assert request(served.port, "/all.atom.xml", headers=reader)[1]["content-type"] == \
        "application/atom+xml; charset=utf-8"


def test_etag_last_modified_and_304(served: Served) -> None:
    root, port = served.root, served.port
    status, headers, _ = request(port, "/all.rss.xml")
    etag, modified = headers["etag"], headers["last-modified"]
    assert status == 200 and etag.startswith('"') and not etag.startswith("W/")
    assert request(port, "/all.rss.xml", headers={"If-None-Match": etag})[0] == 304
    assert request(port, "/all.rss.xml", headers={"If-Modified-Since": modified})[0] == 304
    assert request(port, "/all.rss.xml", headers={"If-None-Match": '"other"'})[0] == 200
    # If-None-Match: lists, weak forms and * all match; it overrides If-Modified-Since.
    for value in (f'"a", {etag}, "b"', f"W/{etag}", "*", f'"x",W/{etag}'):
        assert request(port, "/all.rss.xml", headers={"If-None-Match": value})[0] == 304, value
    assert request(port, "/all.rss.xml", headers={"If-None-Match": '"x"', "If-Modified-Since": modified})[0] == 200
    (root / "all.rss.xml").write_text("<rss>changed</rss>")
    status, headers, body = request(port, "/all.rss.xml", headers={"If-None-Match": etag})
    assert status == 200 and body == b"<rss>changed</rss>" and headers["etag"] != etag
    old = formatdate(0, usegmt=True)
    assert request(port, "/all.rss.xml", headers={"If-Modified-Since": old})[0] == 200


@pytest.mark.parametrize("since", [
    "Fri, 31 Dec 9999 23:59:59 GMT", "Tue, 01 Jan 2999 00:00:00 GMT", "Sat, 01 Jan 99999 00:00:00 GMT",
    "yesterday", "", "Mon, 32 Foo 2020 25:61:61 GMT", "Sun, 06 Nov 1994 08:49:37 +9999", "0" * 5000,
    "Sun Nov  6 08:49:37 1994", "Sunday, 06-Nov-94 08:49:37 GMT", "Thu, 01 Jan 1970 00:00:00 -0000",
])
def test_odd_if_modified_since_is_ignored_on_a_kept_connection(served: Served, since: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request("GET", "/all.atom.xml", headers={"If-Modified-Since": since})
    response = conn.getresponse()
    assert response.status == 200 and response.read() == FEED.encode()
    conn.request("GET", "/all.rss.xml")  # the same connection still answers
    assert conn.getresponse().status == 200
    conn.close()


def test_head_and_gzip(served: Served) -> None:
    port = served.port
    status, headers, body = request(port, "/all.atom.xml", "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) == len(FEED)
    status, headers, body = request(port, "/all.atom.xml", headers={"Accept-Encoding": "gzip, br"})
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == FEED.encode()
    assert headers["vary"] == "Accept, Accept-Encoding"
    plain_etag = request(port, "/all.atom.xml")[1]["etag"]
    assert headers["etag"] != plain_etag
    assert request(port, "/all.atom.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]})[0] \
        == 304
    status, head_headers, body = request(port, "/all.atom.xml", "HEAD", headers={"Accept-Encoding": "gzip"})
    assert body == b"" and head_headers["content-length"] == headers["content-length"]


@pytest.mark.parametrize(("accept", "zipped"), [
    ("gzip", True), ("GZIP", True), ("x-gzip", True), ("*", True), ("deflate, gzip;q=0.5", True),
    ("gzip;q=1.0, identity;q=0.5, *;q=0", True), ("identity;q=0, gzip", True),
    ("gzip;q=0", False), ("gzip; q=0.000", False), ("*;q=0", False), ("gzip;q=0, *", False),
    ("identity", False), ("", False), ("br, deflate", False), ("gzip;q=0.5, identity", False),
    ("gzip;q=abc", False), ("gzip;q=2", False), (";;;,,,=", False), ("*;q=0, identity", False),
])
def test_accept_encoding_is_negotiated(served: Served, accept: str, zipped: bool) -> None:
    status, headers, body = request(served.port, "/all.atom.xml", headers={"Accept-Encoding": accept})
    assert status == 200
    assert ("content-encoding" in headers) == zipped
    assert (gzip.decompress(body) if zipped else body) == FEED.encode()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "CONNECT"])
def test_other_methods_get_405(served: Served, method: str) -> None:
    status, headers, body = request(served.port, "/all.atom.xml", method)
    assert status == 405 and headers["allow"] == "GET, HEAD" and FEED.encode() not in body


def test_a_method_http_does_not_know_is_refused(served: Served) -> None:
    answer = raw(served.port, b"BREW /all.atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and FEED.encode() not in answer


def test_range_is_ignored_with_the_whole_file(served: Served) -> None:
    for value in ("bytes=0-9", "bytes=-5", "bytes=99999-", "bytes=5-1", "lines=1-2", "bytes=0-1,3-4"):
        status, headers, body = request(served.port, "/all.atom.xml", headers={"Range": value})
        assert status == 200 and body == FEED.encode() and "content-range" not in headers, value


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/tags/../../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/nope.xml",
    "/tags/%00.xml", "/all.atom.xml%00", "//etc/passwd", "/tags/..%5c..%5csecret.txt", "/..\\secret.txt",
    "/%2e%2e%2f%2e%2e%2fsecret.txt", "/tags%2f..%2f..%2fsecret.txt", "/%c0%ae%c0%ae/secret.txt", "/%ff",
    "/out.txt", "/link/secret.txt", "/.hidden", "/.all.atom.xml.x1y2.tmp", "/tags/.git/config",
    "http://127.0.0.1/../secret.txt", "/fifo", "/" + "a" * 300,
])
def test_nothing_outside_output_or_hidden(served: Served, path: str) -> None:
    root = served.root
    (root / "out.txt").symlink_to(root.parent / "secret.txt")
    (root / "link").symlink_to(root.parent)
    (root / ".hidden").write_text("do not serve")
    (root / ".all.atom.xml.x1y2.tmp").write_text("do not serve")
    os.mkfifo(root / "fifo")
    data = raw(served.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert data.startswith((b"HTTP/1.1 404", b"HTTP/1.1 400")), data[:100]
    assert b"do not serve" not in data


def test_unencoded_bytes_in_the_path_get_an_answer(served: Served) -> None:
    # The parser is strict: raw UTF-8 in a request line is a 400 (browsers and readers percent-encode).
    data = raw(served.port, "GET /tags/联合早报.atom.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert data.startswith((b"HTTP/1.1 200", b"HTTP/1.1 400"))
    assert raw(served.port, b"GET /tags/\xff\xfe.xml HTTP/1.1\r\nConnection: close\r\n\r\n").startswith(
        (b"HTTP/1.1 404", b"HTTP/1.1 400"))


@pytest.mark.parametrize("flood", [
    b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\n\r\n" * 20_000,  # past the queue: 429
    b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\n\r\n" * 50 + b"GET /\x00 HTTP/1.1\r\n\r\n" + b"x" * 2_000_000,  # 400
])
def test_a_flood_of_pipelined_requests_is_answered_then_refused_in_order(served: Served, flood: bytes) -> None:
    # The refusal is delivered, not destroyed by a reset for what the server never read.
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        def send() -> None:
            with contextlib.suppress(OSError):
                sock.sendall(flood)

        sender = threading.Thread(target=send)
        sender.start()
        f = sock.makefile("rb")
        statuses = []
        while True:
            statuses.append(read_response(f)[0])
            if statuses[-1] != 200:
                break
        assert f.read() == b""  # then the server's end, not a reset
        sender.join()
    assert set(statuses[:-1]) == {200} and len(statuses) > 16 and statuses[-1] in (400, 429)


def test_a_symlink_inside_output_is_served(served: Served) -> None:
    (served.root / "latest.atom.xml").symlink_to(served.root / "all.atom.xml")
    assert request(served.port, "/latest.atom.xml")[2] == FEED.encode()


# -- odd and hostile requests ---------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /all.atom.xml?" + b"q=" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /all.atom.xml HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 100_000 + b"\r\n\r\n",
    b"GET /all.atom.xml HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(1000)) + b"\r\n",
    b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET / FOO/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n folded: header\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\r\n\r\n\r\n", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", b"GET all.atom.xml HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_bad_requests_get_an_answer_not_a_traceback(served: Served, data: bytes) -> None:
    answer = raw(served.port, data)
    assert answer == b"" or answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), answer[:200]
    assert request(served.port, "/all.rss.xml")[0] == 200  # and the server is still fine


def test_http_1_0_without_keep_alive_is_closed_after_the_answer(served: Served) -> None:
    data = raw(served.port, b"GET /all.rss.xml HTTP/1.0\r\n\r\n")  # returns once the server closes
    assert data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data and data.endswith(b"<rss/>")


def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"HEAD /all.atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /all.atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
        f = sock.makefile("rb")
        first = read_response(f)
        assert first[0] == 200 and first[2] == b"<rss/>"
        # HEAD's answer has a Content-Length but no body: read its head only.
        assert f.readline().startswith(b"HTTP/1.1 200")
        while f.readline() != b"\r\n":
            pass
        assert read_response(f)[0] == 404
        assert read_response(f)[2] == FEED.encode()


def test_keep_alive_answers_200_requests_on_one_connection_with_nodelay(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    for _ in range(200):
        conn.request("GET", "/all.atom.xml")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == FEED.encode()
    # Headers and body go out together and Nagle is off, so no answer waits for the client's delayed ACK.
    sockets = [c.transport.get_extra_info("socket") for c in served.server.server.connections.open if c.transport]
    assert sockets and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)
    conn.close()


def test_128_concurrent_clients_get_no_errors(served: Served) -> None:
    def client(_: int) -> int:
        errors = 0
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        for _ in range(10):
            try:
                conn.request("GET", "/all.atom.xml", headers={"Accept-Encoding": "gzip"})
                response = conn.getresponse()
                if response.status != 200 or gzip.decompress(response.read()) != FEED.encode():
                    errors += 1
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
        conn.close()
        return errors

    with ThreadPoolExecutor(128) as pool:
        assert sum(pool.map(client, range(128))) == 0


def test_400_idle_connections_do_not_starve_a_reader(served: Served) -> None:
    idle = []
    try:
        for i in range(400):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
            if i % 2:
                sock.sendall(b"GET /all.atom.xml HTTP/1.1\r\nHost: x\r\n")  # a request that never ends
            idle.append(sock)
        for _ in range(5):
            assert request(served.port, "/all.atom.xml")[2] == FEED.encode()
    finally:
        for sock in idle:
            sock.close()


def reset_by_server(sock: socket.socket, seconds: float = 30) -> bool:
    """Whether the server aborts ``sock`` within ``seconds``, found without reading from it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            return True
        time.sleep(0.1)
    return False


def test_trickling_idle_and_never_reading_clients_are_dropped(tmp_path: Path) -> None:
    s = start(tmp_path, idle_timeout=1.0)
    (s.root / "big.xml").write_bytes(b"<x>" + os.urandom(300_000).hex().encode() + b"</x>")
    try:
        # Headers trickled a byte at a time: each byte is on time, the request never completes.
        trickler = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        outcome: list[str] = []
        stop = threading.Event()

        def trickle() -> None:
            try:
                for byte in b"GET /all.atom.xml HTTP/1.1\r\nHost: x\r\n" + b"X-a: b\r\n" * 10_000:
                    trickler.send(bytes([byte]))
                    if stop.wait(0.05):
                        outcome.append("still open")
                        return
            except OSError:
                outcome.append("dropped")

        thread = threading.Thread(target=trickle)
        thread.start()
        # A connection that never says anything, and one that asked once and then went quiet.
        silent = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        quiet = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        quiet.sendall(b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\n\r\n")
        # Asks for far more than the socket buffers hold (200 x 600 KB), and never reads.
        hog = socket.socket()
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.connect(("127.0.0.1", s.port))
        hog.sendall(b"GET /big.xml HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
        # Meanwhile anyone else is served.
        assert request(s.port, "/all.atom.xml")[2] == FEED.encode()
        assert reset_by_server(hog)
        assert closed_by_server(silent) and closed_by_server(quiet)
        thread.join(timeout=30)
        stop.set()
        thread.join()
        assert outcome == ["dropped"]
        for sock in (trickler, silent, quiet, hog):
            sock.close()
    finally:
        s.server.stop()


def test_connections_over_the_limit_get_503(tmp_path: Path) -> None:
    s = start(tmp_path, max_connections=3)
    try:
        held = [socket.create_connection(("127.0.0.1", s.port), timeout=10) for _ in range(3)]
        for sock in held:  # each is accepted and answers
            sock.sendall(b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock.makefile("rb"))[0] == 200
        assert raw(s.port, b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 503")
        held.pop().close()
        # A place is free again once the server has seen the close.
        for _ in range(100):
            if raw(s.port, b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
                    b"HTTP/1.1 200"):
                break
            threading.Event().wait(0.05)
        else:
            pytest.fail("the freed place was never given to a new connection")
        for sock in held:
            sock.close()
    finally:
        s.server.stop()


# -- files changing under the server --------------------------------------------------------------


def replace(path: Path, data: bytes) -> None:
    """As the publisher writes: a temp file in the same folder, renamed over the old one."""
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.mark.parametrize("size", [5_000, 3_000_000])  # cached in memory, and streamed from disk
def test_a_file_replaced_while_served_is_never_mixed_or_stale(served: Served, size: int) -> None:
    path = served.root / "all.atom.xml"
    versions = [bytes([65 + i]) * (size + i) for i in range(4)]
    tags = {hashlib.sha256(v).hexdigest()[:32] for v in versions}
    replace(path, versions[0])
    done = threading.Event()

    def writer() -> None:
        n = 0
        while not done.is_set():
            n += 1
            replace(path, versions[n % len(versions)])

    def reader(_: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        seen = 0
        for _ in range(15 if size > 100_000 else 60):
            conn.request("GET", "/all.atom.xml")
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200 and body in versions, (len(body), body[:1], body[-1:])
            if size < 100_000:
                assert response.getheader("ETag", "").strip('"') in tags
            seen += 1
        conn.close()
        return seen

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            assert sum(pool.map(reader, range(4))) > 0
    finally:
        done.set()
        thread.join()
    # Once the last rename is done, the very next request has the new bytes.
    for version in versions:
        replace(path, version)
        assert request(served.port, "/all.atom.xml")[2] == version


def test_an_output_folder_swapped_by_symlink_is_followed(tmp_path: Path) -> None:
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "all.atom.xml").write_text(f"<feed>{name}</feed>")
    (tmp_path / "output").symlink_to("v1")
    server = BackgroundServer(tmp_path / "output", "127.0.0.1", 0)
    try:
        assert request(server.port, "/all.atom.xml")[2] == b"<feed>v1</feed>"
        (tmp_path / "next").symlink_to("v2")
        os.replace(tmp_path / "next", tmp_path / "output")  # a deploy switching releases at once
        assert request(server.port, "/all.atom.xml")[2] == b"<feed>v2</feed>"
    finally:
        server.stop()


@pytest.mark.parametrize("cached", [True, False])
def test_clients_that_never_read_hold_at_most_a_chunk_each_and_a_small_kernel_buffer(tmp_path: Path, cached: bool,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from feeds.output import http1, serve

    # Larger than the kernel's socket buffers can take (4 MB), held in memory or streamed from disk.
    size = 6_000_000
    monkeypatch.setattr(serve, "CACHE_FILE_MAX", 16_000_000 if cached else 2_000_000)
    s = start(tmp_path)
    (s.root / "large.atom.xml").write_bytes(b"<feed>" + b"x" * size + b"</feed>")
    hogs = []
    try:
        for _ in range(10):
            hog = socket.socket()
            hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            hog.connect(("127.0.0.1", s.port))
            hog.sendall(b"GET /large.atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
            hogs.append(hog)
        connections = s.server.server.connections
        most, busy, deadline = 0, 0, time.monotonic() + 30
        while busy < len(hogs) and time.monotonic() < deadline:  # until all of them are being answered
            held = [c.transport.get_write_buffer_size() for c in list(connections.open) if c.transport]
            most, busy = max([most, *held]), sum(1 for n in held if n)
            time.sleep(0.05)
        assert busy == len(hogs) and most <= http1.CHUNK + 1024
        # Nor does the kernel hold megabytes for each (Linux reports twice the size asked for).
        kernel = [c.transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                  for c in list(connections.open) if c.transport and c.streaming]
        assert len(kernel) == len(hogs) and max(kernel) <= 2 * http1.SEND_BUFFER
        # ... and anyone who reads gets the whole file.
        assert len(request(s.port, "/large.atom.xml")[2]) == size + 13
    finally:
        for hog in hogs:
            hog.close()
        s.server.stop()


@pytest.mark.parametrize(("data", "status"), [
    (b"GET /all.rss.xml HTTP/1.1\r\n\r\n", b"400"),  # HTTP/1.1 without Host
    (b"GET /all.rss.xml HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"400"),
    (b"GET /all.rss.xml HTTP/1.0\r\n\r\n", b"200"),  # 1.0 needs none
    (b"GET /all.rss.xml\r\n", b"400"),  # HTTP/0.9, or any request cut short by the client's end
    (b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\nX-a: b", b"400"),
    (b"GET /all.rss.xml HTTP/1.1\r\nHost: x\r\nExpect: fancy\r\n\r\n", b"417"),
])
def test_requests_without_one_host_or_cut_short_are_refused(served: Served, data: bytes, status: bytes) -> None:
    assert raw(served.port, data).startswith(b"HTTP/1.1 " + status)


def test_expect_100_continue_gets_the_go_ahead_then_the_answer(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"POST /all.rss.xml HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        f = sock.makefile("rb")
        assert f.readline() == b"HTTP/1.1 100 Continue\r\n" and f.readline() == b"\r\n"
        sock.sendall(b"abcdeGET /all.rss.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_response(f)[0] == 405
        assert read_response(f)[2] == b"<rss/>"


@pytest.mark.parametrize("stored", ["NFC", "NFD"])
@pytest.mark.parametrize("asked", ["NFC", "NFD"])
def test_a_name_is_found_in_either_unicode_normal_form(served: Served, stored: str, asked: str) -> None:
    import unicodedata
    from urllib.parse import quote

    name = "Café Ångström 한국어"
    (served.root / "tags" / f"{unicodedata.normalize(stored, name)}.atom.xml").write_text("<feed>é</feed>")
    path = "/tags/" + quote(unicodedata.normalize(asked, name)) + ".atom.xml"
    assert request(served.port, path)[:3:2] == (200, "<feed>é</feed>".encode())


def test_pipelined_requests_waiting_in_line_hold_little_memory(tmp_path: Path) -> None:
    from feeds.output import http1

    s = start(tmp_path)
    (s.root / "large.atom.xml").write_bytes(b"<feed>" + b"x" * 6_000_000 + b"</feed>")
    ask = b"GET /large.atom.xml HTTP/1.1\r\nHost: x\r\n"
    asks = [ask + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 290) for i in range(90)) + b"\r\n",
            ask + b"If-None-Match: " + b"v" * 30_000 + b"\r\n\r\n"]
    hogs = []
    try:
        for ask in asks:  # never reading, behind a large answer: everything else waits in line
            hog = socket.socket()
            hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            hog.connect(("127.0.0.1", s.port))
            hog.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                hog.send(ask * 40)
            hogs.append(hog)
        time.sleep(1)  # let the server read what it will
        for conn in list(s.server.server.connections.open):
            assert conn.queued_bytes <= 4 * http1.QUEUE_BYTES
            assert all(set(r.headers) <= http1.KEPT for r in conn.queue if isinstance(r, http1.Request))
        assert request(s.port, "/all.atom.xml")[2] == FEED.encode()
    finally:
        for hog in hogs:
            hog.close()
        s.server.stop()
