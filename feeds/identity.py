"""Links and ids: canonical URLs, and ids that never change, for posts and items alike.

Pure functions, and the :class:`Ledger` they consult (loaded and saved by the store,
never here). An entry's id is, in order: the id its author gave it, else its canonical
link (tracking parameters stripped), else a name-based UUID of its stable content. The
ledger keeps the first id each key got, so later edits never mint a new one: a post's
content and file (:func:`post_id`), a story's link (:func:`item_id`, one id per link
across sources). Within a source, items are told apart by guid, else link, else content
(:func:`id_mode`, :func:`item_key`).
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

if TYPE_CHECKING:
    from .sources.parse import ParsedItem

_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|yclid|igshid|_ga|_gl|"
    r"spm|ref_src|ref_url|__twitter_impression|at_medium|at_campaign|cmpid|ncid|sr_share|"
    r"share_source|mkt_tok|_hsenc|_hsmi|hsa_\w+|oly_enc_id|oly_anon_id|vero_\w+|wt_mc)$",
    re.IGNORECASE,
)
# Characters left as they are when percent-encoding each URL part.
_SAFE_PATH = "/:@!$&'()*+,;=-._~%"
_SAFE_QUERY = _SAFE_PATH + "?"
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
ID_NAMESPACE = uuid.UUID("6c4d1c8e-63a2-5d8a-9f0c-2f1e9d3b7a51")


def _encode(part: str, safe: str) -> str:
    # Escape a stray '%' that does not start a valid escape, keep valid ones.
    part = re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", part)
    return quote(part, safe=safe)


# A URI with a host that :func:`to_uri` gives back as it is (most are): a lower-case scheme,
# an ASCII host name and port, no user, and every other character one that needs no encoding
# (no empty query or fragment either, which splitting and joining drop).
_PLAIN_PART = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})"
_PLAIN_URI = re.compile(rf"[a-z][a-z0-9+.-]*://[A-Za-z0-9.-]+(?::[0-9]*)?(?:/{_PLAIN_PART}*)?"
                        rf"(?:\?(?:{_PLAIN_PART}|\?)+)?(?:#(?:{_PLAIN_PART}|\?)+)?")


def to_uri(url: str) -> str:
    """``url`` as an ASCII URI: IDNA host, percent-encoded path, query and fragment."""
    if _PLAIN_URI.fullmatch(url):
        return url
    return _encoded_uri(url)


def _encoded_uri(url: str) -> str:
    """:func:`to_uri` the long way, for any URL."""
    parts = urlsplit(url.strip())
    netloc = parts.netloc
    if parts.hostname and not parts.hostname.isascii():
        try:
            host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError:
            host = quote(parts.hostname)
        userinfo = netloc.rpartition("@")[0]
        port = f":{parts.port}" if parts.port else ""
        netloc = (userinfo + "@" if userinfo else "") + host + port
    return urlunsplit((
        parts.scheme.lower(), netloc,
        _encode(parts.path, _SAFE_PATH),
        _encode(parts.query, _SAFE_QUERY),
        _encode(parts.fragment, _SAFE_QUERY),
    ))


def is_web_url(url: str) -> bool:
    """Whether ``url`` is an http(s) URL (and not a local path)."""
    return urlsplit(url).scheme in ("http", "https")


# What browsers ignore in a URL: C0 controls and spaces at either end, tabs and newlines anywhere.
_URL_EDGES = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$")
_URL_TAB_NEWLINE = re.compile(r"[\t\n\r]")
# What old browsers also skipped inside a scheme; removed only to judge the scheme.
_CONTROLS_AND_SPACE = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME_NAME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
# A host as a URI may carry it, once IDNA-encoded (brackets and colon for IPv6 and ports).
_NETLOC = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]+")
_URN = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[!-~]+", re.IGNORECASE)
_TAG_URI = re.compile(r"tag:[!-~]+", re.IGNORECASE)
_UNSAFE_IN_ID = re.compile(r"[^!-~\u00a0-\U0010ffff]|[\"<>\\^`{|}]|[\ud800-\udfff\ufffe\uffff]")


def _schemes(text: str) -> set[str]:
    """Every scheme a reader could take ``text`` to start with: as written, with HTML
    entities decoded (``jav&#x09;ascript:``), and with controls and spaces skipped."""
    found = set()
    decoded = html.unescape(text)
    for candidate in (text, decoded, _CONTROLS_AND_SPACE.sub("", text), _CONTROLS_AND_SPACE.sub("", decoded)):
        m = _SCHEME_NAME.match(_URL_TAB_NEWLINE.sub("", _URL_EDGES.sub("", candidate)))
        if m:
            found.add(m[1].lower())
    return found


# An http(s) URL that is already as ``web_url`` would write it (lower-case scheme, a plain
# host, no port to check, every other character one that needs no encoding): most are.
_CLEAN_PART = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})"
_CLEAN_WEB_URL = re.compile(
    # (not with an empty query or fragment, which the full check drops)
    rf"(?![^?#]*\?(?:#|$))(?![^#]*#$)https?://[A-Za-z0-9][A-Za-z0-9.-]*(?:[/?]{_CLEAN_PART}*)?(?:#{_CLEAN_PART}*)?")


