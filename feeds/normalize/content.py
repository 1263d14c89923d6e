"""Turn a post body into HTML fit for feed readers, and text into safe text.

Pure functions only: no files, network, database or clock. The pipeline is
Markdown -> HTML (raw HTML passes through) -> drop configured elements (ads,
promos) -> drop the heading that repeats the title -> real ``src`` for lazy
images -> drop emptied containers -> allowlist sanitizing, in which every URL
attribute becomes an absolute http(s) URL or goes (``identity.web_url``).
``safe_html`` repeats that last step on HTML from anywhere (the store), so that
what is written out is safe whatever produced it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from functools import cache, lru_cache
from html import unescape
from typing import Any

import lxml.html
import nh3
from cssselect import GenericTranslator
from lxml import etree

from ..identity import web_url

# Characters XML 1.0 forbids, plus C1 controls and non-characters readers choke on.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_SPACES = re.compile(r"\s+")

_TAGS = set(nh3.ALLOWED_TAGS) | {"figure", "figcaption", "picture", "source", "video", "audio", "track"}
_TAGS -= {"map", "area"}
_ATTRIBUTES: dict[str, set[str]] = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("img", set()).update({"alt", "src", "width", "height", "title"})
_ATTRIBUTES.setdefault("a", set()).update({"href", "title"})
_ATTRIBUTES.setdefault("video", set()).update({"src", "poster", "controls", "width", "height"})
_ATTRIBUTES.setdefault("audio", set()).update({"src", "controls"})
_ATTRIBUTES.setdefault("source", set()).update({"src", "type"})
_ATTRIBUTES.setdefault("track", set()).update({"src", "kind", "srclang", "label"})
_URL_SCHEMES = {"http", "https"}
# Attributes that hold a URL in some HTML, SVG or MathML element. Only some are allowed
# at all; all are checked, so that allowing one more attribute cannot let a script in.
_URL_ATTRIBUTES = frozenset({
    "href", "src", "cite", "poster", "longdesc", "action", "formaction", "data", "background",
    "codebase", "classid", "archive", "usemap", "profile", "manifest", "icon", "lowsrc", "dynsrc",
    "ping", "itemtype", "itemid", "xlink:href", "xml:base", "content", "srcdoc",
})
_SRCSET_ATTRIBUTES = frozenset({"srcset", "imagesrcset"})

# Attributes lazy-loading scripts keep the real image address in, best first.
_LAZY_SRC = ("data-src", "data-original", "data-lazy-src", "data-actualsrc", "data-url")
# Elements that are worth keeping even with no text inside.
_MEDIA = {"img", "video", "audio", "picture", "source", "iframe", "embed", "object", "br", "hr", "table"}
# Containers that mean nothing once empty (ad slots, wrappers of removed promos).
_PRUNABLE = {"div", "section", "aside", "span", "p", "a", "figure", "figcaption", "center", "font", "ins"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

@cache
def _markdown() -> Any:
    """The reference renderer, markdown-it-py (made on first use: loading it takes 15 ms)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


# The Rust port of the same renderer, six times faster. It writes other bytes than
# markdown-it-py for some input, and panics on some code spans: Unicode spaces other than
# the ASCII ones, NUL, code spans and fences, tables, strikethrough, blockquotes, inline
# comments and declarations, emphasis next to non-ASCII punctuation, HTML in list items,
# a line ended by CR alone, a text without a final newline. Such text goes to
# markdown-it-py, which stays the reference (tests/test_markdown_port.py compares them).
@cache
def _fast_markdown() -> Any:
    import markdown_it_pyrs

    return markdown_it_pyrs.MarkdownIt("commonmark").enable_many(["table", "strikethrough"])


