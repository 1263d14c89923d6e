"""Compose the stages: config -> posts -> normalize -> store -> group -> render -> publish.

``generate`` is the one-shot run behind ``feeds generate``. It reads post
front matter for every post (cached by file size and mtime), renders and
cleans bodies only for the posts some feed shows, and renders a feed only when
what it is made from changed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import jinja2

from . import __version__
from .build.group import Candidate, FeedPlan, plan_feeds
from .build.health import problems, status_entries, status_json
from .build.taxonomy import Term, Vocabulary, term_key
from .config import Config, Policy
from .errors import Cancelled, ConfigError, DamagedStateError, FeedsError, PostError, PublishError, StorageError
from .identity import is_web_url, post_id
from .layout import (
    INDEX_NAME,
    LINK_TYPES,
    OPML_NAME,
    STATUS_ATOM,
    STATUS_JSON,
    XSL_NAME,
    feed_file,
    feed_url,
    href,
    looks_like_ours,
    stylesheet_href,
)
from .lock import lock_path, writer_lock
from .models import Entry, PostMeta
from .normalize.posts import entry_from_post, is_draft, meta_from_post, post_content
from .output.publish import (
    read_bytes,
    remove_files,
    remove_leftover_temps,
    safe_target,
    unknown_files,
    write_all,
    write_if_changed,
)
from .posts import (
    PostChangedError,
    PostFile,
    PostScan,
    PostUnreadableError,
    input_matcher,
    read_body,
    read_post_snapshot,
    scan_posts,
)
from .render.feed import FeedHead, Rendered, render_checked, render_feed
from .render.pages import (
    Group,
    Link,
    Listing,
    environment,
    newest_label,
    render_feed_page,
    render_index,
    render_opml,
    stylesheet,
    template_stats,
)
from .render.safe import safe_entries
from .sources.decide import SourceOutcome
from .sources.schedule import new_state
from .sources.update import update_sources
from .store import (
    CachedContent,
    ItemHead,
    OutputRecord,
    PostRow,
    Store,
    entry_from_json,
    meta_from_json,
    meta_to_json,
    move_aside,
)
from .workers import Progress, run_jobs

log = logging.getLogger("feeds")

# Bump when parsing or rendering changes what a cached record would hold.
CACHE_VERSION = f"{__version__}/1"
# Below this many posts to parse, worker processes cost more than they save.
PARALLEL_THRESHOLD = 2000
RENDER_THRESHOLD = 40
# The date of a health feed with no problem in it (a plausible, fixed one).
HEALTHY_SINCE = datetime(2000, 1, 1, tzinfo=UTC)
# A posts input that lost at least SHRINK_MIN posts and more than half of what it had since
# the last run, or all of them, is taken as vanished (an unmounted disk, a wrong path), not
# as edited: an error, its posts kept, unless --allow-shrink.
SHRINK_MIN = 20
SHRINK_RATIO = 0.5
# The stat of a post row that must not be trusted next run (read racily, or not read at all).
UNTRUSTED = -1


@dataclass
class Report:
    """What a run did, for the CLI's summary and exit status."""

    warnings: list[str] = field(default_factory=list)
    #: Inputs that are missing or unreadable (their entries kept as published): exit 1.
    errors: list[str] = field(default_factory=list)
    posts: int = 0
    parsed: int = 0
    drafts: int = 0
    entries: int = 0
    feeds: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    #: With check=True: files that are missing, different or stale.
    outdated: list[str] = field(default_factory=list)
    #: What happened to each source fetched in this run.
    sources: list[SourceOutcome] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Story:
    """One entry: from local posts (a primary post and duplicates merged in), from
    source feeds (the same story as one or more sources carry it), or both."""

    id: str
    published: datetime
    post: PostMeta | None
    folder: int | None
    merged: tuple[PostMeta, ...]
    #: Items of source feeds, the most recently updated first.
    items: tuple[ItemHead, ...]
    #: Tag and category spellings (after the alias map), one per term, and their term keys.
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    tag_keys: tuple[str, ...]
    category_keys: tuple[str, ...]


_ParseJob = tuple[PostFile, str, str, str, str, tuple[str, ...], str]
_ContentJob = tuple[PostFile, str, str, str | None, tuple[str, ...], int]


def _parse_one(job: _ParseJob, _shared: object = None) -> PostRow:
    """Read one post's front matter (runs in a worker process: takes and returns plain data)."""
    post, zone_name, base_url, home_url, permalink, extra_tags, fingerprint = job
    try:
        raw, snapshot = read_post_snapshot(post)
    except (PostUnreadableError, PostChangedError) as exc:
        return PostRow(post.name, UNTRUSTED, post.size, fingerprint, None, str(exc))
    except PostError as exc:
        return PostRow(post.name, post.mtime_ns, post.size, fingerprint, None, str(exc))
    # The row is stamped with what was read, not with what the scan saw a moment before.
    mtime_ns = UNTRUSTED if snapshot.racy else snapshot.mtime_ns
    try:
        if is_draft(raw.meta):
            return PostRow(post.name, mtime_ns, snapshot.size, fingerprint, None, "")
        meta = meta_from_post(raw, zone=ZoneInfo(zone_name), base_url=base_url, home_url=home_url,
                              permalink=permalink, extra_tags=extra_tags)
        return PostRow(post.name, mtime_ns, snapshot.size, fingerprint, meta_to_json(meta), None)
    except PostError as exc:
        return PostRow(post.name, mtime_ns, snapshot.size, fingerprint, None, str(exc))