def web_url(value: object, base: str | None = None) -> str | None:
    """The one gate for every URL written out: an absolute, percent-encoded http(s) URL
    for ``value`` (a relative one resolved against ``base``, itself http(s)), or None.

    Anything a browser or reader could take for another scheme (``javascript:``,
    ``data:``, ``vbscript:``, ``file:``, however spelled: any case, with spaces, tabs,
    newlines or control characters in or before it, or written with HTML entities) is
    None, as is anything that is not a string.
    """
    if not isinstance(value, str):
        return None
    if _CLEAN_WEB_URL.fullmatch(value):
        return value
    text = _URL_TAB_NEWLINE.sub("", _URL_EDGES.sub("", value))
    if not text or not _schemes(text) <= {"http", "https"}:
        return None
    if base is not None and not _schemes(base) <= {"http", "https"}:
        base = None
    if not _SCHEME_NAME.match(text) and base is None:
        return None
    try:
        url = absolute_url(text, base)
        if url is None:
            return None
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    return url if _NETLOC.fullmatch(netloc) else None


def safe_id(value: object) -> str:
    """An id fit to publish: ``value`` itself when it is an http(s) URL, a ``tag:`` or a
    ``urn:`` URI without spaces or controls; otherwise a name-based ``urn:uuid`` made from
    it, so that the same unsafe value always gives the same id."""
    text = value.strip() if isinstance(value, str) else repr(value)
    if _CLEAN_WEB_URL.fullmatch(text):
        return text
    if text and not _UNSAFE_IN_ID.search(text):
        if _URN.fullmatch(text) or _TAG_URI.fullmatch(text):
            return text
        if _schemes(text) and web_url(text) is not None:  # absolute, with a host
            return text
    return "urn:uuid:" + str(uuid.uuid5(ID_NAMESPACE, "id:" + text))


def absolute_url(url: str, base: str | None = None) -> str | None:
    """An absolute http(s) URI for ``url`` (resolved against ``base``), or None."""
    url = url.strip()
    if not url:
        return None
    try:
        if base and not _SCHEME.match(url):
            url = urljoin(base, url)
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        return to_uri(url)
    except ValueError:
        return None


# An absolute http(s) URL that needs no encoding and has no tracking parameters to strip:
# most links are like this, and take the short way.
_SIMPLE = re.compile(
    r"(https?)://([a-z0-9][a-z0-9.-]*)(?::(\d{1,5}))?(/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*)?"
    r"(\?[A-Za-z0-9\-._~!$'()*+,;=:@/?&]*)?(?:#[^\s]*)?"
)
_TRACKING_IN_QUERY = re.compile(r"[?&](?:utm_|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_|yclid|igshid|_ga|_gl|"
                                r"spm|ref_|__twitter|at_|cmpid|ncid|sr_share|share_source|mkt_tok|_hs|hsa_|"
                                r"oly_|vero_|wt_mc)", re.IGNORECASE)


def canonical_link(url: str, base: str | None = None) -> str | None:
    """The link users share, without tracking parameters or fragment; None if unusable."""
    m = _SIMPLE.fullmatch(url.strip())
    if m and not (m[5] and _TRACKING_IN_QUERY.search(m[5])):
        scheme, host, port, path, query = m.groups()
        default = (scheme == "http" and port == "80") or (scheme == "https" and port == "443")
        return f"{scheme}://{host}{'' if not port or default else ':' + port}{path or '/'}{query or ''}"
    absolute = absolute_url(url, base)
    if absolute is None:
        return None
    parts = urlsplit(absolute)
    host = (parts.hostname or "").lower()
    if parts.port and not ((parts.scheme == "http" and parts.port == 80)
                           or (parts.scheme == "https" and parts.port == 443)):
        host += f":{parts.port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not _TRACKING.match(k)]
        if len(kept) != len(pairs):
            query = to_uri("?" + urlencode(kept, safe=_SAFE_QUERY))[1:] if kept else ""
    return urlunsplit((parts.scheme, host, parts.path or "/", query, ""))


