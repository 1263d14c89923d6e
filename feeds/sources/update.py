"""Update sources: choose the due ones, fetch them, read them on workers, decide, store.

The I/O half of updating sources; every decision is ``decide``'s. ``fetch`` speaks HTTP,
``parse`` and ``decide`` (pure) run on worker processes when there are many bodies to
read, and ``store`` keeps the result. One source failing in any way (DNS, timeout, TLS,
HTTP error, invalid XML, oversize, undecodable, or an exception nobody foresaw while
parsing, normalizing or storing it) only marks that source with a one-line error; every
other source is handled as usual. One item that cannot be read is left out of its source.
What one source can make is capped (``fetch.limits``, a source's ``limits``): items per
fetch, tags per entry and per fetch, content per item, stored items; each cap hit is a
note. Each source's outcome is stored in one transaction, so a run killed midway loses
nothing and duplicates nothing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from ..config import Config, Source
from ..errors import InputError
from ..identity import Ledger
from ..store import ItemRow, Store
from ..workers import run_jobs
from .decide import (
    Decider,
    FeedReading,
    KnownItem,
    SourceDecision,
    SourceOutcome,
    failure_text,
    must_read,
)
from .fetch import FetchSettings, Transport, fetch_all, resolve_local
from .parse import parse_feed
from .results import FetchFailure, FetchRequest, FetchResult
from .schedule import SourceState, new_state

log = logging.getLogger("feeds")

Fetch = Callable[[Sequence[FetchRequest]], list[FetchResult]]

# Below this many feeds to parse, worker processes cost more than they save.
PARALLEL_FEEDS = 8


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


class ReadJob(NamedTuple):
    """One fetched body to read on a worker: whose decider, what the fetch brought, what is stored."""

    decider: Decider
    result: FetchResult
    known: Mapping[str, KnownItem]


def _read_job(index: int, jobs: Sequence[ReadJob]) -> FeedReading[ItemRow] | FetchFailure:
    """Worker side: parse one fetched body, read its items and encode their entries for
    the store; the job is an index into the jobs the parent shared.

    Whatever goes wrong comes back as the source's failure, a record: an exception
    object may not survive the trip to the parent process (lxml's carry their
    unpicklable error logs)."""
    decider, result, known = jobs[index].decider, jobs[index].result, jobs[index].known
    try:
        assert result.body is not None
        feed = parse_feed(result.body, result.headers, result.final_url, max_items=decider.limits.items_per_fetch)
        seen_at = decider.now.timestamp()
        return decider.read(result, feed, known).encoded(
            lambda i: ItemRow.make(decider.source.name, i.key, i.entry, i.digest, i.first_seen, seen_at))
    except Exception as exc:
        if not isinstance(exc, InputError):
            log.debug("%s: digest failed", decider.source.name, exc_info=True)
        return FetchFailure("feed", failure_text(exc))


class Updater:
    """One pass over the due sources: load their states, fetch, read on workers, decide,
    save; every decision is the :class:`Decider`'s."""

    def __init__(self, config: Config, store: Store, *, now: datetime,
                 transport: Transport | None = None, rng: random.Random | None = None,
                 fetch: Fetch | None = None) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.transport = transport
        settings = FetchSettings.from_config(config.fetch)
        self.fetch = fetch or (lambda requests: fetch_all(requests, settings, transport))
        self.rng = rng or random.Random()
        # States of sources that brought nothing new, saved together at the end.
        self.pending: list[SourceState] = []

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
        deciders = [Decider.of(self.config, source, now=self.now) for source in due]
        readings = self.read_all(deciders, states, results)
        ledger = self.store.load_ledger() if readings else Ledger()
        outcomes = []
        for decider, result in zip(deciders, results, strict=True):
            name = decider.source.name
            try:
                outcome = self.save(decider.decide(states[name], result, readings.get(name), ledger, self.rng),
                                    ledger)
            except Exception as exc:  # storing it failed: this source's error, not the run's
                log.debug("%s: storing failed", name, exc_info=True)
                failure = FetchFailure("store", failure_text(exc))
                outcome = self.save(decider.decide(states[name], replace(result, body=None), failure, ledger,
                                                   self.rng), ledger)
            outcomes.append(outcome)
            level = logging.WARNING if outcome.error else logging.INFO
            log.log(level, "%s", outcome.line())
            for note in outcome.notes:
                log.warning("%s: %s", name, note)
        self.store.save_states(self.pending)
        if self.config.fetch.retention is not None:
            self.store.prune_items(self.now.timestamp() - self.config.fetch.retention)
        # The store notes changed items (items_version) in the transaction that changes them.
        return outcomes

    def read_all(self, deciders: Sequence[Decider], states: dict[str, SourceState],
                 results: Sequence[FetchResult]) -> dict[str, FeedReading[ItemRow] | FetchFailure]:
        """Parse and read every new body, on all cores when there are many."""
        todo = [(decider, result) for decider, result in zip(deciders, results, strict=True)
                if must_read(states[decider.source.name], result)]
        if not todo:
            return {}
        known = self.store.known_items([decider.source.name for decider, _ in todo])
        jobs = [ReadJob(decider, result, known.get(decider.source.name, {})) for decider, result in todo]
        try:
            done = run_jobs(_read_job, list(range(len(jobs))), PARALLEL_FEEDS, shared=jobs)
        except BrokenProcessPool:  # a worker was killed (out of memory?): once more, one source at a time
            log.warning("a worker process died while reading feeds; reading them one at a time")
            done = [_read_job(i, jobs) for i in range(len(jobs))]
        return {decider.source.name: d for (decider, _), d in zip(todo, done, strict=True)}

    def save(self, decision: SourceDecision[ItemRow], ledger: Ledger) -> SourceOutcome:
        """Store what ``decision`` says; its outcome, with what storing dropped."""
        state = decision.state
        if decision.listed is None:
            self.pending.append(state)
            return decision.outcome
        stamp = self.now.timestamp()
        rows = [i.entry if i.entry.entry_id == i.entry_id else i.entry._replace(entry_id=i.entry_id)
                for i in decision.items]
        ledger.learn(decision.learnt)
        self.store.save_ledger(ledger)
        dropped = self.store.save_fetch(state, rows, decision.listed, seen_at=stamp,
                                        keep_at_most=decision.keep_at_most)
        return decision.stored(dropped)


def update_sources(config: Config, store: Store, *, now: datetime, only: Sequence[str] | None = None,
                   transport: Transport | None = None, fetch: Fetch | None = None
                   ) -> list[SourceOutcome]:
    """Fetch every due source (or the ``only`` ones, due or not) and store what changed.

    ``fetch`` replaces the default one-shot fetcher (the daemon shares one across jobs)."""
    return Updater(config, store, now=now, transport=transport, fetch=fetch).run(only)
