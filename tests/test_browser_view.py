"""A browser that opens a feed's address gets a page; a feed reader at the same address gets the feed.

Browsers no longer apply XSLT themselves, so ``feeds serve`` answers a browser with the feed's page
(``output.pages``) or with its stylesheet applied on the server, and a feed reader with the file itself,
byte for byte. Real generated output, a real server on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import threading

import feedparser
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import html

from feeds.output import negotiate
from feeds.output.serve import make_server
from feeds.render.view import feed_page

from .conftest import Site, posts, with_formats

BROWSERS = [
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
    "application/signed-exchange;v=b3;q=0.7",  # Chromium
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",  # Firefox, Safari
    "text/html",
]
READERS = [
    None,  # no Accept at all
    "*/*",
    "application/atom+xml,application/rdf+xml,application/rss+xml,application/x-netcdf,application/xml;q=0.9,"
    "text/xml;q=0.2,*/*;q=0.1",  # feedparser
    "application/rss+xml, application/rdf+xml;q=0.8, application/atom+xml;q=0.6, application/xml;q=0.4, "
    "text/xml;q=0.4, text/html;q=0.2",  # lists HTML, below the feed types
    "application/atom+xml, application/rss+xml, text/html, */*",  # HTML named at the feed's weight
    "text/html;q=0",
    "text/html;q=bad, application/xml",
]
ATOM = "application/atom+xml; charset=utf-8"


@pytest.mark.parametrize("accept", BROWSERS)
def test_browsers_prefer_the_page(accept: str) -> None:
    for kind in (ATOM, "application/rss+xml; charset=utf-8", "application/feed+json; charset=utf-8"):
        assert negotiate.prefers_page(accept, kind)


@pytest.mark.parametrize("accept", READERS)
def test_feed_readers_get_the_feed(accept: str | None) -> None:
    assert not negotiate.prefers_page(accept, ATOM)


q_values = st.sampled_from(["", ";q=0", ";q=0.1", ";q=0.5", ";q=0.9", ";q=1", ";q=1.0", ";q=x"])
ranges = st.sampled_from(["text/html", "application/atom+xml", "application/xml", "text/xml", "*/*",
                          "application/*", "text/*", "image/webp", "TEXT/HTML"])


@given(st.lists(st.tuples(ranges, q_values), max_size=8))
def test_the_page_only_when_html_outweighs_every_range_the_feed_matches(items: list[tuple[str, str]]) -> None:
    accept = ", ".join(media + q for media, q in items)
    weights: dict[str, float] = {}
    for media, q in items:
        value = q.removeprefix(";q=") if q else "1"
        weights.setdefault(media.lower(), float(value) if value.replace(".", "", 1).isdigit() else 0.0)
    html_q = weights.get("text/html", 0.0)
    feed_q = max(weights.get(m, 0.0) for m in ("application/atom+xml", "application/xml", "text/xml",
                                               "application/*", "*/*"))
    assert negotiate.prefers_page(accept, ATOM) == (html_q > 0 and html_q > feed_q)


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_the_view_of_any_bytes_is_a_page_or_none(feed: bytes, sheet: bytes) -> None:
    page = feed_page(feed, sheet)
    assert page is None or isinstance(page, bytes)


def test_the_stylesheet_reads_no_file_and_the_feed_expands_no_entity(tmp_path: object) -> None:
    reads = (b'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
             b'<xsl:template match="/"><p><xsl:copy-of select="document(\'/etc/hostname\')"/></p>'
             b'</xsl:template></xsl:stylesheet>')
    assert feed_page(b"<feed/>", reads) is None
    copies = (b'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
              b'<xsl:template match="/"><p><xsl:value-of select="."/></p></xsl:template></xsl:stylesheet>')
    entity = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/hostname">]><a>[&e;]</a>'
    page = feed_page(entity, copies)
    assert page is None or b"[]" in page


def get(port: int, path: str, accept: str | None = None,
        extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {**({"Accept": accept} if accept else {}), **(extra or {})}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


@pytest.mark.parametrize("path", ["/tags/python.atom.xml", "/tags/python.rss.xml", "/all.atom.xml"])
def test_a_browser_gets_the_stylesheet_page_and_a_reader_the_feed(served_site: tuple[Site, int], path: str) -> None:
    site, port = served_site
    status, headers, body = get(port, path, BROWSERS[0])
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "Accept" in headers["vary"]
    doc = html.fromstring(body)
    assert "This is a web feed" in doc.text_content()
    links = {a.get("href") for a in doc.iter("a")}
    assert f"https://example.org/feeds{path}" in links  # the subscribe link: this same address
    if "python" in path:
        assert {a.text_content() for a in doc.iter("a")} >= {"B", "C"}
    for accept in READERS:
        status, headers, feed = get(port, path, accept)
        assert status == 200 and feed == (site.output / path[1:]).read_bytes()
        assert headers["content-type"].startswith(("application/atom+xml", "application/rss+xml"))
        assert not feedparser.parse(feed).bozo


def test_the_page_has_its_own_validators(served_site: tuple[Site, int]) -> None:
    site, port = served_site
    _, page, _ = get(port, "/tags/python.atom.xml", BROWSERS[1])
    _, feed, _ = get(port, "/tags/python.atom.xml", READERS[2])
    assert page["etag"] != feed["etag"]
    assert get(port, "/tags/python.atom.xml", BROWSERS[1], {"If-None-Match": page["etag"]})[0] == 304
    assert get(port, "/tags/python.atom.xml", READERS[2], {"If-None-Match": page["etag"]})[0] == 200
    # A new stylesheet makes a new page at once.
    sheet = site.output / "feed.xsl"
    sheet.write_bytes(sheet.read_bytes().replace(b"This is a web feed.", b"A feed, shown here."))
    status, again, body = get(port, "/tags/python.atom.xml", BROWSERS[1], {"If-None-Match": page["etag"]})
    assert status == 200 and again["etag"] != page["etag"] and b"A feed, shown here." in body


def test_without_a_usable_stylesheet_a_browser_gets_the_feed_as_xml(served_site: tuple[Site, int]) -> None:
    site, port = served_site
    (site.output / "feed.xsl").write_text("not a stylesheet")
    status, headers, body = get(port, "/tags/python.atom.xml", BROWSERS[0])
    assert status == 200 and headers["content-type"] == "application/xml; charset=utf-8"
    assert body == (site.output / "tags/python.atom.xml").read_bytes()
    # A JSON Feed without a page of its own stays JSON.
    status, headers, _ = get(port, "/tags/python.feed.json", BROWSERS[0])
    assert headers["content-type"] == "application/feed+json; charset=utf-8"


def test_with_pages_a_browser_gets_the_feeds_own_page_in_every_format(site: Site) -> None:
    posts(site)
    with_formats(site, "")
    text = (site.root / "config.yaml").read_text().replace("  max_entries: 50\n", "  max_entries: 50\n  pages: true\n")
    site.write_config(text)
    site.generate()
    server = make_server(site.output, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        page = (site.output / "tags/python.html").read_bytes()
        for suffix in (".atom.xml", ".rss.xml", ".feed.json"):
            status, headers, body = get(port, "/tags/python" + suffix, BROWSERS[0])
            assert status == 200 and body == page and headers["content-type"] == "text/html; charset=utf-8"
            assert get(port, "/tags/python" + suffix)[2] == (site.output / ("tags/python" + suffix)).read_bytes()
    finally:
        server.shutdown()
        server.server_close()
