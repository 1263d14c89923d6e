"""The state database: the only module that speaks SQL.

SQLite by default, through SQLAlchemy Core so another database can take its
place. It keeps what must survive between runs: the id ledger (so an entry's
id never changes), a cache of parsed posts and rendered content (so a run with
nothing changed is cheap), and what each output file was made from.
Database errors become :class:`StorageError` naming the database file; a
damaged database (not a database, truncated, a garbled row, a foreign schema,
a folder in its place) is a :class:`DamagedStateError` whose one line says how
to recover: ``feeds generate --rebuild-state`` moves it aside and starts anew.
What is lost then is only cached work, fetch state and the items sources no
longer list: every id is computed from the inputs again, except the ledger
entries of posts without id and link whose title or date changed since.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import Busy, DamagedStateError, StorageError
from ..identity import Ledger, LedgerKey
from ..models import Author, Enclosure, Entry, PostMeta, Provenance
from ..sources.schedule import SourceState

SCHEMA_VERSION = 1

_md = sa.MetaData()
_settings = sa.Table(
    "settings", _md,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)
_ledger = sa.Table(
    "id_ledger", _md,
    # What an id was minted for: "key:<natural key>" or "path:<post path>".
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("entry_id", sa.String, nullable=False),
)
_posts = sa.Table(
    "post_cache", _md,
    sa.Column("path", sa.String, primary_key=True),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    # Hash of the settings the parse depended on (time zone...).
    sa.Column("fingerprint", sa.String, nullable=False),
    # Normalized front matter as JSON, or NULL for a skipped post.
    sa.Column("meta", sa.Text),
    # Why the post was skipped ("path:line: ..."), or "" for a draft.
    sa.Column("problem", sa.Text),
)
_contents = sa.Table(
    "post_content", _md,
    sa.Column("path", sa.String, primary_key=True),
    sa.Column("digest", sa.String, nullable=False),
    sa.Column("fingerprint", sa.String, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
)
_outputs = sa.Table(
    "outputs", _md,
    sa.Column("path", sa.String, primary_key=True),
    # Hash of everything the file was rendered from.
    sa.Column("signature", sa.String, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
)

_sources = sa.Table(
    "sources", _md,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("url", sa.String, nullable=False),
    sa.Column("fetch_url", sa.String, nullable=False),
    sa.Column("etag", sa.String),
    sa.Column("last_modified", sa.String),
    sa.Column("body_hash", sa.String),
    # Times are seconds since the epoch (UTC).
    sa.Column("last_fetch", sa.Float),
    sa.Column("last_success", sa.Float),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("next_due", sa.Float),
    sa.Column("moved_to", sa.String),
    sa.Column("moved_seen", sa.Integer, nullable=False),
    sa.Column("id_mode", sa.String),
    sa.Column("entries", sa.Integer, nullable=False),
)
_items = sa.Table(
    "items", _md,
    sa.Column("source", sa.String, primary_key=True),
    # What identifies the item within its source ("guid:...", "link:...", "hash:...").
    sa.Column("ukey", sa.String, primary_key=True),
    sa.Column("entry_id", sa.String, nullable=False, index=True),
    # What grouping needs, so that it can skip the (large) entry data.
    sa.Column("link", sa.String),
    sa.Column("published", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    # The normalized entry as JSON, and a hash of what it was made from.
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("digest", sa.String, nullable=False),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
)

_latest = _items.alias("latest")

# Steps from version N-1 to N; version 1 is the tables above, made by create_all.
_MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


class PostRow(NamedTuple):
    """A post as last read: its front matter normalized (JSON), or why it was skipped."""

    path: str
    mtime_ns: int
    size: int
    fingerprint: str
    #: ``meta_to_json`` of its PostMeta; None for a skipped post.
    meta: str | None
    #: Why it was skipped ("path:line: ..."), "" for a draft, None when read fine.
    problem: str | None


@dataclass(frozen=True, slots=True)
class CachedContent:
    path: str
    digest: str
    fingerprint: str
    content: str
    summary: str


@dataclass(frozen=True, slots=True)
class OutputRecord:
    path: str
    signature: str
    size: int
    mtime_ns: int


def meta_to_json(meta: PostMeta) -> str:
    return json.dumps({
        "path": meta.path, "digest": meta.digest, "title": meta.title,
        "published": meta.published.isoformat(), "updated": meta.updated.isoformat(),
        "explicit_id": meta.explicit_id, "link": meta.link, "permalink": meta.permalink,
        "authors": [[a.name, a.email, a.uri] for a in meta.authors],
        "tags": meta.tags, "categories": meta.categories, "summary": meta.summary,
        "language": meta.language, "image": meta.image, "body_line": meta.body_line,
    }, ensure_ascii=False)


@contextmanager
def _decoding(what: str) -> Iterator[None]:
    """Turn a stored value that cannot be decoded into a :class:`DamagedStateError`."""
    try:
        yield
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise DamagedStateError(f"the state database has a garbled {what} row "
                                f"({type(exc).__name__}: {str(exc)[:80]})") from None


def _output_path(path: object) -> str:
    """A recorded output path, which is only ever relative, inside the output folder."""
    if not isinstance(path, str) or not path or "\0" in path or path.startswith("/") \
            or any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"not a path inside the output folder: {str(path)[:60]!r}")
    return path


def _database_error(exc: sa.exc.SQLAlchemyError, path: Path) -> StorageError | Busy:
    """The one-line error for a failed database operation."""
    reason = getattr(exc, "orig", None) or exc
    if _damaged(reason):
        return DamagedStateError(f"the state database is damaged ({reason})", where=str(path))
    if isinstance(reason, sqlite3.OperationalError) and \
            str(reason).startswith(("database is locked", "database table is locked")):
        # Another program holds a write transaction longer than the busy timeout.
        return Busy(f"the state database stayed locked by another program for {BUSY_TIMEOUT_MS // 1000} s; "
                    "try again later", where=str(path))
    return StorageError(f"database error: {reason}", where=str(path))


@contextmanager
def decoding_in(path: Path) -> Iterator[None]:
    """Name the database in a :class:`DamagedStateError` raised without a file."""
    try:
        yield
    except DamagedStateError as exc:
        if exc.where is not None:
            raise
        raise DamagedStateError(exc.message, where=str(path)) from None


def meta_from_json(text: str) -> PostMeta:
    with _decoding("post cache"):
        return _meta_from_json(text)


def _meta_from_json(text: str) -> PostMeta:
    d = json.loads(text)
    return PostMeta(
        path=d["path"], digest=d["digest"], title=d["title"],
        published=datetime.fromisoformat(d["published"]), updated=datetime.fromisoformat(d["updated"]),
        explicit_id=d["explicit_id"], link=d["link"], permalink=d["permalink"],
        authors=tuple(Author(*a) for a in d["authors"]),
        tags=tuple(d["tags"]), categories=tuple(d["categories"]), summary=d["summary"],
        language=d["language"], image=d["image"], body_line=d["body_line"],
    )


def _upsert(conn: Connection, table: sa.Table, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows (in column order), replacing those with the same primary key.

    Bulk writes of tens of thousands of rows go straight to the driver's
    executemany; ``ON CONFLICT ... DO UPDATE`` is understood by SQLite and PostgreSQL.
    """
    if not rows:
        return
    columns = [c.name for c in table.columns]
    keys = [c.name for c in table.primary_key.columns]
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))}) "
           f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}")
    conn.exec_driver_sql(sql, rows)