def id_from_value(value: str) -> str:
    """An entry id from an id the author gave: kept if it is a URI, else a name-based URN."""
    value = value.strip()
    if _SCHEME.match(value) and " " not in value:
        try:
            return to_uri(value)
        except ValueError:  # "scheme:" but not a URI after all
            pass
    return "urn:uuid:" + str(uuid.uuid5(ID_NAMESPACE, "id:" + value))


def id_from_content(*parts: str) -> str:
    """A name-based URN for an entry with neither an id nor a link."""
    return "urn:uuid:" + str(uuid.uuid5(ID_NAMESPACE, "content:" + "\x1f".join(parts)))



# -- the ledger: ids minted once and kept ---------------------------------------

LedgerKind = Literal["content", "path", "link"]
# How each kind of key is spelled in the store (kept as the first versions wrote them).
_STORED_PREFIX: dict[LedgerKind, str] = {"content": "key:", "path": "path:", "link": "link:"}


class LedgerKey(NamedTuple):
    """What an id is remembered under: a post's natural content id ("content"), a
    post file ("path"), or a story's canonical link ("link")."""

    kind: LedgerKind
    value: str

    def stored(self) -> str:
        return _STORED_PREFIX[self.kind] + self.value

    @classmethod
    def from_stored(cls, text: str) -> LedgerKey | None:
        for kind, prefix in _STORED_PREFIX.items():
            if text.startswith(prefix):
                return cls(kind, text[len(prefix):])
        return None


class Ledger:
    """The first id each key was given, so later edits never mint a new one.

    Loaded from the store, consulted and extended in memory by pure code, and its
    :meth:`added` keys saved back (a key already stored keeps its first id). A
    :meth:`draft` reads through to its ledger and keeps what it learns apart, so a
    decision can be made without changing the ledger, and applied with :meth:`learn`."""

    def __init__(self, known: Mapping[LedgerKey, str] | None = None, *, base: Ledger | None = None) -> None:
        self._ids: dict[LedgerKey, str] = dict(known or {})
        self._added: dict[LedgerKey, str] = {}
        self._base = base

    def get(self, key: LedgerKey) -> str | None:
        found = self._ids.get(key)
        if found is None and self._base is not None:
            return self._base.get(key)
        return found

    def first(self, *keys: LedgerKey) -> str | None:
        """The id under the first of ``keys`` that has one."""
        for key in keys:
            found = self.get(key)
            if found is not None:
                return found
        return None

    def remember(self, entry_id: str, *keys: LedgerKey) -> None:
        """Give every key not known yet ``entry_id``; known keys keep theirs."""
        for key in keys:
            if self.get(key) is None:
                self._ids[key] = self._added[key] = entry_id

    def claim(self, key: LedgerKey, entry_id: str) -> str:
        """The id ``key`` stands for: its known one, else ``entry_id`` (remembered)."""
        known = self.get(key)
        if known is not None:
            return known
        self._ids[key] = self._added[key] = entry_id
        return entry_id

    def learn(self, added: Mapping[LedgerKey, str]) -> None:
        """Remember what a :meth:`draft` learnt (keys known meanwhile keep their id)."""
        for key, entry_id in added.items():
            self.remember(entry_id, key)

    def unknown(self, keys: Iterable[LedgerKey]) -> list[LedgerKey]:
        """Those of ``keys`` this ledger has no id for (each once, in order)."""
        return [key for key in dict.fromkeys(keys) if self.get(key) is None]

    def know(self, stored: Mapping[LedgerKey, str]) -> None:
        """Take the ids the store keeps for keys this ledger does not know yet (loaded
        keys, not :meth:`added` ones: they are stored already). A ledger loaded key by key
        this way, before each decision, answers that decision as the whole stored one would."""
        for key, entry_id in stored.items():
            if self.get(key) is None:
                self._ids[key] = entry_id

    def draft(self) -> Ledger:
        """A ledger that reads this one and keeps its own additions (its :meth:`added`)."""
        return Ledger(base=self)

    def added(self) -> dict[LedgerKey, str]:
        """Keys given an id since loading (or since :meth:`saved`)."""
        return dict(self._added)

    def saved(self) -> None:
        self._added.clear()

    def __len__(self) -> int:
        return len(self._ids) + (len(self._base) if self._base is not None else 0)