_BLOCK_TAGS = "p|div|section|article|aside|figure|figcaption|h[1-6]|ul|ol|li|table|tr|td|th|header|footer|nav|hr"
_LIST_ITEM = r"^[ \t]*(?:[-+*]|\d{1,9}[.)])[ \t]+"
_PORT_DIFFERS = re.compile(
    r"[^\S\n\r\t ]|\x00|[`|~]|<![A-Za-z\[]|[*_][^\x00-\x7f]|[^\x00-\x7f][*_]|\r(?!\n)"
    rf"|^[ \t]*(?:(?:[-+*]|\d{{1,9}}[.)])[ \t]+)*>|{_LIST_ITEM}<"
    # A comment inside a line, unless the line starts an HTML block (which is copied as it is).
    rf"|^(?! {{0,3}}(?:<!--|</?(?:{_BLOCK_TAGS})(?:[ \t/>]|$)))[^\n]*<!--", re.MULTILINE)


# The same test as _PORT_DIFFERS, in pieces, each a fast scan: a search for the whole
# pattern tries every alternative at every character, several times the cost of rendering.
# The characters it looks for are looked for one by one (``in``); the alternatives that need
# ``*`` or ``_`` or ``<!`` only at those; the line starts after each newline.
_ODD_CHARACTERS = ("\x00", "`", "|", "~",
                   *(c for c in map(chr, range(0x3001)) if c.isspace() and c not in "\n\r\t "))
_DECLARATION = re.compile(r"<![A-Za-z\[]")
_LONE_CR = re.compile(r"\r(?!\n)")
_STARTS = rf"(?:[ \t]*(?:(?:[-+*]|\d{{1,9}}[.)])[ \t]+)*>|{_LIST_ITEM[1:]}<)"
_FIRST_LINE_START, _LINE_START = re.compile(_STARTS), re.compile("\n" + _STARTS)
_HTML_BLOCK_LINE = re.compile(rf" {{0,3}}(?:<!--|</?(?:{_BLOCK_TAGS})(?:[ \t/>]|$))", re.MULTILINE)


def _emphasis_next_to_non_ascii(text: str) -> bool:
    last = len(text) - 1
    for mark in "*_":
        at = text.find(mark)
        while at >= 0:
            if (at > 0 and text[at - 1] > "\x7f") or (at < last and text[at + 1] > "\x7f"):
                return True
            at = text.find(mark, at + 1)
    return False


def _comment_inside_a_line(text: str) -> bool:
    at = text.find("<!--")
    while at >= 0:
        start = text.rfind("\n", 0, at) + 1
        if _HTML_BLOCK_LINE.match(text, start) is None:
            return True
        end = text.find("\n", at)
        at = -1 if end < 0 else text.find("<!--", end)
    return False


def port_agrees(text: str) -> bool:
    """Whether the Rust port renders ``text`` as markdown-it-py does (the port is used then):
    ``_PORT_DIFFERS`` finds nothing in it (as :func:`port_agrees_reference` tests, slower)."""
    if not text.endswith("\n") or any(c in text for c in _ODD_CHARACTERS):
        return False
    if not text.isascii() and _emphasis_next_to_non_ascii(text):
        return False
    if "<!" in text and (_DECLARATION.search(text) is not None or _comment_inside_a_line(text)):
        return False
    if "\r" in text and _LONE_CR.search(text) is not None:
        return False
    return _FIRST_LINE_START.match(text) is None and _LINE_START.search(text) is None


def port_agrees_reference(text: str) -> bool:
    """:func:`port_agrees` as one search for ``_PORT_DIFFERS`` (what the tests check it against)."""
    return text.endswith("\n") and _PORT_DIFFERS.search(text) is None


def xml_safe(text: str) -> str:
    """``text`` without the characters an XML 1.0 document cannot hold."""
    return _XML_ILLEGAL.sub("", text)


def plain_line(text: str) -> str:
    """One line of plain text: XML-safe, whitespace collapsed, and not read as a script or
    local URL by a reader that takes a title or name for a link (see :func:`defused`)."""
    text = " ".join(text.split())
    text = text if text.isprintable() else xml_safe(text)
    return defused(text) if ":" in text or ";" in text else text


# What a lenient reader makes of text (entities decoded twice, controls and spaces gone)
# starting as a URL that runs or reads local files.
_SQUEEZE = re.compile(r"[\x00-\x20\x7f]+")
_RUNS_AT_START = re.compile(r"(?:java|vb)script:|data:[a-z0-9.+-]*/|file:/")
# A colon as text or as an entity (``&colon;``, ``&#58;``, ``&#x3a;``), once or twice escaped.
_COLON = re.compile(r":|&(?:amp;)?(?:colon|#0*58|#x0*3a);", re.IGNORECASE)


