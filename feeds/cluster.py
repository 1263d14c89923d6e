"""This worker's place among several ``feeds run`` processes sharing one PostgreSQL state.

Each worker has an owner id (``host:pid:random``), keeps a heartbeat row, claims due
sources in batches with a lease before fetching them (so no two workers fetch one for
the same due time), renews the leases of fetches still running, and gives them up when a fetch
ends or the worker stops. A worker killed outright leaves its leases to expire on the
database's clock; others then take its sources over. Every write of a fetch result is
fenced by the lease's token in the store (``Store.save_fetch(claimed=...)``).

This module keeps what the worker holds and asks the store; the SQL is the store's,
the scheduling (when a job runs) the daemon's. A SQLite state never gets here: it has
one writer, and ``feeds run`` on it works alone.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from .config import Config
from .store import Claimed, LeaderRow, Lease, Store, WorkerRow
from .store.hosts import HostTurns, Turn

log = logging.getLogger("feeds")


def owner_id() -> str:
    """A name for this worker no other worker has had: its machine, its pid, and chance."""
    return f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}"


class Membership:
    """This worker in the cluster: its owner id and the source leases it holds now."""

    def __init__(self) -> None:
        self.owner = owner_id()
        self._lock = threading.Lock()
        #: Each lease held, with where the store notes the leases it gave back with a write.
        self._held: dict[str, tuple[Lease, set[str]]] = {}
        #: Until when (this process's monotonic clock) each lease surely holds: the claim or
        #: renewal asked before the server started its ``seconds``.
        self._until: dict[str, float] = {}

    def claim(self, store: Store, urls: Mapping[str, str], now: datetime, *, seconds: float,
              limit: int) -> list[Claimed]:
        """Claim for ``seconds`` up to ``limit`` due sources no other worker holds, the
        longest due first (``urls``: the configured URL of each source this worker may
        fetch); one :class:`Claimed` each. Each carries its source's stored state (read
        once the lease was ours), and the store gives the lease back in the transaction
        that writes the fetch's result."""
        asked = time.monotonic()
        got = store.claim_batch(self.owner, urls, now=now, seconds=seconds, limit=limit)
        claims = []
        with self._lock:
            for lease, state in got:
                released: set[str] = set()
                self._held[lease.name] = (lease, released)
                self._until[lease.name] = asked + seconds
                claims.append(Claimed(self.owner, {lease.name: lease},
                                      {} if state is None else {lease.name: state}, released))
        return claims

    def release(self, store: Store, claimed: Claimed, *, due: datetime | None = None) -> None:
        """Give the leases of ``claimed`` up (the next claim may take them at once, or from
        ``due`` on), those the store has not given back with their write already."""
        with self._lock:
            for name, lease in claimed.leases.items():
                held = self._held.get(name)
                if held is not None and held[0] == lease:
                    del self._held[name]
                    self._until.pop(name, None)
        for lease in claimed.leases.values():
            if claimed.released is None or lease.name not in claimed.released:
                store.release_lease(self.owner, lease, due=due)

    def _holds(self, lease: Lease) -> bool:
        """Whether ``lease`` is held and not given back with its write (under the lock)."""
        held = self._held.get(lease.name)
        return held is not None and held[0] == lease and lease.name not in held[1]

    def may_ask(self, name: str) -> bool:
        """Whether source ``name``'s lease surely still holds (checked right before its
        request is sent: after a long wait for the host's turn, it may have lapsed)."""
        with self._lock:
            held = self._held.get(name)
            return held is not None and name not in held[1] and self._until.get(name, 0.0) > time.monotonic()

    def held(self) -> list[Lease]:
        with self._lock:
            return sorted(lease for lease, released in self._held.values() if lease.name not in released)

    def beat(self, store: Store, *, seconds: float) -> None:
        """Say this worker is alive and extend the leases of the fetches still running; a
        lease found lost (this worker stalled past its expiry) is forgotten: its result
        will be refused."""
        store.heartbeat(self.owner)
        held = self.held()
        if not held:
            return
        asked = time.monotonic()
        kept = set(store.renew_leases(self.owner, held, seconds=seconds))
        with self._lock:
            for lease in kept:
                if self._holds(lease):
                    self._until[lease.name] = asked + seconds
            # A lease given back meanwhile (its fetch ended) is not lost.
            lost = [lease for lease in held if lease not in kept and self._holds(lease)]
            for lease in lost:
                del self._held[lease.name]
                self._until.pop(lease.name, None)
        for lease in lost:
            log.warning("%s: lost the lease on this source (renewed too late); another worker may take it",
                        lease.name)

    def leave(self, store: Store) -> None:
        """This worker stops: every lease it holds goes back, its heartbeat row goes."""
        with self._lock:
            self._held.clear()
            self._until.clear()
        released = store.leave(self.owner)
        log.info("cluster: %s left, %d leases given back", self.owner, released)


class ClusterTurns:
    """The host turns of the cluster (``store.hosts``) as the fetcher takes them, and this
    worker's leases, which it asks about right before each request."""

    def __init__(self, turns: HostTurns, membership: Membership) -> None:
        self.turns = turns
        self.membership = membership

    def take(self, host: str) -> Turn:
        return self.turns.take(host)

    def may_ask(self, source: str) -> bool:
        return self.membership.may_ask(source)


class ClusterView(NamedTuple):
    """What ``feeds status`` shows of the workers sharing a PostgreSQL state."""

    workers: list[WorkerRow]
    leader: LeaderRow | None
    #: How long a lease lasts (``schedule.lease``): a worker silent longer is likely gone.
    lease: float


def cluster_status(config: Config) -> ClusterView | None:
    """Every worker (owner, last heartbeat, the sources it holds) and the leader with its
    term; None on a SQLite state (one process, no cluster)."""
    if not config.state_on_server:
        return None
    store = Store(config.state_target)
    try:
        return ClusterView(store.workers(), store.leader(), config.schedule.lease)
    finally:
        store.close()


def live_workers(config: Config, store: Store) -> list[WorkerRow]:
    """The ``feeds run`` workers on this state that beat within a lease: they fetch its
    sources (none on a SQLite state, where a run works alone)."""
    if not config.state_on_server:
        return []
    return [worker for worker in store.workers() if worker.silent <= config.schedule.lease]


def status_lines(view: ClusterView) -> list[str]:
    """``view`` as the lines ``feeds status`` prints."""
    leader = view.leader
    if leader is None:
        head = "no leader yet"
    elif leader.owner is None or not leader.live:
        head = f"no leader now (term {leader.term} ended)"
    else:
        head = f"leader {leader.owner}, term {leader.term}"
    lines = [f"cluster: {len(view.workers)} worker{'s' if len(view.workers) != 1 else ''}; {head}"]
    for worker in view.workers:
        note = " (silent longer than a lease: stopped?)" if worker.silent > view.lease else ""
        lines.append(f"  worker {worker.owner}: last heartbeat {worker.silent:.0f} s ago{note}, since "
                     f"{worker.started.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
        shown = ", ".join(worker.leases[:10]) + (f" and {len(worker.leases) - 10} more"
                                                  if len(worker.leases) > 10 else "")
        lines.append(f"    leases: {len(worker.leases)}" + (f" ({shown})" if shown else ""))
    return lines
