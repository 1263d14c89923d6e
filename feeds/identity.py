"""Links and ids: canonical URLs and ids that never change.

Pure functions. An entry's id is, in order: the id its author gave it, else
its canonical link (tracking parameters stripped), else a name-based UUID of
its stable content (title and date). The store's ledger keeps the first id an
entry got, so later edits do not mint a new one.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

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


def to_uri(url: str) -> str:
    """``url`` as an ASCII URI: IDNA host, percent-encoded path, query and fragment."""
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

