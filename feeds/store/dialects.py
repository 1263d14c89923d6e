"""The one place where the store picks SQL by database dialect: upserts, and IN-list sizes.

SQLite and PostgreSQL both write ``INSERT ... ON CONFLICT``, each through its own
SQLAlchemy construct; :func:`upsert` and :func:`insert_new` choose it from the
connection's dialect. A dialect not listed in ``_INSERTS`` is refused with a
:class:`StorageError`. This module builds statements and runs them on the
connection it is given; it never opens one or commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Dialect

from ..errors import StorageError


def _postgresql_insert(table: sa.Table) -> Any:
    # Imported when first needed: the dialect costs megabytes a SQLite run has no use for.
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)


#: Each dialect's ``INSERT`` that takes ``on_conflict_do_update`` / ``on_conflict_do_nothing``.
_INSERTS: dict[str, Callable[[sa.Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": _postgresql_insert,
}

_OnConflict = Literal["update", "nothing"]

#: How many values one ``IN (...)`` list takes: well under the fewest bound parameters a
#: statement may have (999 in SQLite before 3.32).
IN_LIST_SIZE = 500


def chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    """``values`` in slices short enough for one ``IN (...)`` list each."""
    for i in range(0, len(values), IN_LIST_SIZE):
        yield values[i:i + IN_LIST_SIZE]


def upsert(conn: Connection, table: sa.Table, rows: Sequence[Sequence[Any]]) -> None:
    """Insert rows (values in column order), replacing those with the same primary key."""
    _execute(conn, table, "update", rows)


def insert_new(conn: Connection, table: sa.Table, rows: Sequence[Sequence[Any]]) -> None:
    """Insert rows (values in column order) whose primary key is not there yet; leave
    existing ones alone."""
    _execute(conn, table, "nothing", rows)


def _execute(conn: Connection, table: sa.Table, on_conflict: _OnConflict, rows: Sequence[Sequence[Any]]) -> None:
    if not rows:
        return
    sql, order = _compiled(conn.dialect, table, on_conflict)
    names = [c.name for c in table.columns]
    params: Sequence[Any]
    if order is None:
        params = [dict(zip(names, row, strict=True)) for row in rows]
    elif order == tuple(range(len(names))):
        params = rows
    else:
        params = [tuple(row[i] for i in order) for row in rows]
    # Bulk writes of tens of thousands of rows: the compiled statement goes straight to the
    # driver's executemany, which is twice as fast as the per-row processing of execute().
    conn.exec_driver_sql(sql, params)


@lru_cache(maxsize=64)
def _compiled(dialect: Dialect, table: sa.Table, on_conflict: _OnConflict) -> tuple[str, tuple[int, ...] | None]:
    """The statement's SQL for ``dialect``, and where each column goes among its positional
    parameters (None when they are named)."""
    try:
        make = _INSERTS[dialect.name]
    except KeyError:
        raise StorageError(f"a {dialect.name} database is not supported") from None
    insert = make(table)
    keys = [c.name for c in table.primary_key.columns]
    if on_conflict == "update":
        statement = insert.on_conflict_do_update(
            index_elements=keys, set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys})
    else:
        statement = insert.on_conflict_do_nothing(index_elements=keys)
    compiled = statement.compile(dialect=dialect)
    if not compiled.positional or compiled.positiontup is None:
        return str(compiled), None
    names = [c.name for c in table.columns]
    return str(compiled), tuple(names.index(name) for name in compiled.positiontup)
