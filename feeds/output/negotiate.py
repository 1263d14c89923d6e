"""What to answer for one request to `feeds serve`, decided from the request's text alone.

Pure functions: which file a request target names (or that it names none), the
Content-Type of a file (the layout's table, by suffix), whether the client takes gzip (q-values honoured), and
whether the client's copy is still fresh (If-None-Match, If-Modified-Since).
They touch no file, socket or clock; the caller passes the current time.
Any input, however odd, gives an answer and never an exception.
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import mktime_tz, parsedate_tz
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from ..layout import BINARY_TYPE, LINK_TYPES, MEDIA_TYPES, XML_FORMATS, media_type

BINARY = BINARY_TYPE
FEED_TYPES = tuple(LINK_TYPES[f].media_type for f in XML_FORMATS)
# A browser asking for a feed gets it as generic XML, so that it applies the feed's XSL view;
# given the feed types it would show the raw text or offer a download.
BROWSER_FEED_TYPE = MEDIA_TYPES[".xml"]

_QVALUE = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)")
_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')
# An encoded slash, a backslash, NUL, control characters, bytes that were not UTF-8 (escaped as surrogates).
_REFUSED = re.compile("[/\\\\\x00-\x1f\x7f\ud800-\udfff]")


class Target(NamedTuple):
    """The file a request target names, relative to the served folder."""

    relative: str  # "" is the folder itself; segments joined by "/"
    folder: bool  # the target ended with "/"


def request_target(raw: str) -> Target | None:
    """The relative file name that ``raw`` (a request target as sent) asks for, or None.

    None for anything that could name a file outside the folder or that the
    publisher never writes: dot segments and hidden names (temporary files
    start with a dot), NUL and control characters, encoded slashes, backslashes,
    invalid percent-encoding or UTF-8.
    """
    if raw.startswith(("http://", "https://")):  # absolute form, as sent to proxies
        try:
            raw = urlsplit(raw).path or "/"
        except ValueError:
            return None
    path = raw.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    segments = []
    for part in path.split("/"):
        if not part:
            continue
        try:
            name = unquote(part, errors="strict")
        except UnicodeDecodeError:
            return None
        if name.startswith(".") or _REFUSED.search(name):
            return None
        segments.append(name)
    return Target("/".join(segments), path.endswith("/") or not segments)


def spellings(name: str) -> list[str]:
    """``name`` as sent, then its other Unicode normal forms: a client may decompose "é" where the
    published file name composes it (NFC), or the other way round (NFD, as some file systems store)."""
    forms = [name]
    if not name.isascii():
        for form in ("NFC", "NFD"):
            other = unicodedata.normalize(form, name)
            if other not in forms:
                forms.append(other)
    return forms


def content_type(name: str) -> str:
    """The Content-Type of file ``name``, from the layout's table."""
    return media_type(name)


def _ranges(accept: str) -> dict[str, float]:
    """Each media range an Accept header names (lower case, parameters dropped) and its q-value;
    a malformed q-value counts as 0, a range named twice keeps its first q-value."""
    ranges: dict[str, float] = {}
    for item in accept.split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        if not media or media in ranges:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, eq, value = param.partition("=")
            if key.strip().lower() == "q" and eq:
                value = value.strip()
                weight = float(value) if _QVALUE.fullmatch(value) else 0.0
        ranges[media] = weight
    return ranges


def prefers_page(accept: str | None, kind: str) -> bool:
    """Whether a client that sent ``accept`` wants an HTML page rather than the feed of type ``kind``.

    Only when it names ``text/html`` with a q-value above every range the feed itself matches (its
    own type, generic XML or JSON, its top-level type's wildcard, ``*/*``): a browser's
    ``text/html,...,application/xml;q=0.9,*/*;q=0.8`` does; a feed reader that lists ``text/html``
    beside the feed types at the same weight, or sends no Accept at all, gets the feed.
    """
    if not accept:
        return False
    ranges = _ranges(accept)
    page = ranges.get("text/html", 0.0)
    if page <= 0:
        return False
    own = kind.split(";", 1)[0].strip().lower()
    generic = ("application/json",) if own.endswith("json") else ("application/xml", "text/xml")
    matching = (own, *generic, own.split("/", 1)[0] + "/*", "*/*")
    return all(page > ranges.get(media, 0.0) for media in matching)


def compressible(kind: str) -> bool:
    return kind != BINARY


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether the response may be gzip-coded, by RFC 9110's Accept-Encoding rules.

    gzip is used when its q-value (its own, else ``x-gzip``'s, else ``*``'s) is
    above 0 and not below identity's, if identity is named (itself or by ``*``).
    No header, an empty one, ``gzip;q=0``, ``*;q=0`` or a malformed q-value: no gzip.
    """
    if not accept_encoding:
        return False
    weights = _ranges(accept_encoding)
    star = weights.get("*")
    gzip = weights.get("gzip", weights.get("x-gzip", star if star is not None else 0.0))
    identity = weights.get("identity", star)  # None: not named, so only acceptable, not preferred
    return gzip > 0 and (identity is None or gzip >= identity)


def http_date(value: str) -> float | None:
    """Seconds since the epoch for an HTTP date (any of the three forms), or None."""
    if len(value) > 100:
        return None
    try:
        parts = parsedate_tz(value)
        return None if parts is None else float(mktime_tz(parts))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match's weak comparison: ``*``, or any listed tag equal to ``etag`` (W/ ignored)."""
    value = if_none_match.strip()
    if value == "*":
        return True
    return etag.removeprefix("W/") in _ENTITY_TAG.findall(value)


def is_fresh(if_none_match: str | None, if_modified_since: str | None, etag: str, mtime: float,
             now: float) -> bool:
    """Whether a 304 answers the request (RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since).

    A date that is unparsable or later than ``now`` is ignored, as the RFC says.
    """
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    if if_modified_since is None:
        return False
    since = http_date(if_modified_since)
    if since is None or since > now:
        return False
    return int(mtime) <= since
