"""The items of remote sources (table ``items``): each entry a source listed, and when.

Reads and writes that table only; a source's fetch state is :mod:`.sources`',
and noting that items changed is :mod:`.settings`'. Deciding what to store is
the source updater's. Runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .codecs import decoding, tags_from_json
from .dialects import chunks, upsert
from .records import ItemHead, ItemRow, Known
from .schema import items

_latest = items.alias("latest")


def known(conn: Connection, sources: Sequence[str]) -> dict[str, dict[str, Known]]:
    """For each source: item key -> (entry id, digest, first seen), without the entry data."""
    out: dict[str, dict[str, Known]] = {name: {} for name in sources}
    c = items.c
    for chunk in chunks(sources):
        rows = conn.execute(sa.select(c.source, c.ukey, c.entry_id, c.digest, c.first_seen)
                            .where(c.source.in_(chunk)))
        for r in rows:
            out[r.source][r.ukey] = Known(r.entry_id, r.digest, r.first_seen)
    return out


def heads(conn: Connection, sources: Sequence[str]) -> list[ItemHead]:
    """The items of the given sources without their entry data, by source then key."""
    if not sources:
        return []
    c = items.c
    rows = conn.execute(sa.select(c.source, c.ukey, c.entry_id, c.link, c.published, c.updated, c.tags, c.digest)
                        .where(c.source.in_(sources)).order_by(c.source, c.ukey)).all()
    with decoding("item"):
        return [ItemHead(r.source, r.ukey, str(r.entry_id), r.link, float(r.published), float(r.updated),
                         tags_from_json(r.tags), r.digest) for r in rows]


def data(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Entry data (``entry_to_json``) of the given (source, ukey) items."""
    by_source: dict[str, list[str]] = {}
    for source, ukey in keys:
        by_source.setdefault(source, []).append(ukey)
    out: dict[tuple[str, str], str] = {}
    for source, ukeys in by_source.items():
        for chunk in chunks(ukeys):
            rows = conn.execute(sa.select(items.c.ukey, items.c.data).where(items.c.source == source,
                                                                            items.c.ukey.in_(chunk)))
            out.update(((source, r.ukey), r.data) for r in rows)
    return out


def save(conn: Connection, rows: Sequence[ItemRow]) -> None:
    """Store new items and replace changed ones."""
    upsert(conn, items, rows)


def mark_seen(conn: Connection, source: str, ukeys: Sequence[str], at: float) -> None:
    """Note that ``source``'s feed listed these items at ``at`` (seconds)."""
    for chunk in chunks(ukeys):
        conn.execute(sa.update(items).where(items.c.source == source, items.c.ukey.in_(chunk)).values(last_seen=at))


def keep_at_most(conn: Connection, source: str, limit: int) -> int:
    """Drop ``source``'s items beyond ``limit``, those its feed stopped listing longest
    ago first (never one of its latest listing); how many were dropped."""
    c = items.c
    count = conn.execute(sa.select(sa.func.count()).where(c.source == source)).scalar_one()
    if count <= limit:
        return 0
    newest = sa.select(sa.func.max(c.last_seen)).where(c.source == source).scalar_subquery()
    oldest = (sa.select(c.ukey).where(c.source == source, c.last_seen < newest)
              .order_by(c.last_seen, c.first_seen, c.ukey).limit(int(count) - limit))
    result = conn.execute(sa.delete(items).where(c.source == source, c.ukey.in_(oldest)))
    return int(result.rowcount or 0)


def prune(conn: Connection, last_seen_before: float) -> int:
    """Drop items their source stopped listing before the given time, except those of a
    source's latest listing (however old); how many were dropped."""
    newest = sa.select(sa.func.max(_latest.c.last_seen)).where(_latest.c.source == items.c.source)
    result = conn.execute(sa.delete(items).where(items.c.last_seen < last_seen_before,
                                                 items.c.last_seen < newest.scalar_subquery()))
    return int(result.rowcount or 0)


def counts(conn: Connection) -> dict[str, int]:
    """How many items each source has stored."""
    rows = conn.execute(sa.select(items.c.source, sa.func.count()).group_by(items.c.source))
    return {r[0]: int(r[1]) for r in rows}
