"""Load and validate ``config.yaml``.

The file is parsed with PyYAML (keeping node positions, so errors can name the
line) and validated with pydantic models that forbid unknown keys. Relative
paths are resolved against the folder holding the config file. This module
reads the config file (and, through ``opml``, the OPML subscription lists it names)
and nothing else; it is where every setting is defined.
Beside it, ``yamlload`` bounds what YAML aliases can expand to (for the config
and for front matter) and ``simpleyaml`` reads plain front matter fast, exactly
as PyYAML would; both are pure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from cssselect import GenericTranslator, SelectorError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..build.filters import parse_rule
from ..build.taxonomy import Vocabulary, alias_chains, fit_slug, make_slug, term_key
from ..errors import ConfigError
from ..layout import FeedFormat, FeedKind
from .opml import Subscription, merged, read_opml
from .yamlload import load_bounded

#: What feed policies' include_sources/exclude_sources call the local posts: no source may be named so.
POSTS_SOURCE = "posts"

# A URL's scheme, as in "sqlite://" (a path such as "state:db" has no "//").
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)


#: The schemes of a state database on a PostgreSQL server (psycopg 3 is the driver).
_SERVER_SCHEMES = ("postgresql+psycopg",)


def _is_server(state: str) -> bool:
    url = _URL.match(state)
    return url is not None and url.group(1).lower() in _SERVER_SCHEMES


def _state_file(state: str) -> str:
    """The file named by the ``state`` key, a path or a ``sqlite:///`` URL; ValueError otherwise
    (a ``postgresql+psycopg://`` URL names no file: it is checked by :func:`_check_state`)."""
    url = _URL.match(state)
    if url is None:
        return state
    scheme, rest = url.group(1).lower(), url.group(2)
    if scheme not in ("sqlite", "sqlite+pysqlite"):
        raise ValueError(f"{scheme}:// is not supported; write a path, sqlite:///path "
                         "or postgresql+psycopg://user@host/db")
    if rest == "":
        rest = "/"  # sqlite:// is a database in memory, as sqlite:///
    if "?" in rest or not rest.startswith("/"):
        raise ValueError("a sqlite URL takes no host or options: sqlite:///relative/path or sqlite:////absolute/path")
    name = unquote(rest[1:])
    if name in ("", ":memory:"):
        raise ValueError("a database in memory keeps nothing between runs; name a file: sqlite:///state/feeds.db")
    return name


def _http_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL; ValueError otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(_Strict):
    """Who publishes the feeds, and where."""

    title: str = "feeds"
    #: Absolute URL where the output folder is published; ends with '/'.
    base_url: str
    #: Home page of the site (the feeds' alternate link); defaults to base_url.
    link: str | None = None
    description: str | None = None
    language: str | None = None
    #: Feed-level author, used when an entry has none.
    author: str | None = None
    #: Time zone for naive dates in posts.
    timezone: str = "UTC"

    @field_validator("base_url", "link")
    @classmethod
    def _absolute_http(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("base_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.query or parts.fragment or "?" in value or "#" in value:
            # Feed addresses are this plus a file name: after a query or fragment they name no file.
            raise ValueError("must be a folder URL, without a query (?) or fragment (#)")
        return value if value.endswith("/") else value + "/"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


#: An S3 bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending
#: with a letter or digit.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class Bucket(_Strict):
    """An S3-compatible bucket that the output folder is published to (``output.s3``)."""

    bucket: str
    #: Where in the bucket the files go ("feeds/": feeds/index.html ...); "" for the top.
    prefix: str = ""
    #: The service's address for a bucket not on AWS (MinIO, R2, Ceph...): an http(s) URL.
    endpoint_url: str | None = None
    region: str | None = None
    #: A profile of the AWS config and credentials files; else the usual places
    #: (AWS_* variables, ~/.aws, an instance role). Keys are never written in config.yaml.
    profile: str | None = None
    #: The Cache-Control every object is written with.
    cache_control: str = "max-age=300"
    #: How long each request waits to connect, and then for each answer, before it fails.
    timeout: Annotated[Duration, Field(ge=1, le=600)] = 20.0
    #: Tries per request (a request that timed out or failed to connect is tried again).
    attempts: Annotated[int, Field(ge=1, le=10)] = 3

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET_NAME.match(value) or ".." in value:
            raise ValueError("not a bucket name: 3 to 63 lower-case letters, digits, '.' and '-'")
        return value

    @field_validator("prefix")
    @classmethod
    def _folder(cls, value: str) -> str:
        parts = value.strip("/").split("/") if value.strip("/") else []
        if value.startswith("/") or any(p in ("", ".", "..") for p in parts) or any(c < " " for c in value):
            raise ValueError("must be a relative folder such as feeds/ (no leading '/', '.' or '..')")
        return "/".join(parts) + "/" if parts else ""

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "@" in urlsplit(_http_url(value)).netloc:
            raise ValueError("must not hold credentials (user:password@): boto3 finds them (see output.s3)")
        return value

    @field_validator("cache_control")
    @classmethod
    def _header_value(cls, value: str) -> str:
        if any(c < " " or c == "\x7f" for c in value):
            raise ValueError("must be one line of printable characters")
        return value


class Output(_Strict):
    dir: str = "output"
    formats: list[FeedFormat] = Field(default_factory=lambda: list[FeedFormat](["atom", "rss"]), min_length=1)
    #: Newest entries kept per feed.
    max_entries: Annotated[int, Field(ge=1, le=100_000)] = 50
    #: Length (in characters) of summaries made from the content.
    summary_length: Annotated[int, Field(ge=20, le=10_000)] = 280
    #: Also write an HTML page per feed listing its entries (tags/<slug>.html...).
    pages: bool = False
    #: A folder whose templates (index.html, feed.html, feeds.opml, feed.xsl) replace the built-in ones.
    templates: str | None = None
    #: Reference an XSL stylesheet from Atom and RSS files, so browsers show a readable page.
    stylesheet: bool = True
    #: Write status.atom and status.json: one entry per source problem, for the operator.
    status_feed: bool = True
    #: Largest feed or page file in bytes (the W3C validator checks files up to 5,000,000).
    max_bytes: Annotated[int, Field(ge=10_000)] = 4_000_000
    #: An entry whose content is larger (UTF-8 bytes of HTML) publishes summary and link instead.
    max_entry_bytes: Annotated[int, Field(ge=1_000)] = 512_000
    #: Write into a folder that already holds files feeds did not write (they are never touched).
    allow_foreign_files: bool = False
    #: Allow any folder, even /, the home folder, a posts folder or the state folder.
    allow_any_dir: bool = False
    #: Also publish what the folder holds to an S3-compatible bucket, after each writing run.
    s3: Bucket | None = None
    #: Complete archives (RFC 5005): every feed's whole history in pages, <feed>.archive/<n>.atom.xml...
    archive: bool = False
    #: Entries per archive page (a feed whose max_entries is smaller cuts pages of that many).
    archive_page_size: Annotated[int, Field(ge=1, le=10_000)] = 50

    @field_validator("formats")
    @classmethod
    def _unique(cls, value: list[FeedFormat]) -> list[FeedFormat]:
        if len(set(value)) != len(value):
            raise ValueError("formats are listed twice")
        return value


def _one_or_more(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _valid_rule(text: str) -> str:
    parse_rule(text)  # ValueError names the rule and what is wrong
    return text


#: ``include``/``exclude``: one rule or a list of them (see ``build.filters`` for the syntax).
Rules = Annotated[list[Annotated[str, AfterValidator(_valid_rule)]], BeforeValidator(_one_or_more)]


class Policy(_Strict):
    """What one feed (or a group of feeds) publishes; unset fields are inherited."""

    #: Newest entries kept.
    max_entries: Annotated[int, Field(ge=1, le=100_000)] | None = None
    #: "full": content and summary; "summary": summary only.
    content: Literal["full", "summary"] | None = None
    formats: list[FeedFormat] | None = None
    #: A tag or category with fewer entries gets no feed.
    min_entries: Annotated[int, Field(ge=1)] | None = None
    #: Only entries from these sources ("posts" for local posts) / none from these.
    include_sources: list[str] | None = None
    exclude_sources: list[str] | None = None
    #: Only entries matching one of these rules / none matching these (``build.filters``).
    include: Rules | None = None
    exclude: Rules | None = None
    #: Feed title and description; {name} is the tag or category, {site} the site title.
    title: str | None = None
    description: str | None = None


class FeedPolicies(_Strict):
    """Per-feed policy: defaults for every feed, per taxonomy, and per single tag or category."""

    defaults: Policy = Field(default_factory=Policy)
    all: Policy = Field(default_factory=Policy)
    tags: Policy = Field(default_factory=Policy)
    categories: Policy = Field(default_factory=Policy)
    #: Every topic feed (``queries:``).
    queries: Policy = Field(default_factory=Policy)
    tag: dict[str, Policy] = Field(default_factory=dict)
    category: dict[str, Policy] = Field(default_factory=dict)


class Clean(_Strict):
    #: CSS selectors of elements to drop from post bodies (ads, promos...).
    remove: list[str] = Field(default_factory=list)

    @field_validator("remove")
    @classmethod
    def _valid_selectors(cls, value: list[str]) -> list[str]:
        translator = GenericTranslator()
        for selector in value:
            try:
                translator.css_to_xpath(selector)
            except SelectorError as exc:
                raise ValueError(f"invalid CSS selector {selector!r}: {exc}") from None
        return value


class FullText(_Strict):
    """How the article page of each new item of a source is read (``full_text``)."""

    #: A CSS selector: the article is every element it matches, in document order; without
    #: it, the article is what trafilatura finds to be the page's main text.
    selector: Annotated[str, Field(min_length=1, max_length=1000)] | None = None

    @field_validator("selector")
    @classmethod
    def _valid_selector(cls, value: str | None) -> str | None:
        if value is not None:
            Clean._valid_selectors([value])
        return value


def _full_text(value: object) -> object:
    """``full_text: true`` is ``full_text: {}``; ``false`` is no full text."""
    if value is True:
        return {}
    if value is False:
        return None
    if value is not None and not isinstance(value, dict | FullText):
        raise ValueError("full_text is true, false or a mapping such as {selector: \"article .body\"}")
    return value


class Posts(_Strict):
    """A folder (or glob) of local posts."""

    #: Folder (searched recursively for *.md, *.markdown, *.html) or a glob.
    path: str
    clean: Clean = Field(default_factory=Clean)
    #: Publish only summaries of these posts, never their full content.
    summary_only: bool = False
    #: A missing or unreadable folder is a warning, not an error (its posts stay published).
    optional: bool = False
    #: Tags added to every post of this folder.
    tags: list[str] = Field(default_factory=list)
    #: Where a post without a link lives on the site, relative to site.link:
    #: {year} {month} {day} {slug} (the file name without date prefix and suffix).
    permalink: str = "{year}/{month}/{day}/{slug}.html"

    @field_validator("permalink")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        try:
            value.format(year="2000", month="01", day="01", slug="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"unknown field in permalink pattern: {exc}") from None
        return value


class Taxonomy(_Strict):
    #: Other spellings mapped to one name: {Zaobao: 联合早报}.
    aliases: dict[str, str] = Field(default_factory=dict)
    #: File-name slugs chosen by hand: {联合早报: zaobao}.
    slugs: dict[str, str] = Field(default_factory=dict)

    @field_validator("aliases")
    @classmethod
    def _no_circles(cls, value: dict[str, str]) -> dict[str, str]:
        alias_chains(value)
        return value

    @field_validator("slugs")
    @classmethod
    def _safe_slugs(cls, value: dict[str, str]) -> dict[str, str]:
        for name, slug in value.items():
            if not re.fullmatch(r"[^\s/\\\x00-\x1f.][^\s/\\\x00-\x1f]{0,99}", slug):
                raise ValueError(f"slug {slug!r} for {name!r} must be one path segment without spaces")
        return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"1h"``, ``"2d"``, ``"1w"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30m, 1h or 2d")
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (write 90s, 30m, 1h, 2d...)")
    return float(m[1]) * _UNITS[m[2]]


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Limits(_Strict):
    """Caps on what one source can make (``fetch.limits``; a source's ``limits`` overrides keys)."""

    #: Tags an entry keeps from its feed (the source's own ``tags`` come on top).
    tags_per_entry: Annotated[int, Field(ge=0, le=10_000)] = 20
    #: Distinct feed tags one fetch of a source may bring; later ones (in document order) are dropped.
    tags_per_source: Annotated[int, Field(ge=0, le=1_000_000)] = 200
    #: Items read from one fetch: the first ones in document order.
    items_per_fetch: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    #: Items kept in the store per source: the oldest beyond this are dropped (never the latest listing).
    stored_items: Annotated[int, Field(ge=1, le=100_000_000)] = 10_000
    #: Largest clean content of one item, in bytes; over it, the entry keeps its summary and link.
    content_bytes: Annotated[int, Field(ge=1024)] = 1_000_000
    #: Article pages one fetch of a ``full_text`` source may ask for; the other new items wait
    #: for the next fetches (newest first).
    articles_per_fetch: Annotated[int, Field(ge=0, le=10_000)] = 20


#: A header name (an HTTP token).
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: Headers the fetcher sets itself: a source may not give them (``user_agent`` and ``auth`` set the others).
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "accept-encoding",
                          "te", "upgrade", "if-none-match", "if-modified-since"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class BasicAuth(_Strict):
    """HTTP basic authentication for one source; the password is never in the config."""

    username: Annotated[str, Field(min_length=1, max_length=1000)]
    #: The environment variable holding the password, read when the source is fetched.
    password_env: str

    @field_validator("username")
    @classmethod
    def _no_colon(cls, value: str) -> str:
        if ":" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("a user name for basic authentication has no ':' or control characters")
        return value

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name (letters, digits and _)")
        return value


class Source(_Strict):
    """A remote (or local) RSS, Atom or JSON feed to aggregate."""

    #: A short unique name, used in messages and ``feeds status``.
    name: Annotated[str, Field(min_length=1, max_length=200)]
    #: http(s) URL, or a path to a local file (relative to the config folder).
    url: Annotated[str, Field(min_length=1)]
    #: Tags added to every entry of this source.
    tags: list[str] = Field(default_factory=list)
    #: Only items matching one of these rules / none matching these (``build.filters``).
    include: Rules = Field(default_factory=list)
    exclude: Rules = Field(default_factory=list)
    #: How often to fetch it.
    every: Annotated[Duration, Field(ge=1)] = 3600.0
    clean: Clean = Field(default_factory=Clean)
    #: Publish only summaries of its entries (for copyrighted material).
    summary_only: bool = False
    #: Time zone for dates written without one (default: site.timezone).
    timezone: str | None = None
    enabled: bool = True
    #: Caps for this source; keys not given here come from ``fetch.limits``.
    limits: Limits | None = None
    #: For a local file: missing or unreadable is a warning, not an error (exit 1).
    optional: bool = False
    #: Extra request headers, sent to the source's own host (scheme, host and port) only.
    headers: dict[str, str] = Field(default_factory=dict)
    #: The User-Agent sent for this source instead of the fetcher's own.
    user_agent: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    #: HTTP basic authentication, sent to the source's own host only.
    auth: BasicAuth | None = None
    #: Check the server's certificate (true), do not (false), or check it against this CA
    #: bundle (a PEM file, relative to the config folder).
    tls_verify: bool | Annotated[str, Field(min_length=1)] = True
    #: Fetch each new item's article page (its link) once, and publish the article as the
    #: entry's content: ``true`` (trafilatura finds it) or ``{selector: "article .body"}``.
    full_text: Annotated[FullText | None, BeforeValidator(_full_text)] = None

    @model_validator(mode="after")
    def _full_text_published(self) -> Source:
        if self.full_text is not None and self.summary_only:
            raise ValueError("full_text: a summary_only source publishes no content; set one or the other")
        return self

    @field_validator("name")
    @classmethod
    def _not_the_posts(cls, value: str) -> str:
        if value == POSTS_SOURCE:
            raise ValueError(f"{POSTS_SOURCE!r} is what include_sources and exclude_sources call the local posts; "
                             "give the source another name")
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name, text in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            folded = name.lower()
            if folded in seen:
                raise ValueError(f"header {name!r} is given twice")
            seen.add(folded)
            if folded in _OWN_HEADERS:
                raise ValueError(f"header {name!r} is set by the fetcher itself")
            if folded == "user-agent":
                raise ValueError("give the User-Agent as the source's user_agent key")
            if folded == "authorization":
                raise ValueError("give credentials as the source's auth key (the password in an environment "
                                 "variable), not as a header")
            if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text):
                raise ValueError(f"header {name!r} has a control character (a line break?) in its value")
        return value

    @field_validator("user_agent")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise ValueError("must be one line without control characters")
        return value

    @field_validator("url")
    @classmethod
    def _url_or_path(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme in ("http", "https"):
            if not parts.netloc:
                raise ValueError("must be an absolute http(s) URL or a file path")
        elif parts.scheme not in ("", "file") and len(parts.scheme) > 1:  # C:\ is a path
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} (use http, https or a file path)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else Site._known_zone(value)


class Fetch(_Strict):
    """How sources are fetched."""

    #: Requests in flight at once, over all hosts (one at a time per host).
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 16
    #: Pause before the next request to a host after a download or an error
    #: (none after a 304 Not Modified or a redirect).
    host_gap: Annotated[Duration, Field(ge=0, le=3600)] = 0.2
    connect_timeout: Annotated[Duration, Field(gt=0)] = 10.0
    read_timeout: Annotated[Duration, Field(gt=0)] = 30.0
    #: Longest a whole fetch (redirects and body included) may take.
    total_timeout: Annotated[Duration, Field(gt=0)] = 60.0
    #: Largest body accepted, after decompression.
    max_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    max_redirects: Annotated[int, Field(ge=0, le=20)] = 5
    #: Follow redirects from a public address to a loopback, private, link-local... one, or to a
    #: URL with a user name or password (sources configured on such addresses work regardless).
    allow_private_redirects: bool = False
    #: Longest wait after repeated failures (they back off exponentially up to this).
    max_backoff: Annotated[Duration, Field(ge=1)] = 86400.0
    #: Drop stored entries this long after their source stopped listing them (none: keep all).
    retention: Duration | None = None
    limits: Limits = Field(default_factory=Limits)

    def limits_of(self, source: Source) -> Limits:
        """The caps that apply to ``source``: its own keys, the rest from ``fetch.limits``."""
        if source.limits is None:
            return self.limits
        own = {key: getattr(source.limits, key) for key in source.limits.model_fields_set}
        return self.limits.model_copy(update=own)


class Schedule(_Strict):
    """What ``feeds run`` does besides fetching each source at its own interval."""

    #: Regenerate the outputs this often even if no source changed (posts may have).
    generate: Annotated[Duration, Field(ge=1)] = 600.0
    #: After a fetch brings something new, wait this long for others before regenerating.
    debounce: Annotated[Duration, Field(ge=0)] = 2.0
    #: With a PostgreSQL state shared by several ``feeds run`` workers: how long a worker's
    #: claim on a source (and the generation leadership) lasts unless renewed. A killed
    #: worker's sources are taken over, and a new leader elected, within this time.
    lease: Annotated[Duration, Field(ge=1, le=3600)] = 60.0


class WebSub(_Strict):
    #: A WebSub hub: feeds carry <link rel="hub">, and changed feeds are announced to it.
    hub: str | None = None

    @field_validator("hub")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return Site._absolute_http(value)


_SLUG = re.compile(r"[^\s/\\\x00-\x1f.][^\s/\\\x00-\x1f]{0,99}")


class Query(Policy):
    """A topic feed: the entries of every source and post that its rules admit."""

    #: The feed's name (its title is "<name> — <site title>" unless ``title`` says otherwise).
    name: Annotated[str, Field(min_length=1, max_length=200)]
    #: Its file name, queries/<slug>.atom.xml... (default: made from the name).
    slug: str | None = None

    @field_validator("slug")
    @classmethod
    def _safe_slug(cls, value: str | None) -> str | None:
        if value is not None and (not _SLUG.fullmatch(value) or fit_slug(value, value) != value):
            # The rules of tag slugs (taxonomy.fit_slug): a file name on any system, with room for its suffixes.
            raise ValueError(f"slug {value!r} must be one path segment without spaces, of at most 80 characters "
                             "and 120 bytes, without \\ : * ? \" < > |, a leading or trailing . or -, or a "
                             "name Windows reserves (CON, NUL, LPT1...)")
        return value

    @property
    def file_slug(self) -> str:
        return self.slug if self.slug is not None else make_slug(self.name)


class Config(_Strict):
    site: Site
    output: Output = Field(default_factory=Output)
    #: Database keeping ids, caches and fetch state: a path or sqlite:///path (a SQLite
    #: file), or postgresql+psycopg://user@host/db (a PostgreSQL server).
    state: str = "state/feeds.db"
    posts: list[Posts] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    #: OPML subscription lists (one path or several, relative to the config folder): every
    #: outline with an xmlUrl is a source too, its folders its tags (see ``opml``).
    sources_opml: Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_one_or_more)] = Field(
        default_factory=list)
    fetch: Fetch = Field(default_factory=Fetch)
    schedule: Schedule = Field(default_factory=Schedule)
    feeds: FeedPolicies = Field(default_factory=FeedPolicies)
    #: Topic feeds made by rules across every source and post: queries/<slug>.atom.xml...
    queries: list[Query] = Field(default_factory=list)
    websub: WebSub = Field(default_factory=WebSub)
    tags: Taxonomy = Field(default_factory=Taxonomy)
    categories: Taxonomy = Field(default_factory=Taxonomy)

    @field_validator("state")
    @classmethod
    def _state_database(cls, value: str) -> str:
        if _is_server(value):
            if not urlsplit(value).path.strip("/"):
                raise ValueError("a postgresql URL names its database: postgresql+psycopg://user@host/db")
            return value
        _state_file(value)
        return value

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, value: list[Source]) -> list[Source]:
        seen: set[str] = set()
        for source in value:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}")
            seen.add(source.name)
        return value

    @field_validator("queries")
    @classmethod
    def _unique_slugs(cls, value: list[Query]) -> list[Query]:
        seen: dict[str, str] = {}
        for query in value:
            folded = query.file_slug.casefold()
            if folded in seen:
                raise ValueError(f"the queries {seen[folded]!r} and {query.name!r} would both be written as "
                                 f"queries/{query.file_slug}; give one another slug")
            seen[folded] = query.name
        return value

    #: Folder holding the config file; relative paths are resolved against it.
    root: Path = Field(default=Path("."), exclude=True)
    _fingerprints: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)
    #: The feeds.tag / feeds.category policies by the term key of their names (made on first use).
    _policy_keys: dict[str, list[tuple[str, Policy]]] = PrivateAttr(default_factory=dict)
    #: Where the config came from, and the line of each key that a later error may name.
    _name: str = PrivateAttr(default="config.yaml")
    _lines: dict[str, int | None] = PrivateAttr(default_factory=dict)

    def where(self, key: str) -> tuple[str, int | None]:
        """The config file's name and the line of ``key`` (dotted), for error messages."""
        return self._name, self._lines.get(key)

    def policy(self, kind: FeedKind, name: str | None = None) -> Policy:
        """The policy of one feed: output settings, then defaults, its taxonomy, itself (for
        a query, ``name`` is its slug)."""
        base = Policy(max_entries=self.output.max_entries, content="full", formats=list(self.output.formats),
                      min_entries=1)
        layers: list[Policy] = [self.feeds.defaults, {"all": self.feeds.all, "tag": self.feeds.tags,
                                                      "category": self.feeds.categories,
                                                      "query": self.feeds.queries}[kind]]
        if kind == "query":
            layers += [Policy.model_validate(q.model_dump(exclude={"name", "slug"}))
                       for q in self.queries if q.file_slug == name]
        elif name is not None:
            singles, taxonomy = (self.feeds.tag, self.tags) if kind == "tag" else (self.feeds.category,
                                                                                  self.categories)
            # Any spelling of the term, as the taxonomy reads it (through the alias map, then its key).
            keyed = self._policy_keys.get(kind)
            if keyed is None:
                vocabulary = Vocabulary(taxonomy.aliases, {})
                keyed = self._policy_keys[kind] = [(term_key(vocabulary.canonical(k)), p) for k, p in singles.items()]
            wanted = term_key(Vocabulary(taxonomy.aliases, {}).canonical(name) if taxonomy.aliases else name)
            layers += [p for key, p in keyed if key == wanted]
        merged = base.model_dump()
        for layer in layers:
            merged.update(layer.model_dump(exclude_none=True))
        return Policy.model_validate(merged)

    @property
    def sources_by_name(self) -> dict[str, Source]:
        return {s.name: s for s in self.sources}

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def output_dir(self) -> Path:
        return self.resolve(self.output.dir)

    @property
    def state_on_server(self) -> bool:
        """Whether the state database is on a PostgreSQL server (not a SQLite file)."""
        return _is_server(self.state)

    @property
    def state_path(self) -> Path:
        """The SQLite file of the state database (the lock file is beside it); only for a
        SQLite state (see :attr:`state_on_server`)."""
        if self.state_on_server:
            raise ValueError("the state database is on a server, not in a file")
        return self.resolve(_state_file(self.state))

    @property
    def state_target(self) -> Path | str:
        """What the store opens: the SQLite file, or the server's URL."""
        return self.state if self.state_on_server else self.state_path

    @property
    def state_url(self) -> str:
        """The state database as a URL: ``sqlite:///`` and :attr:`state_path`, or the server's URL."""
        if self.state_on_server:
            return self.state
        # Only '%' and '?' in a file name would be read as URL syntax.
        return "sqlite:///" + str(self.state_path).replace("%", "%25").replace("?", "%3F")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.site.timezone)

    def settings_key(self, *paths: str, version: str = "") -> str:
        """A short hash of only the settings at ``paths`` (dotted, e.g. "site.timezone" or
        "posts"), so what is cached under it survives an edit of any other setting."""
        key = ("\0settings", version, *paths)
        cached = self._fingerprints.get(key)
        if cached is None:
            data = self.model_dump(mode="json", exclude={"root"})
            picked = []
            for path in paths:
                node: Any = data
                for part in path.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                picked.append([path, node])
            blob = json.dumps([version, picked], sort_keys=True, ensure_ascii=False)
            cached = self._fingerprints[key] = hashlib.sha1(blob.encode()).hexdigest()[:16]
        return cached


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Line (1-based) of the YAML node at ``loc``, or of its nearest parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _duplicate_key(node: yaml.Node | None, visited: set[int]) -> yaml.Node | None:
    """The first key that appears twice in one mapping, anywhere in the document.

    A node reached again through an alias is checked once (``visited``)."""
    if node is None or id(node) in visited:
        return None
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for k, v in node.value:
            if k.value in seen:
                return k  # type: ignore[no-any-return]
            seen.add(k.value)
            found = _duplicate_key(v, visited)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item, visited)
            if found is not None:
                return found
    return None


