"""Read posts: front matter (through the post cache) and cleaned bodies (through the
content cache), on worker processes when there are many.

The jobs run in workers: they take and return plain records. What this module
reads is post files and the two caches; what should be saved is returned to
the caller, which writes it (this module writes nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from ..build.keys import content_key, post_key
from ..build.stories import FoundPost, Story
from ..config import Config
from ..errors import PostError
from ..models import PostMeta
from ..normalize.content import safe_html
from ..normalize.posts import is_draft, meta_from_post, post_content
from ..store import CachedContent, PostIndexRow, PostRow, Store, meta_from_json
from ..store.codecs import meta_row
from ..workers import Progress, iter_jobs, run_jobs
from . import PostChangedError, PostFile, PostUnreadableError, read_body, read_post_snapshot
from .inputs import Inputs, Notes, PostCache

log = logging.getLogger("feeds")

# Below this many posts to parse, worker processes cost more than they save.
PARALLEL_THRESHOLD = 2000
# Up to this many rows (or a tenth of them) changed, the post index saves only its changes.
INDEX_CHANGES = 2000
# The stat of a post row that must not be trusted next run (read racily, or not read at all).
UNTRUSTED = -1


class ParseJob(NamedTuple):
    """One post to read the front matter of, and the settings it is normalized with."""

    post: PostFile
    zone: str
    base_url: str
    home_url: str
    permalink: str
    extra_tags: tuple[str, ...]
    #: The post cache key its row is saved under.
    key: str


class Parsed(NamedTuple):
    """A post row read now, with its digest and grouping digest ("" when skipped)."""

    row: PostRow
    digest: str
    group: str


def parse_one(job: ParseJob, _shared: object = None) -> Parsed:
    """Read one post's front matter (runs in a worker process: takes and returns plain data)."""
    post, key = job.post, job.key
    try:
        raw, snapshot = read_post_snapshot(post)
    except (PostUnreadableError, PostChangedError) as exc:
        return Parsed(PostRow(post.name, UNTRUSTED, post.size, key, None, str(exc)), "", "")
    except PostError as exc:
        return Parsed(PostRow(post.name, post.mtime_ns, post.size, key, None, str(exc)), "", "")
    # The row is stamped with what was read, not with what the scan saw a moment before.
    mtime_ns = UNTRUSTED if snapshot.racy else snapshot.mtime_ns
    try:
        if is_draft(raw.meta):
            return Parsed(PostRow(post.name, mtime_ns, snapshot.size, key, None, ""), "", "")
        meta = meta_from_post(raw, zone=ZoneInfo(job.zone), base_url=job.base_url, home_url=job.home_url,
                              permalink=job.permalink, extra_tags=job.extra_tags)
        text, group = meta_row(meta)
        return Parsed(PostRow(post.name, mtime_ns, snapshot.size, key, text, None), meta.digest, group)
    except PostError as exc:
        return Parsed(PostRow(post.name, mtime_ns, snapshot.size, key, None, str(exc)), "", "")


class ContentJob(NamedTuple):
    """One post body to render and clean."""

    post: PostFile
    title: str
    #: What relative URLs in the body resolve against (the post's own link).
    base_url: str
    summary: str | None
    remove: tuple[str, ...]
    summary_length: int


class CleanedBody(NamedTuple):
    """A post's body rendered and cleaned, and the digest of the file it was read from."""

    digest: str
    content: str
    summary: str
    #: ``safe_html(content)``, what an entry shows of it (made here, on the worker; the
    #: same object as ``content`` when equal, so that it is sent back once).
    safe: str


def clean_one(job: ContentJob, _shared: object = None) -> CleanedBody | str:
    """Render and clean one post's body, or say what went wrong."""
    try:
        digest, body = read_body(job.post)
    except PostError as exc:
        return str(exc)
    content, summary = post_content(body, path=job.post.name, title=job.title, base_url=job.base_url,
                                    summary=job.summary, remove=job.remove, summary_length=job.summary_length)
    safe = safe_html(content)
    return CleanedBody(digest, content, summary, content if safe == content else safe)


class IndexedPost(NamedTuple):
    """A post of this run in short: its posts input, path, digest and grouping digest."""

    folder: int
    path: str
    digest: str
    group: str