def _insert_new(conn: Connection, table: sa.Table, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows whose primary key is not there yet; leave existing ones alone."""
    columns = [c.name for c in table.columns]
    keys = [c.name for c in table.primary_key.columns]
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
                         f"({', '.join([mark] * len(columns))}) ON CONFLICT ({', '.join(keys)}) DO NOTHING", rows)


def _delete(conn: Connection, table: sa.Table, paths: list[str]) -> None:
    for i in range(0, len(paths), 500):
        conn.execute(sa.delete(table).where(table.c.path.in_(paths[i:i + 500])))


def _ts(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def _dt(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def entry_to_json(entry: Entry) -> str:
    def prov(p: Provenance) -> list[Any]:
        return [p.source, p.path, p.upstream_id, p.feed_title, p.feed_link, p.feed_id,
                _ts(p.feed_updated), p.feed_url]

    return json.dumps({
        "id": entry.id, "title": entry.title, "link": entry.link,
        "published": entry.published.timestamp(), "updated": entry.updated.timestamp(),
        "authors": [[a.name, a.email, a.uri] for a in entry.authors],
        "tags": entry.tags, "categories": entry.categories, "summary": entry.summary,
        "content": entry.content, "language": entry.language, "image": entry.image,
        "enclosures": [[e.url, e.type, e.length] for e in entry.enclosures],
        "provenance": [prov(p) for p in entry.provenance],
    }, ensure_ascii=False, sort_keys=True)


def entry_from_json(text: str) -> Entry:
    """The entry stored as ``text``; :class:`StorageError` when it cannot be read back.

    Stored items may come from older versions or a damaged database: a field of the
    wrong type is left out (an author without a name, a URL that is not a string),
    and only an item without its id, title or dates is refused."""
    try:
        d = json.loads(text)
        if not isinstance(d, dict) or not isinstance(d.get("id"), str) or not isinstance(d.get("title"), str):
            raise ValueError("no id or title")
        published = datetime.fromtimestamp(_number(d["published"]), UTC)
        updated = datetime.fromtimestamp(_number(d["updated"]), UTC)
        return Entry(
            id=d["id"], title=d["title"], link=_opt_str(d.get("link")), published=published,
            updated=max(updated, published),
            authors=tuple(Author(a[0], _opt_str(_at(a, 1)), _opt_str(_at(a, 2))) for a in _rows(d.get("authors"))
                          if isinstance(a[0], str) and a[0]),
            tags=tuple(t for t in _list_of(d.get("tags")) if isinstance(t, str) and t),
            categories=tuple(t for t in _list_of(d.get("categories")) if isinstance(t, str) and t),
            summary=_opt_str(d.get("summary")) or "",
            content=_opt_str(d.get("content")), language=_opt_str(d.get("language")),
            image=_opt_str(d.get("image")),
            enclosures=tuple(Enclosure(e[0], _opt_str(_at(e, 1)) or "application/octet-stream",
                                       _at(e, 2) if type(_at(e, 2)) is int and _at(e, 2) > 0 else 0)
                             for e in _rows(d.get("enclosures")) if isinstance(e[0], str)),
            provenance=tuple(Provenance(p[0], _opt_str(_at(p, 1)), _opt_str(_at(p, 2)), _opt_str(_at(p, 3)),
                                        _opt_str(_at(p, 4)), _opt_str(_at(p, 5)),
                                        _maybe_date(_at(p, 6)),
                                        _opt_str(_at(p, 7)))
                             for p in _rows(d.get("provenance")) if isinstance(p[0], str)),
        )
    except (ValueError, TypeError, KeyError, OverflowError, OSError, RecursionError) as exc:
        raise StorageError(f"a stored item cannot be read ({type(exc).__name__}: {str(exc)[:100]})") from None


def _maybe_date(value: Any) -> datetime | None:
    """A stored date that only adds detail (a feed's updated time): None when unreadable."""
    try:
        return datetime.fromtimestamp(_number(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("a date is not a number")
    return float(value)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _list_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _rows(value: Any) -> list[list[Any]]:
    return [row for row in _list_of(value) if isinstance(row, list) and row]


def _at(row: list[Any], index: int) -> Any:
    return row[index] if index < len(row) else None


def _state_row(state: SourceState) -> tuple[Any, ...]:
    return (state.name, state.url, state.fetch_url, state.etag, state.last_modified, state.body_hash,
            _ts(state.last_fetch), _ts(state.last_success), state.status, state.error, state.failures,
            _ts(state.next_due), state.moved_to, state.moved_seen, state.id_mode, state.entries)


class ItemRow(NamedTuple):
    """One item of one source, as stored."""

    source: str
    ukey: str
    entry_id: str
    link: str | None
    published: float
    updated: float
    #: JSON list of the entry's tags.
    tags: str
    #: ``entry_to_json`` of the normalized entry.
    data: str
    digest: str
    first_seen: float
    last_seen: float

    @classmethod
    def make(cls, source: str, ukey: str, entry: Entry, digest: str, first_seen: float,
             last_seen: float) -> ItemRow:
        return cls(source, ukey, entry.id, entry.link, entry.published.timestamp(), entry.updated.timestamp(),
                   json.dumps(entry.tags, ensure_ascii=False), entry_to_json(entry), digest, first_seen,
                   last_seen)


class Known(NamedTuple):
    """What is stored of an item, as far as deciding about a new fetch of it goes."""

    entry_id: str
    digest: str
    first_seen: float


class ItemHead(NamedTuple):
    """An item without its entry data: what grouping needs."""

    source: str
    ukey: str
    entry_id: str
    link: str | None
    published: float
    updated: float
    tags: tuple[str, ...]
    digest: str


#: How long a statement waits for another process's write to finish (milliseconds).
BUSY_TIMEOUT_MS = 60_000


def _refuse_foreign(path: Path) -> None:
    """Refuse another program's database before anything is written to it (even the
    switch to WAL rewrites its header). Damage is left for the normal open to report."""
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        finally:
            conn.close()
    except sqlite3.Error:
        return
    if tables and not tables & set(_md.tables):
        raise StorageError(f"not a feeds state database (it has the tables {', '.join(sorted(tables)[:5])}); "
                           "set state: to another file", where=str(path))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # First, so that even switching to WAL waits for a run that holds the database.
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# SQLite's words for a file that is not (or no longer) a whole database.
_DAMAGE = ("file is not a database", "malformed", "corrupt", "no such column", "no such table",
           "has no column", "datatype mismatch", "unable to open database file")


def _damaged(reason: object) -> bool:
    text = str(reason).lower()
    return isinstance(reason, sqlite3.DatabaseError) and any(word in text for word in _DAMAGE)


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


class Store:
    """The state database at ``path`` (created with its folder if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the state folder: {exc.strerror}", where=str(path)) from None
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise DamagedStateError(f"is {kind}, not a state database", where=str(path))
        if st is not None and st.st_size:
            _refuse_foreign(path)
        self._engine: Engine = sa.create_engine(f"sqlite:///{path}",
                                                connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        try:
            self._create_schema()
        except (StorageError, Busy):
            self._engine.dispose()
            raise

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn, decoding_in(self.path):
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise _database_error(exc, self.path) from None

    def _create_schema(self) -> None:
        """Create or migrate the tables in one write transaction, taken before looking at
        what exists, so that two processes opening a new database at once do not race."""
        try:
            with decoding_in(self.path), self._engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                self._migrate(conn)
                conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            raise _database_error(exc, self.path) from None

    def _migrate(self, conn: Connection) -> None:
        _md.create_all(conn)
        for table in _md.tables.values():
            have = {r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table.name})")}
            lacking = [c.name for c in table.columns if c.name not in have]
            if lacking:
                raise DamagedStateError(f"not the schema feeds writes (table {table.name} has no "
                                        f"{', '.join(lacking)})", where=str(self.path))
        row = conn.execute(sa.select(_settings.c.value).where(_settings.c.key == "schema_version")).first()
        with _decoding("settings"):
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StorageError(f"the database is from a newer version of feeds (schema {version})",
                               where=str(self.path))
        for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
            _MIGRATIONS[step](conn)
        if version != SCHEMA_VERSION:
            self._set(conn, "schema_version", str(SCHEMA_VERSION))

    def _set(self, conn: Connection, key: str, value: str) -> None:
        conn.execute(sa.delete(_settings).where(_settings.c.key == key))
        conn.execute(sa.insert(_settings).values(key=key, value=value))

    def get_setting(self, key: str) -> str | None:
        with self._begin() as conn:
            row = conn.execute(sa.select(_settings.c.value).where(_settings.c.key == key)).first()
        return str(row[0]) if row else None

    def get_json_setting(self, key: str) -> dict[str, Any] | None:
        """A setting stored as a JSON object, or None when it is not set."""
        text = self.get_setting(key)
        if text is None:
            return None
        with decoding_in(self.path), _decoding("settings"):
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError(f"{key} is not a JSON object")
            return value

    def set_setting(self, key: str, value: str) -> None:
        with self._begin() as conn:
            self._set(conn, key, value)

    # -- posts ---------------------------------------------------------------

    def load_posts(self) -> dict[str, PostRow]:
        with self._begin() as conn:
            rows = conn.execute(sa.select(_posts)).all()
        with decoding_in(self.path), _decoding("post cache"):
            return {str(r.path): PostRow(r.path, int(r.mtime_ns), int(r.size), r.fingerprint, r.meta, r.problem)
                    for r in rows}

    def save_posts(self, posts: Iterable[PostRow], forget: Iterable[str] = ()) -> None:
        gone = list(forget)
        with self._begin() as conn:
            _upsert(conn, _posts, [tuple(p) for p in posts])
            _delete(conn, _posts, gone)
            _delete(conn, _contents, gone)

    def load_contents(self, fingerprint: str, paths: Iterable[str]) -> dict[str, CachedContent]:
        """Cached content of the given posts, made with the given settings."""
        wanted = list(paths)
        out: dict[str, CachedContent] = {}
        with self._begin() as conn:
            for i in range(0, len(wanted), 500):
                rows = conn.execute(sa.select(_contents).where(_contents.c.fingerprint == fingerprint,
                                                               _contents.c.path.in_(wanted[i:i + 500])))
                out.update((r.path, CachedContent(r.path, r.digest, r.fingerprint, r.content, r.summary))
                           for r in rows)
        return out

    def save_contents(self, contents: Iterable[CachedContent]) -> None:
        with self._begin() as conn:
            _upsert(conn, _contents, [(c.path, c.digest, c.fingerprint, c.content, c.summary) for c in contents])

    # -- id ledger -----------------------------------------------------------

    def load_ledger(self) -> Ledger:
        with self._begin() as conn:
            rows = conn.execute(sa.select(_ledger)).all()
        known = {}
        for r in rows:
            key = LedgerKey.from_stored(r.key)
            if key is not None and isinstance(r.entry_id, str):
                known[key] = r.entry_id
        return Ledger(known)

    def save_ledger(self, ledger: Ledger) -> None:
        """Record the ledger's new keys; existing keys keep their first id (even against a
        concurrent writer)."""
        items = ledger.added()
        if not items:
            return
        with self._begin() as conn:
            _insert_new(conn, _ledger, [(key.stored(), entry_id) for key, entry_id in items.items()])
        ledger.saved()

    # -- outputs -------------------------------------------------------------

    def load_outputs(self) -> dict[str, OutputRecord]:
        with self._begin() as conn:
            rows = conn.execute(sa.select(_outputs)).all()
        with decoding_in(self.path), _decoding("outputs"):
            return {_output_path(r.path): OutputRecord(r.path, r.signature, r.size, int(r.mtime_ns))
                    for r in rows}

    def save_outputs(self, records: Iterable[OutputRecord], forget: Iterable[str] = ()) -> None:
        with self._begin() as conn:
            _upsert(conn, _outputs, [(r.path, r.signature, r.size, r.mtime_ns) for r in records])
            _delete(conn, _outputs, list(forget))

    # -- sources and their items --------------------------------------------

    def load_sources(self, names: Iterable[str] | None = None) -> dict[str, SourceState]:
        """The stored state of every source, or of the named ones."""
        query = sa.select(_sources)
        if names is not None:
            query = query.where(_sources.c.name.in_(list(names)))
        with self._begin() as conn:
            rows = conn.execute(query).all()
        with decoding_in(self.path), _decoding("sources"):
            return self._states(rows)

    @staticmethod
    def _states(rows: Iterable[Any]) -> dict[str, SourceState]:
        return {r.name: SourceState(
            name=r.name, url=r.url, fetch_url=r.fetch_url, etag=r.etag, last_modified=r.last_modified,
            body_hash=r.body_hash, last_fetch=_dt(r.last_fetch), last_success=_dt(r.last_success),
            status=r.status, error=r.error, failures=r.failures, next_due=_dt(r.next_due),
            moved_to=r.moved_to, moved_seen=r.moved_seen, id_mode=r.id_mode, entries=r.entries,
        ) for r in rows}

    def known_items(self, sources: Iterable[str]) -> dict[str, dict[str, Known]]:
        """For each source: item key -> (entry id, digest, first seen), without the entry data."""
        wanted = list(sources)
        out: dict[str, dict[str, Known]] = {name: {} for name in wanted}
        c = _items.c
        with self._begin() as conn:
            for i in range(0, len(wanted), 500):
                rows = conn.execute(sa.select(c.source, c.ukey, c.entry_id, c.digest, c.first_seen)
                                    .where(c.source.in_(wanted[i:i + 500])))
                for r in rows:
                    out[r.source][r.ukey] = Known(r.entry_id, r.digest, r.first_seen)
        return out

    def load_item_heads(self, sources: Iterable[str]) -> list[ItemHead]:
        wanted = list(sources)
        if not wanted:
            return []
        c = _items.c
        with self._begin() as conn:
            rows = conn.execute(sa.select(c.source, c.ukey, c.entry_id, c.link, c.published, c.updated, c.tags,
                                          c.digest).where(c.source.in_(wanted)).order_by(c.source, c.ukey)).all()
        with decoding_in(self.path), _decoding("item"):
            return [ItemHead(r.source, r.ukey, str(r.entry_id), r.link, float(r.published), float(r.updated),
                             tuple(str(t) for t in json.loads(r.tags)), r.digest) for r in rows]

    def load_item_data(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Entry data of the given (source, ukey) items."""
        by_source: dict[str, list[str]] = {}
        for source, ukey in keys:
            by_source.setdefault(source, []).append(ukey)
        out: dict[tuple[str, str], str] = {}
        with self._begin() as conn:
            for source, ukeys in by_source.items():
                for i in range(0, len(ukeys), 500):
                    rows = conn.execute(sa.select(_items.c.ukey, _items.c.data).where(
                        _items.c.source == source, _items.c.ukey.in_(ukeys[i:i + 500])))
                    out.update(((source, r.ukey), r.data) for r in rows)
        return out

    def save_fetch(self, state: SourceState, items: Iterable[ItemRow] = (), seen: Iterable[str] = (),
                   seen_at: float | None = None, keep_at_most: int | None = None) -> int:
        """Record one source's fetch in one transaction: its state, new or changed items,
        and which items the feed still lists. A run killed midway leaves each source
        either wholly updated or untouched.

        With ``keep_at_most``, the source's items beyond that many are dropped, those
        its feed stopped listing longest ago first (never one of the latest listing);
        returns how many were dropped."""
        keys = list(seen)
        dropped = 0
        rows = [tuple(i) for i in items]
        with self._begin() as conn:
            _upsert(conn, _sources, [_state_row(state)])
            _upsert(conn, _items, rows)
            if rows:
                self._note_items_changed(conn)
            if seen_at is not None:
                for i in range(0, len(keys), 500):
                    conn.execute(sa.update(_items).where(_items.c.source == state.name,
                                                         _items.c.ukey.in_(keys[i:i + 500]))
                                 .values(last_seen=seen_at))
            if keep_at_most is not None:
                c = _items.c
                count = conn.execute(sa.select(sa.func.count()).where(c.source == state.name)).scalar_one()
                if count > keep_at_most:
                    newest = sa.select(sa.func.max(c.last_seen)).where(c.source == state.name).scalar_subquery()
                    oldest = (sa.select(c.ukey).where(c.source == state.name, c.last_seen < newest)
                              .order_by(c.last_seen, c.first_seen, c.ukey).limit(int(count) - keep_at_most))
                    result = conn.execute(sa.delete(_items).where(c.source == state.name, c.ukey.in_(oldest)))
                    dropped = int(result.rowcount or 0)
        return dropped

    def save_states(self, states: Iterable[SourceState]) -> None:
        """Record the fetch state of sources whose items did not change, in one transaction."""
        with self._begin() as conn:
            _upsert(conn, _sources, [_state_row(s) for s in states])

    def prune_items(self, last_seen_before: float) -> int:
        """Drop items their source stopped listing before the given time; how many were dropped.

        Items of a source's latest listing are never dropped, however old: a source that
        has been failing for a while keeps what it last published."""
        newest = sa.select(sa.func.max(_latest.c.last_seen)).where(_latest.c.source == _items.c.source)
        with self._begin() as conn:
            result = conn.execute(sa.delete(_items).where(_items.c.last_seen < last_seen_before,
                                                          _items.c.last_seen < newest.scalar_subquery()))
            dropped = int(result.rowcount or 0)
            if dropped:
                self._note_items_changed(conn)
            return dropped

    def _note_items_changed(self, conn: Connection) -> None:
        """Mark, in the transaction that changes items, that they changed: whatever a run
        stores, the next generation sees (a kill between the two cannot split them)."""
        self._set(conn, "items_version", uuid.uuid4().hex)

    def item_counts(self) -> dict[str, int]:
        with self._begin() as conn:
            rows = conn.execute(sa.select(_items.c.source, sa.func.count()).group_by(_items.c.source))
            return {r[0]: int(r[1]) for r in rows}
