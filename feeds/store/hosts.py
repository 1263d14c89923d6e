"""Turns on remote hosts across every worker sharing one PostgreSQL state.

At most one request is in flight per host over the whole cluster: a worker takes the
host's turn before each request and gives it back after. A turn is a PostgreSQL
session advisory lock named after the host (``host:<name>``), held on a connection of
its own for the request's duration, so the server drops it at once should the worker
die. The pause after a request (``fetch.host_gap``) is kept in table ``host_turns`` as
when the host may be asked again, on the server's clock, so the next worker to take the
host waits it out too, whichever it is.

The fetcher calls :meth:`HostTurns.take` and :meth:`Turn.give_back` from threads (both
block); it never sees SQL. This module opens its own pool of connections, one per turn
held or awaited at once.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import Cancelled
from .engine import Database

#: A wait for a host's lock ends this often, to see whether the worker is stopping.
_LOCK_WAIT_MS = 5_000
_LOCK_NOT_AVAILABLE = "55P03"

_TAKE = sa.text("SELECT pg_advisory_lock(hashtextextended(:key, 0))")
_FREE_IN = sa.text("SELECT GREATEST(0, EXTRACT(EPOCH FROM free_at - now())) FROM host_turns WHERE host = :host")
_PAUSE = sa.text("INSERT INTO host_turns (host, free_at) VALUES (:host, now() + make_interval(secs => :pause)) "
                 "ON CONFLICT (host) DO UPDATE SET free_at = EXCLUDED.free_at")
_GIVE = sa.text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")


class Turn:
    """A host's turn, held by this worker until :meth:`give_back`; ``wait``: seconds the
    pause after the host's last request (by any worker) still lasts."""

    def __init__(self, db: Database, conn: Connection, host: str, wait: float) -> None:
        self._db = db
        self._conn = conn
        self.host = host
        self.wait = wait

    def give_back(self, pause: float) -> None:
        """Let the next worker ask the host, ``pause`` seconds from now at the earliest."""
        conn = self._conn
        try:
            if pause > 0:
                conn.execute(_PAUSE, {"host": self.host, "pause": pause})
            conn.execute(_GIVE, {"key": "host:" + self.host})
        except sa.exc.SQLAlchemyError as exc:
            # Not knowing whether the lock went, the connection goes: the server then drops it.
            conn.invalidate()
            raise self._db.error(exc) from None
        finally:
            conn.close()


class HostTurns:
    """The host turns of the cluster on the PostgreSQL server at ``target``; at most
    ``size`` turns held or awaited at once by this worker."""

    def __init__(self, target: str, *, size: int) -> None:
        self._db = Database(target, ours=frozenset(), pool_size=size, lock_timeout_ms=_LOCK_WAIT_MS)
        self._closed = threading.Event()

    def take(self, host: str) -> Turn:
        """Wait until no other worker (nor this one) is asking ``host``, and hold its turn."""
        conn = self._db.session()
        try:
            while True:
                if self._closed.is_set():
                    raise Cancelled("stopping", where=host)
                try:
                    conn.execute(_TAKE, {"key": "host:" + host})
                    break
                except sa.exc.OperationalError as exc:
                    if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                        raise
            wait = conn.execute(_FREE_IN, {"host": host}).scalar()
        except sa.exc.SQLAlchemyError as exc:
            conn.invalidate()
            conn.close()
            raise self._db.error(exc) from None
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        return Turn(self._db, conn, host, float(wait or 0.0))

    def close(self) -> None:
        self._closed.set()
        self._db.close()
