"""Find a site's feed from one of its HTML pages: which answers are pages, which are feeds,
and where a page says its feeds are.

Pure: bytes, headers and URLs in, URLs out; the fetcher (``fetch``) asks for them. A
source URL that answers with an HTML page is searched for ``<link rel="alternate">``
elements of RSS, Atom or JSON Feed types (relative addresses resolved against the page,
or its ``<base href>``); several: the Atom one, else the first. A page without any gets
:data:`COMMON_PATHS` tried at its site's root, in that order.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin, urlsplit, urlunsplit

from lxml import etree
from lxml import html as lxml_html

#: Addresses where sites commonly keep their feed, tried (at the site's root) in this order.
COMMON_PATHS = ("/feed", "/rss", "/atom.xml", "/feed.xml", "/index.xml", "/rss.xml", "/feed.json")

#: The ``type`` of a feed link, and what kind of feed it names.
FEED_TYPES = {
    "application/atom+xml": "atom",
    "application/rss+xml": "rss",
    "application/rdf+xml": "rss",
    "application/feed+json": "json",
    "application/json": "json",
}

#: How much of a body is looked at to tell what it is.
_HEAD = 16384
_FIRST_TAG = re.compile(rb"\s*(?:(?:<\?.*?\?>|<!--.*?-->|<!(?P<doctype>doctype[^>]*)>)\s*)*<(?P<tag>[A-Za-z_][\w.:-]*)",
                        re.DOTALL | re.IGNORECASE)
_FEED_ROOTS = frozenset({"rss", "feed", "rdf", "channel"})


def _start(body: bytes) -> bytes:
    return body[:_HEAD].removeprefix(b"\xef\xbb\xbf").lstrip()


def _first_tag(head: bytes) -> tuple[str | None, str | None]:
    """The doctype and the local name of the first element (lower case), as far as found."""
    m = _FIRST_TAG.match(head)
    if m is None:
        return None, None
    doctype = m["doctype"].decode("ascii", "replace").lower() if m["doctype"] else None
    return doctype, m["tag"].decode("ascii", "replace").lower().rpartition(":")[2]


def is_feed(body: bytes) -> bool:
    """Whether ``body`` starts like an RSS, Atom or RDF document, or is a JSON Feed."""
    head = _start(body)
    if head.startswith(b"{"):
        try:
            data = json.loads(body.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return False
        return isinstance(data, dict) and "jsonfeed.org/version" in str(data.get("version", ""))
    return _first_tag(head)[1] in _FEED_ROOTS


def is_html_page(body: bytes, content_type: str | None) -> bool:
    """Whether ``body`` is an HTML page rather than a feed: an HTML doctype or root element,
    or (said to be HTML) no feed root; a feed sent as text/html is still a feed."""
    head = _start(body)
    if not head or head.startswith((b"{", b"[")):
        return False
    doctype, tag = _first_tag(head)
    if tag in _FEED_ROOTS:
        return False
    if tag == "html" or (doctype is not None and doctype.split()[1:2] == ["html"]):
        return True
    return "html" in (content_type or "").lower()


def feed_links(body: bytes, page_url: str) -> list[tuple[str, str]]:
    """The feeds the page links to, in document order: (absolute http(s) URL, kind)."""
    try:
        doc = lxml_html.document_fromstring(body, parser=lxml_html.HTMLParser(no_network=True, recover=True))
    except (etree.ParserError, ValueError):
        return []
    base = page_url
    for element in doc.iter("base"):
        href = (element.get("href") or "").strip()
        if href:
            base = urljoin(page_url, href)
            break
    found: dict[str, str] = {}
    for element in doc.iter("link"):
        rel = (element.get("rel") or "").lower().split()
        kind = FEED_TYPES.get((element.get("type") or "").partition(";")[0].strip().lower())
        href = (element.get("href") or "").strip()
        if "alternate" not in rel or kind is None or not href:
            continue
        try:
            url = urljoin(base, href).partition("#")[0]
            scheme = urlsplit(url).scheme
        except ValueError:
            continue
        if scheme in ("http", "https") and url not in found:
            found[url] = kind
    return list(found.items())


def choose(links: list[tuple[str, str]]) -> str | None:
    """The feed to use among a page's links: the first Atom one, else the first."""
    return next((url for url, kind in links if kind == "atom"), links[0][0] if links else None)


def common_candidates(page_url: str) -> list[str]:
    """:data:`COMMON_PATHS` at the root of the page's site (the page itself left out)."""
    parts = urlsplit(page_url)
    page = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
    found = [urlunsplit((parts.scheme, parts.netloc, path, "", "")) for path in COMMON_PATHS]
    return [url for url in found if url != page]