def _content_one(job: _ContentJob, _shared: object = None) -> tuple[str, str, str] | str:
    """Render and clean one post's body: (digest, content, summary), or what went wrong."""
    post, title, base_url, summary, remove, summary_length = job
    try:
        digest, body = read_body(post)
    except PostError as exc:
        return str(exc)
    content, summary = post_content(body, path=post.name, title=title, base_url=base_url, summary=summary,
                                    remove=remove, summary_length=summary_length)
    return digest, content, summary


def _render_one(job: tuple[FeedHead, tuple[str, ...], str], entries: dict[str, Entry]) -> Rendered:
    head, entry_ids, form = job
    # Entries that could not be built are missing: the feed shows the others.
    return render_checked(head, [entries[i] for i in entry_ids if i in entries], form)


def _render_all(jobs: list[tuple[FeedHead, tuple[str, ...], str]], entries: dict[str, Entry],
                progress: Progress | None = None) -> list[Rendered]:
    return run_jobs(_render_one, jobs, RENDER_THRESHOLD, shared=entries, progress=progress, step="rendering feeds")


class Generator:
    """One run of ``feeds generate`` over a config and its state database."""

    def __init__(self, config: Config, store: Store, progress: Progress | None = None,
                 cancel: Callable[[], bool] | None = None) -> None:
        self.config = config
        self.store = store
        self.progress = progress
        self.cancel = cancel or (lambda: False)
        self._policies: dict[tuple[str, str], Policy] = {}
        self._env: jinja2.Environment | None = None
        self._background: list[threading.Thread] = []
        self._background_errors: list[FeedsError] = []
        self.fingerprint = config.fingerprint(CACHE_VERSION)
        self.report = Report()
        #: Accept posts inputs that vanished or shrank as they are now (--allow-shrink).
        self.allow_shrink = False
        #: Read every post again, trusting no cached row (--check: a file rewritten with its old
        #: size and mtime looks unchanged to the cache).
        self.reread = False
        self._post_cache: dict[str, PostRow] | None = None
        #: Posts not found on disk whose input is missing: published from their cached rows.
        self.kept: set[str] = set()
        #: Entries of kept posts whose content is not cached: feeds showing them are left as they are.
        self.unavailable: set[str] = set()
        #: Something was read while it changed (or too soon after): the next run reads again.
        self.unsettled = False
        self._warned: set[str] = set()
        #: Post files per posts input, found (or kept) in this run and in the last one.
        self.input_counts: dict[str, int] = {}
        self.last_counts: dict[str, int] = {}

    # -- reading posts -------------------------------------------------------

    def post_cache(self) -> dict[str, PostRow]:
        if self._post_cache is None:
            self._post_cache = self.store.load_posts()
        return self._post_cache

    def scan(self) -> list[tuple[int, PostFile]]:
        seen: set[str] = set()
        found: list[tuple[int, PostFile]] = []
        results = [scan_posts(folder.path, self.config.root) for folder in self.config.posts]
        # How many posts each input had last time: one small setting, so that a run with
        # nothing changed need not load the post cache to know that nothing vanished.
        self.input_counts = {folder.path: len(r.files) for folder, r in zip(self.config.posts, results, strict=True)}
        stored = self.store.get_json_setting("post_inputs") or {}
        self.last_counts = {k: v for k, v in stored.items() if isinstance(v, int)}
        # Posts of no configured input: the config changed, or a path in it is mistyped. They
        # go with the first input that cannot be read (and so stay published), if there is one.
        strays: list[PostRow] = []
        if any(r.problem is not None for r in results):
            matchers = [input_matcher(folder.path, self.config.root) for folder in self.config.posts]
            strays = [row for name, row in self.post_cache().items() if not any(m(name) for m in matchers)]
        for index, (folder, result) in enumerate(zip(self.config.posts, results, strict=True)):
            for line in result.refused:
                self.warn(line)
            for line in result.notes:
                log.debug("%s", line)
            kept = self.vanished(folder.path, folder.optional, result,
                                 strays if result.problem is not None else [])
            if kept:
                strays = []
                self.input_counts[folder.path] += len(kept)
            if not result.files and not kept and result.problem is None:
                self.warn(f"{folder.path}: no post files found")
            for f in result.files + kept:
                if f.name not in seen:  # a file matched by two folders belongs to the first
                    seen.add(f.name)
                    found.append((index, f))
        return found

    def vanished(self, path: str, optional: bool, result: PostScan, strays: list[PostRow]) -> list[PostFile]:
        """Posts of this input that the last run read but this scan cannot see, when the
        input is missing, partly unreadable or shrank drastically: they stay published
        from their cached rows, and the input is an error (a warning if optional)."""
        root = self.config.root
        last = self.last_counts.get(path, 0)
        # Empty where it had posts is an empty mount point more often than a deliberate purge.
        shrunk = (last > 0 and not result.files) or (last - len(result.files) >= SHRINK_MIN
                                                     and len(result.files) < last * SHRINK_RATIO)
        if result.problem is None and not result.unreadable and not shrunk:
            return []
        belongs = input_matcher(path, root)
        found = {f.name for f in result.files}
        missing = [row for name, row in self.post_cache().items() if belongs(name) and name not in found]
        if result.problem is not None:
            reason = result.problem
            missing += strays
        elif result.unreadable:
            unreadable = [input_matcher(u, root) for u in result.unreadable]
            missing = [row for row in missing if any(m(row.path) for m in unreadable)]
            reason = "cannot read " + ", ".join(result.unreadable[:3]) + (" ..." if len(result.unreadable) > 3
                                                                         else "")
        else:
            reason = f"{len(result.files)} post files found where the last run read {last}"
        if self.allow_shrink:
            self.warn(f"{path}: {reason}; --allow-shrink: its {len(missing)} missing posts are unpublished")
            return []
        message = f"{path}: {reason}"
        if missing:
            message += f"; its {len(missing)} other posts stay published as they were"
        if optional:
            self.warn(message + " (optional)")
        else:
            self.error(message + (" (if they were removed on purpose: feeds generate --allow-shrink)"
                                  if missing else ""))
        self.kept.update(row.path for row in missing)
        return [PostFile(path=str(root / row.path), name=row.path, mtime_ns=row.mtime_ns, size=row.size)
                for row in missing]

    def read_metas(self, files: list[tuple[int, PostFile]]) -> list[tuple[int, PostFile, PostMeta]]:
        cache = self.post_cache()
        site = self.config.site
        jobs: list[_ParseJob] = []
        keep: list[PostRow] = []
        for index, f in files:
            hit = cache.get(f.name)
            same = hit is not None and (hit.mtime_ns, hit.size, hit.fingerprint) == (f.mtime_ns, f.size,
                                                                                      self.fingerprint)
            if hit is not None and ((same and not self.reread) or f.name in self.kept):
                keep.append(hit)
            else:
                folder = self.config.posts[index]
                jobs.append((f, site.timezone, site.base_url, site.link or site.base_url, folder.permalink,
                             tuple(folder.tags), self.fingerprint))
        fresh = run_jobs(_parse_one, jobs, PARALLEL_THRESHOLD, progress=self.progress, step="reading posts")
        if self.input_counts != self.last_counts:
            self.store.set_setting("post_inputs", json.dumps(self.input_counts, ensure_ascii=False))
        if any(row.mtime_ns == UNTRUSTED for row in fresh):
            self.unsettled = True
        # A post that is there but could not be read (or kept changing) stays as last read.
        held = {row.path for row in fresh if row.meta is None and row.mtime_ns == UNTRUSTED
                and (cache.get(row.path) or row).meta is not None}
        for row in fresh:
            if row.path in held:
                self.warn(f"{row.problem}; published as last read")
        keep += [cache[row.path] for row in fresh if row.path in held]
        fresh = [row for row in fresh if row.path not in held]
        present = {f.name for _, f in files}
        # The cache is written while the run goes on; the run waits for it before it ends.
        self.background(self.store.save_posts, fresh, [p for p in cache if p not in present])
        self.report.posts, self.report.parsed = len(files), len(fresh)
        by_name = {c.path: c for c in keep + fresh}
        out = []
        for index, f in files:
            cached = by_name[f.name]
            if cached.meta is not None:
                out.append((index, f, meta_from_json(cached.meta)))
            elif cached.problem and cached.path not in held:
                self.warn(cached.problem)
            else:
                self.report.drafts += 1
        return out

    # -- identity and grouping -----------------------------------------------

    def stories(self, metas: list[tuple[int, PostFile, PostMeta]], items: list[ItemHead]) -> list[_Story]:
        ledger = self.store.load_ledger()
        posts: dict[str, list[tuple[int, PostMeta]]] = {}
        for index, _f, meta in metas:
            entry_id = post_id(meta.explicit_id, meta.link, meta.title, meta.published.isoformat(), meta.path, ledger)
            posts.setdefault(entry_id, []).append((index, meta))
        self.store.save_ledger(ledger)

        # Items of source feeds join the post with their id or link; the rest group by id.
        post_links = {m.link: entry_id for entry_id, group in posts.items() for _, m in group if m.link}
        remote: dict[str, list[ItemHead]] = {}
        for item in items:
            target = item.entry_id if item.entry_id in posts else post_links.get(item.link or "", item.entry_id)
            remote.setdefault(target, []).append(item)

        tag_vocab = Vocabulary(self.config.tags.aliases, self.config.tags.slugs)
        cat_vocab = Vocabulary(self.config.categories.aliases, self.config.categories.slugs)
        stories = []
        for entry_id in sorted(posts.keys() | remote.keys()):
            group = posts.get(entry_id, [])
            # Duplicates: the most recently updated copy wins, its tags joined by the others'.
            group.sort(key=lambda im: (-im[1].updated.timestamp(), im[1].path))
            heads = sorted(remote.get(entry_id, []), key=lambda i: (-i.updated, i.source, i.ukey))
            folder: int | None = group[0][0] if group else None
            primary: PostMeta | None = group[0][1] if group else None
            merged = tuple(m for _, m in group[1:])
            if merged and primary is not None:
                log.info("%s: same entry as %s (%s); merged", primary.path,
                         ", ".join(m.path for m in merged), entry_id)
            metas_here = [m for _, m in group]
            tags = _unique(tag_vocab.canonical(t) for t in chain(
                (t for m in metas_here for t in m.tags),
                (t for h in heads for t in h.tags if isinstance(t, str) and t.strip())))  # stored rows may be damaged
            cats = _unique(cat_vocab.canonical(c) for m in metas_here for c in m.categories)
            published = primary.published if primary is not None else _from_timestamp(heads[0].published)
            stories.append(_Story(entry_id, published, primary, folder, merged, tuple(heads), tuple(tags.values()),
                                  tuple(cats.values()), tuple(tags), tuple(cats)))
        self.tag_terms = self._terms(tag_vocab, (s.tags for s in stories), "tag")
        self.category_terms = self._terms(cat_vocab, (s.categories for s in stories), "category")
        return stories

    def _terms(self, vocab: Vocabulary, names: Iterable[tuple[str, ...]], what: str) -> dict[str, Term]:
        counts: Counter[str] = Counter(n for group in names for n in group)
        terms, problems = vocab.resolve(counts)
        for problem in problems:
            self.warn(f"{what} slug collision: {problem}")
        return terms

    # -- rendering -----------------------------------------------------------

    def policy_of(self, kind: str, term: Term | None) -> Policy:
        key = (kind, term.key if term else "")
        if key not in self._policies:
            self._policies[key] = self.config.policy(kind, term.name if term else None)
        return self._policies[key]

    def head(self, plan: FeedPlan, relative: str) -> FeedHead:
        site, policy = self.config.site, plan.policy
        if plan.term is None:
            title, description = site.title, site.description or f"All entries of {site.title}"
        elif plan.kind == "tag":
            title, description = f"{plan.term.name} — {site.title}", f"Entries tagged {plan.term.name}"
        else:
            title, description = (f"{plan.term.name} — {site.title}",
                                  f"Entries in the category {plan.term.name}")
        name = plan.term.name if plan.term else site.title
        if policy.title:
            title = policy.title.replace("{name}", name).replace("{site}", site.title)
        if policy.description:
            description = policy.description.replace("{name}", name).replace("{site}", site.title)
        stylesheet = None
        if self.config.output.stylesheet:
            stylesheet = stylesheet_href(relative)
        return FeedHead(title=title, description=description, self_url=feed_url(site.base_url, relative),
                        home_url=site.link or site.base_url, language=site.language,
                        author=site.author or site.title, hub=self.config.websub.hub, stylesheet=stylesheet,
                        full_content=policy.content != "summary", max_bytes=self.config.output.max_bytes,
                        max_entry_bytes=self.config.output.max_entry_bytes)

    def signature(self, plan: FeedPlan, fmt: str, head: FeedHead, stories: dict[str, _Story]) -> str:
        h = hashlib.sha1(f"{self.fingerprint}\0{fmt}\0{head!r}".encode())
        for entry_id in plan.entry_ids:
            s = stories[entry_id]
            names = [self.tag_terms[k].name for k in s.tag_keys] + ["\0"] + \
                    [self.category_terms[k].name for k in s.category_keys]
            if s.post is not None:
                h.update(f"\0{entry_id}\0{s.post.digest}\0{s.post.path}\0{names}".encode())
            else:
                h.update(f"\0{entry_id}\0{names}".encode())
            for item in s.items:
                h.update(f"\0{item.source}\0{item.ukey}\0{item.digest}".encode())
        return h.hexdigest()

    def entries(self, wanted: set[str], stories: dict[str, _Story],
                files: dict[str, PostFile]) -> dict[str, Entry]:
        """Full entries for the wanted stories: post bodies rendered and cleaned (or taken
        from the cache), items of source feeds read from the store."""
        site, out = self.config.site, self.config.output
        post_paths = [stories[i].post.path for i in wanted if stories[i].post is not None]  # type: ignore[union-attr]
        cache = self.store.load_contents(self.fingerprint, post_paths)
        results: dict[str, tuple[str, str]] = {}
        jobs: list[_ContentJob] = []
        job_ids: list[str] = []
        for entry_id in sorted(wanted):
            post = stories[entry_id].post
            if post is None:
                continue
            hit = cache.get(post.path)
            if hit and hit.digest == post.digest:
                results[entry_id] = (hit.content, hit.summary)
            elif post.path in self.kept:
                self.unavailable.add(entry_id)  # its file is gone and its content not cached
            else:
                folder = self.config.posts[stories[entry_id].folder or 0]
                jobs.append((files[post.path], post.title, post.link or post.permalink or site.base_url,
                             post.summary, tuple(folder.clean.remove), out.summary_length))
                job_ids.append(entry_id)
        fresh: list[CachedContent] = []
        cleaned = run_jobs(_content_one, jobs, PARALLEL_THRESHOLD // 4, progress=self.progress,
                           step="cleaning content")
        for entry_id, result in zip(job_ids, cleaned, strict=True):
            post = stories[entry_id].post
            assert post is not None
            if isinstance(result, str):
                self.warn(result)
                results[entry_id] = ("", post.summary or "")
                continue
            digest, content, summary = result
            results[entry_id] = (content, summary)
            if digest != post.digest:
                # Saved since its front matter was read: not cached, and read again next run.
                log.info("%s: changed while being read; read again next run", post.path)
                self.unsettled = True
                continue
            fresh.append(CachedContent(post.path, digest, self.fingerprint, content, summary))
        self.background(self.store.save_contents, fresh)

        item_data = self.store.load_item_data((i.source, i.ukey) for e in wanted for i in stories[e].items)
        entries = {}
        for entry_id in wanted - self.unavailable:
            s = stories[entry_id]
            tags = [self.tag_terms[k].name for k in s.tag_keys]
            categories = [self.category_terms[k].name for k in s.category_keys]
            remote = [e for i in s.items if (e := self.stored_entry(i, item_data.get((i.source, i.ukey)))) is not None]
            if not remote and s.post is None:
                continue  # left out of every feed (said in stored_entry)
            provenance = tuple(p for e in remote for p in e.provenance)
            if s.post is not None:
                folder = self.config.posts[s.folder or 0]
                content, summary = results[entry_id]
                entry = entry_from_post(
                    s.post, entry_id=entry_id, content=content, summary=summary, tags=tags,
                    categories=categories, source=f"posts:{folder.path}", summary_only=folder.summary_only,
                    merged=s.merged)
                entries[entry_id] = replace(entry, provenance=entry.provenance + provenance)
            else:
                entries[entry_id] = replace(remote[0], id=entry_id, tags=tuple(tags),
                                            categories=tuple(categories), provenance=provenance)
        return entries

    def stored_entry(self, item: ItemHead, data: str | None) -> Entry | None:
        """A source item as stored; None, with one warning, when it cannot be read back."""
        try:
            if data is None:
                raise StorageError("a stored item has gone")
            return entry_from_json(data)
        except StorageError as exc:
            self.warn(f"{item.source}: {exc.message}; item {item.ukey[:100]!r} left out")
            return None

    # -- the run -------------------------------------------------------------

    def snapshot(self, files: list[tuple[int, PostFile]]) -> str:
        """A hash of every input's name, size and mtime, of the templates, and of the settings."""
        h = hashlib.sha1(self.fingerprint.encode())
        h.update(f"items:{self.store.get_setting('items_version')}\n".encode())
        for index, f in files:
            h.update(f"{index}\0{f.name}\0{f.mtime_ns}\0{f.size}\n".encode())
        folder = self.config.output.templates
        for name, size, mtime_ns in template_stats(self.config.resolve(folder) if folder else None):
            h.update(f"template\0{name}\0{mtime_ns}\0{size}\n".encode())
        return h.hexdigest()

    def load_records(self) -> dict[str, OutputRecord]:
        """What this program wrote into the output folder; nothing if that was another folder."""
        where = str(self.config.output_dir.resolve())
        if self.store.get_setting("output_dir") not in (None, where):
            return {}
        return self.store.load_outputs()

    def unchanged_since_last_run(self, snapshot: str) -> bool:
        """True when no input changed and every output is as the last run left it: each
        recorded file (feeds, index, OPML, stylesheet, status) still has its size and mtime."""
        state = self.store.get_json_setting("last_run")
        if not state:
            return False
        if state.get("snapshot") != snapshot:
            return False
        records = self.load_records()
        output_dir = self.config.output_dir
        if len(records) != state.get("outputs"):
            return False
        for record in records.values():
            if _stat(safe_target(output_dir, record.path)) != (record.size, record.mtime_ns):
                return False
        # Source states move on without new items: the health files may change on their own.
        status = self.publish_extra(self.status_files(check=False))
        self.store.save_outputs([r for r in status if records.get(r.path) != r])
        for warning in state["warnings"]:
            self.warn(warning)
        self.report.posts = state["posts"]
        self.report.drafts = state["drafts"]
        self.report.entries = state["entries"]
        self.report.feeds = self.report.unchanged = state.get("feeds", len(records))
        return True

    def run(self, *, check: bool = False) -> Report:
        try:
            return self._run(check)
        finally:
            self.wait_for_writes()

    def _run(self, check: bool) -> Report:
        self.reread = self.reread or check
        clock = _Stopwatch()
        files = self.scan()
        clock.lap("scan %d post files", len(files))
        snapshot = self.snapshot(files)
        if not check and self.unchanged_since_last_run(snapshot):
            clock.lap("nothing changed since the last run")
            return self.report
        metas = self.read_metas(files)
        clock.lap("read front matter of %d posts", self.report.parsed)
        self.check_cancelled()
        items = self.store.load_item_heads(s.name for s in self.config.sources if s.enabled)
        story_list = self.stories(metas, items)
        stories = {s.id: s for s in story_list}
        self.report.entries = len(stories)
        candidates = [Candidate(s.id, s.published, s.tag_keys, s.category_keys, _sources_of(s)) for s in story_list]
        plans = plan_feeds(candidates, self.tag_terms, self.category_terms, self.policy_of)
        clock.lap("group %d entries into %d feeds", len(candidates), len(plans))
        self.check_cancelled()

        output_dir = self.config.output_dir
        records = self.load_records()
        todo: list[tuple[FeedPlan, str, str, FeedHead, str]] = []
        keep: list[str] = []
        pages = self.config.output.pages
        for plan in plans:
            for fmt in [*(plan.policy.formats or ()), *(["html"] if pages else [])]:
                relative = feed_file(plan.stem, fmt)
                keep.append(relative)
                head = self.head(plan, relative)
                signature = self.signature(plan, fmt, head, stories)
                record = records.get(relative)
                if not check and record and record.signature == signature and \
                        _stat(safe_target(output_dir, relative)) == (record.size, record.mtime_ns):
                    self.report.unchanged += 1
                    continue
                todo.append((plan, fmt, relative, head, signature))
        self.report.feeds = len(keep)
        clock.lap("compare %d feed files with what they were made from", len(keep))

        wanted = {entry_id for plan, *_ in todo for entry_id in plan.entry_ids}
        built, problems = safe_entries(self.entries(wanted, stories, {f.name: f for _, f in files}))
        entries: dict[str, Entry] = dict(built)
        for problem in problems:
            self.warn(problem)
        # A feed that shows a kept post whose content is not cached keeps its previous file.
        todo = [t for t in todo if self.unavailable.isdisjoint(t[0].entry_ids)]
        clock.lap("build %d entries", len(entries))
        self.check_cancelled()
        feed_jobs = [(head, plan.entry_ids, form) for plan, form, _r, head, _s in todo if form != "html"]
        feed_results = iter(_render_all(feed_jobs, entries, self.progress))
        rendered: list[bytes | None] = []
        for plan, form, relative, head, _s in todo:
            result = self.page(plan, head, entries, stories) if form == "html" else next(feed_results)
            for note in result.notes:
                self.warn(f"{relative}: {note}")
            rendered.append(result.data)
        # A feed that could not be rendered keeps the file published before.
        todo = [job for job, data in zip(todo, rendered, strict=True) if data is not None]
        outputs = [data for data in rendered if data is not None]
        extra = {**self.front_door(plans, stories), **self.status_files(check)}
        self.check_cancelled()
        targets = [safe_target(output_dir, relative) for _p, _f, relative, _h, _s in todo]
        clock.lap("render %d feed files", len(todo))
        every = set(keep) | extra.keys()
        stale = [p for p in records if p not in every]
        if check:
            for (_p, _f, relative, _h, _s), target, data in zip(todo, targets, outputs, strict=True):
                if read_bytes(target) != data:
                    self.report.outdated.append(relative)
            self.report.outdated.extend(name for name, data in extra.items()
                                        if read_bytes(safe_target(output_dir, name)) != data)
            self.report.outdated.extend(p for p in stale if _removable(safe_target(output_dir, p)))
            if self.report.outdated:
                # The next run must do the work, even if no file's size or mtime moved.
                self.store.set_setting("last_run", json.dumps({"snapshot": ""}))
            return self.report

        self.claim_output(records, every)
        # Recorded before they are written: a run killed while writing leaves no file unowned.
        self.store.save_outputs([OutputRecord(p, "", -1, 0) for p in sorted(every - records.keys())])
        remove_leftover_temps(sorted({output_dir} | {safe_target(output_dir, p).parent for p in every | set(records)}))
        new_records = []
        changed = write_all(list(zip(targets, outputs, strict=True)))
        for (_p, _f, relative, _h, signature), target, wrote in zip(todo, targets, changed, strict=True):
            if wrote:
                self.report.written.append(relative)
            else:
                self.report.unchanged += 1
            size, mtime_ns = _stat(target) or (0, 0)
            new_records.append(OutputRecord(relative, signature, size, mtime_ns))
        new_records += self.publish_extra(extra)
        self.report.removed = remove_files(output_dir, stale)
        self.store.save_outputs(new_records, forget=stale)
        settled = not (self.unsettled or self.report.errors)  # else the next run must look again
        self.store.set_setting("last_run", json.dumps({
            "snapshot": snapshot if settled else "", "outputs": len(every), "feeds": len(keep),
            "posts": self.report.posts, "drafts": self.report.drafts, "entries": self.report.entries,
            "warnings": self.report.warnings}, ensure_ascii=False))
        return self.report

    def claim_output(self, records: dict[str, OutputRecord], every: set[str]) -> None:
        """Before the first write into a folder: refuse one holding files this program
        would not write (unless the config allows it), then remember the folder."""
        output_dir = self.config.output_dir
        where = str(output_dir.resolve())
        last = self.store.get_setting("output_dir")
        if records and last in (None, where):  # None: recorded by a version that did not note the folder
            if last is None:
                self.store.set_setting("output_dir", where)
            return
        if last is not None and last != where:
            # What was recorded is another folder's: nothing here is known to be ours.
            self.store.save_outputs([], forget=list(self.store.load_outputs()))
        if not self.config.output.allow_foreign_files:
            found = unknown_files(output_dir, lambda rel: rel in every or looks_like_ours(rel))
            if found:
                name, line = self.config.where("output.dir")
                raise ConfigError(
                    f"output.dir: {output_dir} holds files feeds did not write ({', '.join(found)}); "
                    "empty it, choose another folder, or set output.allow_foreign_files: true",
                    where=name, line=line)
            # Files in the shape of what this program writes, but not recorded (the state
            # database is new), stay where they are: adopted only if written again.
            for rel in sorted(unknown_files(output_dir, lambda rel: rel in every, limit=20)):
                log.info("%s: not recorded as written by feeds; left in place", rel)
        self.store.set_setting("output_dir", where)

    # -- pages for people ------------------------------------------------------

    def listing(self, plan: FeedPlan, stories: dict[str, _Story], absolute: bool = False) -> Listing:
        site = self.config.site
        formats = plan.policy.formats or []
        links = tuple(Link(LINK_TYPES[f][0], LINK_TYPES[f][1],
                           feed_url(site.base_url, feed_file(plan.stem, f)) if absolute
                           else href(feed_file(plan.stem, f))) for f in formats)
        xml_format = next((f for f in ("atom", "rss", "json") if f in formats), None)
        newest = stories[plan.entry_ids[0]].published.astimezone(self.config.zone) if plan.entry_ids else None
        name = plan.term.name if plan.term else "All entries"
        page = href(feed_file(plan.stem, "html")) if self.config.output.pages else None
        return Listing(plan.kind, name, self.head(plan, plan.stem).title, plan.total, newest_label(newest), links,
                       feed_url(site.base_url, feed_file(plan.stem, xml_format)) if xml_format else None, page)

    def page(self, plan: FeedPlan, head: FeedHead, entries: dict[str, Entry], stories: dict[str, _Story]) -> Rendered:
        listing = self.listing(plan, stories, absolute=True)
        try:
            data, shown = render_feed_page(self.templates, self.config.site, listing,
                                           [entries[i] for i in plan.entry_ids if i in entries],
                                           self.config.site.link or self.config.site.base_url,
                                           max_bytes=self.config.output.max_bytes)
        except (jinja2.TemplateError, FeedsError) as exc:
            return Rendered(None, (f"cannot render the page: {exc}",))
        left_out = len([i for i in plan.entry_ids if i in entries]) - shown
        return Rendered(data, (f"over the {self.config.output.max_bytes:,}-byte budget: {left_out} oldest "
                               f"{'entry' if left_out == 1 else 'entries'} left out",) if left_out else ())

    @property
    def templates(self) -> jinja2.Environment:
        if self._env is None:
            folder = self.config.output.templates
            self._env = environment(self.config.resolve(folder) if folder else None)
        return self._env

    def front_door(self, plans: list[FeedPlan], stories: dict[str, _Story]) -> dict[str, bytes]:
        """index.html, feeds.opml and feed.xsl."""
        site = self.config.site
        main = self.listing(plans[0], stories)
        groups = [Group("Tags", tuple(self.listing(p, stories) for p in plans if p.kind == "tag")),
                  Group("Categories", tuple(self.listing(p, stories) for p in plans if p.kind == "category"))]
        folder = self.config.output.templates
        budget = self.config.output.max_bytes
        files = {INDEX_NAME: render_index(self.templates, site, main, groups, budget),
                 OPML_NAME: render_opml(self.templates, site, [Group("All", (main,)), *groups], budget)}
        if self.config.output.stylesheet:
            files[XSL_NAME] = stylesheet(self.config.resolve(folder) if folder else None)
        return files

    def status_files(self, check: bool) -> dict[str, bytes]:
        """status.atom and status.json: the operator's view of source problems."""
        if not self.config.output.status_feed or not self.config.sources:
            return {}
        site = self.config.site
        states = self.store.load_sources()
        found = problems(self.config, states)
        # When each problem was first seen is remembered, so its entry keeps its date.
        remembered: dict[str, str] = self.store.get_json_setting("health") or {}
        checked = max((s.last_fetch for s in states.values() if s.last_fetch), default=None)
        now = (checked or datetime.fromtimestamp(0, UTC)).isoformat()
        since = {p["key"]: remembered.get(p["key"], now) for p in found}
        if since != remembered and not check:
            self.store.set_setting("health", json.dumps(since, ensure_ascii=False))
        # With no problem the feed has no date of its own: a fixed one keeps it byte-stable.
        head = FeedHead(title=f"{site.title}: source health", description="One entry per source problem",
                        self_url=feed_url(site.base_url, STATUS_ATOM), home_url=site.link or site.base_url,
                        language=None, author=site.author or site.title, empty_updated=HEALTHY_SINCE,
                        max_bytes=self.config.output.max_bytes, max_entry_bytes=self.config.output.max_entry_bytes)
        return {STATUS_ATOM: render_feed(head, status_entries(found, since, head.self_url), "atom"),
                STATUS_JSON: status_json(found, since)}

    def publish_extra(self, files: dict[str, bytes]) -> list[OutputRecord]:
        """Write the front door and status files that changed; their records."""
        output_dir = self.config.output_dir
        records = []
        for name, data in files.items():
            target = safe_target(output_dir, name)
            if write_if_changed(target, data):
                self.report.written.append(name)
            size, mtime_ns = _stat(target) or (0, 0)
            records.append(OutputRecord(name, "", size, mtime_ns))
        return records

    def background(self, fn: Callable[..., None], *args: object) -> None:
        """Run a store write on a thread (SQLite releases the GIL while it works)."""
        def work() -> None:
            try:
                fn(*args)
            except FeedsError as exc:
                self._background_errors.append(exc)

        thread = threading.Thread(target=work, name="store-write")
        thread.start()
        self._background.append(thread)

    def wait_for_writes(self) -> None:
        for thread in self._background:
            thread.join()
        self._background.clear()
        if self._background_errors:
            raise self._background_errors[0]

    def check_cancelled(self) -> None:
        """Stop between steps when asked to (a daemon shutting down); nothing is written then."""
        if self.cancel():
            raise Cancelled("cancelled before writing anything")

    def warn(self, message: str) -> None:
        if message in self._warned:
            return  # the scan's own, again in what a run with nothing changed replays
        self._warned.add(message)
        self.report.warnings.append(message)
        log.warning("%s", message)

    def error(self, message: str) -> None:
        self.report.errors.append(message)
        log.error("%s", message)


