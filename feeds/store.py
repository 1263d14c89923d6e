"""The state database: the only module that speaks SQL.

SQLite by default, through SQLAlchemy Core so another database can take its
place. It keeps what must survive between runs: the id ledger (so an entry's
id never changes), a cache of parsed posts and rendered content (so a run with
nothing changed is cheap), and what each output file was made from.
Database errors become :class:`StorageError` naming the database file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .errors import StorageError
from .models import Author, PostMeta

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


def meta_from_json(text: str) -> PostMeta:
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


def _delete(conn: Connection, table: sa.Table, paths: list[str]) -> None:
    for i in range(0, len(paths), 500):
        conn.execute(sa.delete(table).where(table.c.path.in_(paths[i:i + 500])))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Store:
    """The state database at ``path`` (created with its folder if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the state folder: {exc.strerror}", where=str(path)) from None
        self._engine: Engine = sa.create_engine(f"sqlite:///{path}")
        sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        with self._begin() as conn:
            self._migrate(conn)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise StorageError(f"database error: {reason}", where=str(self.path)) from None

    def _migrate(self, conn: Connection) -> None:
        _md.create_all(conn)
        row = conn.execute(sa.select(_settings.c.value).where(_settings.c.key == "schema_version")).first()
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

    def set_setting(self, key: str, value: str) -> None:
        with self._begin() as conn:
            self._set(conn, key, value)

    # -- posts ---------------------------------------------------------------

    def load_posts(self) -> dict[str, PostRow]:
        with self._begin() as conn:
            rows = conn.execute(sa.select(_posts)).all()
        return {r.path: PostRow(r.path, r.mtime_ns, r.size, r.fingerprint, r.meta, r.problem) for r in rows}

    def save_posts(self, posts: Iterable[PostRow], forget: Iterable[str] = ()) -> None:
        gone = list(forget)
        with self._begin() as conn:
            _upsert(conn, _posts, [tuple(p) for p in posts])
            _delete(conn, _posts, gone)
            _delete(conn, _contents, gone)

    def load_contents(self, fingerprint: str) -> dict[str, CachedContent]:
        with self._begin() as conn:
            rows = conn.execute(sa.select(_contents).where(_contents.c.fingerprint == fingerprint)).all()
        return {r.path: CachedContent(r.path, r.digest, r.fingerprint, r.content, r.summary) for r in rows}

    def save_contents(self, contents: Iterable[CachedContent]) -> None:
        with self._begin() as conn:
            _upsert(conn, _contents, [(c.path, c.digest, c.fingerprint, c.content, c.summary) for c in contents])

    # -- id ledger -----------------------------------------------------------

    def load_ledger(self) -> dict[str, str]:
        with self._begin() as conn:
            return {r.key: r.entry_id for r in conn.execute(sa.select(_ledger))}

    def save_ledger(self, items: dict[str, str]) -> None:
        """Record new ledger keys; existing keys keep their first id."""
        if not items:
            return
        with self._begin() as conn:
            keys = list(items)
            existing: set[str] = set()
            for i in range(0, len(keys), 500):
                existing.update(conn.execute(
                    sa.select(_ledger.c.key).where(_ledger.c.key.in_(keys[i:i + 500]))).scalars())
            rows = [{"key": k, "entry_id": v} for k, v in items.items() if k not in existing]
            if rows:
                conn.execute(sa.insert(_ledger), rows)

    # -- outputs -------------------------------------------------------------

    def load_outputs(self) -> dict[str, OutputRecord]:
        with self._begin() as conn:
            rows = conn.execute(sa.select(_outputs)).all()
        return {r.path: OutputRecord(r.path, r.signature, r.size, r.mtime_ns) for r in rows}

    def save_outputs(self, records: Iterable[OutputRecord], forget: Iterable[str] = ()) -> None:
        with self._begin() as conn:
            _upsert(conn, _outputs, [(r.path, r.signature, r.size, r.mtime_ns) for r in records])
            _delete(conn, _outputs, list(forget))
