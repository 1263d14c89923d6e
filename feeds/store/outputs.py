"""The output records (table ``outputs``): each file this program wrote into the output folder.

Reads and writes that table only, and never touches the output folder itself:
a recorded path that could point outside it is a damaged row. Runs inside the
caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .codecs import decoding, output_path
from .dialects import chunks, upsert
from .records import OutputRecord
from .schema import outputs


def load(conn: Connection) -> dict[str, OutputRecord]:
    rows = conn.execute(sa.select(outputs)).all()
    with decoding("outputs"):
        return {output_path(r.path): OutputRecord(r.path, r.signature, r.size, int(r.mtime_ns)) for r in rows}


def save(conn: Connection, records: Iterable[OutputRecord]) -> None:
    upsert(conn, outputs, [(r.path, r.signature, r.size, r.mtime_ns) for r in records])


def forget(conn: Connection, paths: Sequence[str]) -> None:
    for chunk in chunks(paths):
        conn.execute(sa.delete(outputs).where(outputs.c.path.in_(chunk)))