def _glob_base(pattern: str) -> tuple[str, bool]:
    """The folder part of a posts path before any glob character, and whether it recurses."""
    parts = Path(pattern).parts
    for i, part in enumerate(parts):
        if any(c in part for c in "*?["):
            return str(Path(*parts[:i])) if i else ".", "**" in parts[i:]
    return pattern, True


def unsafe_output_dir(config: Config) -> str | None:
    """Why ``output.dir`` is a folder feeds must not write into, or None."""
    out = Path(os.path.realpath(config.output_dir))
    if out == Path(out.anchor):
        return "must not be the root folder"
    try:
        home = Path(os.path.realpath(Path.home()))
    except (RuntimeError, KeyError):  # no HOME and no password entry
        home = None
    if out == home:
        return "must not be the home folder"
    if not config.state_on_server:
        state = Path(os.path.realpath(config.state_path))
        if out == state.parent:
            return "must not be the folder of the state database"
        if out in state.parents:
            return "must not hold the state database (state)"
    for index, folder in enumerate(config.posts):
        # A folder whose name has glob characters is that folder, as posts reads it.
        base, recursive = (folder.path, True) if os.path.lexists(config.resolve(folder.path)) \
            else _glob_base(folder.path)
        posts = Path(os.path.realpath(config.resolve(base)))
        if out == posts or out in posts.parents or (recursive and posts in out.parents):
            return f"must not be a posts folder, inside one or hold one (posts[{index}].path)"
    # Inputs that are single files: stale removal never touches them (they are not recorded),
    # but a local source named like an output (all.rss.xml) would be overwritten.
    inputs = [(f"sources[{i}].url", s.url.removeprefix("file://")) for i, s in enumerate(config.sources)
              if urlsplit(s.url).scheme not in ("http", "https")]
    if config.output.templates:
        inputs.append(("output.templates", config.output.templates))
    for key, path in inputs:
        target = Path(os.path.realpath(config.resolve(path)))
        if out == target or out in target.parents:
            return f"must not be or hold an input ({key})"
    return None


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_config(text: str, *, name: str = "config.yaml", root: Path = Path(".")) -> Config:
    """Validate config text; raise :class:`ConfigError` naming the key and line."""
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser: configs can list 1000s of sources
        node, data = load_bounded(text, loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", where=name,
                          line=mark.line + 1 if mark else None) from None
    duplicate = _duplicate_key(node, set())
    if duplicate is not None:
        raise ConfigError(f"{duplicate.value}: key appears twice", where=name,
                          line=duplicate.start_mark.line + 1)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping of keys", where=name, line=1)
    try:
        config = Config.model_validate({**data, "root": root})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        if first["type"] == "missing":
            message = f"{_dotted(loc)}: required key is missing"
            line = _line_of(node, loc[:-1])
        elif first["type"] == "extra_forbidden":
            message = f"{_dotted(loc)}: unknown key"
            line = _line_of(node, loc)
        else:
            msg = first["msg"].removeprefix("Value error, ")
            message = f"{_dotted(loc)}: {msg}"
            line = _line_of(node, loc)
        more = len(exc.errors()) - 1
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(message, where=name, line=line) from None
    if config.sources_opml:
        config = _with_opml(config, name, _line_of(node, ("sources_opml",)))
    config._name = name
    config._lines["output.dir"] = _line_of(node, ("output", "dir"))
    if not config.output.allow_any_dir:
        problem = unsafe_output_dir(config)
        if problem is not None:
            raise ConfigError(f"output.dir: {problem}; choose another folder, or set output.allow_any_dir: true",
                              where=name, line=config._lines["output.dir"])
    return config