@dataclass(frozen=True, slots=True)
class FrontMatter:
    """The posts of a run (drafts and skipped posts left out), in short: their front
    matter is read from the cache by :meth:`metas` when needed."""

    posts: tuple[IndexedPost, ...]
    files: int
    parsed: int
    drafts: int
    #: Something was read while it changed (or too soon after): the next run reads again.
    unsettled: bool
    #: Front matter of the posts read in this run, by path.
    fresh: Mapping[str, PostMeta]
    cache: PostCache

    def metas(self, paths: Collection[str]) -> dict[str, PostMeta]:
        """The front matter of the posts at ``paths`` (paths of :attr:`posts`)."""
        found = {p: self.fresh[p] for p in paths if p in self.fresh}
        rest = [p for p in paths if p not in found]
        if rest:
            shared: dict[Any, Any] = {}
            found.update((p, meta_from_json(t, shared)) for p, t in self.cache.metas(rest).items())
        return found

    def found(self) -> list[FoundPost]:
        """Every post with its front matter, in the order of :attr:`posts`."""
        metas = self.metas([p.path for p in self.posts])
        return [FoundPost(p.folder, metas[p.path]) for p in self.posts]


class PostCacheUpdate(NamedTuple):
    """What the post cache is to hold after a read, besides the rows given to ``keep``:
    how many rows were given, the cached posts no longer found, and the post index as it
    is with them: whole, and its rows changed since it was saved whole (None when it is
    to be saved whole)."""

    kept: int
    forget: list[str]
    index_rows: dict[str, PostIndexRow]
    changes: dict[str, PostIndexRow | None] | None


