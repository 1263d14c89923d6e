"""Compose the stages: config -> posts -> normalize -> store -> build -> render -> publish.

``generate`` is the one-shot run behind ``feeds generate``. It reads post
front matter for every post (cached by file size and mtime), renders and
cleans bodies only for the posts some feed shows, renders a feed only when
what it is made from changed, and announces the changed feeds to the WebSub hub.

``_run`` lists the phases. Each is a function taking and returning named records;
the decisions are in ``build/`` (pure), the reading of posts in ``posts/``, the
writing in ``output/run``. What a phase hands on is in what it returns, never in
state another phase reads behind its back.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jinja2

from . import unchanged
from .build.archive import archive_plans, new_pages
from .build.entries import build_entry, kept_items, stored_entries
from .build.filters import MATCH_TIMEOUT, Facts, facts_of, given_up, rule_set
from .build.group import FeedPlan, needs_facts, plan_feeds
from .build.heads import feed_head
from .build.keys import feed_key, snapshot_key
from .build.pages import front_door, listing
from .build.signatures import page_key, parts_of, run_snapshot, signature_of_parts
from .build.stories import (
    Grouping,
    PlanShape,
    Stories,
    StoryIndex,
    decode_grouping,
    encode_grouping,
    grouping_key,
    items_digest,
    merge_stories,
)
from .build.taxonomy import Term, Vocabulary
from .config import Config, Policy
from .errors import Cancelled, ConfigError, DamagedStateError, FeedsError, LostLeadership, PublishError
from .identity import is_web_url
from .layout import INDEX_NAME, OPML_NAME, XSL_NAME, FeedFormat, FeedKind, FileFormat, archive_stem, feed_file
from .lock import lock_path, writer_lock
from .models import Entry
from .output.archive import ReadBack, read_back
from .output.bucket import Fence, Synced
from .output.bucket import sync as sync_bucket
from .output.publish import Targets
from .output.run import (
    NOT_WRITTEN,
    FeedFile,
    Placed,
    as_recorded,
    load_records,
    outdated,
    place,
    prepare,
    publish,
    publish_extra,
    status_files,
    still_holds,
)
from .posts import PostScan
from .posts.inputs import Inputs, PostCache, scan_inputs
from .posts.read import Contents, FrontMatter, clean_contents, read_front_matter
from .render.feed import FeedHead, Rendered, render_checked
from .render.pages import Group, render_feed_page, render_index, render_opml
from .render.safe import safe_entries
from .render.templates import environment, stylesheet, template_stats
from .store import ItemHead, LastRun, LeaderTerm, OutputRecord, PostRow, Store, move_aside, server_lock
from .workers import Progress, keep_workers, run_jobs

if TYPE_CHECKING:  # fetching is loaded only by a run that fetches (the HTTP client, feedparser)
    from .sources.decide import SourceOutcome
    from .sources.fetch import Transport
    from .sources.schedule import SourceStatus

__all__ = ["Report", "StatusLine", "generate", "run_locks", "source_status"]

log = logging.getLogger("feeds")

# Below this many feeds to render, worker processes cost more than they save.
RENDER_THRESHOLD = 40
# Post rows saved per transaction while the posts are read (fewer are saved with the index).
SAVE_BATCH = 2000


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
    #: With ``output.s3``: what publishing to the bucket did (None: not asked, or it failed).
    bucket: Synced | None = None


# -- the run's context ---------------------------------------------------------


class Sink:
    """Where a run's warnings and errors go: the report, and the log."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self._warned: set[str] = set()

    def warn(self, message: str) -> None:
        if message in self._warned:
            return  # the scan's own, again in what a run with nothing changed replays
        self._warned.add(message)
        self.report.warnings.append(message)
        log.warning("%s", message)

    def error(self, message: str) -> None:
        self.report.errors.append(message)
        log.error("%s", message)


class StoreWrites:
    """Store writes on threads while the run goes on (SQLite releases the GIL while it
    works); the run waits for them before it ends."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._errors: list[Exception] = []

    def start(self, fn: Callable[..., None], *args: object) -> None:
        def work() -> None:
            try:
                fn(*args)
            except Exception as exc:  # raised again by wait(): a lost write is never a quiet success
                self._errors.append(exc)

        thread = threading.Thread(target=work, name="store-write")
        thread.start()
        self._threads.append(thread)

    def wait(self) -> None:
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        if self._errors:
            raise self._errors[0]


@dataclass(frozen=True, slots=True)
class Run:
    """What every phase may use: the config, the store, where messages go, progress,
    whether to stop, and the store writes still going on."""

    config: Config
    store: Store
    sink: Sink
    progress: Progress | None
    cancel: Callable[[], bool]
    writes: StoreWrites
    #: The leader's term this run publishes under (workers sharing a PostgreSQL state), or
    #: None (the only writer). The store refuses to record outputs once it is over; a
    #: publisher checks it (:meth:`check_term`) right before it writes.
    term: LeaderTerm | None = None

    @property
    def report(self) -> Report:
        return self.sink.report

    def check_cancelled(self) -> None:
        """Stop between steps when asked to (a daemon shutting down); nothing is written then."""
        if self.cancel():
            raise Cancelled("cancelled before writing anything")

    def check_term(self) -> None:
        """Right before publishing: :class:`LostLeadership` if this run's term is over."""
        if self.term is not None and not self.store.still_leads(self.term):
            raise LostLeadership(f"term {self.term.number} of the generation leadership is over; "
                                 "another worker publishes now", where=self.store.where)


