"""The id ledger (table ``id_ledger``): the first id each post or item was given.

Reads and writes that table only, and only ever adds to it: a key already
stored keeps its id, even against a concurrent writer. Deciding ids is
:mod:`feeds.identity`'s. Runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..identity import Ledger, LedgerKey
from .dialects import insert_new
from .schema import ledger


def load(conn: Connection) -> Ledger:
    """Every stored key and its id; a stored key this version cannot read is left out."""
    known = {}
    for r in conn.execute(sa.select(ledger)):
        key = LedgerKey.from_stored(r.key)
        if key is not None and isinstance(r.entry_id, str):
            known[key] = r.entry_id
    return Ledger(known)


#: Keys asked for in one statement (well under SQLite's limit on bound parameters).
_CHUNK = 500


def load_keys(conn: Connection, keys: Iterable[LedgerKey]) -> dict[LedgerKey, str]:
    """The stored ids of ``keys`` (those stored; the others are left out)."""
    wanted = {key.stored(): key for key in keys}
    names = list(wanted)
    found = {}
    for start in range(0, len(names), _CHUNK):
        rows = conn.execute(sa.select(ledger.c.key, ledger.c.entry_id)
                            .where(ledger.c.key.in_(names[start:start + _CHUNK])))
        for r in rows:
            if isinstance(r.entry_id, str):
                found[wanted[r.key]] = r.entry_id
    return found


def add(conn: Connection, ids: Mapping[LedgerKey, str]) -> None:
    """Store the keys not stored yet; the others keep their first id."""
    insert_new(conn, ledger, [(key.stored(), entry_id) for key, entry_id in ids.items()])
