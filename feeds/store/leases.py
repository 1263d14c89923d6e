"""Leases on sources for workers sharing one PostgreSQL state: who may fetch a source now.

A worker claims due sources with ``FOR UPDATE SKIP LOCKED`` (two workers never get
the same row), stamps them with its owner id and a fencing token that grows by one
at every claim, and an expiry on the database's clock (``now()``), so clocks of the
workers' machines never matter. A lease past its expiry is free to take over; the
token then tells the old holder's late write from the new one's (:func:`holds`, run in
the transaction of the write). Workers also keep a heartbeat row. These tables exist
only on a PostgreSQL state (a SQLite state has one writer). This module runs
statements on the connection it is given; it never opens one or commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

leases = sa.Table(
    "source_leases", metadata,
    sa.Column("name", sa.String, primary_key=True),
    # host:pid:random of the worker holding it, or NULL when free.
    sa.Column("owner", sa.String),
    # Grows by one at each claim: a write under an older token is refused.
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
)
#: When each host may be asked again (the pause after a request, on the server's clock).
host_turns = sa.Table(
    "host_turns", metadata,
    sa.Column("host", sa.String, primary_key=True),
    sa.Column("free_at", sa.DateTime(timezone=True), nullable=False),
)
workers = sa.Table(
    "workers", metadata,
    sa.Column("owner", sa.String, primary_key=True),
    sa.Column("started", sa.DateTime(timezone=True), nullable=False),
    sa.Column("seen", sa.DateTime(timezone=True), nullable=False),
)


class Lease(NamedTuple):
    """A source claimed by one worker: write its result only while :func:`holds` says so."""

    name: str
    token: int


class Claimed(NamedTuple):
    """A worker and the leases it holds: its writes of those sources' results are fenced by them."""

    owner: str
    leases: Mapping[str, Lease]


def create(conn: Connection) -> None:
    """Create the lease tables (PostgreSQL only), inside the schema's write transaction."""
    if conn.dialect.name == "postgresql":
        metadata.create_all(conn)


_CLAIM = sa.text("""
WITH free AS (
    SELECT name FROM source_leases
    WHERE name = ANY(:names) AND (owner IS NULL OR expires <= now())
    ORDER BY name LIMIT :limit
    FOR UPDATE SKIP LOCKED)
UPDATE source_leases AS l
SET owner = :owner, token = l.token + 1, expires = now() + make_interval(secs => :seconds)
FROM free WHERE l.name = free.name
RETURNING l.name, l.token
""")


def claim(conn: Connection, owner: str, names: Sequence[str], *, seconds: float, limit: int) -> list[Lease]:
    """Claim up to ``limit`` of ``names`` that no live lease holds, for ``seconds``."""
    if not names:
        return []
    conn.execute(sa.text("INSERT INTO source_leases (name, owner, token, expires) "
                         "SELECT n, NULL, 0, to_timestamp(0) FROM unnest(CAST(:names AS text[])) AS n "
                         "ON CONFLICT (name) DO NOTHING"), {"names": list(names)})
    rows = conn.execute(_CLAIM, {"names": list(names), "limit": limit, "owner": owner, "seconds": seconds})
    return sorted(Lease(name, token) for name, token in rows)


_CLAIM_DUE = sa.text("""
WITH free AS (
    SELECT name FROM source_leases
    WHERE name = :name AND (owner IS NULL OR expires <= now())
      AND NOT EXISTS (SELECT 1 FROM sources AS s WHERE s.name = :name AND s.url = :url AND s.next_due > :now)
    FOR UPDATE SKIP LOCKED)
UPDATE source_leases AS l
SET owner = :owner, token = l.token + 1, expires = now() + make_interval(secs => :seconds)
FROM free WHERE l.name = free.name
RETURNING l.name, l.token
""")


def claim_due(conn: Connection, owner: str, name: str, url: str, *, now: float, seconds: float) -> Lease | None:
    """Claim source ``name`` for ``seconds`` if no live lease holds it and it is due at ``now``
    (seconds since the epoch, the worker's clock, as due times are): never stored, stored with
    another ``url``, or its ``next_due`` passed. None when another worker holds it or it is
    not due (another worker fetched it since)."""
    conn.execute(sa.text("INSERT INTO source_leases (name, owner, token, expires) "
                         "VALUES (:name, NULL, 0, to_timestamp(0)) ON CONFLICT (name) DO NOTHING"), {"name": name})
    row = conn.execute(_CLAIM_DUE, {"name": name, "url": url, "now": now, "owner": owner,
                                    "seconds": seconds}).first()
    return None if row is None else Lease(row[0], row[1])


def renew(conn: Connection, owner: str, held: Sequence[Lease], *, seconds: float) -> list[Lease]:
    """Extend the leases of ``held`` still ours; the ones lost are left out of the answer."""
    kept = []
    for lease in held:
        row = conn.execute(sa.text(
            "UPDATE source_leases SET expires = now() + make_interval(secs => :seconds) "
            "WHERE name = :name AND owner = :owner AND token = :token AND expires > now() RETURNING name"),
            {"seconds": seconds, "name": lease.name, "owner": owner, "token": lease.token}).first()
        if row is not None:
            kept.append(lease)
    return kept


def holds(conn: Connection, owner: str, lease: Lease) -> bool:
    """Whether ``lease`` is still ours and live, locking its row until the transaction ends
    (call it in the transaction that writes the fetch result)."""
    row = conn.execute(sa.text(
        "SELECT 1 FROM source_leases WHERE name = :name AND owner = :owner AND token = :token "
        "AND expires > now() FOR UPDATE"), {"name": lease.name, "owner": owner, "token": lease.token}).first()
    return row is not None


def release(conn: Connection, owner: str, lease: Lease) -> None:
    """Give ``lease`` up (the next claim takes it at once), if it is still ours."""
    conn.execute(sa.text("UPDATE source_leases SET owner = NULL WHERE name = :name AND owner = :owner "
                         "AND token = :token"), {"name": lease.name, "owner": owner, "token": lease.token})


def release_all(conn: Connection, owner: str) -> int:
    """Give up every lease ``owner`` holds (a worker stopping); how many there were."""
    return conn.execute(sa.text("UPDATE source_leases SET owner = NULL WHERE owner = :owner"),
                        {"owner": owner}).rowcount


def heartbeat(conn: Connection, owner: str) -> None:
    """Record that worker ``owner`` is alive (now, on the database's clock)."""
    conn.execute(sa.text("INSERT INTO workers (owner, started, seen) VALUES (:owner, now(), now()) "
                         "ON CONFLICT (owner) DO UPDATE SET seen = now()"), {"owner": owner})


def forget_worker(conn: Connection, owner: str) -> None:
    """Drop the heartbeat row of a worker that stopped cleanly."""
    conn.execute(sa.text("DELETE FROM workers WHERE owner = :owner"), {"owner": owner})
