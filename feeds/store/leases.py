"""Leases for workers sharing one PostgreSQL state: who may fetch a source now, who generates.

A worker claims due sources with ``FOR UPDATE SKIP LOCKED`` (two workers never get
the same row), stamps them with its owner id and a fencing token that grows by one
at every claim, and an expiry on the database's clock (``now()``), so clocks of the
workers' machines never matter. A lease past its expiry is free to take over; the
token then tells the old holder's late write from the new one's (:func:`holds`, run in
the transaction of the write). Workers also keep a heartbeat row.

Generation has one leader at a time: a row in ``leadership`` with an owner, an expiry and
a term that grows by one at every change of hands. The leader renews it; a write made
for the leader is fenced by its term (:func:`holds_term`, in the write's transaction, which
also keeps a takeover waiting until that transaction ends). Workers note in
``source_changes`` which sources brought new or changed items, in the transaction that
stores them; the leader takes the notes when it generates; ``item_versions`` says that
items changed without a row every write locks. These tables exist
only on a PostgreSQL state (a SQLite state has one writer). This module runs
statements on the connection it is given; it never opens one or commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..sources.schedule import SourceState

metadata = sa.MetaData()

leases = sa.Table(
    "source_leases", metadata,
    sa.Column("name", sa.String, primary_key=True),
    # host:pid:random of the worker holding it, or NULL when free.
    sa.Column("owner", sa.String),
    # Grows by one at each claim: a write under an older token is refused.
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
    # When the source is next due, in seconds since the epoch on the workers' clocks (as the
    # state's ``next_due``): what a batched claim orders by. Kept in step with the stored
    # state by the write of each fetch; never later than it (a claim finding it early
    # reads the state, gives the lease back and moves it on).
    sa.Column("due", sa.Float, nullable=False, server_default="0"),
    sa.Index("source_leases_due", "due"),
)
#: When each host may be asked again (the pause after a request, on the server's clock).
host_turns = sa.Table(
    "host_turns", metadata,
    sa.Column("host", sa.String, primary_key=True),
    sa.Column("free_at", sa.DateTime(timezone=True), nullable=False),
)
leadership = sa.Table(
    "leadership", metadata,
    sa.Column("role", sa.String, primary_key=True),
    sa.Column("owner", sa.String),
    # Grows by one each time another term starts: a write under an older term is refused.
    sa.Column("term", sa.BigInteger, nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
)
#: Sources whose items changed since the leader last generated (one row each).
source_changes = sa.Table(
    "source_changes", metadata,
    sa.Column("name", sa.String, primary_key=True),
)
#: How often each source's items changed (a row each, "" for changes of no one source):
#: their sum is the items' version on a PostgreSQL state. One row that every worker's
#: writes bumped would hold each write up until the one before it commits.
item_versions = sa.Table(
    "item_versions", metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
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


class LeaderTerm(NamedTuple):
    """A term of the generation leadership: who holds it and its number. Everything
    published under it is fenced by it (:func:`holds_term`)."""

    owner: str
    number: int


class LeaderRow(NamedTuple):
    """The leadership as stored: the last holder (None once given up), its term, when it
    ends, and whether it is still live on the server's clock."""

    owner: str | None
    term: int
    expires: datetime
    live: bool


class WorkerRow(NamedTuple):
    """A worker's heartbeat row, and the sources it holds leases on now."""

    owner: str
    started: datetime
    seen: datetime
    #: Seconds since its last heartbeat, on the server's clock.
    silent: float
    leases: tuple[str, ...]


class Claimed(NamedTuple):
    """A worker and the leases it holds: its writes of those sources' results are fenced by them."""

    owner: str
    leases: Mapping[str, Lease]
    #: The stored states of the claimed sources, read in the claim's transaction once the
    #: lease was ours (a source never stored has none); None: not read with the claim.
    states: Mapping[str, SourceState] | None = None
    #: Where the store notes the sources whose lease it gave back in the transaction that
    #: wrote their fetch result (the worker then need not give them back); None: not noted.
    released: set[str] | None = None


def create(conn: Connection) -> None:
    """Create the lease tables (PostgreSQL only), inside the schema's write transaction."""
    if conn.dialect.name == "postgresql":
        metadata.create_all(conn)
        # A table made before claims came in batches lacks the due time: everything is due
        # once, and each claim then finds the stored state and moves the time on.
        conn.execute(sa.text("ALTER TABLE source_leases ADD COLUMN IF NOT EXISTS due double precision "
                             "NOT NULL DEFAULT 0"))
        conn.execute(sa.text("CREATE INDEX IF NOT EXISTS source_leases_due ON source_leases (due)"))


