"""The rows the store hands out and takes in, one type per kind of row.

Records only: named fields, no SQL and no I/O. Posts, items and outputs are
what the pipeline and the source updater read and write; :class:`LastRun` is
the typed form of the ``last_run`` setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..models import Entry
from .codecs import entry_to_json, tags_to_json


class PostRow(NamedTuple):
    """A post as last read: its front matter normalized (JSON), or why it was skipped."""

    path: str
    mtime_ns: int
    size: int
    #: Hash of the settings the parse depended on.
    fingerprint: str
    #: ``meta_to_json`` of its PostMeta; None for a skipped post.
    meta: str | None
    #: Why it was skipped ("path:line: ..."), "" for a draft, None when read fine.
    problem: str | None


class PostIndexRow(NamedTuple):
    """A post cache row in short: what tells whether its file changed and whether its
    grouping did, without the front matter itself."""

    mtime_ns: int
    size: int
    fingerprint: str
    #: As :attr:`PostRow.problem`: why it was skipped, "" for a draft, None when read fine.
    problem: str | None
    #: The post's digest and :func:`.codecs.group_digest` of its front matter ("" when skipped).
    digest: str
    group: str

    @classmethod
    def of(cls, row: PostRow, digest: str, group: str) -> PostIndexRow:
        return cls(row.mtime_ns, row.size, row.fingerprint, row.problem, digest, group)


@dataclass(frozen=True, slots=True)
class CachedContent:
    """A post's rendered content and summary, and what they were made from."""

    path: str
    #: Hash of the post's body.
    digest: str
    #: Hash of the settings the rendering depended on.
    fingerprint: str
    content: str
    summary: str


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """A file this program wrote into the output folder."""

    #: Relative to the output folder, with '/' between parts.
    path: str
    #: Hash of everything the file was rendered from ("" while it is being written).
    signature: str
    #: Its size and mtime when written (-1 and 0 while it is being written).
    size: int
    mtime_ns: int


class ItemRow(NamedTuple):
    """One item of one source, as stored."""

    source: str
    #: What identifies the item within its source ("guid:...", "link:...", "hash:...").
    ukey: str
    entry_id: str
    link: str | None
    #: Seconds since the epoch.
    published: float
    updated: float
    #: JSON list of the entry's tags.
    tags: str
    #: ``entry_to_json`` of the normalized entry.
    data: str
    #: Hash of what the entry was made from.
    digest: str
    #: When the item was first stored, and when its source last listed it (seconds).
    first_seen: float
    last_seen: float

    @classmethod
    def make(cls, source: str, ukey: str, entry: Entry, digest: str, first_seen: float,
             last_seen: float) -> ItemRow:
        return cls(source, ukey, entry.id, entry.link, entry.published.timestamp(), entry.updated.timestamp(),
                   tags_to_json(entry.tags), entry_to_json(entry), digest, first_seen, last_seen)


class ArticleRow(NamedTuple):
    """The article page of one item of a ``full_text`` source, as stored."""

    source: str
    ukey: str
    #: The page asked for (the item's link then).
    link: str
    #: What the article was extracted with (``sources.fulltext.extraction``).
    how: str
    #: The extracted article (HTML, not yet cleaned); None when the page failed.
    html: str | None
    #: Why it failed, how many times in a row, and when it may be asked for again (seconds).
    error: str | None
    failures: int
    next_try: float | None
    fetched_at: float


class ArticleWanted(NamedTuple):
    """An item of a ``full_text`` source whose article page is to be asked for."""

    ukey: str
    #: The item's link: the page to ask for.
    link: str
    #: ``entry_to_json`` of its stored entry, and its digest.
    data: str
    digest: str
    #: What is stored of its page so far (another link, an older extraction, a failure), or None.
    stored: ArticleRow | None


class ArticleHealth(NamedTuple):
    """How a ``full_text`` source's article pages fare, for ``feeds status``."""

    #: Pages that gave an article, and pages failing now.
    fetched: int
    failing: int
    #: The latest failure: its page and why, or None.
    last_failure: str | None = None
    #: Its latest few pages all failed (``store.articles.FAILING_STREAK``): a problem of the
    #: source (its site changed, its selector no longer matches...), not of one page.
    streak: bool = False


class Known(NamedTuple):
    """What is stored of an item, as far as deciding about a new fetch of it goes."""

    entry_id: str
    digest: str
    first_seen: float


class ItemHead(NamedTuple):
    """An item without its entry data: what grouping needs."""

    source: str
    ukey: str
    entry_id: str
    link: str | None
    published: float
    updated: float
    tags: tuple[str, ...]
    digest: str


@dataclass(frozen=True, slots=True)
class LastRun:
    """What the last generation left, so that a run with nothing changed can stop early.

    A forgotten last run (``Store.forget_last_run``) reads back as ``LastRun("")``:
    an empty snapshot matches no run, and the other fields are their defaults."""

    #: Hash of every input of that run; "" when the next run must do the work.
    snapshot: str
    #: How many output files it recorded (None: not stored).
    outputs: int | None = None
    #: How many feed files it rendered (None: not stored; as many as the outputs).
    feeds: int | None = None
    posts: int = 0
    drafts: int = 0
    entries: int = 0
    #: The warnings it printed, to print again.
    warnings: tuple[str, ...] = ()
    #: What ``feeds.unchanged`` needs to tell, before the program is loaded, that nothing
    #: changed since (a JSON object it reads and writes); "" when there is none.
    quick: str = ""
