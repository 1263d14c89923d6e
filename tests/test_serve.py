"""`feeds serve`: content types, validators, 304s, HEAD, gzip, and no way out of output/."""

from __future__ import annotations

import gzip
import http.client
import threading
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from feeds.serve import make_server


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root = tmp_path / "output"
    (root / "tags").mkdir(parents=True)
    (root / "all.atom.xml").write_text("<feed>" + "x" * 2000 + "</feed>")
    (root / "all.rss.xml").write_text("<rss/>")
    (root / "tags" / "联合早报.atom.xml").write_text("<feed>中文</feed>")
    (root / "index.html").write_text("<html></html>")
    (tmp_path / "secret.txt").write_text("do not serve")
    server = make_server(root, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def request(port: int, path: str, method: str = "GET",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_content_types(served: tuple[Path, int]) -> None:
    _, port = served
    assert request(port, "/all.atom.xml")[1]["content-type"] == "application/atom+xml; charset=utf-8"
    assert request(port, "/all.rss.xml")[1]["content-type"] == "application/rss+xml; charset=utf-8"
    status, headers, body = request(port, "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    status, _, body = request(port, "/tags/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.atom.xml")
    assert status == 200 and "中文" in body.decode()


def test_browsers_get_feeds_as_xml_for_the_xsl_view(served: tuple[Path, int]) -> None:
    _, port = served
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    assert request(port, "/all.atom.xml", headers=browser)[1]["content-type"] == "application/xml; charset=utf-8"
    reader = {"Accept": "application/atom+xml, application/rss+xml, */*;q=0.5"}
    assert request(port, "/all.atom.xml", headers=reader)[1]["content-type"] == "application/atom+xml; charset=utf-8"


def test_etag_last_modified_and_304(served: tuple[Path, int]) -> None:
    root, port = served
    status, headers, _ = request(port, "/all.rss.xml")
    etag, modified = headers["etag"], headers["last-modified"]
    assert status == 200 and etag.startswith('"') and not etag.startswith("W/")
    assert request(port, "/all.rss.xml", headers={"If-None-Match": etag})[0] == 304
    assert request(port, "/all.rss.xml", headers={"If-Modified-Since": modified})[0] == 304
    assert request(port, "/all.rss.xml", headers={"If-None-Match": '"other"'})[0] == 200
    (root / "all.rss.xml").write_text("<rss>changed</rss>")
    status, headers, body = request(port, "/all.rss.xml", headers={"If-None-Match": etag})
    assert status == 200 and body == b"<rss>changed</rss>" and headers["etag"] != etag
    old = formatdate(0, usegmt=True)
    assert request(port, "/all.rss.xml", headers={"If-Modified-Since": old})[0] == 200


def test_head_and_gzip(served: tuple[Path, int]) -> None:
    _, port = served
    status, headers, body = request(port, "/all.atom.xml", "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) == 2013
    status, headers, body = request(port, "/all.atom.xml", headers={"Accept-Encoding": "gzip, br"})
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body).startswith(b"<feed>")
    assert headers["vary"] == "Accept, Accept-Encoding"
    plain_etag = request(port, "/all.atom.xml")[1]["etag"]
    assert headers["etag"] != plain_etag
    assert request(port, "/all.atom.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]})[0] \
        == 304


@pytest.mark.parametrize("path", ["/../secret.txt", "/tags/../../secret.txt", "/%2e%2e/secret.txt",
                                  "/..%2fsecret.txt", "/nope.xml", "/tags/%00.xml", "//etc/passwd"])
def test_nothing_outside_output(served: tuple[Path, int], path: str) -> None:
    _, port = served
    status, _, body = request(port, path)
    assert status == 404 and b"do not serve" not in body