class _Stopwatch:
    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self, what: str, *args: object) -> None:
        now = time.perf_counter()
        log.debug("%.2fs " + what, now - self.last, *args)
        self.last = now


# -- the phases ------------------------------------------------------------------


def _templates_folder(config: Config) -> Path | None:
    folder = config.output.templates
    return config.resolve(folder) if folder else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A hash of every input of a run (``value``), and what ``feeds.unchanged`` needs to
    tell before the program is loaded that nothing changed since ("" when it cannot)."""

    value: str
    quick: str


def snapshot_of(run: Run, inputs: Inputs) -> Snapshot:
    """A hash of the settings, the stored items, every post file's stat and the templates'."""
    folder = _templates_folder(run.config)
    items_version, templates = run.store.items_version(), template_stats(folder)
    files = unchanged.files_digest(inputs.files)
    value = run_snapshot(snapshot_key(run.config), items_version, files, templates)
    quick = unchanged.make_record(run.config, snapshot=value, items_version=items_version, files=files,
                                  templates=folder, stats=templates, schema_version=run.store.schema_version())
    return Snapshot(value, quick)


def _quick_record(run: Run, quick: str) -> str:
    """The quick path's record with the sources' state as stored now; none for a state on a
    server (the quick path reads SQLite files only, and a server state has no file)."""
    if run.config.state_on_server:
        return ""
    return unchanged.with_sources_state(quick, run.config.state_path)


def replay_if_unchanged(run: Run, snapshot: Snapshot) -> bool:
    """True, with the last run's report replayed, when no input changed and every output is
    as the last run left it: each recorded file (feeds, index, OPML, stylesheet, status)
    still has its size and mtime. The status files are brought up to date even then."""
    state = run.store.load_last_run()
    if state is None or state.snapshot != snapshot.value:
        return False
    records = load_records(run.config, run.store)
    if len(records) != state.outputs:
        return False
    targets = Targets(run.config.output_dir)
    if not all(as_recorded(run.config, record, targets) for record in records.values()):
        return False
    # Source states move on without new items: the health files may change on their own.
    run.check_term()
    status = publish_extra(run.config, status_files(run.config, run.store, check=False), run.report.written)
    run.store.save_outputs([r for r in status if records.get(r.path) != r])
    quick = _quick_record(run, snapshot.quick)
    if state.quick != quick:  # the config file was edited without effect, say: the next check knows
        run.store.save_last_run(replace(state, quick=quick))
    for warning in state.warnings:
        run.sink.warn(warning)
    report = run.report
    report.posts, report.drafts, report.entries = state.posts, state.drafts, state.entries
    report.feeds = report.unchanged = len(records) if state.feeds is None else state.feeds
    return True


class RowSaver:
    """Post rows saved as they are read: once :data:`SAVE_BATCH` rows have come, each batch
    is saved in a transaction of its own on a writer thread (at most two batches wait for
    it, so a slow disk slows the reading instead of filling memory). The first of them
    drops the stored post index, which is saved again whole with the last rows; a run
    that stops midway keeps the rows saved, and the next run makes the index from them.
    A read of fewer rows saves nothing here: :meth:`close` hands them back, to be saved
    with the index in one transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._batch: list[PostRow] = []
        self._queue: queue.Queue[list[PostRow] | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None

    @property
    def streamed(self) -> bool:
        """Whether rows were saved as they came (and the stored index dropped)."""
        return self._queue is not None

    def add(self, row: PostRow) -> None:
        self._batch.append(row)
        if len(self._batch) >= SAVE_BATCH:
            self._send()

    def _send(self) -> None:
        if self._error is not None:
            raise self._error
        if self._queue is None:
            self._queue = queue.Queue(maxsize=2)
            self._thread = threading.Thread(target=self._work, args=(self._queue,), name="store-write-posts")
            self._thread.start()
        batch, self._batch = self._batch, []
        self._queue.put(batch)

    def _work(self, batches: queue.Queue[list[PostRow] | None]) -> None:
        first = True
        while (batch := batches.get()) is not None:
            if self._error is None:
                try:
                    self._store.save_post_rows(batch, drop_index=first)
                    first = False
                except Exception as exc:  # raised again in the reading thread
                    self._error = exc

    def close(self, *, failed: bool = False) -> list[PostRow]:
        """Wait for the batches sent to be saved; the rows not sent (to save with the index).
        Raises what a save raised, unless the read itself ``failed`` (its error goes on)."""
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None and not failed:
            raise self._error
        rest, self._batch = self._batch, []
        return rest


def read_posts(run: Run, cache: PostCache, inputs: Inputs, *, reread: bool) -> FrontMatter:
    """Front matter of every post; the post cache (saved as the posts are read) and the
    inputs' counts saved."""
    saver = RowSaver(run.store)
    try:
        found, update = read_front_matter(run.config, cache, inputs, run.sink, reread=reread,
                                          progress=run.progress, keep=saver.add)
    except BaseException:
        saver.close(failed=True)  # what was saved stays saved
        raise
    rest = saver.close()
    if inputs.counts != inputs.last_counts:
        run.store.save_input_counts(dict(inputs.counts))
    # The last rows and the index are written while the run goes on; the run waits for them before it ends.
    changes = None if saver.streamed else update.changes
    if update.kept or update.forget or changes is None:
        run.writes.start(run.store.save_posts, rest, update.forget, update.index_rows, changes)
    run.report.posts, run.report.parsed, run.report.drafts = found.files, found.parsed, found.drafts
    return found


def _last_grouping(store: Store, key: str) -> Grouping | None:
    """The last run's grouping if it was made from the same inputs (else, or unreadable, None)."""
    text = store.load_grouping()
    if text is None:
        return None
    try:
        grouping = decode_grouping(text)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError):
        return None  # only a shortcut: grouped again, and saved over
    return grouping if grouping.key == key else None


