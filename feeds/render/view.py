"""The browser view of a feed file: the feed's own XSL stylesheet applied on the server.

Browsers are dropping XSLT, so ``feeds serve`` applies the stylesheet a feed links
(``feed.xsl``, the same one static hosting relies on) itself and answers a browser with
the page it would have shown. Pure: bytes in, bytes out; touches no file, network,
database or clock. Neither the feed nor the stylesheet may reach anything else: entities
are not expanded, no DTD or network is loaded, and the transform may read or write no
file or URL (``document()`` and output extensions are denied).
"""

from __future__ import annotations

from functools import lru_cache

from lxml import etree

_PARSER_OPTIONS = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}


def _parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(**_PARSER_OPTIONS))  # type: ignore[arg-type]


@lru_cache(maxsize=4)
def _stylesheet(data: bytes) -> etree.XSLT:
    deny = etree.XSLTAccessControl.DENY_ALL  # type: ignore[attr-defined]  # missing from lxml-stubs
    return etree.XSLT(_parse(data), access_control=deny)


def feed_page(feed: bytes, stylesheet: bytes) -> bytes | None:
    """The HTML page ``stylesheet`` makes of ``feed``; None when either is not well-formed,
    the stylesheet is not XSLT, the transform fails or makes nothing."""
    try:
        result = _stylesheet(stylesheet)(_parse(feed))
    except (etree.Error, ValueError):
        return None
    page = bytes(result)
    return page if page.strip() else None