def read_front_matter(config: Config, cache: PostCache, inputs: Inputs, notes: Notes, *, reread: bool,
                      progress: Progress | None,
                      keep: Callable[[PostRow], None]) -> tuple[FrontMatter, PostCacheUpdate]:
    """Front matter of every post: from its cached row when the file's size, mtime and the
    settings it was read with are unchanged (and not ``reread``), else read again. A post
    whose input vanished is taken from its row as it is. The cache's rows are read
    through its index: only those of posts read again are loaded.

    Each row read again is given to ``keep`` (to be saved) as soon as its worker sends it
    back, in the posts' order, and let go of here: only its front matter, decoded once,
    stays (shared strings shared between posts)."""
    index = cache.index()
    site = config.site
    keys = [post_key(config, folder) for folder in config.posts]
    jobs: list[ParseJob] = []
    # Each file's index row as the run found it, in the files' order (None: read again below).
    found_rows: list[PostIndexRow | None] = []
    row_of, add_row, kept, indexed = index.get, found_rows.append, inputs.kept, 0
    for i, f in inputs.files:
        hit = row_of(f.name)
        if hit is not None:
            indexed += 1
            if (hit.mtime_ns == f.mtime_ns and hit.size == f.size and hit.fingerprint == keys[i] and not reread) \
                    or f.name in kept:
                add_row(hit)
                continue
        add_row(None)
        folder = config.posts[i]
        jobs.append(ParseJob(f, site.timezone, site.base_url, site.link or site.base_url, folder.permalink,
                             tuple(folder.tags), keys[i]))
    # The strings this run holds already, for the rows read again: the file names of the
    # scan and the settings keys (a run reading every post holds each of them once).
    names = {job.post.name: job.post.name for job in jobs}
    fingerprints = {key: key for key in keys}
    unsettled = False
    # A post that is there but could not be read (or kept changing) stays as last read.
    held: set[str] = set()
    changed: dict[str, PostIndexRow] = {}
    metas: dict[str, PostMeta] = {}
    shared: dict[Any, Any] = {}
    for p in iter_jobs(parse_one, jobs, PARALLEL_THRESHOLD, progress=progress, step="reading posts"):
        got = p.row
        if got.mtime_ns == UNTRUSTED:
            unsettled = True
            if got.meta is None and (old := index.get(got.path)) is not None and old.problem is None:
                held.add(got.path)
                notes.warn(f"{got.problem}; published as last read")
                continue
        path = names.get(got.path, got.path)
        changed[path] = PostIndexRow(got.mtime_ns, got.size, fingerprints.get(got.fingerprint, got.fingerprint),
                                     got.problem, p.digest, p.group)
        if got.meta is not None:
            metas[path] = meta_from_json(got.meta, shared, path=path, digest=p.digest)
        keep(got)
    del jobs, names
    forget: list[str] = []
    # (The inputs' names are distinct: when each row of the index is one of theirs, none is to forget.)
    if indexed != len(index):
        present = {f.name for _, f in inputs.files}
        forget = [path for path in index if path not in present]
    new_index = {path: row for path, row in index.items() if path in present} if forget else dict(index)
    new_index.update(changed)
    changes = None
    if cache.changes is not None:
        changes = {**cache.changes, **changed, **dict.fromkeys(forget)}
        if len(changes) > max(INDEX_CHANGES, len(new_index) // 10):
            changes = None  # saved whole again
    posts: list[IndexedPost] = []
    add, make = posts.append, tuple.__new__  # the same named tuples, without their Python-level __new__
    drafts = 0
    for (i, f), row in zip(inputs.files, found_rows, strict=True):
        if row is None:  # read again (or held as it was)
            row = new_index[f.name]
        if row.problem is None:
            add(make(IndexedPost, (i, f.name, row.digest, row.group)))
        elif row.problem and f.name not in held:
            notes.warn(row.problem)
        else:
            drafts += 1
    return (FrontMatter(tuple(posts), len(inputs.files), len(changed), drafts, unsettled, metas, cache),
            PostCacheUpdate(len(changed), forget, new_index, changes))


class Cleaned(NamedTuple):
    content: str
    summary: str
    #: ``safe_html(content)`` when it was made with the content (None: not yet).
    safe: str | None = None


@dataclass(frozen=True, slots=True)
class Contents:
    """Cleaned content of the wanted posts by entry id, and the cache rows to save."""

    by_id: Mapping[str, Cleaned]
    #: Entries of kept posts whose content is not cached: feeds showing them stay as they are.
    unavailable: frozenset[str]
    #: A post was saved while it was read: the next run reads again.
    unsettled: bool
    fresh: tuple[CachedContent, ...]


def clean_contents(config: Config, store: Store, stories: Mapping[str, Story], wanted: Collection[str],
                   inputs: Inputs, notes: Notes, *, progress: Progress | None) -> Contents:
    """Post bodies of the wanted stories rendered and cleaned, or taken from the cache."""
    keys = [content_key(config, folder) for folder in config.posts]
    by_key: dict[str, list[str]] = {}
    for entry_id in wanted:
        story = stories[entry_id]
        if story.post is not None:
            by_key.setdefault(keys[story.folder or 0], []).append(story.post.path)
    cache: dict[str, CachedContent] = {}
    for key, paths in by_key.items():
        cache.update(store.load_contents(key, paths))
    files = inputs.by_name()
    results: dict[str, Cleaned] = {}
    unavailable: set[str] = set()
    jobs: list[ContentJob] = []
    job_ids: list[str] = []
    for entry_id in sorted(wanted):
        story = stories[entry_id]
        post = story.post
        if post is None:
            continue
        hit = cache.get(post.path)
        if hit and hit.digest == post.digest and hit.fingerprint == keys[story.folder or 0]:
            results[entry_id] = Cleaned(hit.content, hit.summary)
        elif post.path in inputs.kept:
            unavailable.add(entry_id)  # its file is gone and its content not cached
        else:
            folder = config.posts[story.folder or 0]
            jobs.append(ContentJob(files[post.path], post.title, post.link or post.permalink or config.site.base_url,
                                   post.summary, tuple(folder.clean.remove), config.output.summary_length))
            job_ids.append(entry_id)
    fresh: list[CachedContent] = []
    unsettled = False
    cleaned = run_jobs(clean_one, jobs, PARALLEL_THRESHOLD // 4, progress=progress, step="cleaning content")
    for entry_id, result in zip(job_ids, cleaned, strict=True):
        story = stories[entry_id]
        post = story.post
        assert post is not None
        if isinstance(result, str):
            notes.warn(result)
            results[entry_id] = Cleaned("", post.summary or "")
            continue
        results[entry_id] = Cleaned(result.content, result.summary, result.safe)
        if result.digest != post.digest:
            # Saved since its front matter was read: not cached, and read again next run.
            log.info("%s: changed while being read; read again next run", post.path)
            unsettled = True
            continue
        fresh.append(CachedContent(post.path, result.digest, keys[story.folder or 0], result.content,
                                   result.summary))
    return Contents(results, frozenset(unavailable), unsettled, tuple(fresh))