def filtered_items(run: Run, items: Sequence[ItemHead]) -> list[ItemHead]:
    """The stored items that pass their source's ``include``/``exclude`` rules (all of a
    source without rules); only the filtered sources' entries are read."""
    rules = {s.name: rule_set(s.include, s.exclude) for s in run.config.sources if s.include or s.exclude}
    if not rules:
        return list(items)
    data = run.store.load_item_data((i.source, i.ukey) for i in items if i.source in rules)
    return kept_items(items, data, rules)


def _queries(config: Config) -> list[Term]:
    """The topic feeds of ``queries:`` as terms (keyed by slug)."""
    return [Term(q.file_slug, q.name, q.file_slug) for q in config.queries]


def _all_policies(config: Config, stories: Stories) -> list[Policy]:
    """Every feed's policy there can be (the rules of any one make planning read entries)."""
    policy_of = _policies(config)
    return [policy_of("all", None), *(policy_of("tag", t) for t in stories.terms.tags.values()),
            *(policy_of("category", t) for t in stories.terms.categories.values()),
            *(policy_of("query", t) for t in _queries(config))]


def _has_rules(config: Config) -> bool:
    """Whether a feed policy or a query has rules (as far as the config tells, for any tag)."""
    p = config.feeds
    policies = [p.defaults, p.all, p.tags, p.categories, p.queries, *p.tag.values(), *p.category.values(),
                *config.queries]
    return needs_facts(policies)


def stories_of(run: Run, found: FrontMatter, inputs: Inputs) -> tuple[Stories, Built | None]:
    """Posts and the enabled sources' stored items (those their source's rules let through)
    merged into stories, ids from the ledger, and planned into feeds; or, when none of what
    that reads changed, the last run's stories and feeds (their front matter read only for
    the stories that are asked for). When feeds have rules, every entry is built to match
    them against, and those entries are returned too (else None)."""
    config, store = run.config, run.store
    ledger = store.load_ledger()
    sources = [s.name for s in config.sources if s.enabled]
    items = store.load_item_heads(sources) if sources else []
    settings, items_seen = snapshot_key(config), items_digest(items)
    ruled = _has_rules(config)
    folders, paths = [p.folder for p in found.posts], [p.path for p in found.posts]
    # Rules read titles and bodies too: any edit of a post may move it in or out of a feed.
    groups = [f"{p.group}\0{p.digest}" if ruled else p.group for p in found.posts]
    key = grouping_key(settings, items_seen, len(ledger), folders, paths, groups)
    # Archives page through every entry of a feed, not the shown ones the grouping keeps.
    archive = config.output.archive
    last = None if archive else _last_grouping(store, key)
    built: Built | None = None
    if last is not None:
        by_id = StoryIndex(last.stories, {p.path: p.digest for p in found.posts}, found.metas)
        stories = Stories(by_id, last.terms, last.merges, last.problems, last.count)
        stories = replace(stories, plans=tuple(_plans(config, stories, last.plans)))
        # The newest entry of each feed is on the front door: its stories are read at once.
        by_id.prefetch(p.entry_ids[0] for p in stories.plans or () if p.entry_ids)
    else:
        stories = merge_stories(found.found(), filtered_items(run, items), ledger,
                                Vocabulary(config.tags.aliases, config.tags.slugs),
                                Vocabulary(config.categories.aliases, config.categories.slugs))
        store.save_ledger(ledger)
        facts: dict[str, Facts] | None = None
        if needs_facts(_all_policies(config, stories)):
            built = build_entries(run, set(stories.by_id), stories, inputs)
            facts = {i: facts_of(e) for i, e in built.entries.items()}
        plans = plan(config, stories, facts)
        slow = given_up()
        for rule in slow:
            run.sink.warn(f"filter rule {rule!r}: its regular expression took longer than {MATCH_TIMEOUT:g} s on "
                          "one entry and was given up (it matches nothing in this run); write it more simply")
        if not slow:  # a plan made without a rule is not kept for the next run
            after = grouping_key(settings, items_seen, len(ledger), folders, paths, groups)
            run.writes.start(store.save_grouping, encode_grouping(Grouping.of(after, stories, plans)))
        # From here on only the stories some feed shows are read: the others (and their front matter) go.
        shown = {i for p in plans for i in (p.history if archive else p.entry_ids)}
        stories = replace(stories, by_id={i: s for i, s in stories.by_id.items() if i in shown},
                          count=stories.entries, plans=tuple(plans))
        if built is not None:
            built = replace(built, entries={i: e for i, e in built.entries.items() if i in shown})
    for merge in stories.merges:
        log.info("%s: same entry as %s (%s); merged", merge.primary, ", ".join(merge.others), merge.entry_id)
    for problem in stories.problems:
        run.sink.warn(problem)
    run.report.entries = stories.entries
    return stories, built


