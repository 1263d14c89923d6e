"""Update sources: choose the due ones, fetch them, parse, normalize, store.

This stage composes ``fetch`` (HTTP), ``parse`` and ``normalize`` (pure) and
``store`` (SQLite). One source failing in any way (DNS, timeout, TLS, HTTP
error, invalid XML, oversize, undecodable, or an exception nobody foresaw while
parsing, normalizing or storing it) only marks that source with a one-line
error; every other source is handled as usual. One item that cannot be read is
left out of its source. What one source can make is capped (``fetch.limits``,
a source's ``limits``): items per fetch, tags per entry and per fetch, content
per item, stored items; each cap hit is a note. Each source's outcome is stored
in one transaction, so a run killed midway loses nothing and duplicates nothing.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from ..config import Config, Limits, Source
from ..errors import FeedsError, InputError
from ..identity import Ledger, LedgerKey, canonical_link
from ..normalize import (
    ItemLimits,
    content_capped,
    entry_from_item,
    id_mode,
    item_key,
    natural_item_id,
    tags_capped,
)
from ..store import ItemRow, Known, Store
from ..workers import run_jobs
from .fetch import FetchRequest, FetchResult, FetchSettings, fetch_all, resolve_local
from .parse import ParsedItem, parse_feed
from .schedule import SourceState, after_fetch, new_state

log = logging.getLogger("feeds")

Fetch = Callable[[Sequence[FetchRequest]], list[FetchResult]]

# Bump when normalizing items changes, so stored items are rebuilt from the next fetch.
ITEM_VERSION = "2"
# Below this many feeds to parse, worker processes cost more than they save.
PARALLEL_FEEDS = 8


@dataclass
class SourceOutcome:
    """What happened to one source in this run, for the summary and the exit status."""

    name: str
    status: str
    new: int = 0
    changed: int = 0
    entries: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: When the source is due again.
    next_due: datetime | None = None

    def line(self) -> str:
        text = f"{self.name}: {self.status}"
        if self.status in ("ok", "unchanged", "not modified"):
            text += f", {self.entries} items ({self.new} new, {self.changed} changed)"
        if self.error:
            text += f": {self.error}"
        return text


def settings_of(config: Config) -> FetchSettings:
    f = config.fetch
    return FetchSettings(concurrency=f.concurrency, host_gap=f.host_gap, connect_timeout=f.connect_timeout,
                         read_timeout=f.read_timeout, total_timeout=f.total_timeout, max_bytes=f.max_bytes,
                         max_redirects=f.max_redirects, allow_private_redirects=f.allow_private_redirects,
                         longest_host_block=f.max_backoff)


def due_sources(config: Config, states: dict[str, SourceState], now: datetime,
                only: Sequence[str] | None = None) -> list[Source]:
    """Enabled sources whose time has come (or that are new, or whose URL changed)."""
    due = []
    for source in config.sources:
        if not source.enabled or (only is not None and source.name not in only):
            continue
        state = states.get(source.name)
        if state is None or state.url != source.url or state.due(now) or only is not None:
            due.append(source)
    return due


@dataclass
class FeedDigest:
    """A parsed feed turned into rows to store: the work a worker process does."""

    ttl: int | None
    problem: str | None
    mode: str
    #: Rows for items that are new or changed.
    rows: list[ItemRow]
    new: int
    changed: int
    #: The key of every item the feed lists.
    keys: list[str]
    #: Caps that were hit, one line each.
    notes: list[str] = field(default_factory=list)


def _source_tags(items: Sequence[ParsedItem], per_entry: int, per_source: int) -> tuple[set[str] | None, int]:
    """The feed tags a fetch may bring: the first ``per_source`` distinct ones (case-folded)
    in document order, as entries keep them, or None when the feed has no more than that;
    and how many distinct tags it has."""
    allowed: dict[str, None] = {}
    for item in items:
        for tag in item.tags[:per_entry]:
            allowed.setdefault(tag.casefold())
    if len(allowed) <= per_source:
        return None, len(allowed)
    return set(list(allowed)[:per_source]), len(allowed)


def digest_feed(source: Source, result: FetchResult, known: dict[str, Known], ledger: Ledger, *,
                site_zone: str, now: datetime, fingerprint: str, summary_length: int,
                limits: Limits | None = None) -> FeedDigest:
    """Parse a fetched body and normalize its items; :class:`InputError` if it is no feed.

    Touches no database: what is known of the source's items and the id ledger
    are handed in, so this can run in a worker process. ``limits`` caps what the
    feed can bring (items, tags, content size); each cap hit is one note.
    """
    assert result.body is not None
    limits = limits or Limits()
    feed = parse_feed(result.body, result.headers, result.final_url, max_items=limits.items_per_fetch)
    notes: list[str] = []
    if feed.dropped:
        notes.append(f"the feed lists {len(feed.items) + feed.dropped} items; read the first "
                     f"{len(feed.items)} (limits.items_per_fetch)")
    item_limits = ItemLimits(tags=limits.tags_per_entry, content_bytes=limits.content_bytes)
    many_tags = sum(tags_capped(i, item_limits) for i in feed.items)
    allowed, distinct = _source_tags(feed.items, limits.tags_per_entry, limits.tags_per_source)
    items: Sequence[ParsedItem] = feed.items
    if allowed is not None:
        items = [replace(i, tags=tuple(t for t in i.tags[:limits.tags_per_entry] if t.casefold() in allowed))
                 for i in feed.items]
        notes.append(f"the feed has {distinct} distinct tags; kept the first {limits.tags_per_source} "
                     "(limits.tags_per_source)")
    mode = id_mode(items)
    zone = ZoneInfo(source.timezone or site_zone)
    stamp = now.timestamp()
    rows: list[ItemRow] = []
    keys: list[str] = []
    listed: set[str] = set()
    new = changed = too_big = 0
    unreadable: list[str] = []
    for item in items:
        try:
            key = item_key(item, mode, feed.link)
            if key in listed:
                continue  # the same item twice in one feed
            digest = hashlib.sha1(f"{fingerprint}\0{item!r}\0{feed.title}\0{feed.link}".encode()).hexdigest()
            old = known.get(key)
            if old is not None and old.digest == digest:
                listed.add(key)
                keys.append(key)
                continue
            link = canonical_link(item.link, feed.link or result.final_url) if item.link else None
            if old is not None:
                entry_id = old.entry_id
            else:
                # A story already known under its link (from another source, a post, or
                # before this feed changed its guids) keeps its id.
                known_id = ledger.get(LedgerKey("link", link)) if link else None
                entry_id = known_id or natural_item_id(item, mode, feed.link)
            first_seen = old.first_seen if old is not None else stamp
            entry = entry_from_item(
                item, feed, entry_id=entry_id, source=source.name, feed_url=result.final_url, zone=zone, now=now,
                first_seen=datetime.fromtimestamp(first_seen, now.tzinfo), extra_tags=source.tags,
                remove=source.clean.remove, summary_only=source.summary_only, summary_length=summary_length,
                limits=item_limits)
            row = ItemRow.make(source.name, key, entry, digest, first_seen, stamp)
        except Exception as exc:  # one item nobody could read: skip it, keep the others
            unreadable.append(failure_text(exc))
            continue
        listed.add(key)
        keys.append(key)
        too_big += not source.summary_only and content_capped(item, entry)
        rows.append(row)
        if old is None:
            new += 1
        else:
            changed += 1
    if unreadable:
        notes.append(f"{len(unreadable)} items could not be read and were left out (first: {unreadable[0]})")
    if many_tags:
        notes.append(f"{many_tags} items have more than {limits.tags_per_entry} tags; kept the first "
                     f"{limits.tags_per_entry} of each (limits.tags_per_entry)")
    if too_big:
        notes.append(f"{too_big} items have content over {limits.content_bytes} bytes; they keep their "
                     "summary and link (limits.content_bytes)")
    return FeedDigest(feed.ttl, feed.problem, mode, rows, new, changed, keys, notes)


def failure_text(exc: BaseException) -> str:
    """One line for an exception nobody expected while handling a source."""
    if isinstance(exc, FeedsError):
        return exc.message
    if isinstance(exc, RecursionError):
        return "the feed is nested too deeply to read"
    detail = " ".join(str(exc).split())[:200]
    return f"could not be handled ({type(exc).__name__}{': ' + detail if detail else ''})"


def _digest_job(index: int, shared: dict[str, Any]) -> FeedDigest | str:
    """Worker side of parsing: the job is an index into what the parent shared.

    Whatever goes wrong comes back as the source's one-line error, a string: an
    exception object may not survive the trip to the parent process (lxml's
    carry their unpicklable error logs)."""
    source, result, known, limits = shared["jobs"][index]
    try:
        return digest_feed(source, result, known, shared["ledger"], limits=limits, **shared["settings"])
    except Exception as exc:
        if not isinstance(exc, InputError):
            log.debug("%s: digest failed", source.name, exc_info=True)
        return failure_text(exc)


class Updater:
    def __init__(self, config: Config, store: Store, *, now: datetime,
                 transport: httpx.AsyncBaseTransport | None = None, rng: random.Random | None = None,
                 fetch: Fetch | None = None) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.transport = transport
        self.fetch = fetch or (lambda requests: fetch_all(requests, settings_of(config), transport))
        self.rng = rng or random.Random()
        self.fingerprint = config.fingerprint("items", ITEM_VERSION)
        self.changed_items = 0
        # States of sources that brought nothing new, saved together at the end.
        self.pending: list[SourceState] = []
        self.next_due: dict[str, datetime | None] = {}

    def run(self, only: Sequence[str] | None = None) -> list[SourceOutcome]:
        states = self.store.load_sources(only)
        due = due_sources(self.config, states, self.now, only)
        if not due:
            return []
        requests = []
        for source in due:
            state = states.get(source.name)
            if state is None or state.url != source.url:
                state = new_state(source.name, source.url)
                states[source.name] = state
            requests.append(FetchRequest(source.name, resolve_local(state.fetch_url, self.config.root),
                                         state.etag, state.last_modified))
        results = self.fetch(requests)
        digests = self.digest_all(due, states, results)
        ledger = self.store.load_ledger() if digests else Ledger()
        outcomes = []
        for source, result in zip(due, results, strict=True):
            try:
                outcome = self.handle(source, states[source.name], result, digests.get(source.name), ledger)
            except Exception as exc:  # storing it failed: this source's error, not the run's
                log.debug("%s: storing failed", source.name, exc_info=True)
                outcome = self.handle(source, states[source.name], replace(result, body=None), failure_text(exc),
                                      ledger)
            outcome.next_due = self.next_due.get(source.name)
            outcomes.append(outcome)
            level = logging.WARNING if outcome.error else logging.INFO
            log.log(level, "%s", outcome.line())
            for note in outcome.notes:
                log.warning("%s: %s", source.name, note)
        self.store.save_states(self.pending)
        if self.config.fetch.retention is not None:
            dropped = self.store.prune_items(self.now.timestamp() - self.config.fetch.retention)
            self.changed_items += dropped
        # The store notes changed items (items_version) in the transaction that changes them.
        return outcomes

    def digest_all(self, due: Sequence[Source], states: dict[str, SourceState],
                   results: Sequence[FetchResult]) -> dict[str, FeedDigest | str]:
        """Parse and normalize every new body, on all cores when there are many."""
        todo = [(source, result) for source, result in zip(due, results, strict=True)
                if result.body is not None
                and hashlib.sha1(result.body).hexdigest() != states[source.name].body_hash]
        if not todo:
            return {}
        known = self.store.known_items([source.name for source, _ in todo])
        shared = {
            "jobs": [(source, result, known.get(source.name, {}), self.config.fetch.limits_of(source))
                     for source, result in todo],
            "ledger": self.store.load_ledger(),
            "settings": {"site_zone": self.config.site.timezone, "now": self.now, "fingerprint": self.fingerprint,
                         "summary_length": self.config.output.summary_length},
        }
        try:
            done = run_jobs(_digest_job, list(range(len(todo))), PARALLEL_FEEDS, shared=shared)
        except BrokenProcessPool:  # a worker was killed (out of memory?): once more, one source at a time
            log.warning("a worker process died while reading feeds; reading them one at a time")
            done = [_digest_job(i, shared) for i in range(len(todo))]
        return {source.name: d for (source, _), d in zip(todo, done, strict=True)}

    def handle(self, source: Source, state: SourceState, result: FetchResult, digest: FeedDigest | str | None,
               ledger: Ledger) -> SourceOutcome:
        notes: list[str] = []
        if isinstance(digest, str):
            result = replace(result, body=None, error=digest)
            digest = None
        state, moves = after_fetch(state, result, every=source.every, now=self.now,
                                   max_backoff=self.config.fetch.max_backoff,
                                   ttl_minutes=digest.ttl if digest else None, rng=self.rng)
        self.next_due[source.name] = state.next_due
        notes.extend(moves)
        if result.error is not None:
            self.pending.append(state)
            return SourceOutcome(source.name, state.status, entries=state.entries, error=result.error,
                                 notes=notes, seconds=result.seconds)
        if digest is None:  # 304, or the same bytes as last time
            status = state.status if result.not_modified else "unchanged"
            state = replace(state, status=status)
            self.pending.append(state)
            return SourceOutcome(source.name, status, entries=state.entries, notes=notes, seconds=result.seconds)
        if digest.problem:
            notes.append(f"malformed feed, read what could be read: {digest.problem}")
        notes.extend(digest.notes)
        if digest.mode != "guid" and digest.mode != state.id_mode and digest.keys:
            notes.append("items have missing or repeated guids; telling them apart by "
                         + ("link" if digest.mode == "link" else "content"))
        # Stories new in this run may have reached another source first: one id per link.
        rows = []
        for row in digest.rows:
            if row.link:
                key = LedgerKey("link", row.link)
                known = ledger.get(key)
                if known is not None and known != row.entry_id and row.first_seen == self.now.timestamp():
                    row = row._replace(entry_id=known)
                else:
                    ledger.remember(row.entry_id, key)
            rows.append(row)
        self.store.save_ledger(ledger)
        assert result.body is not None
        state = replace(state, body_hash=hashlib.sha1(result.body).hexdigest(), id_mode=digest.mode,
                        entries=len(digest.keys))
        cap = self.config.fetch.limits_of(source).stored_items
        dropped = self.store.save_fetch(state, rows, digest.keys, seen_at=self.now.timestamp(), keep_at_most=cap)
        if dropped:
            notes.append(f"dropped the {dropped} oldest stored items, keeping {cap} (limits.stored_items)")
        self.changed_items += digest.new + digest.changed + dropped
        return SourceOutcome(source.name, "ok", new=digest.new, changed=digest.changed, entries=len(digest.keys),
                             notes=notes, seconds=result.seconds)


def update_sources(config: Config, store: Store, *, now: datetime, only: Sequence[str] | None = None,
                   transport: httpx.AsyncBaseTransport | None = None, fetch: Fetch | None = None
                   ) -> list[SourceOutcome]:
    """Fetch every due source (or the ``only`` ones, due or not) and store what changed.

    ``fetch`` replaces the default one-shot fetcher (the daemon shares one across jobs)."""
    return Updater(config, store, now=now, transport=transport, fetch=fetch).run(only)

