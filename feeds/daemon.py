"""``feeds run``: keep every feed fresh. Scheduling only; the work is the pipeline's.

APScheduler 3 runs one job per source at the source's own interval (first runs
spread with jitter, so a thousand sources never fire at once, and taken from
the store, so a restart neither refetches everything nor forgets anything), and
a generation job that runs shortly after fetches brought something new
(debounced and coalesced) and on its own interval. No job ever runs twice at
once; runs missed while the machine slept are coalesced into one.

Signals: SIGTERM and SIGINT stop scheduling, cancel fetches in flight, let a
generation that is writing finish, and exit 0; SIGHUP reloads the config file
(an invalid one is reported and the running one kept), and regenerates at once
only when a setting that shapes the output changed (not the schedule, the fetch
settings or a source's interval).

Everything else is behind one call: ``sources.update.update_sources`` fetches
and stores a source, ``pipeline.generate`` generates, publishes and announces to
the WebSub hub; ``--serve`` runs ``output.serve.BackgroundServer`` beside them,
which also answers ``/metrics`` with what ``metrics.Metrics`` counted.
This module itself never fetches, parses, renders or writes a file; it keeps a
store open only to read when each source is due, and to hand the updater the
database a generation reads (reopened when the file at its path is another).

All fetch jobs share one fetcher on one event loop thread, so the global limit
and the per-host politeness hold across jobs.

On a PostgreSQL state, several ``feeds run`` processes (on one machine or many) share
the work (``cluster.Membership``), and no job per source is scheduled: each worker offers
its config's sources to the store (when each is due, as its state says), then a claim
thread asks the database for up to a batch of due sources no other worker holds, the
longest due first (``FOR UPDATE SKIP LOCKED``: claims at once never overlap), hands each
to a fetch thread, and asks again as fetches end, keeping at most ``fetch.concurrency``
sources claimed; when nothing is due it looks again every second. Each write of a result
moves its source's due time on and gives the lease back in one transaction. A heartbeat
thread renews the leases of fetches still running; a stopping worker gives its leases
back. The shared fetcher then also takes each host's turn on the server (``store.hosts``):
one request in flight per host over every worker. One worker at a time generates: the
leader, elected on the server with a term (renewed by the heartbeat thread, given up on
SIGTERM); what it publishes is fenced by its term. Workers note on the server which
sources changed; the leader looks for notes every second and generates
``schedule.debounce`` after it finds some. A new leader
generates at once; outputs are byte-stable, so it rewrites nothing that did not change.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import faulthandler
import logging
import random
import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from . import workers
from .build.keys import snapshot_key
from .cluster import ClusterTurns, Membership
from .config import Config, Source, load_config
from .errors import Cancelled, FeedsError, LostLeadership
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import PATH as METRICS_PATH
from .metrics import Metrics
from .output.serve import BackgroundServer
from .pipeline import generate
from .sources.decide import SourceOutcome
from .sources.fetch import Fetcher, FetchSettings
from .sources.results import FetchRequest, FetchResult
from .sources.schedule import SourceState
from .sources.update import update_sources
from .store import Claimed, LeaderTerm, Store
from .store.hosts import HostTurns

log = logging.getLogger("feeds")

#: At most this many sources claimed at once by one worker (``fetch.concurrency`` says how many).
MAX_CLAIMED = 256
#: Seconds between looks for due sources while none is, and at most between claims.
CLAIM_POLL = 1.0
CLAIM_PAUSE = 0.2


def output_changed(running: Config, loaded: Config) -> bool:
    """Whether a reload from ``running`` to ``loaded`` changes what a generation would write:
    the settings the feeds are made with (``build.keys.snapshot_key``: not the schedule, the
    fetch settings nor a source's ``every``), or the state database they are made from."""
    return snapshot_key(running) != snapshot_key(loaded) or running.state_target != loaded.state_target


def brought_news(outcomes: Sequence[SourceOutcome]) -> bool:
    """Whether a fetch job stored something a generation would publish."""
    return any(o.new or o.changed for o in outcomes)


def moved_run_time(scheduled: datetime | None, due: datetime | None, every: float,
                   now: datetime) -> datetime | None:
    """When a fetch job should run instead of ``scheduled``, as the stored state says the
    source is ``due`` (backoff, Retry-After, ttl); None to leave it. Differences under
    half the interval are the trigger's own jitter and are left alone."""
    if due is None or scheduled is None or abs((scheduled - due).total_seconds()) <= every * 0.5:
        return None
    return max(due, now + timedelta(seconds=1))


class SharedFetcher:
    """One fetcher on one event loop thread, used by every fetch job."""

    def __init__(self, config: Config, metrics: Metrics, membership: Membership) -> None:
        self.metrics = metrics
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fetch-loop", daemon=True)
        settings = FetchSettings.from_config(config.fetch)
        #: On a PostgreSQL state, each host's turn is taken across every worker sharing it.
        self.turns = HostTurns(config.state, size=settings.concurrency) if config.state_on_server else None
        self.fetcher = Fetcher(settings, shared=None if self.turns is None else ClusterTurns(self.turns, membership))
        self.pending: set[concurrent.futures.Future[list[FetchResult]]] = set()
        self.lock = threading.Lock()
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fetcher.open(), self.loop).result()

    def fetch(self, requests: Sequence[FetchRequest]) -> list[FetchResult]:
        future = asyncio.run_coroutine_threadsafe(self.fetcher.fetch_all(requests), self.loop)
        with self.lock:
            self.pending.add(future)
        try:
            results = future.result()
            self.metrics.fetched(results)
            return results
        finally:
            with self.lock:
                self.pending.discard(future)

    def cancel(self) -> None:
        with self.lock:
            for future in self.pending:
                future.cancel()

    def close(self) -> None:
        self.cancel()
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(self.fetcher.aclose(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()
        if self.turns is not None:
            self.turns.close()


class Daemon:
    """``feeds run``: the scheduler and its jobs (one fetch job per source, one generation
    job), the config they run with, and what a signal changes."""

    def __init__(self, config_path: Path, config: Config, *, serve: tuple[str, int] | None = None) -> None:
        self.config_path = config_path
        self.config = config
        self.serve = serve
        self.server: BackgroundServer | None = None
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self.generate_lock = threading.Lock()
        self.soon_lock = threading.Lock()
        self.rng = random.Random()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=32),
                       "generate": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.metrics = Metrics()
        self.store_lock = threading.Lock()
        self.store = Store(config.state_target)
        self.store_file = _identity(config.state_target)
        self.store_target = config.state_target
        #: Stores of state databases no longer in use (moved by a reload, or aside by another
        #: run's --rebuild-state); jobs may still be using them.
        self.old_stores: list[Store] = []
        #: This worker among others on a PostgreSQL state (unused on a SQLite one).
        self.cluster = Membership()
        self.fetcher = SharedFetcher(config, self.metrics, self.cluster)
        #: The generation leadership's term this worker holds (None: another leads).
        self.term: LeaderTerm | None = None
        self._beat_store: Store | None = None
        self._beat_target = ""
        #: The sources of a config by name, made for the last config asked about.
        self._sources: tuple[Config | None, dict[str, Source]] = (None, {})
        #: The enabled sources' URLs of a config by name (for claims), made for the last one asked about.
        self._urls: tuple[Config | None, dict[str, str]] = (None, {})
        #: Set when a claimed source's fetch ends (room for another claim).
        self.job_ended = threading.Event()

    def current_store(self) -> Store:
        """The store of the configured state database, reopened when the file at its path
        is no longer the one open: fetches must be stored where generations read."""
        target = self.config.state_target
        with self.store_lock:
            if isinstance(target, str):  # on a server: reopened only when the URL changes
                if self.store_target != target:
                    store = Store(target)
                    self.old_stores.append(self.store)
                    self.store, self.store_file, self.store_target = store, None, target
                return self.store
            path = target
            if self.store.path != path or _identity(path) != self.store_file:
                store = Store(path)
                self.old_stores.append(self.store)
                self.store, self.store_file, self.store_target = store, _identity(path), path
            return self.store

    # -- jobs ------------------------------------------------------------------

    def fetch_job(self, name: str) -> None:
        if self.stopping.is_set():
            return
        config = self.config
        try:
            store = self.current_store()
            source = self.source_named(config, name)
            outcomes = update_sources(config, store, now=datetime.now(UTC), only=[name],
                                      fetch=self.fetcher.fetch, among=[source] if source is not None else [])
        except concurrent.futures.CancelledError:
            return
        except FeedsError as exc:
            log.error("%s: %s", name, exc)
            return
        except Exception:
            log.exception("%s: the fetch job failed", name)
            return
        self.metrics.updated(outcomes)
        due = next((o.next_due for o in outcomes if o.next_due is not None), None)
        job = self.scheduler.get_job(f"fetch:{name}")
        if job is not None and not self.stopping.is_set():
            source = self.source_named(config, name)
            when = moved_run_time(job.next_run_time, due, source.every if source is not None else 60.0,
                                  datetime.now(UTC))
            if when is not None:
                job.modify(next_run_time=when)
        if brought_news(outcomes):
            self.generate_soon()

    def source_named(self, config: Config, name: str) -> Source | None:
        """``config``'s source ``name``: looked up in a table made once per config (not at
        every job: a config may have thousands of sources)."""
        made = self._sources
        if made[0] is not config:
            made = self._sources = (config, config.sources_by_name)
        return made[1].get(name)

    def source_urls(self, config: Config) -> dict[str, str]:
        """The URL of each enabled source of ``config`` by name (made once per config)."""
        made = self._urls
        if made[0] is not config:
            made = self._urls = (config, {s.name: s.url for s in config.sources if s.enabled})
        return made[1]

    def claim_forever(self) -> None:
        """The claim thread (PostgreSQL state): keep up to ``fetch.concurrency`` due sources
        claimed and being fetched, asking the store for a batch whenever at least a quarter
        of that room is free (or some is, and nothing was asked for a while), and every
        second while nothing is due."""
        jobs = concurrent.futures.ThreadPoolExecutor(max_workers=MAX_CLAIMED, thread_name_prefix="fetch")
        running: set[concurrent.futures.Future[None]] = set()
        asked = 0.0
        try:
            while not self.stopping.is_set():
                self.job_ended.clear()
                running = {job for job in running if not job.done()}
                config = self.config
                size = min(max(config.fetch.concurrency, 1), MAX_CLAIMED)
                room = size - len(running)
                if room <= 0 or (room < max(1, size // 4) and time.monotonic() - asked < CLAIM_PAUSE):
                    self.job_ended.wait(CLAIM_PAUSE)
                    continue
                asked = time.monotonic()
                try:
                    store = self.current_store()
                    claims = self.cluster.claim(store, self.source_urls(config), datetime.now(UTC),
                                                seconds=config.schedule.lease, limit=room)
                except FeedsError as exc:
                    log.warning("cluster: could not claim sources: %s", exc)
                    claims = []
                for claimed in claims:
                    job = jobs.submit(self.fetch_claimed, store, claimed)
                    job.add_done_callback(lambda _: self.job_ended.set())
                    running.add(job)
                if len(claims) < room:  # nothing more is due now
                    self.stopping.wait(CLAIM_POLL)
        finally:
            jobs.shutdown(wait=True, cancel_futures=True)

    def fetch_claimed(self, store: Store, claimed: Claimed) -> None:
        """Fetch the source of ``claimed`` and store the result under its lease; a fetch that
        stored nothing gives the lease back with the source due again a lease later (a
        stopping worker's: due at once, for another worker to take)."""
        config = self.config
        outcomes: list[SourceOutcome] = []
        try:
            for name in claimed.leases:
                source = self.source_named(config, name)
                if source is None or self.stopping.is_set():
                    continue
                outcomes += update_sources(config, store, now=datetime.now(UTC), only=[name],
                                           fetch=self.fetcher.fetch, claimed=claimed, among=[source])
        except concurrent.futures.CancelledError:
            pass
        except FeedsError as exc:
            log.error("%s: %s", ", ".join(claimed.leases), exc)
        except Exception:
            log.exception("%s: the fetch job failed", ", ".join(claimed.leases))
        finally:
            again = None if self.stopping.is_set() else datetime.now(UTC) + timedelta(seconds=config.schedule.lease)
            self._release(store, claimed, due=again)
        self.metrics.updated(outcomes)
        if brought_news(outcomes) and self.term is not None:
            self.generate_soon()  # other workers' news reach the leader as notes on the server

    def _release(self, store: Store, claimed: Claimed, *, due: datetime | None = None) -> None:
        try:
            self.cluster.release(store, claimed, due=due)
        except FeedsError as exc:  # it expires on its own
            log.warning("cluster: could not give a lease back: %s", exc)

    def beat_store(self) -> Store:
        """A store of the heartbeat thread's own: renewing leases and the term must never
        wait for a connection while the fetch jobs use every one of the main store's."""
        with self.store_lock:
            target = self.config.state
            if self._beat_store is None or self._beat_target != target:
                if self._beat_store is not None:
                    self.old_stores.append(self._beat_store)
                self._beat_store, self._beat_target = Store(target), target
            return self._beat_store

    def beat(self, *, renew: bool = True) -> None:
        """Say this worker is alive and (``renew``) renew its leases; renew its term or try
        for the leadership."""
        store = self.beat_store()
        lease = self.config.schedule.lease
        if renew:
            self.cluster.beat(store, seconds=lease)
        if self.stopping.is_set():
            return
        held = self.term
        term = store.lead(self.cluster.owner, seconds=lease, term=held)
        if term == held:
            return
        self.term = term
        if held is not None:
            log.warning("cluster: no longer leading (term %d ended); generating no more", held.number)
        if term is not None:
            log.info("cluster: leading, term %d", term.number)
            self.generate_soon()

    def beat_forever(self) -> None:
        """The heartbeat thread: renew the leases a few times per lease, and try for a free
        leadership every second (a leader that gave it up is followed at once)."""
        renewed = time.monotonic()
        while not self.stopping.wait(min(1.0, self.config.schedule.lease / 4)):
            renew = time.monotonic() - renewed >= self.config.schedule.lease / 4
            if renew:
                renewed = time.monotonic()
            try:
                self.beat(renew=renew)
            except FeedsError as exc:
                log.warning("cluster: heartbeat failed: %s", exc)
            except Exception:
                log.exception("cluster: heartbeat failed")

    def watch_changes(self) -> None:
        """The leader's look for sources other workers noted as changed."""
        if self.term is None or self.stopping.is_set():
            return
        try:
            if self.current_store().changed_sources():
                self.generate_soon()
        except FeedsError as exc:
            log.warning("cluster: %s", exc)

    def generate_soon(self) -> None:
        """Regenerate shortly; requests arriving meanwhile join the same run."""
        with self.soon_lock:
            if self.stopping.is_set() or self.scheduler.get_job("generate-soon") is not None:
                return
            when = datetime.now(UTC) + timedelta(seconds=self.config.schedule.debounce)
            self.scheduler.add_job(self.generate_job, "date", run_date=when, id="generate-soon",
                                   executor="generate", replace_existing=True)

    def generate_job(self) -> None:
        if self.stopping.is_set():
            return
        with self.generate_lock:
            config = self.config
            started = datetime.now(UTC)
            clock = time.monotonic()
            term = self.term
            changed: list[str] = []
            try:
                if config.state_on_server:
                    if term is None:
                        return  # another worker leads
                    # The notes go first: whatever they noted is stored already, so this run reads it.
                    changed = self.current_store().take_changes()
                try:
                    report = generate(config, offline=True, cancel=self.stopping.is_set, term=term)
                except BaseException:
                    if changed:  # not published: noted again for the next generation, whoever leads
                        with contextlib.suppress(FeedsError):
                            self.current_store().note_changes(changed)
                    raise
            except Cancelled:
                self.metrics.generation_ended("cancelled", time.monotonic() - clock)
                log.info("generate: stopped early, nothing written")
                return
            except LostLeadership as exc:
                self.metrics.generation_ended("cancelled", time.monotonic() - clock)
                log.warning("generate: %s; nothing more published", exc.message)
                return
            except FeedsError as exc:
                self.metrics.generation_ended("failed", time.monotonic() - clock)
                log.error("generate: %s", exc)
                return
            except Exception:
                self.metrics.generation_ended("failed", time.monotonic() - clock)
                log.exception("generate: failed")
                return
            seconds = (datetime.now(UTC) - started).total_seconds()
            self.metrics.generated(seconds=time.monotonic() - clock, entries=report.entries, feeds=report.feeds,
                                   written=len(report.written), removed=len(report.removed),
                                   finished_at=time.time())
            if config.output.s3 is not None:
                self.metrics.published(report.bucket)
            log.info("generate: %d entries, %d feed files (%d written, %d removed), %d warnings in %.1fs%s",
                     report.entries, report.feeds, len(report.written), len(report.removed),
                     len(report.warnings), seconds, _term_note(term, changed))

    # -- scheduling --------------------------------------------------------------

    def schedule_all(self, *, generate_now: bool = True) -> None:
        """Make the jobs match the config: add, move or drop one job per source; the
        generation job runs at once, or (``generate_now`` False) keeps its turn."""
        config = self.config
        store = self.current_store()
        states = store.load_sources()
        now = datetime.now(UTC)
        wanted = set()
        if config.state_on_server:
            # Claimed in batches by the claim thread, not a job each.
            store.offer_sources({source.name: _due(states.get(source.name), source.url)
                                 for source in config.sources if source.enabled})
        for source in config.sources:
            if not source.enabled:
                continue
            if config.state_on_server:
                wanted.add(f"fetch:{source.name}")
                continue
            job_id = f"fetch:{source.name}"
            wanted.add(job_id)
            state = states.get(source.name)
            if state is not None and state.url == source.url and state.next_due is not None:
                first = max(state.next_due, now)
            else:
                # Never fetched: spread first fetches over the interval (at most a minute).
                first = now + timedelta(seconds=self.rng.uniform(0, min(source.every, 60.0)))
            trigger = IntervalTrigger(seconds=source.every, jitter=min(source.every * 0.1, 300), timezone=UTC)
            job = self.scheduler.get_job(job_id)
            if job is None:
                self.scheduler.add_job(self.fetch_job, trigger, args=[source.name], id=job_id,
                                       next_run_time=first)
            else:
                job.modify(trigger=trigger, next_run_time=job.next_run_time or first)
        for job in self.scheduler.get_jobs():
            if job.id.startswith("fetch:") and (job.id not in wanted or config.state_on_server):
                job.remove()
        self.metrics.scheduled(job_id.removeprefix("fetch:") for job_id in wanted)
        if config.state_on_server and self.scheduler.get_job("watch-changes") is None:
            self.scheduler.add_job(self.watch_changes, IntervalTrigger(seconds=1.0, timezone=UTC),
                                   id="watch-changes", next_run_time=now)
        every = IntervalTrigger(seconds=config.schedule.generate, timezone=UTC)
        job = self.scheduler.get_job("generate")
        if generate_now or job is None or job.next_run_time is None:
            self.scheduler.add_job(self.generate_job, every, id="generate", executor="generate",
                                   replace_existing=True, next_run_time=now)
        else:
            # A shorter interval brings the next turn closer; a longer one never delays it.
            job.modify(trigger=every,
                       next_run_time=min(job.next_run_time, now + timedelta(seconds=config.schedule.generate)))

    def reload(self) -> None:
        try:
            config = load_config(self.config_path)
        except FeedsError as exc:
            log.error("reload: %s; keeping the running configuration", exc)
            return
        running = self.config
        if config.state_on_server != running.state_on_server:
            # Working beside other workers (leases, host turns, the leadership) starts with the process.
            log.error("reload: moving the state between a SQLite file and a PostgreSQL server needs a restart; "
                      "keeping the running configuration")
            return
        self.config = config
        try:
            self.current_store()
        except FeedsError as exc:
            self.config = running
            log.error("reload: %s; keeping the running configuration", exc)
            return
        if self.server is not None and config.output_dir != running.output_dir:
            # The old folder is left as it is: nothing published there is removed.
            self.server.set_root(config.output_dir)
            log.info("serve: now %s (%s left as it was)", config.output_dir, running.output_dir)
        self.schedule_all(generate_now=output_changed(running, config))
        log.info("reload: %s loaded, %d sources", self.config_path, len(config.sources))

    # -- the process -----------------------------------------------------------

    def run(self) -> int:
        workers.use_processes(False)
        # A job still running when its next turn comes is simply not started twice;
        # APScheduler would say so at every tick.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        server = None
        if self.serve is not None:
            host, port = self.serve
            metrics = {METRICS_PATH.lstrip("/"): lambda: (self.metrics.exposition(), METRICS_TYPE)}
            server = self.server = BackgroundServer(self.config.output_dir, host, port, endpoints=metrics)
            log.info("serve: http://%s:%d/ (%s; metrics at %s)", host, server.port, self.config.output_dir,
                     METRICS_PATH)

        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.stopping.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: where is every thread?
        beating = None
        if self.config.state_on_server:
            self.beat()
            log.info("cluster: working as %s (leases of %gs)", self.cluster.owner, self.config.schedule.lease)
            beating = threading.Thread(target=self.beat_forever, name="heartbeat", daemon=True)
            beating.start()
        self.scheduler.start()
        self.schedule_all()
        claiming = None
        if self.config.state_on_server:
            claiming = threading.Thread(target=self.claim_forever, name="claim", daemon=True)
            claiming.start()
        log.info("run: %d sources scheduled; generating every %ss", len(self.config.sources),
                 f"{self.config.schedule.generate:g}")
        while not self.stopping.wait(0.2):
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
        log.info("run: stopping")
        self.scheduler.shutdown(wait=False)
        self.fetcher.cancel()
        if claiming is not None:  # its fetches end, cancelled, and give their leases back
            self.job_ended.set()
            claiming.join(timeout=30)
        # A generation that is writing files finishes; nothing new starts.
        if self.generate_lock.acquire(timeout=60):
            self.generate_lock.release()
        self.fetcher.close()
        if beating is not None:
            beating.join(timeout=10)
            try:
                if self.term is not None:
                    self.beat_store().resign(self.term)
                    log.info("cluster: gave up the leadership (term %d)", self.term.number)
                    self.term = None
                self.cluster.leave(self.beat_store())
            except FeedsError as exc:  # the leases expire on their own
                log.warning("cluster: could not give the leases back: %s", exc)
        if server is not None:
            server.stop()
        for store in [*self.old_stores, self.store, *([self._beat_store] if self._beat_store else [])]:
            store.close()
        log.info("run: stopped")
        return 0


def _due(state: SourceState | None, url: str) -> datetime | None:
    """When a source whose stored state is ``state`` is due (None: now, never fetched at ``url``)."""
    return state.next_due if state is not None and state.url == url else None


def _term_note(term: LeaderTerm | None, changed: Sequence[str]) -> str:
    """What a leader's generation log line adds: its term and the sources noted as changed."""
    if term is None:
        return ""
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return f" (term {term.number}" + (f"; changed: {shown})" if changed else ")")


def _identity(path: Path | str) -> tuple[int, int] | None:
    """Which file is at ``path`` (device and inode), or None when there is none (or the
    state is on a server)."""
    if isinstance(path, str):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def run_daemon(config_path: Path, config: Config, serve: tuple[str, int] | None = None) -> int:
    return Daemon(config_path, config, serve=serve).run()



