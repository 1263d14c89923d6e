"""The state database as a file: what is checked before SQLite opens it, and moving it aside.

It refuses a folder or another program's database at the state path before
anything is written (even the switch to WAL rewrites a database's header), and
renames a damaged database out of the way so a new one can be made. It reads
only SQLite's table list, read-only, and never writes, creates or deletes a
database itself.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Set
from datetime import UTC, datetime
from pathlib import Path

from ..errors import DamagedStateError, StorageError


def check_state_file(path: Path, ours: Set[str], busy_timeout_ms: int) -> None:
    """Create the folder of ``path``, then refuse what is at ``path`` if it is not a file
    or is another program's database (one without any of the ``ours`` tables)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the state folder: {exc.strerror}", where=str(path)) from None
    try:
        st = os.stat(path)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise DamagedStateError(f"is {kind}, not a state database", where=str(path))
    if st.st_size:
        _refuse_foreign(path, ours, busy_timeout_ms)


def _refuse_foreign(path: Path, ours: Set[str], busy_timeout_ms: int) -> None:
    """Damage is left for the normal open to report."""
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=busy_timeout_ms / 1000)
        try:
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        finally:
            conn.close()
    except sqlite3.Error:
        return
    if tables and not tables & ours:
        raise StorageError(f"not a feeds state database (it has the tables {', '.join(sorted(tables)[:5])}); "
                           "set state: to another file", where=str(path))


def move_aside(path: Path, now: datetime) -> list[Path]:
    """Rename the database at ``path`` (and its -wal and -shm files) with a time suffix,
    so a new one can be made; nothing is deleted. Returns the new names."""
    suffix = ".damaged-" + now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for extra in ("", "-wal", "-shm", "-journal"):
        source = path.with_name(path.name + extra)
        if not (source.exists() or source.is_symlink()):
            continue
        target = path.with_name(path.name + suffix + extra)
        n = 1
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}{suffix}.{n}{extra}")
        try:
            source.rename(target)
        except OSError as exc:
            raise StorageError(f"cannot move the state database aside: {exc.strerror}", where=str(source)) from None
        moved.append(target)
    return moved