_LEADING = re.compile(r"[\x00-\x20\x7f]*")


def defused(text: str) -> str:
    """``text``, unless it reads as the start of a ``javascript:``, ``vbscript:``, ``data:``
    or ``file:`` URL to a lenient reader: then its first colon is a full-width one (U+FF1A),
    which reads the same and starts no URL."""
    # What a lenient reader sees starts with the first character that is not a space or
    # control: unless that opens an entity, it is that character (lowered), so a text
    # starting otherwise than with j, v, d or f starts no such URL (a whole article's text
    # is not unescaped and squeezed to learn that).
    leading = _LEADING.match(text)  # (it matches the empty string)
    start = leading.end() if leading is not None else 0
    if start == len(text) or (text[start] != "&" and text[start].lower()[0] not in "jvdf"):
        return text
    return _defused(text)


def _defused(text: str) -> str:
    """:func:`defused` without the look at the first character (the tests compare them)."""
    for _ in range(4):  # each round takes away one colon; a line cannot start more than one
        if _RUNS_AT_START.match(_SQUEEZE.sub("", unescape(unescape(text))).lower()) is None:
            return text
        text = _COLON.sub("\uff1a", text, count=1)
    return text


#: The longest tag or category name (characters), of posts and source items alike: a name
#: is copied into every feed of its entry, its feed's title, the index and the OPML file.
TAG_CHARS = 100