def offer(conn: Connection, dues: Mapping[str, float]) -> None:
    """Make the sources of ``dues`` (name -> when due, as far as the caller knows) the ones
    a batched claim chooses from: each gets a row if it has none, and a due time that is
    never later than it was (an earlier one is only a claim that finds the source fetched);
    rows of sources not among them go, unless a live lease holds them."""
    names = list(dues)
    conn.execute(sa.text(
        "INSERT INTO source_leases (name, owner, token, expires, due) "
        "SELECT n, NULL, 0, to_timestamp(0), d FROM unnest(CAST(:names AS text[]), "
        "CAST(:dues AS double precision[])) AS c(n, d) "
        "ON CONFLICT (name) DO UPDATE SET due = EXCLUDED.due WHERE EXCLUDED.due < source_leases.due"),
        {"names": names, "dues": [dues[n] for n in names]})
    conn.execute(sa.text("DELETE FROM source_leases WHERE name NOT IN (SELECT unnest(CAST(:names AS text[]))) "
                         "AND (owner IS NULL OR expires <= now())"), {"names": names})


_CLAIM_BATCH = sa.text("""
WITH free AS (
    SELECT name FROM source_leases
    WHERE due <= :now AND (owner IS NULL OR expires <= now())
    ORDER BY due, name LIMIT :limit
    FOR UPDATE SKIP LOCKED)
UPDATE source_leases AS l
SET owner = :owner, token = l.token + 1, expires = now() + make_interval(secs => :seconds)
FROM free WHERE l.name = free.name
RETURNING l.name, l.token, l.due
""")


def claim_batch(conn: Connection, owner: str, *, now: float, seconds: float, limit: int) -> list[Lease]:
    """Claim for ``seconds`` up to ``limit`` of the offered sources due at ``now`` (seconds
    since the epoch, the worker's clock) that no live lease holds, the longest due first;
    rows another claim has locked are skipped, so claims at once are disjoint."""
    rows = conn.execute(_CLAIM_BATCH, {"now": now, "limit": limit, "owner": owner, "seconds": seconds}).all()
    return [Lease(name, token) for name, token, _ in sorted(rows, key=lambda r: (r[2], r[0]))]


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
    if not held:
        return []
    rows = conn.execute(sa.text(
        "UPDATE source_leases SET expires = now() + make_interval(secs => :seconds) "
        "WHERE owner = :owner AND expires > now() AND (name, token) IN "
        "(SELECT * FROM unnest(CAST(:names AS text[]), CAST(:tokens AS bigint[]))) RETURNING name, token"),
        {"seconds": seconds, "owner": owner, "names": [lease.name for lease in held],
         "tokens": [lease.token for lease in held]})
    kept = {Lease(name, token) for name, token in rows}
    return [lease for lease in held if lease in kept]


def holds(conn: Connection, owner: str, lease: Lease) -> bool:
    """Whether ``lease`` is still ours and live, locking its row until the transaction ends
    (call it in the transaction that writes the fetch result)."""
    row = conn.execute(sa.text(
        "SELECT 1 FROM source_leases WHERE name = :name AND owner = :owner AND token = :token "
        "AND expires > now() FOR UPDATE"), {"name": lease.name, "owner": owner, "token": lease.token}).first()
    return row is not None


def release(conn: Connection, owner: str, lease: Lease, *, due: float | None = None) -> None:
    """Give ``lease`` up (the next claim takes it at once), if it is still ours; with
    ``due``, the source is next due then (see :func:`due_at`)."""
    conn.execute(sa.text("UPDATE source_leases SET owner = NULL, due = COALESCE(:due, due) "
                         "WHERE name = :name AND owner = :owner AND token = :token"),
                 {"name": lease.name, "owner": owner, "token": lease.token, "due": due})


def set_due(conn: Connection, owner: str, lease: Lease, due: float) -> None:
    """The source of ``lease`` (still ours) is next due at ``due`` (in the transaction storing
    its fetch, which sets the state's ``next_due``)."""
    conn.execute(sa.text("UPDATE source_leases SET due = :due WHERE name = :name AND owner = :owner "
                         "AND token = :token"), {"name": lease.name, "owner": owner, "token": lease.token, "due": due})


def due_at(state: SourceState) -> float:
    """When a batched claim should next choose the source of ``state`` (never stored as due: now)."""
    return 0.0 if state.next_due is None else state.next_due.timestamp()


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


#: The one role elected for now.
GENERATE = "generate"