def post_id(explicit_id: str | None, link: str | None, title: str, published: str, path: str,
            ledger: Ledger) -> str:
    """A post's entry id: the id its author gave, else its canonical link, else a name
    of its content remembered per file, so a later fix of the title or date keeps it."""
    if explicit_id:
        return id_from_value(explicit_id)
    if link:
        return link
    natural = id_from_content(title, published)
    keys = (LedgerKey("content", natural), LedgerKey("path", path))
    entry_id = ledger.first(*keys) or natural
    ledger.remember(entry_id, *keys)
    return entry_id


# -- items of source feeds -------------------------------------------------------

IdMode = Literal["guid", "link", "hash"]


def id_mode(items: Sequence[ParsedItem]) -> IdMode:
    """How a feed's items are told apart: "guid", else "link", else "hash".

    A feed whose guids are missing or repeated cannot be trusted with them; one
    whose links are also missing or repeated is identified by content.
    """
    def consistent(pairs: Iterable[tuple[str | None, object]]) -> bool:
        seen: dict[str, object] = {}
        return all(key and seen.setdefault(key, other) == other for key, other in pairs)

    # A guid listed twice for the same story is a duplicate item, not a broken scheme.
    if consistent((i.guid, (i.link, i.title)) for i in items):
        return "guid"
    if consistent((i.link, i.title) for i in items):
        return "link"
    return "hash"


def _content_text(item: ParsedItem) -> str:
    # Imported here: ``normalize.content`` checks every URL it keeps with ``web_url`` above.
    from .normalize.content import html_to_text

    return html_to_text(item.content_html or item.summary_html or "")[:500]


def item_key(item: ParsedItem, mode: IdMode, feed_link: str | None) -> str:
    """What identifies an item within its source, under ``mode``."""
    if mode == "guid" and item.guid:
        return "guid:" + item.guid
    if mode in ("guid", "link") and item.link:
        return "link:" + (canonical_link(item.link, feed_link) or item.link)
    return "hash:" + id_from_content(item.title, item.link or "", _content_text(item))


_UNSAFE_ID_SCHEMES = {"javascript", "vbscript", "data", "file", "about", "blob", "filesystem"}


def _guid_site(feed_link: str | None, scope: str | None) -> str:
    """Where a guid that is no URI is unique: the feed's site (its host, so that a site's
    several feeds share their guids), else the feed's own address."""
    for where in (feed_link, scope):
        if where:
            try:
                host = urlsplit(where.strip()).netloc.lower()
            except ValueError:
                host = ""
            return host or where.strip()
    return ""


def natural_item_id(item: ParsedItem, mode: IdMode, feed_link: str | None, *, scope: str | None = None) -> str:
    """The id an item gets when nothing is known of it yet.

    A guid that is a URI is the id wherever it is read. One that is not ("1001", "post-17")
    is unique only within its site (RSS asks no more of it), so its id is made from the site
    (``feed_link``'s host, else ``scope``, the feed's address) and the guid: two sites' items
    "1001" are two stories. A guid that reads as a script or local URI (``javascript:``,
    ``data:``, ``file:``...) is never an id as it is: it is named by a URN instead."""
    if mode == "guid" and item.guid:
        value = item.guid.strip()
        if not (_SCHEME.match(value) and " " not in value):
            return id_from_content("guid", _guid_site(feed_link, scope), value)
        minted = id_from_value(item.guid)
        if minted.split(":", 1)[0].lower() in _UNSAFE_ID_SCHEMES:
            minted = id_from_content("guid", item.guid)
        return minted
    link = canonical_link(item.link, feed_link) if item.link else None
    if mode in ("guid", "link") and link:
        return link
    return item_key(item, "hash", feed_link).removeprefix("hash:")


def item_id(candidate: str, link: str | None, ledger: Ledger, *, new: bool) -> str:
    """The id an item of a source is stored under, and what its link remembers.

    ``candidate`` is the id the item is stored under, or its :func:`natural_item_id` when
    it was never stored. An item first seen now whose (canonical) link already has an id
    (from another source, a post, or this feed before it changed its guids) takes that
    id: one id per story. Otherwise it keeps ``candidate``, and its link remembers it
    when the link has no id yet."""
    if link is None:
        return candidate
    key = LedgerKey("link", link)
    if new:
        return ledger.claim(key, candidate)
    ledger.remember(candidate, key)
    return candidate
