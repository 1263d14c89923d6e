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


def load(conn: Connection, names: Sequence[str] | None = None) -> dict[str, SourceState]:
    """The stored state of every source, or of the named ones."""
    query = sa.select(sources)
    if names is not None:
        query = query.where(sources.c.name.in_(names))
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