def _policies(config: Config) -> Callable[[FeedKind, Term | None], Policy]:
    policies: dict[tuple[str, str], Policy] = {}

    def policy_of(kind: FeedKind, term: Term | None) -> Policy:
        key = (kind, term.key if term else "")
        if key not in policies:
            policies[key] = config.policy(kind, None if term is None else term.slug if kind == "query" else term.name)
        return policies[key]

    return policy_of


def _plans(config: Config, stories: Stories, shapes: Sequence[PlanShape]) -> list[FeedPlan]:
    """The feeds of a kept grouping, with their policies."""
    policy_of = _policies(config)
    queries = {t.key: t for t in _queries(config)}
    plans = []
    for s in shapes:
        kind: FeedKind = "all" if s.kind == "all" else "tag" if s.kind == "tag" else \
            "query" if s.kind == "query" else "category"
        terms = {"tag": stories.terms.tags, "category": stories.terms.categories, "query": queries}
        term = None if s.term is None or kind == "all" else terms[kind][s.term]
        plans.append(FeedPlan(kind, term, s.stem, s.entry_ids, policy_of(kind, term), s.total))
    return plans


def plan(config: Config, stories: Stories, facts: Mapping[str, Facts] | None = None) -> list[FeedPlan]:
    """Which feeds there are, and the entries of each, as their policies (and rules, which
    look at ``facts``) say."""
    if stories.plans is not None:
        return list(stories.plans)
    return plan_feeds((s.candidate() for s in stories.by_id.values()), stories.terms.tags,
                      stories.terms.categories, _policies(config), _queries(config), facts,
                      archive=config.output.archive)


class FeedJob(NamedTuple):
    """A feed file to render: its plan, format ("html" for its page), path, head, signature."""

    plan: FeedPlan
    fmt: FileFormat
    relative: str
    head: FeedHead
    #: What it is made from; None for an archive page, signed by its bytes once written.
    signature: str | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """The feed files whose inputs changed (or all, with --check), every feed file's path,
    and how many are as they were."""

    todo: tuple[FeedJob, ...]
    files: tuple[str, ...]
    unchanged: int
    #: The records of archive pages that hold what was written, with their size and mtime now.
    refreshed: tuple[OutputRecord, ...] = ()


def compare(config: Config, plans: Sequence[FeedPlan], stories: Stories, records: Mapping[str, OutputRecord], *,
            check: bool) -> Comparison:
    """Each feed file's head and signature, against what the recorded one was made from."""
    key = feed_key(config)
    pages = page_key(key, template_stats(_templates_folder(config))) if config.output.pages else ""
    part = parts_of(stories)
    todo: list[FeedJob] = []
    files: list[str] = []
    refreshed: list[OutputRecord] = []
    unchanged = 0
    targets = Targets(config.output_dir)
    for p in plans:
        parts = [part(i) for i in p.entry_ids]
        for fmt in [*(p.policy.formats or ()), *(["html"] if config.output.pages else [])]:
            relative = feed_file(p.stem, fmt)
            files.append(relative)
            head = feed_head(config, p, relative, fmt)
            signature = signature_of_parts(pages if fmt == "html" else key, fmt, head, parts)
            record = records.get(relative)
            if not check and record is not None and record.signature == signature \
                    and as_recorded(config, record, targets):
                unchanged += 1
                continue
            todo.append(FeedJob(p, fmt, relative, head, signature))
        for number, page_ids in enumerate(p.pages, 1):
            # An entry gone since its page was cut is left out only if the page must be made again.
            ids = tuple(i for i in page_ids if i in stories.by_id)
            page = replace(p, stem=archive_stem(p.stem, number), entry_ids=ids, history=(), pages=(), frozen=0)
            for fmt in p.policy.formats or ():
                relative = feed_file(page.stem, fmt)
                files.append(relative)
                record = records.get(relative)
                # A page once cut is never made again (not even for --check) while its file
                # holds the bytes written, whatever became of its entries since; it is
                # recorded by those bytes.
                kept = still_holds(config, record) if number <= p.frozen and record is not None else None
                if kept is not None:
                    unchanged += 1
                    if kept != record:
                        refreshed.append(kept)
                    continue
                todo.append(FeedJob(page, fmt, relative, feed_head(config, p, relative, fmt, number), None))
    if isinstance(stories.by_id, StoryIndex):  # what is built next is read at once
        stories.by_id.prefetch(i for job in todo for i in job.plan.entry_ids)
    return Comparison(tuple(todo), tuple(files), unchanged, tuple(refreshed))