def _with_opml(config: Config, name: str, line: int | None) -> Config:
    """``config`` with the sources of its OPML files after its own (see ``opml``)."""
    named = f"sources_opml, {name}" + (f":{line}" if line else "")
    found: list[Subscription] = []
    for path in config.sources_opml:
        shown = str(config.resolve(path))
        try:
            found += read_opml(config.resolve(path), shown)
        except ConfigError as exc:
            raise ConfigError(exc.message.replace("(sources_opml)", f"({named})"), where=exc.where,
                              line=exc.line) from None
    added = []
    taken = [POSTS_SOURCE, *(s.name for s in config.sources)]
    for source_name, sub in merged(found, taken, [s.url for s in config.sources]):
        parts = urlsplit(sub.url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"the outline {sub.title or sub.url!r} has xmlUrl {sub.url!r}, not an absolute "
                              f"http(s) URL ({named})", where=sub.file)
        try:
            added.append(Source(name=source_name, url=sub.url, tags=sub.tags))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(f"the outline {sub.title or sub.url!r} cannot be a source: "
                              f"{_dotted(tuple(first['loc']))}: {first['msg'].removeprefix('Value error, ')}",
                              where=sub.file) from None
    return config.model_copy(update={"sources": [*config.sources, *added]})


def load_config(path: Path) -> Config:
    """Read and validate the config file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", where=str(path)) from None
    return parse_config(text, name=str(path), root=path.parent)
