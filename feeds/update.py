"""Update sources: choose the due ones, fetch them, parse, normalize, store.

This stage composes ``fetch`` (HTTP), ``parse`` and ``normalize`` (pure) and
``store`` (SQLite). One source failing in any way (DNS, timeout, TLS, HTTP
error, invalid XML, oversize, undecodable) only marks that source; every other
source is handled as usual. Each source's outcome is stored in one
transaction, so a run killed midway loses nothing and duplicates nothing.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from .config import Config, Source
from .errors import InputError
from .fetch import FetchRequest, FetchResult, FetchSettings, fetch_all, resolve_local
from .identity import canonical_link
from .normalize import entry_from_item, id_mode, item_key, natural_item_id
from .parse import parse_feed
from .schedule import SourceState, after_fetch, new_state
from .store import ItemRow, Known, Store
from .workers import run_jobs

log = logging.getLogger("feeds")

Fetch = Callable[[Sequence[FetchRequest]], list[FetchResult]]

# Bump when normalizing items changes, so stored items are rebuilt from the next fetch.
ITEM_VERSION = "1"
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
                         max_redirects=f.max_redirects)


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


def digest_feed(source: Source, result: FetchResult, known: dict[str, Known], ledger: dict[str, str], *,
                site_zone: str, now: datetime, fingerprint: str, summary_length: int) -> FeedDigest:
    """Parse a fetched body and normalize its items; :class:`InputError` if it is no feed.

    Touches no database: what is known of the source's items and the id ledger
    are handed in, so this can run in a worker process.
    """
    assert result.body is not None
    feed = parse_feed(result.body, result.headers, result.final_url)
    mode = id_mode(feed.items)
    zone = ZoneInfo(source.timezone or site_zone)
    stamp = now.timestamp()
    rows: list[ItemRow] = []
    keys: list[str] = []
    listed: set[str] = set()
    new = changed = 0
    for item in feed.items:
        key = item_key(item, mode, feed.link)
        if key in listed:
            continue  # the same item twice in one feed
        listed.add(key)
        keys.append(key)
        digest = hashlib.sha1(f"{fingerprint}\0{item!r}\0{feed.title}\0{feed.link}".encode()).hexdigest()
        old = known.get(key)
        if old is not None and old.digest == digest:
            continue
        link = canonical_link(item.link, feed.link or result.final_url) if item.link else None
        if old is not None:
            entry_id = old.entry_id
        else:
            # A story already known under its link (from another source, a post, or
            # before this feed changed its guids) keeps its id.
            entry_id = (ledger.get("link:" + link) if link else None) or natural_item_id(item, mode, feed.link)
        first_seen = old.first_seen if old is not None else stamp
        entry = entry_from_item(
            item, feed, entry_id=entry_id, source=source.name, feed_url=result.final_url, zone=zone, now=now,
            first_seen=datetime.fromtimestamp(first_seen, now.tzinfo), extra_tags=source.tags,
            remove=source.clean.remove, summary_only=source.summary_only, summary_length=summary_length)
        rows.append(ItemRow.make(source.name, key, entry, digest, first_seen, stamp))
        if old is None:
            new += 1
        else:
            changed += 1
    return FeedDigest(feed.ttl, feed.problem, mode, rows, new, changed, keys)


def _digest_job(index: int, shared: dict[str, Any]) -> FeedDigest | str:
    """Worker side of parsing: the job is an index into what the parent shared."""
    source, result, known = shared["jobs"][index]
    try:
        return digest_feed(source, result, known, shared["ledger"], **shared["settings"])
    except InputError as exc:
        return exc.message


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
        ledger = self.store.load_ledger() if digests else {}
        outcomes = []
        for source, result in zip(due, results, strict=True):
            outcome = self.handle(source, states[source.name], result, digests.get(source.name), ledger)
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
            "jobs": [(source, result, known.get(source.name, {})) for source, result in todo],
            "ledger": self.store.load_ledger(),
            "settings": {"site_zone": self.config.site.timezone, "now": self.now, "fingerprint": self.fingerprint,
                         "summary_length": self.config.output.summary_length},
        }
        done = run_jobs(_digest_job, list(range(len(todo))), PARALLEL_FEEDS, shared=shared)
        return {source.name: d for (source, _), d in zip(todo, done, strict=True)}

    def handle(self, source: Source, state: SourceState, result: FetchResult, digest: FeedDigest | str | None,
               ledger: dict[str, str]) -> SourceOutcome:
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
        if digest.mode != "guid" and digest.mode != state.id_mode and digest.keys:
            notes.append("items have missing or repeated guids; telling them apart by "
                         + ("link" if digest.mode == "link" else "content"))
        # Stories new in this run may have reached another source first: one id per link.
        rows, new_links = [], {}
        for row in digest.rows:
            key = "link:" + row.link if row.link else None
            if key and key in ledger and ledger[key] != row.entry_id and row.first_seen == self.now.timestamp():
                row = row._replace(entry_id=ledger[key])
            elif key and key not in ledger:
                ledger[key] = new_links[key] = row.entry_id
            rows.append(row)
        self.store.save_ledger(new_links)
        assert result.body is not None
        state = replace(state, body_hash=hashlib.sha1(result.body).hexdigest(), id_mode=digest.mode,
                        entries=len(digest.keys))
        self.store.save_fetch(state, rows, digest.keys, seen_at=self.now.timestamp())
        self.changed_items += digest.new + digest.changed
        return SourceOutcome(source.name, "ok", new=digest.new, changed=digest.changed, entries=len(digest.keys),
                             notes=notes, seconds=result.seconds)


def update_sources(config: Config, store: Store, *, now: datetime, only: Sequence[str] | None = None,
                   transport: httpx.AsyncBaseTransport | None = None, fetch: Fetch | None = None
                   ) -> list[SourceOutcome]:
    """Fetch every due source (or the ``only`` ones, due or not) and store what changed.

    ``fetch`` replaces the default one-shot fetcher (the daemon shares one across jobs)."""
    return Updater(config, store, now=now, transport=transport, fetch=fetch).run(only)