@dataclass(frozen=True, slots=True)
class Built:
    """The entries the feeds to render show (by id), and the ids that cannot be built now."""

    entries: Mapping[str, Entry]
    unavailable: frozenset[str]
    unsettled: bool


def build_entries(run: Run, wanted: set[str], stories: Stories, inputs: Inputs) -> Built:
    """Full entries for the wanted stories: post bodies rendered and cleaned (or taken from
    the cache), items of source feeds read from the store, then made safe to render."""
    config, by_id = run.config, stories.by_id
    contents: Contents = clean_contents(config, run.store, by_id, wanted, inputs, run.sink, progress=run.progress)
    run.writes.start(run.store.save_contents, list(contents.fresh))
    item_data = run.store.load_item_data((i.source, i.ukey) for e in wanted for i in by_id[e].items)
    entries: dict[str, Entry] = {}
    made: dict[str, str] = {}  # the safe content cleaning made on a worker, by entry id
    for entry_id in wanted - contents.unavailable:
        story = by_id[entry_id]
        remote, problems = stored_entries(story.items, item_data)
        for problem in problems:
            run.sink.warn(problem)
        cleaned = contents.by_id.get(entry_id)
        entry = build_entry(story, stories.terms,
                            folder=config.posts[story.folder or 0] if story.post is not None else None,
                            content=cleaned.content if cleaned else "", summary=cleaned.summary if cleaned else "",
                            remote=remote)
        if entry is not None:  # else left out of every feed (said above)
            entries[entry_id] = entry
            if cleaned is not None and cleaned.safe is not None and entry.content is cleaned.content:
                made[entry_id] = cleaned.safe
    # Cleaned content is sanitized once more (a second pass is not always a no-op: the HTML
    # parser can nest again what the cleaner left, such as a list inside a paragraph); for
    # bodies cleaned in this run the worker that cleaned them did it.
    safe, problems = safe_entries(entries, made)
    for problem in problems:
        run.sink.warn(problem)
    return Built(dict(safe), contents.unavailable, contents.unsettled)


class RenderJob(NamedTuple):
    """One feed to render and write on a worker: its head, the entries it shows (sent with
    the job, so that the workers kept from reading the posts render too, instead of workers
    forked from a parent that by then holds every entry), format, path, signature, the
    output folder and whether to compare only (``--check``)."""

    head: FeedHead
    entries: tuple[Entry, ...]
    fmt: FeedFormat
    relative: str
    signature: str | None
    output_dir: Path
    check: bool


def _render_one(job: RenderJob, _shared: object = None) -> tuple[Placed | None, tuple[str, ...]]:
    result = render_checked(job.head, list(job.entries), job.fmt)
    if result.data is None:
        return None, result.notes
    return place(job.output_dir, FeedFile(job.relative, job.signature, result.data), check=job.check), \
        result.notes


def _page(config: Config, env: jinja2.Environment, job: FeedJob, entries: Mapping[str, Entry],
          stories: Stories) -> Rendered:
    shown = [entries[i] for i in job.plan.entry_ids if i in entries]
    budget = config.output.max_bytes
    try:
        data, count = render_feed_page(env, config.site, listing(config, job.plan, stories.by_id, absolute=True),
                                       shown, config.site.link or config.site.base_url, max_bytes=budget)
    except (jinja2.TemplateError, FeedsError) as exc:
        return Rendered(None, (f"cannot render the page: {exc}",))
    left_out = len(shown) - count
    return Rendered(data, (f"over the {budget:,}-byte budget: {left_out} oldest "
                           f"{'entry' if left_out == 1 else 'entries'} left out",) if left_out else ())


def render(run: Run, env: jinja2.Environment, todo: Sequence[FeedJob], built: Built, stories: Stories, *,
           check: bool) -> list[Placed]:
    """Render the feeds (on workers when there are many) and their pages, each written (or,
    with ``check``, compared) as soon as it is rendered. A feed that could not be rendered
    is left out: it keeps the file published before."""
    entries, output_dir = built.entries, run.config.output_dir
    # Entries that could not be built are missing: the feed shows the others. The jobs of one
    # feed's formats come one after another: a chunk of jobs sent to a worker holds each entry once.
    feed_jobs = [RenderJob(job.head, tuple(entries[i] for i in job.plan.entry_ids if i in entries), job.fmt,
                           job.relative, job.signature, output_dir, check)
                 for job in todo if job.fmt != "html"]
    feed_results = iter(run_jobs(_render_one, feed_jobs, RENDER_THRESHOLD, progress=run.progress,
                                 step="rendering feeds", spawn=False))
    out = []
    for job in todo:
        if job.fmt == "html":
            page = _page(run.config, env, job, built.entries, stories)
            placed, notes = (None if page.data is None else
                             place(output_dir, FeedFile(job.relative, job.signature, page.data),
                                   check=check)), page.notes
        else:
            placed, notes = next(feed_results)
        for note in notes:
            run.sink.warn(f"{job.relative}: {note}")
        if placed is not None:
            out.append(placed)
    return out


