"""Full text for summary-only sources: read an item's article page, the pure half.

A source with ``full_text`` gets each new item's article page (its link) fetched once
(``articles`` does the fetching and storing); here the page becomes the article: an HTML
page only (by its Content-Type, else by its first bytes), decoded by its declared charset,
parsed with lxml, its links made absolute against the page's address, then either every
element the source's CSS selector matches (``full_text: {selector: ...}``) or the main
text trafilatura finds in it (links, images, tables and formatting kept; comments, menus
and boilerplate left out). What is stored is that extracted HTML; it becomes an entry's
content through the same cleaning and sanitizing as all content (``normalize.content``),
within the source's ``limits.content_bytes``.

Pure: bytes, headers, URLs and settings in, text out; touches no file, network, database
or clock (trafilatura is only handed a parsed tree, and never fetches anything), and the
same page always gives the same article.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

import lxml.html
from cssselect import HTMLTranslator
from lxml import etree

from ..config import FullText
from ..models import Entry
from ..normalize.content import clean_html, html_to_text
from .discover import is_html_page

#: Media types of a page that can hold an article.
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
#: Longest extracted HTML kept, as a multiple of ``limits.content_bytes`` (cleaning shrinks it).
EXTRACTED_FACTOR = 4
#: The first wait before an article page that failed is asked for again; each failure
#: doubles it, up to ``fetch.max_backoff``.
FIRST_RETRY = 3600.0

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)
_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)
#: Elements never part of an article, dropped before the selector or trafilatura looks.
_NEVER_ARTICLE = ("script", "style", "noscript", "template", "iframe", "object", "embed", "form")


@dataclass(frozen=True, slots=True)
class Article:
    """What an article page gave: its extracted HTML, or why there is none."""

    #: The article as extracted (absolute links; not yet cleaned), or None.
    html: str | None
    #: One line saying why there is no article, or None.
    problem: str | None = None


def extraction(full_text: FullText) -> str:
    """What an article is extracted with, as stored beside it: an article extracted
    otherwise than the source now says is fetched again."""
    return "trafilatura" if full_text.selector is None else "css:" + full_text.selector


def retry_delay(failures: int, max_backoff: float) -> float:
    """Seconds before an article page that failed ``failures`` times in a row is asked for again."""
    return min(max_backoff, FIRST_RETRY * 2.0 ** min(max(failures - 1, 0), 30))


def _media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


#: Encodings pages name and mean a larger one by, as browsers read them (WHATWG Encoding).
_AS_BROWSERS_READ = {"latin_1": "cp1252", "ascii": "cp1252", "iso8859-1": "cp1252", "gb2312": "gb18030",
                     "gbk": "gb18030", "big5": "big5hkscs", "shift_jis": "cp932", "euc_kr": "cp949"}
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


#: Codecs Python has and no browser reads a page in: a page naming one is read as if it named none
#: (UTF-7 is refused by browsers, as it hides markup; UTF-32 is no web encoding).
_NOT_WEB = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape", "utf-7",
                      "utf-32", "utf-32-le", "utf-32-be"})


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    # base64, rot13, zlib...: bytes-to-bytes (or str-to-str) codecs, no text encoding.
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_WEB:
        return None
    return _AS_BROWSERS_READ.get(info.name, info.name)


def decode_page(body: bytes, content_type: str | None) -> str:
    """An HTML page's text: by a byte-order mark, the Content-Type's charset, a ``<meta>``
    charset, else UTF-8; bytes the encoding cannot read become U+FFFD."""
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", "replace")
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return body.decode("utf-16", "replace")
    declared = _CHARSET.search(content_type or "")
    meta = _META_CHARSET.search(body[:4096])
    name = _codec(declared[1] if declared else None) or _codec(meta[1].decode("ascii") if meta else None) or "utf-8"
    if name in ("utf-16", "utf-16-le", "utf-16-be"):  # a page that says so yet has no BOM: not so
        name = "utf-8"
    try:
        return body.decode(name, "replace")
    except (LookupError, UnicodeError):  # a codec that cannot replace what it cannot read
        return body.decode("utf-8", "replace")


@lru_cache(maxsize=64)
def _selector(selector: str) -> etree.XPath:
    return etree.XPath(HTMLTranslator().css_to_xpath(selector, prefix="descendant-or-self::"))


def _outermost(found: list[lxml.html.HtmlElement]) -> list[lxml.html.HtmlElement]:
    """The matches not inside another match, in document order (each element once)."""
    chosen = set(found)
    out = []
    for el in found:
        if any(parent in chosen for parent in el.iterancestors()):
            continue
        out.append(el)
    return out


def _by_selector(root: lxml.html.HtmlElement, selector: str) -> str | None:
    found = _selector(selector)(root)
    elements = [el for el in found if isinstance(el, lxml.html.HtmlElement)] if isinstance(found, list) else []
    if not elements:
        return None
    return "".join(lxml.html.tostring(el, encoding="unicode", with_tail=False) for el in _outermost(elements))


def _by_trafilatura(root: lxml.html.HtmlElement, url: str) -> str | None:
    import trafilatura  # only sources with full text need it (and it takes a while to load)

    found: str | None = trafilatura.extract(
        root, url=url, output_format="html", include_links=True, include_images=True, include_tables=True,
        include_formatting=True, include_comments=False, deduplicate=False, with_metadata=False)
    return found


def extract_article(body: bytes, headers: Mapping[str, str], url: str, full_text: FullText,
                    *, max_chars: int) -> Article:
    """The article of the page ``body`` (served with ``headers`` from ``url``), or why there is none."""
    media = _media_type(headers.get("content-type"))
    if media is not None and media not in HTML_TYPES:
        return Article(None, f"not an HTML page (Content-Type {media[:100]})")
    if media is None and not is_html_page(body, None):
        return Article(None, "not an HTML page")
    text = decode_page(body, headers.get("content-type"))
    if not text.strip():
        return Article(None, "the page is empty")
    try:
        root = lxml.html.document_fromstring(_XML_DECLARATION.sub("", text, count=1))  # XHTML's is read already
    except (etree.ParserError, ValueError) as exc:
        return Article(None, f"the page cannot be read as HTML ({' '.join(str(exc).split())[:200]})")
    if not isinstance(root, lxml.html.HtmlElement):
        return Article(None, "the page cannot be read as HTML")
    etree.strip_elements(root, *_NEVER_ARTICLE, etree.Comment, with_tail=False)
    root.make_links_absolute(url, resolve_base_href=True, handle_failures="discard")
    if full_text.selector is not None:
        html = _by_selector(root, full_text.selector)
        if html is None:
            return Article(None, f"the selector {full_text.selector!r} (full_text.selector) matches nothing "
                                 "on the page")
    else:
        html = _by_trafilatura(root, url)
        if html is None:
            return Article(None, "no article text found on the page")
    if len(html) > max_chars:
        return Article(None, f"the article is over {max_chars} characters")
    return Article(html)


def article_content(html: str, entry: Entry, *, remove: tuple[str, ...] | list[str], content_bytes: int
                    ) -> Article:
    """The content an extracted article gives ``entry`` (as :attr:`Article.html`): cleaned
    and sanitized as all content is (the source's ``clean.remove``, the heading repeating
    the title dropped, links resolved against the entry's link); or why it gives none
    (nothing left, less text than the feed's summary, or over ``content_bytes``)."""
    content = clean_html(html, title=entry.title, base_url=entry.link, remove=remove)
    text = html_to_text(content)
    if not content or (not text and "<img" not in content):
        return Article(None, "nothing of the article is left once cleaned")
    if len(text) < len(entry.summary.rstrip("…")):  # a menu, a paywall's teaser: the summary says more
        return Article(None, "the article found on the page is shorter than the feed's summary")
    size = len(content.encode("utf-8", "replace"))
    if size > content_bytes:
        return Article(None, f"the article is {size} bytes, over limits.content_bytes ({content_bytes})")
    return Article(content)


def with_article(entry: Entry, content: str) -> Entry:
    """``entry`` with the article as its content; its summary stays the feed's."""
    return replace(entry, content=content)


def digest_with_article(digest: str, content: str) -> str:
    """The digest of an item whose entry carries an article as its content: the digest of
    the feed's item (what tells whether the item changed upstream), then the article's,
    so that whatever is made from the entry knows it changed."""
    return f"{item_digest(digest)}+{hashlib.sha1(content.encode('utf-8', 'replace')).hexdigest()[:16]}"


def item_digest(digest: str) -> str:
    """The digest of the feed's item in a stored digest (without an article's part)."""
    return digest.partition("+")[0]
