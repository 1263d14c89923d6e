"""The fetch state of each source (table ``sources``): validators, status, failures, when next due.

Reads and writes that table only; a source's items are :mod:`.items`'.
Deciding what the state becomes is :mod:`feeds.sources.schedule`'s. Runs
inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..sources.schedule import SourceState
from .codecs import decoding, from_timestamp, timestamp
from .dialects import upsert
from .schema import sources

#: States that may have a problem the health files show (``build.health.problems``): any
#: other state has none, so a generation need not read it.
_MAY_HAVE_PROBLEMS = sa.or_(sources.c.status.in_(("error", "throttled", "gone")), sources.c.moved_to.is_not(None),
                            sources.c.id_mode.in_(("link", "hash")))


def load(conn: Connection, names: Sequence[str] | None = None) -> dict[str, SourceState]:
    """The stored state of every source, or of the named ones."""
    query = sa.select(sources)
    if names is not None:
        query = query.where(sources.c.name.in_(names))
    return _states(conn, query)


def load_troubled(conn: Connection) -> dict[str, SourceState]:
    """The stored states that may have a problem to show: failing, throttled, gone, moved,
    or told apart without guids; every other source has none."""
    return _states(conn, sa.select(sources).where(_MAY_HAVE_PROBLEMS))


def last_fetch(conn: Connection) -> float | None:
    """When any source was last fetched (seconds since the epoch; None: never)."""
    value = conn.execute(sa.select(sa.func.max(sources.c.last_fetch))).scalar()
    return None if value is None else float(value)


def _states(conn: Connection, query: sa.Select[Any]) -> dict[str, SourceState]:
    rows = conn.execute(query).all()
    with decoding("sources"):
        return {r.name: SourceState(
            name=r.name, url=r.url, fetch_url=r.fetch_url, etag=r.etag, last_modified=r.last_modified,
            body_hash=r.body_hash, last_fetch=from_timestamp(r.last_fetch),
            last_success=from_timestamp(r.last_success), status=r.status, error=r.error, failures=r.failures,
            next_due=from_timestamp(r.next_due), moved_to=r.moved_to, moved_seen=r.moved_seen,
            id_mode=r.id_mode, entries=r.entries,
        ) for r in rows}


def save(conn: Connection, states: Iterable[SourceState]) -> None:
    upsert(conn, sources, [_row(s) for s in states])


def _row(state: SourceState) -> tuple[Any, ...]:
    return (state.name, state.url, state.fetch_url, state.etag, state.last_modified, state.body_hash,
            timestamp(state.last_fetch), timestamp(state.last_success), state.status, state.error, state.failures,
            timestamp(state.next_due), state.moved_to, state.moved_seen, state.id_mode, state.entries)
