"""The content cache (table ``post_content``): each post's rendered content and summary.

Reads and writes that table only; which posts exist is :mod:`.posts`'. Runs
inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .dialects import chunks, upsert
from .records import CachedContent
from .schema import contents


def load(conn: Connection, fingerprint: str, paths: Sequence[str]) -> dict[str, CachedContent]:
    """Cached content of the given posts, made with the settings of ``fingerprint``."""
    out: dict[str, CachedContent] = {}
    for chunk in chunks(paths):
        rows = conn.execute(sa.select(contents).where(contents.c.fingerprint == fingerprint,
                                                      contents.c.path.in_(chunk)))
        out.update((r.path, CachedContent(r.path, r.digest, r.fingerprint, r.content, r.summary)) for r in rows)
    return out


def save(conn: Connection, cached: Iterable[CachedContent]) -> None:
    upsert(conn, contents, [(c.path, c.digest, c.fingerprint, c.content, c.summary) for c in cached])


def forget(conn: Connection, paths: Sequence[str]) -> None:
    for chunk in chunks(paths):
        conn.execute(sa.delete(contents).where(contents.c.path.in_(chunk)))