def front_door_files(config: Config, env: jinja2.Environment, plans: Sequence[FeedPlan],
                     stories: Stories) -> dict[str, bytes]:
    """index.html, feeds.opml and feed.xsl."""
    main, groups = front_door(config, plans, stories.by_id)
    budget = config.output.max_bytes
    files = {INDEX_NAME: render_index(env, config.site, main, groups, budget),
             OPML_NAME: render_opml(env, config.site, [Group("All", (main,)), *groups], budget)}
    if config.output.stylesheet:
        files[XSL_NAME] = stylesheet(_templates_folder(config))
    return files


def announce(config: Config, written: Sequence[str]) -> None:
    """Tell the WebSub hub which feeds changed (pages, the front door and the status files
    are never announced). A hub that fails is a warning in the log (``websub`` never raises),
    never a failure of the run."""
    if not (config.websub.hub and written):
        return
    from .output import websub

    websub.announce(config.websub.hub, config.site.base_url, written)


@dataclass(frozen=True, slots=True)
class Outputs:
    """Every file of this run: the feeds rendered again (as written or compared), the front
    door and status files, and the paths of all feed files (rendered or left as they were)."""

    feeds: list[Placed]
    extra: dict[str, bytes]
    feed_paths: tuple[str, ...]

    @property
    def every(self) -> set[str]:
        return set(self.feed_paths) | self.extra.keys()

    def stale(self, records: Mapping[str, OutputRecord]) -> list[str]:
        """Files written before that this run does not make."""
        every = self.every
        return [p for p in records if p not in every]


def check_outputs(run: Run, outputs: Outputs, records: Mapping[str, OutputRecord]) -> None:
    """With ``--check``: list what is missing, different or stale, and write nothing."""
    run.report.outdated.extend(outdated(run.config, outputs.feeds, outputs.extra, outputs.stale(records)))
    if run.report.outdated:
        run.store.forget_last_run()


def write_outputs(run: Run, outputs: Outputs, records: Mapping[str, OutputRecord]) -> None:
    """Publish what changed and remove what is stale."""
    published = publish(run.config, run.store, outputs.feeds, outputs.extra, outputs.stale(records))
    run.report.written.extend(published.written)
    run.report.unchanged += published.unchanged
    run.report.removed = published.removed


def record_archive(run: Run, plans: Sequence[FeedPlan]) -> None:
    """Before writing: record the archive pages cut in this run (their entries never change
    again), and forget those of feeds that are gone, or all of them without ``output.archive``."""
    recorded = run.store.load_archive_pages()
    stems = {p.stem for p in plans} if run.config.output.archive else set()
    gone = sorted(stem for stem in recorded if stem not in stems)
    cut = new_pages(plans) if run.config.output.archive else []
    if cut or gone:
        run.store.save_archive_pages(cut, forget=gone)


def record(run: Run, snapshot: Snapshot, outputs: Outputs, *, settled: bool) -> None:
    """What the next run replays when nothing changed (unless something was unsettled)."""
    report = run.report
    run.store.save_last_run(LastRun(snapshot.value if settled else "", outputs=len(outputs.every),
                                    feeds=len(outputs.feed_paths), posts=report.posts, drafts=report.drafts,
                                    entries=report.entries, warnings=tuple(report.warnings),
                                    quick=_quick_record(run, snapshot.quick) if settled else ""))