def term_name(name: str) -> str:
    """A tag or category name of at most :data:`TAG_CHARS` characters: a longer one is cut
    and ends with eight hex digits of a hash of the whole, so that two long names that begin
    alike stay two names (and two feeds)."""
    if len(name) <= TAG_CHARS:
        return name
    return shorten(name, TAG_CHARS - 9) + " " + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def name_list(value: Any) -> list[str]:
    """Distinct names (tags, categories), each a plain line, from a YAML list or a space or
    comma separated string; the first spelling of a name, compared case-insensitively, wins."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        parts = value.split(",") if "," in value else value.split()
    elif isinstance(value, list | tuple):
        parts = [str(v) for v in value if v is not None and not isinstance(v, dict | list | tuple)]
    elif isinstance(value, dict):
        return []  # a mapping names no tags (its Python spelling is none)
    else:
        parts = [str(value)]
    out: list[str] = []
    seen: set[str] = set()
    for part in parts:
        name = " ".join(part.split())  # plain_line(part), inline: this runs for every tag of every post
        if not name.isprintable():
            name = xml_safe(name)
        if ":" in name or ";" in name:
            name = defused(name)
        if len(name) > TAG_CHARS:
            name = term_name(name)
        if name:
            key = name.casefold()
            if key not in seen:
                seen.add(key)
                out.append(name)
    return out


# Text a reader that takes it for HTML would parse as a tag, comment or declaration, or
# as a character reference (HTML decodes "&lt" even without its semicolon).
_LOOKS_LIKE_TAG = re.compile(r"<[A-Za-z/!?]")
_LOOKS_LIKE_REFERENCE = re.compile(r"&(?=#[0-9xX]|[A-Za-z][A-Za-z0-9]*;|lt|gt|amp|quot|apos)", re.IGNORECASE)


def display_text(text: str) -> str:
    """Plain text that reads the same in every reader, including those that take RSS and
    JSON Feed titles (and some Atom text) for HTML: XML-safe, and when it holds something
    that would parse as markup, the angle brackets become look-alikes (U+2039, U+203A)
    and the ampersand of a character reference a fullwidth one (U+FF06). Text without such
    sequences ("AT&T", "1 < 2") is unchanged."""
    text = xml_safe(text)
    if _LOOKS_LIKE_TAG.search(text):
        text = text.replace("<", "\u2039").replace(">", "\u203a")
    if "&" in text:
        text = _LOOKS_LIKE_REFERENCE.sub("\uff06", text)
    return text


def render_markdown(text: str) -> str:
    """Markdown to HTML; raw HTML blocks pass through untouched."""
    if port_agrees(text):
        fast: str = _fast_markdown().render(text)
        return fast
    rendered: str = _markdown().render(text)
    return rendered


@lru_cache(maxsize=64)
def _compile(selectors: tuple[str, ...]) -> etree.XPath | None:
    if not selectors:
        return None
    translator = GenericTranslator()
    expression = " | ".join(translator.css_to_xpath(s, prefix="descendant-or-self::") for s in selectors)
    return etree.XPath(expression)


def _norm(text: str) -> str:
    return _SPACES.sub("", text).casefold()


def _first_block(root: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    if (root.text or "").strip():
        return None
    for child in root:
        if not isinstance(child.tag, str):  # comments, processing instructions
            if (child.tail or "").strip():
                return None
            continue
        return child
    return None


def _drop_title_heading(root: lxml.html.HtmlElement, title: str) -> None:
    """Drop the first block when it only repeats the title (a heading or a lone link)."""
    block = _first_block(root)
    if block is None or not title:
        return
    is_heading = block.tag in _HEADINGS
    lone_link = block.tag == "p" and len(block) == 1 and block[0].tag == "a" and not (block.text or "").strip()
    if (is_heading or lone_link) and _norm(block.text_content()) == _norm(title):
        block.drop_tree()
        nxt = _first_block(root)
        if nxt is not None and nxt.tag == "hr":  # "------" under a link line
            nxt.drop_tree()


def _fix_lazy_images(root: lxml.html.HtmlElement) -> None:
    for img in root.iter("img"):
        for attr in _LAZY_SRC:
            real = (img.get(attr) or "").strip()
            if real and not real.startswith("data:"):
                img.set("src", real)
                break


# Containers with no text and no media inside: ad slots, wrappers of removed promos.
_EMPTY = etree.XPath(
    "descendant::*[" + " or ".join(f"self::{t}" for t in sorted(_PRUNABLE)) + "]"
    "[not(normalize-space())][not(" + " or ".join(f"descendant::{t}" for t in sorted(_MEDIA)) + ")]"
)


def _prune_empty(root: lxml.html.HtmlElement) -> None:
    found = _EMPTY(root)
    for el in reversed(found if isinstance(found, list) else []):
        if isinstance(el, lxml.html.HtmlElement) and el.getparent() is not None:
            el.drop_tree()


def _srcset(value: str, base: str | None) -> str | None:
    """A ``srcset`` with only its http(s) candidates (each "URL [descriptor]")."""
    kept = []
    for candidate in value.split(","):
        url, _, descriptor = candidate.strip().partition(" ")
        safe = web_url(url, base)
        if safe is not None:
            kept.append(f"{safe} {descriptor.strip()}".strip())
    return ", ".join(kept) or None


def url_filter(base: str | None) -> Callable[[str, str, str], str | None]:
    """An nh3 attribute filter: URL attributes become absolute http(s) URLs (relative ones
    resolved against ``base``) or are dropped; other attributes pass."""
    def check(_tag: str, attribute: str, value: str) -> str | None:
        name = attribute.lower()
        if name in _URL_ATTRIBUTES or name.endswith(":href"):
            return web_url(value, base)
        if name in _SRCSET_ATTRIBUTES:
            return _srcset(value, base)
        return value
    return check


# What relative URLs resolve against in the one cleaner ``clean_html`` uses (building a
# cleaner for each call costs more than the cleaning).
_base_url: ContextVar[str | None] = ContextVar("base_url", default=None)


def _clean_attribute(tag: str, attribute: str, value: str) -> str | None:
    return url_filter(_base_url.get())(tag, attribute, value)


_cleaner = nh3.Cleaner(tags=_TAGS, attributes=_ATTRIBUTES, url_schemes=_URL_SCHEMES, link_rel=None,
                       strip_comments=True, attribute_filter=_clean_attribute)

_final_pass = nh3.Cleaner(tags=_TAGS, attributes=_ATTRIBUTES, url_schemes=_URL_SCHEMES, link_rel=None,
                          strip_comments=True, attribute_filter=url_filter(None))


def safe_html(html: str) -> str:
    """HTML of any origin as it may be published: the same allowlist as ``clean_html``,
    and only absolute http(s) URLs in it. Idempotent on what ``clean_html`` returns."""
    return _final_pass.clean(xml_safe(html)).strip()


_BLOCKS = {"p", "div", "section", "article", "figure", "ul", "ol", "li", "table", "blockquote", "pre",
           "h1", "h2", "h3", "h4", "h5", "h6", "hr", "header", "footer", "aside"}


def _tidy_whitespace(root: lxml.html.HtmlElement) -> None:
    """Collapse the runs of blank space removed elements leave between blocks."""
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag in _BLOCKS:
            if el.tail is not None and not el.tail.strip():
                el.tail = "\n" if "\n" in el.tail or el.getnext() is not None else None
            if len(el) and el.text is not None and not el.text.strip():
                el.text = "\n" if "\n" in el.text else None
            if len(el):
                last = el[-1]
                if last.tail is not None and not last.tail.strip():
                    last.tail = "\n" if "\n" in last.tail else None


_DOCUMENT_TAGS = re.compile(r"</?(?:html|head|body)\b[^>]*>|<!doctype[^>]*>", re.IGNORECASE)


def _fragment(html: str) -> lxml.html.HtmlElement | None:
    """``html`` parsed under a ``<div>``; None when there is nothing in it.

    lxml refuses some fragments outright: only a doctype or comments ("Document is
    empty"), an empty ``<html>`` ("too many bodies"). Their document tags mean nothing
    inside an entry, so they are dropped and the rest is parsed again.
    """
    for attempt in (html, _DOCUMENT_TAGS.sub("", html)):
        try:
            return lxml.html.fragment_fromstring(attempt, create_parent="div")
        except (etree.ParserError, AssertionError, IndexError, ValueError):
            continue
    return None


def clean_html(html: str, *, title: str = "", base_url: str | None = None,
               remove: Sequence[str] = ()) -> str:
    """Clean, sanitized HTML for a feed entry's content."""
    html = xml_safe(html)
    if not html.strip():
        return ""
    root = _fragment(html)
    if root is None:
        return ""
    xpath = _compile(tuple(remove))
    if xpath is not None:
        found = xpath(root)
        for el in found if isinstance(found, list) else ():
            if isinstance(el, lxml.html.HtmlElement) and el is not root and el.getparent() is not None:
                el.drop_tree()
    etree.strip_elements(root, etree.Comment, with_tail=False)
    _drop_title_heading(root, title)
    _fix_lazy_images(root)
    _prune_empty(root)
    _tidy_whitespace(root)
    inner = (root.text or "") + "".join(
        lxml.html.tostring(child, encoding="unicode") for child in root
    )
    token = _base_url.set(base_url)
    try:
        cleaned = _cleaner.clean(inner)
    finally:
        _base_url.reset(token)
    return cleaned.strip()


_BREAKS = re.compile(r"<(?:br|/?(?:p|div|li|h[1-6]|tr|td|th|figcaption|blockquote|pre|section|article))\b[^>]*>")
_TAG = re.compile(r"<[^>]*>")


_CAPTIONS = re.compile(r"<figcaption\b.*?</figcaption>", re.DOTALL)


def html_to_text(html: str, *, captions: bool = True) -> str:
    """The visible text of sanitized HTML (as ``clean_html`` returns), on one line."""
    if not html:
        return ""
    if not captions:
        html = _CAPTIONS.sub(" ", html)
    return plain_line(unescape(_TAG.sub("", _BREAKS.sub(" ", html))))


def shorten(text: str, length: int) -> str:
    """``text`` cut to at most ``length`` characters, at a word end where words exist."""
    text = plain_line(text)
    if len(text) <= length:
        return text
    cut = text[: length - 1]
    space = cut.rfind(" ")
    if space >= length * 0.7:  # spaced scripts: end on a whole word
        cut = cut[:space]
    return cut.rstrip(" ,;:，、；：") + "…"
