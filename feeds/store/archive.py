"""The archive pages (table ``archive_pages``): which entries each feed's RFC 5005 pages hold.

A page's entries are recorded once, when it is cut, and never changed: its file is never
written again. Reads and writes that table only; runs inside the caller's transaction and
never commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .codecs import decoding
from .dialects import chunks, insert_new
from .schema import archive_pages


def load(conn: Connection) -> dict[str, list[tuple[int, tuple[str, ...]]]]:
    """Every feed's recorded pages: (number, entry ids newest first), by the feed's stem."""
    found: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    with decoding("archive_pages"):
        for row in conn.execute(sa.select(archive_pages)).all():
            ids = json.loads(row.entry_ids)
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError("entry_ids is not a list of text")
            found.setdefault(str(row.feed), []).append((int(row.page), tuple(ids)))
    return found


def save(conn: Connection, pages: Iterable[tuple[str, int, Sequence[str]]]) -> None:
    """Record new pages; a page already recorded keeps what it holds."""
    insert_new(conn, archive_pages, [(feed, number, json.dumps(list(ids), ensure_ascii=False))
                                     for feed, number, ids in pages])


def forget(conn: Connection, feeds: Sequence[str]) -> None:
    """Drop every recorded page of these feeds."""
    for chunk in chunks(feeds):
        conn.execute(sa.delete(archive_pages).where(archive_pages.c.feed.in_(chunk)))
