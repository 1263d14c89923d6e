"""What a fetch asks for and what it brings back: the records between the fetcher and the rest.

Records only, pure: :class:`FetchRequest` goes into ``fetch``, :class:`FetchResult` (with
its :class:`FetchFailure`, typed by :data:`FailureKind`) comes out and goes on to
``schedule``, ``decide`` and ``update``. Kept apart from ``fetch`` so that the pure
decisions read them without importing the HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FailureKind", "FetchFailure", "FetchRequest", "FetchResult", "SourceHTTP"]


#: What went wrong with a source, from its URL to storing what it brought.
FailureKind = Literal[
    "url",         # not an address that can be fetched
    "dns",         # its host name does not resolve
    "connect",     # no connection could be made
    "tls",         # the TLS handshake or certificate failed
    "timeout",     # connecting, a read, or the whole fetch took too long
    "refused",     # a redirect or an address the source may not go to
    "redirect",    # a redirect chain that leads nowhere (loop, too many, no usable Location)
    "http",        # an HTTP error status
    "gone",        # HTTP 410: removed for good
    "throttled",   # not asked: its host answered 429 with Retry-After and is left alone
    "too large",   # the body or file is over the size limit
    "decode",      # the body cannot be decompressed
    "protocol",    # a broken HTTP answer
    "file",        # a local file that cannot be read
    "auth",        # the password for basic authentication is not in the environment
    "discovery",   # the URL gives an HTML page, and no feed was found from it
    "network",     # another error of the network
    "unexpected",  # an error nobody foresaw while fetching
    "feed",        # the body is no feed, or reading it failed (see ``update``)
    "store",       # storing what the source brought failed (see ``update``)
    "lease",       # not asked: the worker's lease on the source lapsed before the request went
]


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """Why a source brought nothing: what kind of failure, and one line for the user."""

    kind: FailureKind
    message: str


@dataclass(frozen=True, slots=True)
class SourceHTTP:
    """How one source's host is asked (the source's ``headers``, ``user_agent``, ``auth`` and
    ``tls_verify``). Holds no password: only the name of the environment variable that does,
    read by the fetcher when it sends the request."""

    #: The source's configured URL: its headers and credentials go to its origin
    #: (scheme, host and port) only, never to another host a redirect or a link leads to.
    home: str
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str | None = None
    username: str | None = None
    password_env: str | None = None
    #: Check certificates (True), do not (False), or check them against this CA bundle file.
    tls_verify: bool | str = True


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One source to fetch, with what the last answer said about caching."""

    source: str
    #: http(s) URL, or a local file path.
    url: str
    etag: str | None = None
    last_modified: str | None = None
    #: The source's own HTTP settings, if it has any.
    http: SourceHTTP | None = None
    #: For an article page (``full_text``): the URL of the feed that links to it. The page is
    #: asked for as a redirect from that feed would be (from a public feed, only a public
    #: address), as an HTML page, and never searched for a feed.
    page_of: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch of a source brought: the answer, its body and headers, or its failure."""

    source: str
    #: The URL asked for, and the one the body came from after redirects.
    url: str
    final_url: str
    #: HTTP status of the last response (None when no response came).
    status: int | None = None
    #: The body (decompressed); None when not modified or on error.
    body: bytes | None = None
    #: Response headers describing the (decoded) body, names in lower case (see ``fetch.KEPT_HEADERS``).
    headers: dict[str, str] = field(default_factory=dict)
    not_modified: bool = False
    #: Where a permanent (301/308) redirect chain led, if the first hop was permanent.
    moved_to: str | None = None
    #: What went wrong, or None.
    failure: FetchFailure | None = None
    #: Seconds the server asked us to wait (Retry-After), if any.
    retry_after: float | None = None
    #: Cache-Control max-age, in seconds, if any.
    max_age: float | None = None
    #: Seconds the source's requests took (waiting for the host's turn not included).
    seconds: float = 0.0
    #: The URL gave an HTML page, and this is the feed found from it (``discover``): the
    #: body is that feed's, and the source is fetched from there from now on.
    discovered: str | None = None

    @property
    def error(self) -> str | None:
        """One line saying what went wrong, or None."""
        return self.failure.message if self.failure is not None else None

    @property
    def gone(self) -> bool:
        """The source is gone for good (410)."""
        return self.failure is not None and self.failure.kind == "gone"

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")
