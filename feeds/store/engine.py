"""Opening the state database and running transactions on it, with errors in the project's terms.

A database is named by a URL (``sqlite:///path``; ``sqlite://`` is one in
memory, for tests; ``postgresql+psycopg://user@host/db`` on a PostgreSQL server)
or by a path (SQLite at that path). This module owns the
SQLite settings every connection gets (busy timeout first, WAL, synchronous
NORMAL) and the translation of every database error into :class:`StorageError`,
:class:`Busy` or :class:`DamagedStateError` naming the database. It knows
nothing of the tables: the resource modules write the SQL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from ..errors import Busy, Cancelled, DamagedStateError, StorageError
from . import files
from .codecs import decoding_in

log = logging.getLogger("feeds")

#: How long a statement waits for another process's write to finish (milliseconds).
BUSY_TIMEOUT_MS = 60_000

#: The PostgreSQL advisory lock held while a state database's schema is created or migrated.
_SCHEMA_LOCK = 0x66656564  # "feed"

# SQLite's words for a file that is not (or no longer) a whole database.
_DAMAGE = ("file is not a database", "malformed", "corrupt", "no such column", "no such table",
           "has no column", "datatype mismatch", "unable to open database file")


class Database:
    """One state database: an engine and how to name the database in errors.

    ``target`` is a URL string or a :class:`Path`; a file database is checked (a folder
    or another program's database in its place is refused) before it is opened."""

    def __init__(self, target: str | Path, *, ours: frozenset[str], busy_timeout_ms: int = BUSY_TIMEOUT_MS,
                 pool_size: int | None = None, lock_timeout_ms: int | None = None) -> None:
        url, self.path, self.where = _locate(target)
        self.busy_timeout_ms = busy_timeout_ms
        #: Held for each transaction on a database in memory: its one connection is shared
        #: by every thread, and SQLite does not keep their transactions apart on it.
        self._lock: threading.Lock | None = None
        if url.get_backend_name() == "postgresql":
            connect: dict[str, Any] = {"connect_timeout": 10}
            if lock_timeout_ms is not None:  # a wait for a lock ends in an error after this long
                connect["options"] = f"-c lock_timeout={lock_timeout_ms}"
            pool: dict[str, Any] = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": 0}
            self._engine: Engine = sa.create_engine(url, connect_args=connect, **pool)
            # A connection that sat idle is pinged before use, so that one dropped by a server
            # restart is replaced; one handed back a moment ago is known good and is not.
            sa.event.listen(self._engine, "connect", _idle_since)
            sa.event.listen(self._engine, "checkin", _idle_since)
            sa.event.listen(self._engine, "checkout", _ping_if_idle)
            return
        if self.path is not None:
            files.check_state_file(self.path, ours, busy_timeout_ms)
            self._engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
        else:
            self._lock = threading.Lock()
            self._engine = sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        sa.event.listen(self._engine, "connect", self._sqlite_pragmas)

    def close(self) -> None:
        self._engine.dispose()

    def session(self) -> Connection:
        """A connection of the pool in autocommit mode, for session-level state such as an
        advisory lock held across statements (PostgreSQL); close it to hand it back."""
        try:
            return self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.SQLAlchemyError as exc:
            raise self.error(exc) from None

    def _sqlite_pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # First, so that even switching to WAL waits for a run that holds the database.
        cursor.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def _held(self) -> AbstractContextManager[object]:
        return self._lock if self._lock is not None else nullcontext()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction, committed when the block ends and rolled back if it raises."""
        try:
            with self._held(), self._engine.begin() as conn, decoding_in(self.where):
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise self.error(exc) from None

    @contextmanager
    def begin_immediate(self) -> Iterator[Connection]:
        """A transaction that takes the write lock before it reads anything (so that two
        processes creating the same database at once do not race), committed at the end."""
        try:
            with self._held(), decoding_in(self.where), self._engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    # Workers starting at once create or migrate the schema one after another.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                yield conn
                conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            raise self.error(exc) from None

    def error(self, exc: sa.exc.SQLAlchemyError) -> StorageError | Busy:
        """The one-line error for a failed database operation."""
        reason = getattr(exc, "orig", None) or exc
        if _damaged(reason):
            return DamagedStateError(f"the state database is damaged ({reason})", where=self.where)
        if isinstance(reason, sqlite3.OperationalError) and \
                str(reason).startswith(("database is locked", "database table is locked")):
            # Another program holds a write transaction longer than the busy timeout.
            return Busy(f"the state database stayed locked by another program for {self.busy_timeout_ms // 1000} s; "
                        "try again later", where=self.where)
        if type(reason).__module__.startswith("psycopg") and type(reason).__name__ == "OperationalError":
            first = str(reason).strip().splitlines()[0] if str(reason).strip() else "no answer"
            return StorageError(f"cannot use the database server: {first}", where=self.where)
        return StorageError(f"database error: {reason}", where=self.where)


#: A pooled connection idle longer than this (seconds) is pinged before it is used again.
IDLE_PING = 10.0


def _idle_since(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection idle longer than :data:`IDLE_PING`; a dead one is replaced (the
    pool opens another when this raises ``DisconnectionError``)."""
    if time.monotonic() - record.info.get("idle_since", 0.0) < IDLE_PING:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        if not dbapi_connection.autocommit:
            dbapi_connection.rollback()
    except Exception:
        raise sa.exc.DisconnectionError() from None


def _damaged(reason: object) -> bool:
    text = str(reason).lower()
    return isinstance(reason, sqlite3.DatabaseError) and any(word in text for word in _DAMAGE)


def _locate(target: str | Path) -> tuple[sa.URL, Path | None, str]:
    """The URL to open, the SQLite file (None in memory) and the name errors give."""
    if isinstance(target, Path):
        # Built, not parsed: a '?' or '%' in the path stays part of the file name.
        return sa.URL.create("sqlite", database=str(target)), target, str(target)
    try:
        url = sa.make_url(target)
    except sa.exc.ArgumentError:
        # Named as given, unless it may hold a password.
        where = target if "@" not in target else target.partition("://")[0] + "://..."
        raise StorageError("not a database URL (sqlite:///path)", where=where) from None
    where = url.render_as_string(hide_password=True)
    if url.drivername == "postgresql+psycopg":
        if not url.database:
            raise StorageError("a postgresql URL names its database: postgresql+psycopg://user@host/db", where=where)
        return url, None, where
    if url.get_backend_name() != "sqlite":
        raise StorageError("only sqlite:///path and postgresql+psycopg://user@host/db are supported", where=where)
    if url.query or url.host:
        raise StorageError("a sqlite URL takes no host or options: sqlite:///path", where=where)
    if not url.database or url.database == ":memory:":
        return url, None, where
    path = Path(url.database)
    return url, path, str(path)


#: How often a run waiting for another's lock on the server tries again (seconds).
_LOCK_POLL = 0.2


@contextmanager
def server_lock(target: str, key: str, *, wait: float | None,
                cancel: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Hold a PostgreSQL session advisory lock named ``key`` (an output folder) on the server
    of ``target`` for the block: one writer per output folder across every machine.

    ``wait``: seconds to wait for another holder (0: leave at once with :class:`Busy`;
    None: until ``cancel()`` says to stop). The server drops the lock when the holder's
    connection dies, so a killed run leaves none behind."""
    db = Database(target, ours=frozenset())
    deadline = None if wait is None else time.monotonic() + wait
    try:
        with db._engine.connect() as conn:
            told = False
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"),
                                   {"key": key}).scalar():
                conn.commit()
                if deadline is not None and time.monotonic() >= deadline:
                    raise Busy("another run holds the output folder's lock on the database server; "
                               "try again later, or pass --wait SECONDS", where=key)
                if not told:
                    log.warning("waiting for the run holding %s on the database server", key)
                    told = True
                if cancel():
                    raise Cancelled("cancelled while waiting for the lock", where=key)
                time.sleep(_LOCK_POLL)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": key})
                conn.commit()
    except sa.exc.SQLAlchemyError as exc:
        raise db.error(exc) from None
    finally:
        db.close()