def _run(run: Run, *, check: bool, allow_shrink: bool, scans: dict[tuple[str, str], PostScan] | None = None) -> Report:
    config, store, report = run.config, run.store, run.report
    clock = _Stopwatch()
    cache = PostCache(store)
    # How many posts each input had last time is one small setting, so that a run with
    # nothing changed need not load the post cache to know that nothing vanished.
    inputs = scan_inputs(config, cache, store.load_input_counts(), run.sink, allow_shrink=allow_shrink, scans=scans)
    clock.lap("scan %d post files", len(inputs.files))
    snapshot = snapshot_of(run, inputs)
    if not check and replay_if_unchanged(run, snapshot):
        clock.lap("nothing changed since the last run")
        return report

    # --check reads every post again, trusting no cached row: a file rewritten with its old
    # size and mtime looks unchanged to the cache.
    found = read_posts(run, cache, inputs, reread=check)
    clock.lap("read front matter of %d posts", report.parsed)
    run.check_cancelled()
    stories, prebuilt = stories_of(run, found, inputs)
    # Let go of the front matter of the posts no feed shows (a kept grouping still reads it).
    posts_unsettled = found.unsettled
    del found
    plans = plan(config, stories)
    clock.lap("group %d entries into %d feeds", stories.entries, len(plans))
    run.check_cancelled()

    records = load_records(config, store)
    published = ReadBack([], [])
    if config.output.archive:
        recorded = store.load_archive_pages()
        if not recorded:  # a new state database: the pages published stay as they were cut
            published = read_back(config, [(p.stem, p.policy.formats or (), frozenset(p.history)) for p in plans])
            for stem, number, ids in published.pages:
                recorded.setdefault(stem, []).append((number, ids))
        plans = archive_plans(plans, recorded, config.output.archive_page_size)
    compared = compare(config, plans, stories, {**records, **{r.path: r for r in published.records}}, check=check)
    report.feeds, report.unchanged = len(compared.files), compared.unchanged
    clock.lap("compare %d feed files with what they were made from", len(compared.files))
    wanted = {i for job in compared.todo for i in job.plan.entry_ids}
    built = build_entries(run, wanted, stories, inputs) if prebuilt is None else \
        replace(prebuilt, entries={i: e for i, e in prebuilt.entries.items() if i in wanted})
    # A feed that shows a kept post whose content is not cached keeps its previous file.
    todo = [job for job in compared.todo if built.unavailable.isdisjoint(job.plan.entry_ids)]
    clock.lap("build %d entries", len(built.entries))
    run.check_cancelled()

    env = environment(_templates_folder(config))
    extra = {**front_door_files(config, env, plans, stories), **status_files(config, store, check=check)}
    if not check:
        run.check_term()
        prepare(config, store, records, set(compared.files) | extra.keys())
        if compared.refreshed or published.records:
            store.save_outputs([*published.records, *compared.refreshed])
        if published.pages:
            store.save_archive_pages(published.pages)
            log.warning("%s: %d archive pages read back from the files published; they stay as they are",
                        config.output_dir, len(published.pages))
        # Before the first page is written: a run killed while writing leaves its cut recorded,
        # so the next one writes the same pages even if older entries arrived since.
        record_archive(run, plans)
    feeds = render(run, env, todo, built, stories, check=check)
    outputs = Outputs(feeds, extra, compared.files)
    clock.lap("render and write %d feed files", len(feeds))
    if check:
        check_outputs(run, outputs, records)
        return report
    write_outputs(run, outputs, records)
    # Something read while it changed, or an input missing: the next run must look again.
    record(run, snapshot, outputs, settled=not (posts_unsettled or built.unsettled or report.errors))
    return report


def generate(config: Config, *, check: bool = False, offline: bool = False, progress: Progress | None = None,
             now: datetime | None = None, transport: Transport | None = None,
             cancel: Callable[[], bool] | None = None, wait: float | None = None, allow_shrink: bool = False,
             rebuild_state: bool = False, term: LeaderTerm | None = None,
             scans: dict[tuple[str, str], PostScan] | None = None) -> Report:
    """Run ``feeds generate`` once over ``config``: fetch the due sources (unless
    ``offline`` or ``check``), then read posts and write every output that changed.

    The run holds the locks of the state database and the output folder; ``wait`` is how
    long to wait for another run holding them (None: until ``cancel``), then :class:`Busy`.
    ``allow_shrink`` takes posts inputs that vanished or shrank as they are now;
    ``rebuild_state`` first moves the state database aside (under the lock), to be rebuilt.
    With ``output.s3``, the folder is then published to the bucket, fenced by ``term`` (a
    single run publishes as term 0).
    The feeds written are announced to the WebSub hub once the locks are released (a slow
    hub holds up no other run). ``term``: the leader's term of a worker sharing a PostgreSQL
    state; nothing is published or recorded once it is over (:class:`LostLeadership`).
    ``scans``: the posts inputs as the quick check found them a moment ago
    (``feeds.unchanged.replay``), taken instead of scanning them again."""
    with writer_lock(run_locks(config, create=not check), wait=wait, cancel=cancel), \
            _server_lock(config, wait=wait, cancel=cancel):
        if rebuild_state and config.state_on_server:
            name, line = config.where("state")
            raise ConfigError("state: --rebuild-state moves a SQLite file aside; a state database on a server "
                              "is rebuilt by dropping and re-creating the database", where=name, line=line)
        if rebuild_state:
            for moved in move_aside(config.state_path, datetime.now(UTC)):
                log.warning("moved %s aside to %s; rebuilding the state", config.state_path, moved)
        report = _generate(config, check=check, offline=offline, progress=progress, now=now, transport=transport,
                           cancel=cancel, allow_shrink=allow_shrink, term=term, scans=scans)
    announce(config, report.written)
    return report


def _server_lock(config: Config, *, wait: float | None,
                 cancel: Callable[[], bool] | None) -> contextlib.AbstractContextManager[None]:
    """For a state on a server, the lock there on the output folder (writers on other
    machines share the database, not this machine's file locks)."""
    if not config.state_on_server:
        return contextlib.nullcontext()
    return server_lock(config.state, os.path.realpath(config.output_dir), wait=wait,
                       cancel=cancel or (lambda: False))