def _unique(names: Iterable[str]) -> dict[str, str]:
    """Term key -> the first spelling of that term, in order."""
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(term_key(name), name)
    return seen


class _Stopwatch:
    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self, what: str, *args: object) -> None:
        now = time.perf_counter()
        log.debug("%.2fs " + what, now - self.last, *args)
        self.last = now


def _sources_of(story: _Story) -> frozenset[str]:
    names = {item.source for item in story.items}
    if story.post is not None:
        names.add("posts")
    return frozenset(names)


def _from_timestamp(value: float) -> datetime:
    """A stored time as a date; one out of range (a damaged row) as 1970, at the end of every feed."""
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return datetime(1970, 1, 1, tzinfo=UTC)
def _removable(path: Path) -> bool:
    """A stale output still there, as the next run would remove it (a folder there is left)."""
    return path.is_symlink() or path.is_file()


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.lstat()  # a symlink put in place of an output is a change
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def generate(config: Config, *, check: bool = False, offline: bool = False, progress: Progress | None = None,
             now: datetime | None = None, transport: httpx.AsyncBaseTransport | None = None,
             cancel: Callable[[], bool] | None = None, wait: float | None = None, allow_shrink: bool = False,
             rebuild_state: bool = False) -> Report:
    """Run ``feeds generate`` once over ``config``: fetch the due sources (unless
    ``offline`` or ``check``), then read posts and write every output that changed.

    The run holds the locks of the state database and the output folder; ``wait`` is how
    long to wait for another run holding them (None: until ``cancel``), then :class:`Busy`.
    ``allow_shrink`` takes posts inputs that vanished or shrank as they are now;
    ``rebuild_state`` first moves the state database aside (under the lock), to be rebuilt."""
    with writer_lock(run_locks(config, create=not check), wait=wait, cancel=cancel):
        if rebuild_state:
            for moved in move_aside(config.state_path, datetime.now(UTC)):
                log.warning("moved %s aside to %s; rebuilding the state", config.state_path, moved)
        return _generate(config, check=check, offline=offline, progress=progress, now=now, transport=transport,
                         cancel=cancel, allow_shrink=allow_shrink)


