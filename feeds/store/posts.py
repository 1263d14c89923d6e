"""The post cache (table ``post_cache``): each post's front matter as last read, or why it was skipped.

Reads and writes that table only; the rendered content of posts is
:mod:`.contents`'. Runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .codecs import decoding
from .dialects import chunks, upsert
from .records import PostRow
from .schema import posts


def load(conn: Connection) -> dict[str, PostRow]:
    rows = conn.execute(sa.select(posts)).all()
    with decoding("post cache"):
        return {str(r.path): PostRow(r.path, int(r.mtime_ns), int(r.size), r.fingerprint, r.meta, r.problem)
                for r in rows}


def save(conn: Connection, rows: Iterable[PostRow]) -> None:
    upsert(conn, posts, [tuple(p) for p in rows])


def forget(conn: Connection, paths: Sequence[str]) -> None:
    for chunk in chunks(paths):
        conn.execute(sa.delete(posts).where(posts.c.path.in_(chunk)))