def run_locks(config: Config, *, create: bool = True) -> list[Path]:
    """What a writing run locks: the state database's lock file, then the output folder (a
    state on a server has no file beside it: the output folder's lock alone)."""
    try:
        if not config.state_on_server:
            config.state_path.parent.mkdir(parents=True, exist_ok=True)
        if create:
            config.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(f"cannot create the folder: {exc.strerror}", where=exc.filename) from None
    found = [] if config.state_on_server else [lock_path(config.state_path)]
    if config.output_dir.is_dir():
        found.append(config.output_dir)
    return found


def _generate(config: Config, *, check: bool, offline: bool, progress: Progress | None, now: datetime | None,
              transport: Transport | None, cancel: Callable[[], bool] | None,
              allow_shrink: bool, term: LeaderTerm | None = None,
              scans: dict[tuple[str, str], PostScan] | None = None) -> Report:
    store = Store(config.state_target)
    store.fence_with(term)
    # A run allocates hundreds of thousands of small, acyclic objects; the cyclic
    # collector would rescan them over and over for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        outcomes = []
        if config.sources and not offline and not check and not _fetched_by_workers(config, store):
            from .sources.update import update_sources

            outcomes = update_sources(config, store, now=now or datetime.now(UTC), transport=transport)
        run = Run(config, store, Sink(Report()), progress, cancel or (lambda: False), StoreWrites(), term)
        try:
            # The workers forked to read the front matter also clean the bodies.
            with keep_workers():
                report = _run(run, check=check, allow_shrink=allow_shrink, scans=scans)
        finally:
            run.writes.wait()
        if config.output.s3 is not None and not check:
            publish_to_bucket(config, store, report, leader_fence(store, term))
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
        raise DamagedStateError(exc.message, where=str(config.state_target)) from None
    finally:
        if collecting:
            gc.enable()
        store.close()


def _fetched_by_workers(config: Config, store: Store) -> bool:
    """Whether ``feeds run`` workers share this (PostgreSQL) state and fetch its sources: a
    run beside them publishes what they stored, as with ``--offline``; fetching here too
    would ask for sources they hold leases on, and ask hosts they are asking."""
    from .cluster import live_workers

    running = live_workers(config, store)
    if running:
        log.info("sources: left to the %d `feeds run` worker%s sharing this state; this run publishes what "
                 "they stored (as with --offline)", len(running), "s" if len(running) != 1 else "")
    return bool(running)


def leader_fence(store: Store, term: LeaderTerm | None) -> Fence:
    """What fences publishing to a bucket: the leader's term, asked of the server before each write."""
    if term is None:
        return Fence()
    return Fence(term.number, lambda: store.still_leads(term))


def publish_to_bucket(config: Config, store: Store, report: Report, fence: Fence) -> None:
    """Make the bucket hold what the folder now holds of this program's files; a failure is
    the run's error (the folder is as it should be, and the next run tries again)."""
    settings = config.output.s3
    assert settings is not None
    names = [name for name, record in load_records(config, store).items() if record.size != NOT_WRITTEN]
    try:
        report.bucket = sync_bucket(settings, config.output_dir, names, fence=fence)
    except PublishError as exc:
        report.errors.append(str(exc))
        log.error("%s", exc)
        return
    for warning in report.bucket.warnings:
        report.warnings.append(warning)
        log.warning("%s", warning)


@dataclass(frozen=True, slots=True)
class StatusLine:
    """One line of ``feeds status``: a configured source and its stored state."""

    name: str
    url: str
    enabled: bool
    fetch_url: str
    status: SourceStatus
    last_fetch: datetime | None
    last_success: datetime | None
    entries: int
    stored: int
    error: str | None
    failures: int
    moved_to: str | None
    moved_seen: int
    next_due: datetime | None
    #: For a ``full_text`` source: its article pages that gave an article, those failing,
    #: and the latest failure (page and error).
    articles: int = 0
    articles_failing: int = 0
    article_failure: str | None = None


def source_status(config: Config) -> list[StatusLine]:
    """The stored state of every configured source (readable while a daemon runs)."""
    from .sources.schedule import new_state

    store = Store(config.state_target)
    try:
        states = store.load_sources()
        stored = store.item_counts()
        articles = store.article_health() if any(s.full_text for s in config.sources) else {}
    finally:
        store.close()
    rows = []
    for source in config.sources:
        st = states.get(source.name) or new_state(source.name, source.url)
        pages = articles.get(source.name)
        rows.append(StatusLine(source.name, source.url, source.enabled, st.fetch_url, st.status, st.last_fetch,
                                 st.last_success, st.entries, stored.get(source.name, 0), st.error, st.failures,
                                 st.moved_to, st.moved_seen, st.next_due,
                                 *((pages.fetched, pages.failing, pages.last_failure) if pages else ())))
    return rows
