"""What ``feeds run --serve`` tells a Prometheus server at ``/metrics``.

One :class:`Metrics` per daemon, on its own registry (nothing process-wide, so
two daemons in one process, or tests, never mix their counts). The daemon tells
it what each fetch brought, what each update stored and what each generation
wrote; the server asks it for the text exposition on each scrape.

Names and labels are fixed here, so dashboards can rely on them:

- ``feeds_fetches_total{result}``: fetches by result — ``ok`` (a body came),
  ``not_modified``, ``throttled`` (429/503 with Retry-After), or the failure's
  kind (``timeout``, ``http``, ``gone``, ``too_large``, ... as listed in
  ``sources.results.FailureKind``, spaces made underscores);
- ``feeds_fetch_duration_seconds``: how long each fetch's requests took (waiting
  for the host's turn not included);
- ``feeds_items_total{change}``: items stored, ``new`` or ``changed``;
- ``feeds_sources`` and ``feeds_sources_failing``: sources scheduled, and those
  whose last update failed (an error, throttled or gone);
- ``feeds_generations_total{result}`` (``ok``, ``failed``, ``cancelled``) and
  ``feeds_generation_duration_seconds``;
- ``feeds_files_written_total`` and ``feeds_files_removed_total``: files the
  publisher wrote (changed bytes only) and removed;
- ``feeds_entries`` and ``feeds_feed_files``: the last generation's entries and
  feed files; ``feeds_last_generation_timestamp_seconds``: when one last succeeded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .sources.decide import SourceOutcome
from .sources.results import FetchResult

#: The Content-Type of the text exposition format.
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Where the server answers with the metrics.
PATH = "/metrics"

#: Statuses of an update that count a source as failing.
FAILING = frozenset({"error", "throttled", "gone"})

FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
GENERATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def fetch_result(result: FetchResult) -> str:
    """The ``result`` label of one fetch."""
    if result.status in (429, 503) and result.retry_after is not None:
        return "throttled"
    if result.failure is not None:
        return result.failure.kind.replace(" ", "_")
    if result.not_modified:
        return "not_modified"
    return "ok"


class Metrics:
    """The counters of one running daemon, and their exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.fetches = Counter("feeds_fetches", "Fetches of sources, by result.", ["result"], registry=r)
        self.fetch_seconds = Histogram("feeds_fetch_duration_seconds",
                                       "Seconds each fetch's requests took (host turns not included).",
                                       buckets=FETCH_BUCKETS, registry=r)
        self.items = Counter("feeds_items", "Items stored from sources, new or changed.", ["change"], registry=r)
        for change in ("new", "changed"):
            self.items.labels(change)
        self.sources = Gauge("feeds_sources", "Sources scheduled.", registry=r)
        self.failing = Gauge("feeds_sources_failing",
                             "Sources whose last update failed (error, throttled or gone).", registry=r)
        self.generations = Counter("feeds_generations", "Generations, by result.", ["result"], registry=r)
        for result in ("ok", "failed", "cancelled"):
            self.generations.labels(result)
        self.generation_seconds = Histogram("feeds_generation_duration_seconds", "Seconds each generation took.",
                                            buckets=GENERATION_BUCKETS, registry=r)
        self.written = Counter("feeds_files_written", "Files the publisher wrote (changed bytes only).",
                               registry=r)
        self.removed = Counter("feeds_files_removed", "Files the publisher removed.", registry=r)
        self.entries = Gauge("feeds_entries", "Entries in the last generation.", registry=r)
        self.feed_files = Gauge("feeds_feed_files", "Feed files of the last generation.", registry=r)
        self.last_generation = Gauge("feeds_last_generation_timestamp_seconds",
                                     "When a generation last succeeded (Unix time).", registry=r)
        self._lock = threading.Lock()
        self._failing: set[str] = set()

    # -- what the daemon tells -----------------------------------------------------

    def scheduled(self, names: Iterable[str]) -> None:
        """The sources now scheduled: the ones no longer there stop counting as failing."""
        wanted = set(names)
        with self._lock:
            self._failing &= wanted
            self.sources.set(len(wanted))
            self.failing.set(len(self._failing))

    def fetched(self, results: Sequence[FetchResult]) -> None:
        with self._lock:
            for result in results:
                self.fetches.labels(fetch_result(result)).inc()
                self.fetch_seconds.observe(max(result.seconds, 0.0))

    def updated(self, outcomes: Sequence[SourceOutcome]) -> None:
        with self._lock:
            for outcome in outcomes:
                if outcome.new:
                    self.items.labels("new").inc(outcome.new)
                if outcome.changed:
                    self.items.labels("changed").inc(outcome.changed)
                if outcome.status in FAILING:
                    self._failing.add(outcome.name)
                else:
                    self._failing.discard(outcome.name)
            self.failing.set(len(self._failing))

    def generated(self, *, seconds: float, entries: int, feeds: int, written: int, removed: int,
                  finished_at: float) -> None:
        with self._lock:
            self._generated(seconds, entries, feeds, written, removed, finished_at)

    def _generated(self, seconds: float, entries: int, feeds: int, written: int, removed: int,
                   finished_at: float) -> None:
        self.generations.labels("ok").inc()
        self.generation_seconds.observe(seconds)
        self.written.inc(written)
        self.removed.inc(removed)
        self.entries.set(entries)
        self.feed_files.set(feeds)
        self.last_generation.set(finished_at)

    def generation_ended(self, result: str, seconds: float) -> None:
        """A generation that did not finish: ``failed`` or ``cancelled``."""
        with self._lock:
            self.generations.labels(result).inc()
            self.generation_seconds.observe(seconds)

    # -- what a scrape gets ------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format, taken while no update is half done (a fetch's count and its duration agree)."""
        with self._lock:
            return bytes(generate_latest(self.registry))
