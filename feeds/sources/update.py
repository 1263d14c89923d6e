"""Update sources: choose the due ones, fetch them, read them on workers, decide, store.

The I/O half of updating sources; every decision is ``decide``'s. ``fetch`` speaks HTTP,
``parse`` and ``decide`` (pure) run on worker processes when there are many sources,
and ``store`` keeps the result. The three overlap: a body goes to a worker as soon as it
arrives, and a source is stored as soon as its reading is back (in the configured
order), so a run never holds every body or every parsed feed at once. One source failing in any way (DNS, timeout, TLS,
HTTP error, invalid XML, oversize, undecodable, or an exception nobody foresaw while
parsing, normalizing or storing it) only marks that source with a one-line error; every
other source is handled as usual. One item that cannot be read is left out of its source.
Then the article pages of ``full_text`` sources are fetched and stored (``articles``).
What one source can make is capped (``fetch.limits``, a source's ``limits``): items per
fetch, tags per entry and per fetch, content per item, stored items; each cap hit is a
note. Each source's outcome is stored in one transaction, so a run killed midway loses
nothing and duplicates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from ..config import Config, Source
from ..errors import InputError, LostLease
from ..identity import Ledger
from ..store import Claimed, ItemRow, Store
from ..workers import JobPool
from .articles import one_fetcher, update_articles, with_stored_articles
from .decide import (
    Decider,
    FeedReading,
    KnownItem,
    SourceDecision,
    SourceOutcome,
    failure_text,
    must_read,
)
from .fetch import Fetcher, FetchSettings, Transport, resolve_local
from .parse import parse_feed
from .results import FetchFailure, FetchRequest, FetchResult, SourceHTTP
from .schedule import SourceState, new_state

log = logging.getLogger("feeds")

Fetch = Callable[[Sequence[FetchRequest]], list[FetchResult]]

# Below this many due sources (bodies to parse, at most), worker processes cost more than they save.
PARALLEL_FEEDS = 8


def due_sources(config: Config, states: dict[str, SourceState], now: datetime,
                only: Sequence[str] | None = None, *, force: bool = True,
                among: Sequence[Source] | None = None) -> list[Source]:
    """Enabled sources whose time has come (or that are new, or whose URL changed); the
    ``only`` ones due or not, unless ``force`` is False. ``among``: the config's sources
    to look at, when the caller has them at hand (else every one of the config's)."""
    due = []
    wanted = None if only is None else frozenset(only)
    for source in config.sources if among is None else among:
        if not source.enabled or (wanted is not None and source.name not in wanted):
            continue
        state = states.get(source.name)
        if state is None or state.url != source.url or state.due(now) or (only is not None and force):
            due.append(source)
    return due


def source_http(source: Source, root: Path) -> SourceHTTP | None:
    """How ``source``'s host is asked (None: as every other's); a CA bundle path is made
    absolute against ``root``, the config's folder."""
    if not source.headers and source.user_agent is None and source.auth is None and source.tls_verify is True:
        return None
    verify = source.tls_verify
    if isinstance(verify, str):
        path = Path(verify).expanduser()
        verify = str(path if path.is_absolute() else root / path)
    auth = source.auth
    return SourceHTTP(source.url, tuple(source.headers.items()), source.user_agent,
                      auth.username if auth else None, auth.password_env if auth else None, verify)


class ReadJob(NamedTuple):
    """One fetched body to read on a worker: whose decider, what the fetch brought, what is stored."""

    decider: Decider
    result: FetchResult
    known: Mapping[str, KnownItem]


class BodyJob(NamedTuple):
    """One fetched body to read on a worker, which knows the run's deciders already (they
    are shared when the workers start): which source (its place among the due ones), what
    the fetch brought, what is stored of it."""

    place: int
    result: FetchResult
    known: Mapping[str, KnownItem]


Reading = FeedReading[ItemRow] | FetchFailure


def read_body(decider: Decider, result: FetchResult, known: Mapping[str, KnownItem]) -> Reading:
    """Parse one fetched body, read its items and encode their entries for the store (on a
    worker, or in-process).

    Whatever goes wrong comes back as the source's failure, a record: an exception
    object may not survive the trip to the parent process (lxml's carry their
    unpicklable error logs)."""
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


def _read_job(index: int, jobs: Sequence[ReadJob]) -> Reading:
    """:func:`read_body` of ``jobs[index]``."""
    return read_body(*jobs[index])


def _read_arrived(job: BodyJob, deciders: Sequence[Decider]) -> Reading:
    """Worker side: :func:`read_body` of a body that arrived, with its source's decider."""
    return read_body(deciders[job.place], job.result, job.known)


#: Bodies that may wait for a worker at once, beyond those being downloaded: enough to keep
#: every worker busy, few enough that a fast network never piles up a whole run's bodies.
WAITING_BODIES = 32


class _Slot:
    """One due source's place in the run: what its fetch brought (without its body once
    read), and its reading, to come."""

    __slots__ = ("job", "reading", "result")

    def __init__(self, result: FetchResult, reading: Future[Reading | None], job: BodyJob | None) -> None:
        self.result = result
        self.reading = reading
        #: Kept until the reading is back, to read it once more should its worker die.
        self.job = job


class Updater:
    """One pass over the due sources: load their states, fetch, read on workers, decide,
    save; every decision is the :class:`Decider`'s.

    The steps overlap: each body is handed to a worker process as soon as it arrives,
    and each source is decided and stored as soon as its reading is back (and those of
    the sources before it, in the configured order, so that ids never depend on which
    server answered first), while the other fetches go on."""

    def __init__(self, config: Config, store: Store, *, now: datetime,
                 transport: Transport | None = None, rng: random.Random | None = None,
                 fetch: Fetch | None = None, claimed: Claimed | None = None,
                 among: Sequence[Source] | None = None) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.transport = transport
        self.settings = FetchSettings.from_config(config.fetch)
        #: A fetcher that answers a whole pass at once (the daemon's), or None: fetch here, streaming.
        self.fetch = fetch
        self.rng = rng or random.Random()
        #: The leases this worker holds on the sources (several workers on one PostgreSQL
        #: state): only those are fetched, only if due, and stored only while still held.
        self.claimed = claimed
        # States of sources that brought nothing new, saved together at the end.
        self.pending: list[SourceState] = []
        #: The id ledger as far as this pass has needed it: loaded key by key, before each
        #: decision, with what the decisions taught it.
        self._ledger = Ledger()
        #: The sources the store has a state of (and so perhaps items).
        self._stored: frozenset[str] = frozenset()
        self._broken = False
        #: The config's sources this pass looks at (None: every one).
        self.among = among
        #: The due sources with ``full_text``, by name.
        self._full_text: dict[str, Source] = {}

    def run(self, only: Sequence[str] | None = None) -> list[SourceOutcome]:
        claimed = self.claimed
        if claimed is not None:
            only = [name for name in (only if only is not None else claimed.leases) if name in claimed.leases]
        if claimed is not None and claimed.states is not None and only is not None:
            # Read with the claim, in its transaction: nobody else writes them while they are ours.
            states = {name: claimed.states[name] for name in only if name in claimed.states}
        else:
            states = self.store.load_sources(only)
        self._stored = frozenset(states)
        due = due_sources(self.config, states, self.now, only, force=claimed is None, among=self.among)
        if not due:
            return []
        self._full_text = {source.name: source for source in due if source.full_text is not None}
        requests = []
        for source in due:
            state = states.get(source.name)
            if state is None or state.url != source.url:
                state = new_state(source.name, source.url)
                states[source.name] = state
            requests.append(FetchRequest(source.name, resolve_local(state.fetch_url, self.config.root),
                                         state.etag, state.last_modified, source_http(source, self.config.root)))
        deciders = [Decider.of(self.config, source, now=self.now) for source in due]
        # The workers start before any fetch does (and so before the event loop's threads).
        with JobPool(_read_arrived, deciders, len(due), PARALLEL_FEEDS) as pool:
            if self.fetch is not None:
                slots = [self._arrived(pool, deciders, states, i, r) for i, r in enumerate(self.fetch(requests))]
                outcomes = [self._store(deciders[i], states, slot, self._reading(deciders, slot))
                            for i, slot in enumerate(slots)]
            else:
                outcomes = asyncio.run(self._stream(pool, deciders, states, requests))
        for name in self.store.save_states(self.pending, self.claimed):
            log.warning("%s: the lease on this source expired and another worker took it over; "
                        "this fetch was not stored", name)
        outcomes = self._full_texts(due, requests, outcomes)
        if self.config.fetch.retention is not None:
            self.store.prune_items(self.now.timestamp() - self.config.fetch.retention)
        # The store notes changed items (items_version) in the transaction that changes them.
        return outcomes

    def _full_texts(self, due: Sequence[Source], requests: Sequence[FetchRequest],
                    outcomes: list[SourceOutcome]) -> list[SourceOutcome]:
        """The article pages of the due ``full_text`` sources, fetched and stored (``articles``)."""
        wanted = [(source, request) for source, request in zip(due, requests, strict=True) if source.full_text]
        if not wanted:
            return outcomes
        try:
            if self.fetch is not None:
                return update_articles(self.config, self.store, wanted, outcomes, now=self.now, fetch=self.fetch)
            with one_fetcher(self.settings, self.transport) as fetch:
                return update_articles(self.config, self.store, wanted, outcomes, now=self.now, fetch=fetch)
        except Exception as exc:  # what nobody foresaw: the feeds are stored, the articles wait
            log.warning("full text: the article pages could not be fetched (%s)", failure_text(exc))
            log.debug("full text failed", exc_info=True)
            return outcomes

    async def _stream(self, pool: JobPool, deciders: Sequence[Decider], states: dict[str, SourceState],
                      requests: Sequence[FetchRequest]) -> list[SourceOutcome]:
        """Fetch, read and store, overlapping: see the class's docstring."""
        loop = asyncio.get_running_loop()
        room = asyncio.Semaphore(WAITING_BODIES)
        # Each one let go once stored, with its reading: a run never holds every parsed feed.
        arrivals: dict[int, asyncio.Future[_Slot]] = {i: loop.create_future() for i in range(len(requests))}

        def handle(index: int, result: FetchResult) -> None:
            try:
                slot = self._arrived(pool, deciders, states, index, result)
            except BaseException as exc:
                arrivals[index].set_exception(exc)
                raise
            if result.body is not None:
                slot.reading.add_done_callback(lambda _: loop.call_soon_threadsafe(room.release))
            arrivals[index].set_result(slot)

        fetching = asyncio.ensure_future(Fetcher(self.settings, self.transport).fetch_each(requests, handle, room))
        outcomes = []
        try:
            for index in range(len(requests)):
                arrival = arrivals[index]
                if not arrival.done():
                    either: list[asyncio.Future[Any]] = [arrival, fetching]
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    if not arrival.done():
                        fetching.result()  # what stopped the fetches
                        raise AssertionError("every fetch hands its result on")
                slot = arrival.result()
                del arrivals[index]
                if not slot.reading.done():
                    await asyncio.wait([asyncio.wrap_future(slot.reading)])
                outcomes.append(self._store(deciders[index], states, slot, self._reading(deciders, slot)))
            await fetching
        finally:
            if not fetching.done():
                fetching.cancel()
                with contextlib.suppress(BaseException):
                    await fetching
        return outcomes

    def _arrived(self, pool: JobPool, deciders: Sequence[Decider], states: dict[str, SourceState], index: int,
                 result: FetchResult) -> _Slot:
        """Hand a fetched body to a worker (if it must be read); the source's slot."""
        name = deciders[index].source.name
        if not must_read(states[name], result):
            done: Future[Reading | None] = Future()
            done.set_result(None)
            return _Slot(replace(result, body=None) if result.body is not None else result, done, None)
        # A source never stored has no items yet: no need to ask.
        known = self.store.known_items([name]).get(name, {}) if name in self._stored else {}
        job = BodyJob(index, result, known)
        future = self._submit(pool, deciders, job)
        slot = _Slot(replace(result, body=None), future, job)
        future.add_done_callback(lambda f: None if f.exception() else setattr(slot, "job", None))
        return slot

    def _submit(self, pool: JobPool, deciders: Sequence[Decider], job: BodyJob) -> Future[Reading | None]:
        if not self._broken:
            try:
                return pool.submit(job)
            except BrokenProcessPool:
                self._worker_died()
        done: Future[Reading | None] = Future()
        done.set_result(_read_arrived(job, deciders))
        return done

    def _worker_died(self) -> None:
        if not self._broken:
            log.warning("a worker process died while reading feeds; reading them one at a time")
            self._broken = True

    def _reading(self, deciders: Sequence[Decider], slot: _Slot) -> Reading | None:
        """What a worker made of the slot's body (it is read here once more if the worker died)."""
        try:
            return slot.reading.result()
        except BrokenProcessPool:  # a worker was killed (out of memory?): once more, in this process
            self._worker_died()
            assert slot.job is not None
            return _read_arrived(slot.job, deciders)
        except Exception as exc:  # what the job did not foresee, as text (JobFailed)
            return FetchFailure("feed", failure_text(exc))
        finally:
            slot.job = None

    def _store(self, decider: Decider, states: dict[str, SourceState], slot: _Slot,
               reading: Reading | None) -> SourceOutcome:
        """Decide about one source and store it; its outcome, logged."""
        name = decider.source.name
        result = slot.result
        if result.failure is not None and result.failure.kind == "lease":
            # Not asked at all (the lease lapsed first): nothing to store, whoever holds it now.
            log.warning("%s: %s", name, result.failure.message)
            return SourceOutcome(name, states[name].status, notes=())
        ledger = self._ledger
        if isinstance(reading, FeedReading):
            # Only the keys this decision looks up, not the whole ledger: ids come out the same.
            ledger.know(self.store.load_ledger_keys(ledger.unknown(decider.ledger_keys(reading))))
        try:
            outcome = self.save(decider.decide(states[name], result, reading, ledger, self.rng), ledger)
        except LostLease as exc:  # another worker has it now: its fetch counts, not this one
            log.warning("%s", exc)
            return SourceOutcome(name, states[name].status, notes=())
        except Exception as exc:  # storing it failed: this source's error, not the run's
            log.debug("%s: storing failed", name, exc_info=True)
            failure = FetchFailure("store", failure_text(exc))
            outcome = self.save(decider.decide(states[name], replace(result, body=None), failure, ledger,
                                               self.rng), ledger)
        level = logging.WARNING if outcome.error else logging.INFO
        log.log(level, "%s", outcome.line())
        for note in outcome.notes:
            log.warning("%s: %s", name, note)
        return outcome

    def save(self, decision: SourceDecision[ItemRow], ledger: Ledger) -> SourceOutcome:
        """Store what ``decision`` says; its outcome, with what storing dropped."""
        state = decision.state
        if decision.listed is None:
            self.pending.append(state)
            return decision.outcome
        stamp = self.now.timestamp()
        rows = [i.entry if i.entry.entry_id == i.entry_id else i.entry._replace(entry_id=i.entry_id)
                for i in decision.items]
        source = self._full_text.get(state.name)
        if source is not None:  # an item that changed upstream keeps the article it has
            rows = with_stored_articles(self.store, self.config, source, rows)
        ledger.learn(decision.learnt)
        dropped = self.store.save_fetch(state, rows, decision.listed, seen_at=stamp,
                                        keep_at_most=decision.keep_at_most, ledger=ledger, claimed=self.claimed)
        return decision.stored(dropped)


def update_sources(config: Config, store: Store, *, now: datetime, only: Sequence[str] | None = None,
                   transport: Transport | None = None, fetch: Fetch | None = None,
                   claimed: Claimed | None = None, among: Sequence[Source] | None = None) -> list[SourceOutcome]:
    """Fetch every due source (or the ``only`` ones, due or not) and store what changed.

    ``fetch`` replaces the default one-shot fetcher (the daemon shares one across jobs).
    ``claimed``: the leases of a worker sharing the state with others; only the sources
    it holds are fetched, only when due, and each result is stored only while its lease
    is still held. ``among``: the config's sources to look at, if the caller has them
    (the daemon's job has its one source); else every one of the config's."""
    return Updater(config, store, now=now, transport=transport, fetch=fetch, claimed=claimed,
                   among=among).run(only)
