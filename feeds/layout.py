"""The output layout: every file name, folder, suffix, media type and URL of what feeds publishes.

The one place that knows where things go in ``output/``, what each file is served
as, and how files are linked: rendering, publishing, ``feeds check``,
``feeds serve`` and WebSub all ask here, and spell no name of their own.

Pure: touches no file, network, database or clock.
"""

from __future__ import annotations

from typing import Literal, NamedTuple
from urllib.parse import quote

#: The formats a feed is written in (``output.formats``).
FeedFormat = Literal["atom", "rss", "json"]
#: What a feed file is made in: a feed format, or "html" for the feed's page (``output.pages``).
FileFormat = FeedFormat | Literal["html"]
#: The kinds of feeds: the one of everything, one per tag, one per category, one per query.
FeedKind = Literal["all", "tag", "category", "query"]


class LinkType(NamedTuple):
    """How a link to a feed in one format is labelled and typed (``<link type=...>``, the index)."""

    label: str
    media_type: str


#: Each feed format and the suffix of its file.
FORMATS: dict[FeedFormat, str] = {"atom": ".atom.xml", "rss": ".rss.xml", "json": ".feed.json"}
#: The formats that are XML (what ``feeds check`` parses, what a browser sees through the stylesheet).
XML_FORMATS: tuple[FeedFormat, ...] = ("atom", "rss")
#: What readers are told each format is (also the links of the index and the pages).
LINK_TYPES: dict[FeedFormat, LinkType] = {"atom": LinkType("Atom", "application/atom+xml"),
                                          "rss": LinkType("RSS", "application/rss+xml"),
                                          "json": LinkType("JSON", "application/feed+json")}
#: The suffix of a feed's HTML page (``output.pages``).
PAGE_SUFFIX = ".html"

#: The feed of everything, at the top of the output folder.
ALL_STEM = "all"
#: The folder of each kind of grouped feed.
FOLDERS: dict[FeedKind, str] = {"tag": "tags", "category": "categories", "query": "queries"}
#: The only folders feeds writes into (or walks when it looks for files of its own).
MANAGED_FOLDERS = tuple(FOLDERS.values())
#: Every folder holding feeds, in the order they are listed: the top ("") first.
FEED_FOLDERS = ("", *MANAGED_FOLDERS)

INDEX_NAME = "index.html"
OPML_NAME = "feeds.opml"
XSL_NAME = "feed.xsl"
STATUS_ATOM = "status.atom"
STATUS_JSON = "status.json"
#: The template a feed's page is rendered from (beside ``INDEX_NAME``, ``OPML_NAME``, ``XSL_NAME``).
PAGE_TEMPLATE = "feed" + PAGE_SUFFIX
#: Files at the top of the output folder that are not feeds of entries.
FRONT_DOOR = (INDEX_NAME, OPML_NAME, XSL_NAME)
STATUS_FILES = (STATUS_ATOM, STATUS_JSON)

#: What ``feeds serve`` answers each file as, by the end of its name; the first match wins,
#: so longer suffixes come before the shorter ones they end with.
MEDIA_TYPES: dict[str, str] = {
    FORMATS["atom"]: "application/atom+xml; charset=utf-8",
    FORMATS["rss"]: "application/rss+xml; charset=utf-8",
    PAGE_SUFFIX: "text/html; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    FORMATS["json"]: "application/feed+json; charset=utf-8",
    STATUS_ATOM: "application/atom+xml; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".xsl": "text/xsl; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
#: Anything else.
BINARY_TYPE = "application/octet-stream"


def feed_stem(kind: FeedKind, slug: str | None = None) -> str:
    """A feed's path without its suffix: "all", "tags/<slug>", "categories/<slug>", "queries/<slug>"."""
    if kind == "all":
        return ALL_STEM
    assert slug is not None
    return f"{FOLDERS[kind]}/{slug}"


#: What a feed's archive folder is named after it: "tags/<slug>.archive/1.atom.xml" (RFC 5005 pages).
ARCHIVE_SUFFIX = ".archive"


def archive_stem(stem: str, number: int) -> str:
    """The stem of page ``number`` (1 is the oldest) of the archive of the feed ``stem``."""
    return f"{stem}{ARCHIVE_SUFFIX}/{number}"


def is_archive_folder(folder: str) -> bool:
    """Whether ``folder`` (relative, '/'-separated) is a feed's archive folder."""
    parent, _, name = folder.rpartition("/")
    if not parent:  # at the top there is one feed
        return name == ALL_STEM + ARCHIVE_SUFFIX
    return name.endswith(ARCHIVE_SUFFIX) and len(name) > len(ARCHIVE_SUFFIX) and parent in MANAGED_FOLDERS


def feed_file(stem: str, fmt: FileFormat) -> str:
    """The relative path of a feed in ``fmt`` ("atom", "rss", "json", or "html" for its page)."""
    return stem + (PAGE_SUFFIX if fmt == "html" else FORMATS[fmt])


def feed_url(base_url: str, relative_path: str) -> str:
    """The published URL of an output file: each path segment percent-encoded."""
    return base_url + quote(relative_path, safe="/")


def href(relative_path: str) -> str:
    """A link to an output file from a page at the top of the output folder."""
    return quote(relative_path)


def stylesheet_href(relative_path: str) -> str:
    """The stylesheet as the feed at ``relative_path`` links it, percent-encoded: relative,
    so it resolves wherever output/ is served (and stays same-origin, as XSLT needs)."""
    return quote("../" * relative_path.count("/") + XSL_NAME, safe="/.-_")


def media_type(name: str) -> str:
    """The Content-Type of the file ``name`` (its suffix decides)."""
    for suffix, kind in MEDIA_TYPES.items():
        if name.endswith(suffix):
            return kind
    return BINARY_TYPE


def is_feed_file(name: str, formats: tuple[FeedFormat, ...] = tuple(FORMATS)) -> bool:
    """Whether ``name`` ends as a feed in one of ``formats`` does."""
    return name.endswith(tuple(FORMATS[f] for f in formats))


def is_announced(relative_path: str) -> bool:
    """A file a WebSub hub is told about when it changes: every feed (JSON Feed too)."""
    return is_feed_file(relative_path)


def looks_like_ours(relative_path: str) -> bool:
    """A name in the shape of what this program writes (a feed, its page, the front door)."""
    folder, _, name = relative_path.rpartition("/")
    if folder in MANAGED_FOLDERS:
        return name.endswith((*FORMATS.values(), PAGE_SUFFIX))
    if is_archive_folder(folder):
        return name == "" or is_feed_file(name)  # "" : the archive folder itself
    if not name and is_archive_folder(folder.removesuffix("/")):
        return True
    return not folder and (is_feed_file(name) or name in FRONT_DOOR + STATUS_FILES)


def listing_order(relative_path: str) -> tuple[int, str]:
    """Sort key listing feeds folder by folder (the top, then ``FEED_FOLDERS``' order), by name
    within; archive pages come after every feed, by feed and page number."""
    folder, _, name = relative_path.rpartition("/")
    if is_archive_folder(folder):
        number, _, suffix = name.partition(".")
        return len(FEED_FOLDERS) + 1, f"{folder}\0{int(number) if number.isdigit() else 0:09d}.{suffix}"
    return (FEED_FOLDERS.index(folder) if folder in FEED_FOLDERS else len(FEED_FOLDERS)), name