def run_locks(config: Config, *, create: bool = True) -> list[Path]:
    """What a writing run locks: the state database's lock file, then the output folder."""
    try:
        config.state_path.parent.mkdir(parents=True, exist_ok=True)
        if create:
            config.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(f"cannot create the folder: {exc.strerror}", where=exc.filename) from None
    found = [lock_path(config.state_path)]
    if config.output_dir.is_dir():
        found.append(config.output_dir)
    return found


def _generate(config: Config, *, check: bool, offline: bool, progress: Progress | None, now: datetime | None,
              transport: httpx.AsyncBaseTransport | None, cancel: Callable[[], bool] | None,
              allow_shrink: bool) -> Report:
    store = Store(config.state_path)
    # A run allocates hundreds of thousands of small, acyclic objects; the cyclic
    # collector would rescan them over and over for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        outcomes = []
        if config.sources and not offline and not check:
            outcomes = update_sources(config, store, now=now or datetime.now(UTC), transport=transport)
        generator = Generator(config, store, progress, cancel)
        generator.allow_shrink = allow_shrink
        report = generator.run(check=check)
        report.sources = outcomes
        local = {s.name for s in config.sources if not s.optional and not is_web_url(s.url)}
        for outcome in outcomes:
            if outcome.error and outcome.name in local:
                # A local file is an input like a posts folder: missing is an error (its items stay).
                report.errors.append(outcome.line())
            elif outcome.error:
                report.warnings.append(outcome.line())
            report.warnings.extend(f"{outcome.name}: {note}" for note in outcome.notes)
        return report
    except DamagedStateError as exc:  # a garbled row found outside the store: name the database
        if exc.where is not None:
            raise
        raise DamagedStateError(exc.message, where=str(config.state_path)) from None
    finally:
        if collecting:
            gc.enable()
        store.close()


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One line of ``feeds status``."""

    name: str
    url: str
    enabled: bool
    fetch_url: str
    status: str
    last_fetch: datetime | None
    last_success: datetime | None
    entries: int
    stored: int
    error: str | None
    failures: int
    moved_to: str | None
    moved_seen: int
    next_due: datetime | None


def source_status(config: Config) -> list[SourceStatus]:
    """The stored state of every configured source (readable while a daemon runs)."""
    store = Store(config.state_path)
    try:
        states = store.load_sources()
        stored = store.item_counts()
    finally:
        store.close()
    rows = []
    for source in config.sources:
        st = states.get(source.name) or new_state(source.name, source.url)
        rows.append(SourceStatus(source.name, source.url, source.enabled, st.fetch_url, st.status, st.last_fetch,
                                 st.last_success, st.entries, stored.get(source.name, 0), st.error, st.failures,
                                 st.moved_to, st.moved_seen, st.next_due))
    return rows
