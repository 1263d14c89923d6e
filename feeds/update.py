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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from .config import Config, Source
from .errors import InputError
from .fetch import FetchRequest, FetchResult, FetchSettings, fetch_all, resolve_local
from .identity import canonical_link
from .normalize import entry_from_item, id_mode, item_key, natural_item_id
from .parse import ParsedFeed, parse_feed
from .schedule import SourceState, after_fetch, new_state
from .store import ItemRow, Store

log = logging.getLogger("feeds")

# Bump when normalizing items changes, so stored items are rebuilt from the next fetch.
ITEM_VERSION = "1"


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


class Updater:
    def __init__(self, config: Config, store: Store, *, now: datetime,
                 transport: httpx.AsyncBaseTransport | None = None, rng: random.Random | None = None) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.transport = transport
        self.rng = rng or random.Random()
        self.fingerprint = config.fingerprint("items", ITEM_VERSION)
        self.changed_items = 0

    def run(self, only: Sequence[str] | None = None) -> list[SourceOutcome]:
        states = self.store.load_sources()
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
        results = fetch_all(requests, settings_of(self.config), self.transport)
        ledger = self.store.load_ledger()
        outcomes = []
        for source, result in zip(due, results, strict=True):
            outcome = self.handle(source, states[source.name], result, ledger)
            outcomes.append(outcome)
            level = logging.WARNING if outcome.error else logging.INFO
            log.log(level, "%s", outcome.line())
            for note in outcome.notes:
                log.warning("%s: %s", source.name, note)
        if self.config.fetch.retention is not None:
            dropped = self.store.prune_items(self.now.timestamp() - self.config.fetch.retention)
            self.changed_items += dropped
        if self.changed_items:
            self.store.set_setting("items_version", f"{self.now.timestamp()}:{self.changed_items}")
        return outcomes

    def handle(self, source: Source, state: SourceState, result: FetchResult,
               ledger: dict[str, str]) -> SourceOutcome:
        parsed: ParsedFeed | None = None
        body_hash = None
        notes: list[str] = []
        if result.body is not None:
            body_hash = hashlib.sha1(result.body).hexdigest()
            if body_hash != state.body_hash:
                try:
                    parsed = parse_feed(result.body, result.headers, result.final_url)
                except InputError as exc:
                    result = replace(result, body=None, error=exc.message)
        state, moves = after_fetch(state, result, every=source.every, now=self.now,
                                   max_backoff=self.config.fetch.max_backoff,
                                   ttl_minutes=parsed.ttl if parsed else None, rng=self.rng)
        notes.extend(moves)
        if result.error is not None:
            self.store.save_fetch(state)
            return SourceOutcome(source.name, state.status, entries=state.entries, error=result.error,
                                 notes=notes, seconds=result.seconds)
        if parsed is None:  # 304, or the same bytes as last time
            status = state.status if result.not_modified else "unchanged"
            state = replace(state, status=status)
            self.store.save_fetch(state)
            return SourceOutcome(source.name, status, entries=state.entries, notes=notes, seconds=result.seconds)
        if parsed.problem:
            notes.append(f"malformed feed, read what could be read: {parsed.problem}")
        mode = id_mode(parsed.items)
        if mode != "guid" and mode != state.id_mode and parsed.items:
            notes.append("items have missing or repeated guids; telling them apart by "
                         + ("link" if mode == "link" else "content"))
        rows, new, changed, keys = self.items(source, parsed, mode, result.final_url, ledger)
        state = replace(state, body_hash=body_hash, id_mode=mode, entries=len(keys))
        self.store.save_fetch(state, rows, keys, seen_at=self.now.timestamp())
        self.changed_items += new + changed
        return SourceOutcome(source.name, "ok", new=new, changed=changed, entries=len(keys), notes=notes,
                             seconds=result.seconds)

    def items(self, source: Source, feed: ParsedFeed, mode: str, feed_url: str,
              ledger: dict[str, str]) -> tuple[list[ItemRow], int, int, list[str]]:
        """Rows to store for the items that are new or changed; counts; every key listed."""
        index = self.store.item_index(source.name)
        zone = ZoneInfo(source.timezone or self.config.site.timezone)
        now = self.now.timestamp()
        rows: list[ItemRow] = []
        keys: list[str] = []
        new_links: dict[str, str] = {}
        new = changed = 0
        for item in feed.items:
            key = item_key(item, mode, feed.link)
            if key in keys:
                continue  # the same item twice in one feed
            keys.append(key)
            digest = hashlib.sha1(f"{self.fingerprint}\0{item!r}\0{feed.title}\0{feed.link}".encode()).hexdigest()
            old = index.get(key)
            if old is not None and old.digest == digest:
                continue
            link = canonical_link(item.link, feed.link or feed_url) if item.link else None
            if old is not None:
                entry_id = old.entry_id
            else:
                # A story already known under its link (from another source, a post, or
                # before this feed changed its guids) keeps its id.
                entry_id = (ledger.get("link:" + link) if link else None) or natural_item_id(item, mode, feed.link)
            first_seen = old.first_seen if old is not None else now
            entry = entry_from_item(
                item, feed, entry_id=entry_id, source=source.name, feed_url=feed_url, zone=zone,
                now=self.now,
                first_seen=datetime.fromtimestamp(first_seen, self.now.tzinfo), extra_tags=source.tags,
                remove=source.clean.remove, summary_only=source.summary_only,
                summary_length=self.config.output.summary_length)
            rows.append(ItemRow.make(source.name, key, entry, digest, first_seen, now))
            if link and "link:" + link not in ledger:
                ledger["link:" + link] = new_links["link:" + link] = entry_id
            if old is None:
                new += 1
            else:
                changed += 1
        self.store.save_ledger(new_links)
        return rows, new, changed, keys


def update_sources(config: Config, store: Store, *, now: datetime, only: Sequence[str] | None = None,
                   transport: httpx.AsyncBaseTransport | None = None) -> list[SourceOutcome]:
    """Fetch every due source (or the ``only`` ones) and store what changed."""
    return Updater(config, store, now=now, transport=transport).run(only)