def lead(conn: Connection, owner: str, *, seconds: float, term: LeaderTerm | None) -> LeaderTerm | None:
    """Renew ``term`` if it is ``owner``'s and still live; else take the leadership if it
    is free or expired (a new term). None when another worker leads."""
    if term is not None:
        row = conn.execute(sa.text(
            "UPDATE leadership SET expires = now() + make_interval(secs => :seconds) "
            "WHERE role = :role AND owner = :owner AND term = :term AND expires > now() RETURNING term"),
            {"seconds": seconds, "role": GENERATE, "owner": owner, "term": term.number}).first()
        if row is not None:
            return term
    conn.execute(sa.text("INSERT INTO leadership (role, owner, term, expires) VALUES (:role, NULL, 0, "
                         "to_timestamp(0)) ON CONFLICT (role) DO NOTHING"), {"role": GENERATE})
    row = conn.execute(sa.text(
        "UPDATE leadership SET owner = :owner, term = term + 1, expires = now() + make_interval(secs => :seconds) "
        "WHERE role = :role AND (owner IS NULL OR expires <= now()) RETURNING term"),
        {"seconds": seconds, "role": GENERATE, "owner": owner}).first()
    return None if row is None else LeaderTerm(owner, int(row[0]))


def resign(conn: Connection, term: LeaderTerm) -> None:
    """Give the leadership up at once (another worker may take it at its next try)."""
    conn.execute(sa.text("UPDATE leadership SET owner = NULL, expires = now() "
                         "WHERE role = :role AND owner = :owner AND term = :term"),
                 {"role": GENERATE, "owner": term.owner, "term": term.number})


def holds_term(conn: Connection, term: LeaderTerm) -> bool:
    """Whether ``term`` is still the live one, keeping it so (a takeover waits) until the
    transaction ends: call it in the transaction of a write made for the leader."""
    row = conn.execute(sa.text(
        "SELECT 1 FROM leadership WHERE role = :role AND owner = :owner AND term = :term AND expires > now() "
        "FOR SHARE"), {"role": GENERATE, "owner": term.owner, "term": term.number}).first()
    return row is not None


def leader(conn: Connection) -> LeaderRow | None:
    """The leadership as it stands (None: nobody ever led)."""
    row = conn.execute(sa.text("SELECT owner, term, expires, expires > now() FROM leadership WHERE role = :role"),
                       {"role": GENERATE}).first()
    return None if row is None else LeaderRow(row[0], int(row[1]), row[2], bool(row[3]))


def note_changed(conn: Connection, name: str) -> None:
    """Note that source ``name``'s items changed (in the transaction storing them)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("INSERT INTO source_changes (name) VALUES (:name) ON CONFLICT (name) DO NOTHING"),
                     {"name": name})


def bump_items(conn: Connection, name: str) -> None:
    """Note that items of source ``name`` changed (in the transaction changing them); only
    its own row is locked, which no other worker's write of another source waits for."""
    conn.execute(sa.text("INSERT INTO item_versions (name, version) VALUES (:name, 1) "
                         "ON CONFLICT (name) DO UPDATE SET version = item_versions.version + 1"), {"name": name})


def items_version(conn: Connection) -> str | None:
    """A value that grows with every committed change of items (None: none ever changed):
    each change adds one to the sum."""
    total = conn.execute(sa.text("SELECT sum(version) FROM item_versions")).scalar()
    return None if total is None else f"sum:{int(total)}"


def changed(conn: Connection) -> list[str]:
    """The sources noted as changed, without taking the notes."""
    return [str(r[0]) for r in conn.execute(sa.text("SELECT name FROM source_changes ORDER BY name"))]


def take_changes(conn: Connection) -> list[str]:
    """Take every note of a change (a generation is about to read what they noted)."""
    return sorted(str(r[0]) for r in conn.execute(sa.text("DELETE FROM source_changes RETURNING name")))


def worker_rows(conn: Connection) -> list[WorkerRow]:
    """Every worker's heartbeat row with the sources it holds a live lease on."""
    held: dict[str, list[str]] = {}
    for owner, name in conn.execute(sa.text(
            "SELECT owner, name FROM source_leases WHERE owner IS NOT NULL AND expires > now() ORDER BY name")):
        held.setdefault(owner, []).append(name)
    rows = conn.execute(sa.text("SELECT owner, started, seen, EXTRACT(EPOCH FROM now() - seen) FROM workers "
                                "ORDER BY owner"))
    return [WorkerRow(owner, started, seen, float(silent), tuple(held.get(owner, ())))
            for owner, started, seen, silent in rows]
