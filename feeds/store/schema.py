"""The tables of the state database, its schema version and the steps between versions.

It owns the table definitions (every other store module reads its columns from
here) and :func:`create_or_migrate`, run once when a database is opened. It
never reads or writes rows beyond ``schema_version``, and never opens a
connection itself: it is handed one inside the write transaction.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import DamagedStateError, StorageError
from . import leases
from .codecs import decoding

SCHEMA_VERSION = 1

metadata = sa.MetaData()

settings = sa.Table(
    "settings", metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)
ledger = sa.Table(
    "id_ledger", metadata,
    # What an id was minted for: "key:<natural key>" or "path:<post path>".
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("entry_id", sa.String, nullable=False),
)
posts = sa.Table(
    "post_cache", metadata,
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
contents = sa.Table(
    "post_content", metadata,
    sa.Column("path", sa.String, primary_key=True),
    sa.Column("digest", sa.String, nullable=False),
    sa.Column("fingerprint", sa.String, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
)
outputs = sa.Table(
    "outputs", metadata,
    sa.Column("path", sa.String, primary_key=True),
    # Hash of everything the file was rendered from.
    sa.Column("signature", sa.String, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
)
sources = sa.Table(
    "sources", metadata,
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
items = sa.Table(
    "items", metadata,
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
archive_pages = sa.Table(
    "archive_pages", metadata,
    # The feed's path without suffix ("all", "tags/<slug>"...) and the page's number (1: oldest).
    sa.Column("feed", sa.String, primary_key=True),
    sa.Column("page", sa.Integer, primary_key=True),
    # The entry ids on the page, newest first, as a JSON list: cut once, never changed.
    sa.Column("entry_ids", sa.Text, nullable=False),
)

articles = sa.Table(
    "articles", metadata,
    # The item (of a full_text source) whose article page this is.
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("ukey", sa.String, primary_key=True),
    # The page asked for (the item's link then), and what the article was extracted with.
    sa.Column("link", sa.String, nullable=False),
    sa.Column("how", sa.String, nullable=False),
    # The extracted article (HTML, not yet cleaned); NULL when the page failed.
    sa.Column("html", sa.Text),
    # Why it failed, how many times in a row, and when it may be asked for again.
    sa.Column("error", sa.Text),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("next_try", sa.Float),
    sa.Column("fetched_at", sa.Float, nullable=False),
)

#: The settings key holding the schema version (a decimal string).
VERSION_KEY = "schema_version"

# Steps from version N-1 to N; version 1 is the tables above, made by create_all (which
# also adds a table that a database of this version lacks, such as archive_pages).
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


def table_names() -> frozenset[str]:
    return frozenset(metadata.tables)


def _column_names(conn: Connection, table: str) -> set[str]:
    if conn.dialect.name == "sqlite":
        # Not the inspector: it warns about column types it does not know, and a damaged
        # or hand-made table may have any.
        return {str(r[1]) for r in conn.exec_driver_sql(f"PRAGMA table_info({table})")}
    return {column["name"] for column in sa.inspect(conn).get_columns(table)}


def create_or_migrate(conn: Connection, where: str) -> None:
    """Create the missing tables, refuse a schema this version does not write, and
    migrate an older one; ``conn`` is in the write transaction the caller commits."""
    metadata.create_all(conn)
    leases.create(conn)
    for table in metadata.tables.values():
        have = _column_names(conn, table.name)
        lacking = [c.name for c in table.columns if c.name not in have]
        if lacking:
            raise DamagedStateError(f"not the schema feeds writes (table {table.name} has no "
                                    f"{', '.join(lacking)})", where=where)
    row = conn.execute(sa.select(settings.c.value).where(settings.c.key == VERSION_KEY)).first()
    with decoding("settings"):
        version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise StorageError(f"the database is from a newer version of feeds (schema {version})", where=where)
    for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[step](conn)
    if version != SCHEMA_VERSION:
        conn.execute(sa.delete(settings).where(settings.c.key == VERSION_KEY))
        conn.execute(sa.insert(settings).values(key=VERSION_KEY, value=str(SCHEMA_VERSION)))
