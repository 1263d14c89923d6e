"""The state database: the only package that speaks SQL.

It keeps what must survive between runs: the id ledger (so an entry's id never
changes), a cache of parsed posts and rendered content (so a run with nothing
changed is cheap), each source's fetch state and items, what each output file
was made from, and a few settings. :class:`Store` is its one face: one method
per operation, each one SQL statement or one transaction. Behind it, one
module per table (``posts``, ``contents``, ``items``, ``articles``, ``sources``,
``ledger``, ``outputs``, ``archive``, ``settings``) writes the SQL; ``schema`` defines the tables,
``codecs`` turns stored text back into the program's types, ``records`` holds
the row types, ``engine`` opens the database and translates its errors,
``dialects`` picks the SQL that differs between databases, ``files`` checks and
moves the SQLite file.

A database is named by a URL (``sqlite:///path``; ``sqlite://`` is one in
memory) or a path (SQLite at that path). Database errors become
:class:`StorageError` naming the database; a damaged database (not a
database, truncated, a garbled row, a foreign schema, a folder in its place)
is a :class:`DamagedStateError` whose one line says how to recover: ``feeds
generate --rebuild-state`` moves it aside and starts anew. What is lost then
is only cached work, fetch state and the items sources no longer list: every
id is computed from the inputs again, except the ledger entries of posts
without id and link whose title or date changed since.

This package never reads posts, fetches, renders or takes the run's lock; the
only files it touches are the database's own (with its -wal and -shm files) and
the folder holding them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from ..errors import LostLeadership, LostLease
from ..identity import Ledger, LedgerKey
from ..sources.schedule import SourceState
from . import archive as _archive
from . import articles as _articles
from . import contents as _contents
from . import items as _items
from . import leases as _leases
from . import ledger as _ledger
from . import outputs as _outputs
from . import posts as _posts
from . import schema as _schema
from . import settings as _settings
from . import sources as _sources
from .codecs import decoding_in, entry_from_json, entry_to_json, from_timestamp, meta_from_json, meta_to_json
from .engine import BUSY_TIMEOUT_MS, Database, server_lock
from .files import move_aside
from .leases import Claimed, LeaderRow, LeaderTerm, Lease, WorkerRow
from .records import (
    ArticleHealth,
    ArticleRow,
    ArticleWanted,
    CachedContent,
    ItemHead,
    ItemRow,
    Known,
    LastRun,
    OutputRecord,
    PostIndexRow,
    PostRow,
)
from .schema import SCHEMA_VERSION

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SCHEMA_VERSION",
    "ArticleHealth",
    "ArticleRow",
    "ArticleWanted",
    "CachedContent",
    "Claimed",
    "ItemHead",
    "ItemRow",
    "Known",
    "LastRun",
    "LeaderRow",
    "LeaderTerm",
    "Lease",
    "OutputRecord",
    "PostIndexRow",
    "PostRow",
    "Store",
    "WorkerRow",
    "decoding_in",
    "entry_from_json",
    "entry_to_json",
    "meta_from_json",
    "meta_to_json",
    "move_aside",
    "server_lock",
]


class Store:
    """The state database at ``target``: a URL (``sqlite:///path``, ``sqlite://`` in
    memory) or a path of a SQLite file. A missing file is created with its folder; the
    tables are created or migrated on opening."""

    def __init__(self, target: str | Path) -> None:
        # The module's BUSY_TIMEOUT_MS, read at each opening, so that it can be lowered.
        self._db = Database(target, ours=_schema.table_names(), busy_timeout_ms=BUSY_TIMEOUT_MS)
        #: The SQLite file, or None for a database in memory.
        self.path: Path | None = self._db.path
        #: How errors name the database (its file, or its URL without password).
        self.where: str = self._db.where
        #: The leader's term that fences what a generation records (:meth:`fence_with`).
        self._term: LeaderTerm | None = None
        try:
            with self._db.begin_immediate() as conn:
                _schema.create_or_migrate(conn, self.where)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    # -- source leases (a PostgreSQL state shared by several workers) ------------

    def claim_sources(self, owner: str, names: Sequence[str], *, seconds: float, limit: int) -> list[Lease]:
        """Claim up to ``limit`` of ``names`` no live lease holds, for ``seconds``."""
        with self._db.begin() as conn:
            return _leases.claim(conn, owner, names, seconds=seconds, limit=limit)

    def claim_due_source(self, owner: str, name: str, url: str, *, now: datetime,
                         seconds: float) -> Lease | None:
        """Claim source ``name`` (configured at ``url``) if it is due at ``now`` and no live
        lease holds it; None when another worker holds it or fetched it already."""
        claimed = self.claim_due(owner, name, url, now=now, seconds=seconds)
        return None if claimed is None else claimed[0]

    def claim_due(self, owner: str, name: str, url: str, *, now: datetime,
                  seconds: float) -> tuple[Lease, SourceState | None] | None:
        """:meth:`claim_due_source`, with the source's stored state (None: never stored),
        read in the same transaction once the lease is ours.

        That read is a statement of its own, so it sees every write committed before the
        lease was taken: a worker that stored this source and gave its lease back just as
        the claim began is seen, and the source found fetched (the lease goes back at once)."""
        with self._db.begin() as conn:
            lease = _leases.claim_due(conn, owner, name, url, now=now.timestamp(), seconds=seconds)
            if lease is None:
                return None
            state = _sources.load(conn, [name]).get(name)
            if state is not None and state.url == url and state.next_due is not None and state.next_due > now:
                _leases.release(conn, owner, lease)
                return None
            return lease, state

    def offer_sources(self, dues: Mapping[str, datetime | None]) -> None:
        """Make the sources of ``dues`` (name -> when the caller finds it due; None: now) the
        ones :meth:`claim_batch` chooses from; a source no longer offered is forgotten
        (once no live lease holds it)."""
        with self._db.begin() as conn:
            _leases.offer(conn, {name: 0.0 if due is None else due.timestamp() for name, due in dues.items()})

    def claim_batch(self, owner: str, urls: Mapping[str, str], *, now: datetime, seconds: float,
                    limit: int) -> list[tuple[Lease, SourceState | None]]:
        """Claim for ``seconds`` up to ``limit`` due sources (the longest due first) that no
        live lease holds, each with its stored state (None: never stored), read in the
        claim's transaction once the leases are ours. Claims made at once get disjoint
        sources (``FOR UPDATE SKIP LOCKED``).

        ``urls``: the configured URL of each source this worker may fetch. A source found
        fetched since (its state at that URL not due at ``now``) goes back at once with its
        due time set from the state; one not among ``urls`` (another worker's config has it)
        goes back too, due again a lease later."""
        with self._db.begin() as conn:
            leases = _leases.claim_batch(conn, owner, now=now.timestamp(), seconds=seconds, limit=limit)
            if not leases:
                return []
            states = _sources.load(conn, [lease.name for lease in leases])
            got = []
            for lease in leases:
                url = urls.get(lease.name)
                state = states.get(lease.name)
                if url is None:
                    _leases.release(conn, owner, lease, due=now.timestamp() + seconds)
                elif state is not None and state.url == url and not state.due(now):
                    _leases.release(conn, owner, lease, due=_leases.due_at(state))
                else:
                    got.append((lease, state))
            return got

    def renew_leases(self, owner: str, held: Sequence[Lease], *, seconds: float) -> list[Lease]:
        """Extend the leases still ours; those lost are left out of the answer."""
        with self._db.begin() as conn:
            return _leases.renew(conn, owner, held, seconds=seconds)

    def release_lease(self, owner: str, lease: Lease, *, due: datetime | None = None) -> None:
        """Give ``lease`` up if it is still ours; with ``due``, its source is next due then."""
        with self._db.begin() as conn:
            _leases.release(conn, owner, lease, due=None if due is None else due.timestamp())

    def save_source_if_held(self, owner: str, lease: Lease, state: SourceState) -> bool:
        """Store a fetched source's state only while ``lease`` is still ours (checked in the
        same transaction as the write); False when it was lost and nothing was written."""
        with self._db.begin() as conn:
            if not _leases.holds(conn, owner, lease):
                return False
            _sources.save(conn, [state])
            return True

    def heartbeat(self, owner: str) -> None:
        with self._db.begin() as conn:
            _leases.heartbeat(conn, owner)

    def leave(self, owner: str) -> int:
        """A worker stopping: give up every lease it holds and drop its heartbeat row; how
        many leases it held."""
        with self._db.begin() as conn:
            released = _leases.release_all(conn, owner)
            _leases.forget_worker(conn, owner)
            return released

    # -- the generation leader (a PostgreSQL state shared by several workers) --------

    def lead(self, owner: str, *, seconds: float, term: LeaderTerm | None) -> LeaderTerm | None:
        """Renew ``term`` (``owner``'s) or take the leadership if it is free; the term held
        now, or None when another worker leads."""
        with self._db.begin() as conn:
            return _leases.lead(conn, owner, seconds=seconds, term=term)

    def resign(self, term: LeaderTerm) -> None:
        with self._db.begin() as conn:
            _leases.resign(conn, term)

    def still_leads(self, term: LeaderTerm) -> bool:
        with self._db.begin() as conn:
            return _leases.holds_term(conn, term)

    def leader(self) -> LeaderRow | None:
        with self._db.begin() as conn:
            return _leases.leader(conn)

    def workers(self) -> list[WorkerRow]:
        """Every worker's heartbeat and the sources it holds now."""
        with self._db.begin() as conn:
            return _leases.worker_rows(conn)

    def changed_sources(self) -> list[str]:
        """Sources whose items changed since the leader last took the notes."""
        with self._db.begin() as conn:
            return _leases.changed(conn)

    def note_changes(self, names: Sequence[str]) -> None:
        """Note sources as changed again (a generation that took their notes failed)."""
        with self._db.begin() as conn:
            for name in names:
                _leases.note_changed(conn, name)

    def take_changes(self) -> list[str]:
        with self._db.begin() as conn:
            return _leases.take_changes(conn)

    def fence_with(self, term: LeaderTerm | None) -> None:
        """Record what is published (outputs, the last run, the output folder) only while
        ``term`` is the live one, checked in each such transaction; else
        :class:`LostLeadership` and nothing of it is written."""
        self._term = term

    def _fenced(self, conn: Connection) -> None:
        if self._term is not None and not _leases.holds_term(conn, self._term):
            raise LostLeadership(f"term {self._term.number} of the generation leadership is over; "
                                 "another worker publishes now", where=self.where)

    # -- settings: the raw layer -----------------------------------------------
    # The program itself reads and writes settings only through the typed methods below;
    # these show and set the stored text of a key (the tests check the formats with them).

    def get_setting(self, key: str) -> str | None:
        """Raw layer: the text stored under ``key``."""
        with self._db.begin() as conn:
            return _settings.get(conn, key)

    def get_json_setting(self, key: str) -> dict[str, Any] | None:
        """Raw layer: a setting stored as a JSON object, or None when it is not set."""
        with self._db.begin() as conn:
            return _settings.get_json(conn, key)

    def set_setting(self, key: str, value: str) -> None:
        """Raw layer: store ``value`` under ``key``."""
        with self._db.begin() as conn:
            _settings.put(conn, key, value)

    # -- settings: typed -----------------------------------------------------------

    def load_last_run(self) -> LastRun | None:
        """What the last generation left; None if none was recorded."""
        with self._db.begin() as conn:
            return _settings.load_last_run(conn)

    def save_last_run(self, run: LastRun) -> None:
        with self._db.begin() as conn:
            self._fenced(conn)
            _settings.save_last_run(conn, run)

    def forget_last_run(self) -> None:
        """Make the next run do the work, even if no input's size or mtime moved."""
        with self._db.begin() as conn:
            _settings.forget_last_run(conn)

    def load_input_counts(self) -> dict[str, int]:
        """How many posts each posts input (by its configured path) had last time."""
        with self._db.begin() as conn:
            return _settings.load_input_counts(conn)

    def save_input_counts(self, counts: dict[str, int]) -> None:
        with self._db.begin() as conn:
            _settings.save_input_counts(conn, counts)

    def load_health_since(self) -> dict[str, str]:
        """When each source problem (by its key) was first seen, as ISO 8601 text."""
        with self._db.begin() as conn:
            return _settings.load_health_since(conn)

    def save_health_since(self, since: dict[str, str]) -> None:
        with self._db.begin() as conn:
            _settings.save_health_since(conn, since)

    def load_output_dir(self) -> str | None:
        """The output folder the output records are of (None: not noted, an older version's)."""
        with self._db.begin() as conn:
            return _settings.load_output_dir(conn)

    def save_output_dir(self, where: str) -> None:
        with self._db.begin() as conn:
            self._fenced(conn)
            _settings.save_output_dir(conn, where)

    def items_version(self) -> str | None:
        """A value that changes whenever stored items do (None: they never changed)."""
        with self._db.begin() as conn:
            if conn.dialect.name == "postgresql":
                return _leases.items_version(conn)
            return _settings.items_version(conn)

    def schema_version(self) -> str | None:
        """The schema version as stored (decimal text; None before the schema was made)."""
        with self._db.begin() as conn:
            return _settings.get(conn, _schema.VERSION_KEY)

    # -- posts -------------------------------------------------------------------

    def load_posts(self) -> dict[str, PostRow]:
        with self._db.begin() as conn:
            return _posts.load(conn)

    def load_post_metas(self, paths: Sequence[str]) -> dict[str, str]:
        """The cached front matter (JSON) of those of ``paths`` that have one."""
        with self._db.begin() as conn:
            return _posts.load_metas(conn, paths)

    def load_post_index(self) -> tuple[dict[str, PostIndexRow], dict[str, PostIndexRow | None]] | None:
        """Every post cache row in short, and the rows changed since the index was saved
        whole (None: forgotten); None when there is no index to trust."""
        with self._db.begin() as conn:
            return _posts.load_index(conn)

    def save_posts(self, posts: Iterable[PostRow], forget: Iterable[str] = (),
                   index: Mapping[str, PostIndexRow] | None = None,
                   changes: Mapping[str, PostIndexRow | None] | None = None) -> None:
        """Store posts as read, and drop the forgotten ones with their cached content; with
        them the post index as it is after this change, saved as its ``changes`` since it
        was saved whole or (``changes`` None) whole. Without an index, the index is dropped."""
        gone = list(forget)
        with self._db.begin() as conn:
            _posts.save(conn, posts)
            _posts.forget(conn, gone)
            _contents.forget(conn, gone)
            _posts.save_index(conn, index, changes)

    def save_post_rows(self, posts: Iterable[PostRow], *, drop_index: bool = False) -> None:
        """Store a batch of posts as read, in a transaction of its own, leaving the rest of
        the post cache as it is: a long read saves as it goes, and what it saved is kept if
        it stops. With ``drop_index`` the post index is dropped in the same transaction (it
        would no longer tell these rows; it is made again from the rows if it is not saved
        anew). :meth:`save_posts` then saves the index with the last rows."""
        with self._db.begin() as conn:
            if drop_index:
                _posts.save_index(conn, None, None)
            _posts.save(conn, posts)

    def load_grouping(self) -> str | None:
        """The last run's grouping of entries into feeds, as it was saved."""
        with self._db.begin() as conn:
            return _posts.load_grouping(conn)

    def save_grouping(self, text: str) -> None:
        with self._db.begin() as conn:
            _posts.save_grouping(conn, text)

    def load_contents(self, fingerprint: str, paths: Iterable[str]) -> dict[str, CachedContent]:
        """Cached content of the given posts, made with the given settings."""
        with self._db.begin() as conn:
            return _contents.load(conn, fingerprint, list(paths))

    def save_contents(self, contents: Iterable[CachedContent]) -> None:
        with self._db.begin() as conn:
            _contents.save(conn, contents)

    # -- id ledger ---------------------------------------------------------------

    def load_ledger(self) -> Ledger:
        with self._db.begin() as conn:
            return _ledger.load(conn)

    def load_ledger_keys(self, keys: Iterable[LedgerKey]) -> dict[LedgerKey, str]:
        """The stored ids of ``keys`` only (a fetch needs the links of its items, not the
        whole ledger, which grows with every item ever seen)."""
        keys = list(keys)
        if not keys:
            return {}
        with self._db.begin() as conn:
            return _ledger.load_keys(conn, keys)

    def save_ledger(self, ledger: Ledger) -> None:
        """Record the ledger's new keys; existing keys keep their first id (even against a
        concurrent writer)."""
        new = ledger.added()
        if not new:
            return
        with self._db.begin() as conn:
            _ledger.add(conn, new)
        ledger.saved()

    # -- outputs -----------------------------------------------------------------

    def load_outputs(self) -> dict[str, OutputRecord]:
        with self._db.begin() as conn:
            return _outputs.load(conn)

    def save_outputs(self, records: Iterable[OutputRecord], forget: Iterable[str] = ()) -> None:
        with self._db.begin() as conn:
            self._fenced(conn)
            _outputs.save(conn, records)
            _outputs.forget(conn, list(forget))

    # -- archive pages (RFC 5005) -------------------------------------------------

    def load_archive_pages(self) -> dict[str, list[tuple[int, tuple[str, ...]]]]:
        """Each feed's recorded archive pages: (number, entry ids), by the feed's stem."""
        with self._db.begin() as conn:
            return _archive.load(conn)

    def save_archive_pages(self, pages: Iterable[tuple[str, int, Sequence[str]]],
                           forget: Sequence[str] = ()) -> None:
        """Record newly cut pages (feed stem, number, entry ids), and drop every page of the
        ``forget`` feeds, in one transaction (only while this worker's term of the generation
        leadership, if any, lasts)."""
        with self._db.begin() as conn:
            self._fenced(conn)
            _archive.forget(conn, forget)
            _archive.save(conn, pages)

    # -- sources and their items -------------------------------------------------

    def load_sources(self, names: Iterable[str] | None = None) -> dict[str, SourceState]:
        """The stored state of every source, or of the named ones."""
        with self._db.begin() as conn:
            return _sources.load(conn, None if names is None else list(names))

    def load_troubled_sources(self) -> tuple[dict[str, SourceState], datetime | None]:
        """The stored states that may have a problem the health files show (failing,
        throttled, gone, moved, told apart without guids), and when any source was last
        fetched: what the health files need, without reading every source's state."""
        with self._db.begin() as conn:
            return _sources.load_troubled(conn), from_timestamp(_sources.last_fetch(conn))

    def save_states(self, states: Iterable[SourceState], claimed: Claimed | None = None) -> list[str]:
        """Record the fetch state of sources whose items did not change, in one transaction.

        With ``claimed``, only the states of sources whose lease is still held are written
        (and their leases given back in the same transaction, if ``claimed.released`` notes
        them); returns the names of the others (nothing written for them)."""
        states = list(states)
        if not states:
            return []
        with self._db.begin() as conn:
            if claimed is None:
                _sources.save(conn, states)
                return []
            kept: list[SourceState] = []
            lost: list[SourceState] = []
            for state in states:
                lease = claimed.leases.get(state.name)
                held = lease is not None and _leases.holds(conn, claimed.owner, lease)
                (kept if held else lost).append(state)
            _sources.save(conn, kept)
            for state in kept:
                lease = claimed.leases[state.name]
                if claimed.released is not None:
                    _leases.release(conn, claimed.owner, lease, due=_leases.due_at(state))
                    claimed.released.add(state.name)
                else:
                    _leases.set_due(conn, claimed.owner, lease, _leases.due_at(state))
        return [state.name for state in lost]

    def known_items(self, sources: Iterable[str]) -> dict[str, dict[str, Known]]:
        """For each source: item key -> (entry id, digest, first seen), without the entry data."""
        with self._db.begin() as conn:
            return _items.known(conn, list(sources))

    def load_item_heads(self, sources: Iterable[str]) -> list[ItemHead]:
        """The items of the given sources without their entry data."""
        with self._db.begin() as conn:
            return _items.heads(conn, list(sources))

    def load_item_data(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Entry data of the given (source, ukey) items."""
        with self._db.begin() as conn:
            return _items.data(conn, keys)

    def save_fetch(self, state: SourceState, items: Iterable[ItemRow] = (), seen: Iterable[str] = (),
                   seen_at: float | None = None, keep_at_most: int | None = None,
                   ledger: Ledger | None = None, claimed: Claimed | None = None) -> int:
        """Record one source's fetch in one transaction: its state, new or changed items,
        which items the feed still lists, and the ``ledger``'s new keys (as
        :meth:`save_ledger` would). A run killed midway leaves each source either wholly
        updated or untouched.

        With ``keep_at_most``, the source's items beyond that many are dropped, those
        its feed stopped listing longest ago first (never one of the latest listing);
        returns how many were dropped.

        With ``claimed``, the write happens only while its lease on the source is held
        (checked in the same transaction), else :class:`LostLease` and nothing is written;
        if ``claimed.released`` notes them, the lease is given back in that transaction too."""
        changed = list(items)
        listed = list(seen)
        learnt = ledger.added() if ledger is not None else {}
        dropped = 0
        with self._db.begin() as conn:
            if claimed is not None:
                lease = claimed.leases.get(state.name)
                if lease is None or not _leases.holds(conn, claimed.owner, lease):
                    raise LostLease("the lease on this source expired and another worker took it over; "
                                    "this fetch was not stored", where=state.name)
            if learnt:
                _ledger.add(conn, learnt)
            _sources.save(conn, [state])
            _items.save(conn, changed)
            if changed:
                _note_items_changed(conn, state.name)
                _leases.note_changed(conn, state.name)
            if seen_at is not None:
                # The rows just stored carry their last_seen already (on a first fetch, all of them).
                stored = {r.ukey for r in changed if r.last_seen == seen_at and r.source == state.name}
                _items.mark_seen(conn, state.name, [u for u in listed if u not in stored], seen_at)
            if keep_at_most is not None:
                dropped = _items.keep_at_most(conn, state.name, keep_at_most)
            if claimed is not None and claimed.released is not None:
                _leases.release(conn, claimed.owner, claimed.leases[state.name], due=_leases.due_at(state))
                # Noted before the commit, so the heartbeat never takes it for a lost lease.
                claimed.released.add(state.name)
            elif claimed is not None:
                _leases.set_due(conn, claimed.owner, claimed.leases[state.name], _leases.due_at(state))
        if learnt and ledger is not None:
            ledger.saved()
        return dropped

    def prune_items(self, last_seen_before: float) -> int:
        """Drop items their source stopped listing before the given time; how many were dropped.

        Items of a source's latest listing are never dropped, however old: a source that
        has been failing for a while keeps what it last published."""
        with self._db.begin() as conn:
            dropped = _items.prune(conn, last_seen_before)
            if dropped:
                _note_items_changed(conn, "")
                _articles.forget_orphans(conn)
        return dropped

    # -- article pages of full_text sources ---------------------------------------

    def articles_wanted(self, source: str, *, how: str, now: float, limit: int) -> list[ArticleWanted]:
        """Items of ``source``'s latest listing whose article page is to be asked for, newest
        first, at most ``limit``: none stored, or of another link or extraction (``how``), or
        failed and due again at ``now``."""
        with self._db.begin() as conn:
            return _articles.wanted(conn, source, how=how, now=now, limit=limit)

    def load_articles(self, source: str, ukeys: Sequence[str]) -> dict[str, ArticleRow]:
        """The stored articles of the given items of ``source``."""
        with self._db.begin() as conn:
            return _articles.load(conn, source, ukeys)

    def save_articles(self, source: str, rows: Sequence[ArticleRow],
                      entries: Sequence[tuple[str, str, str]]) -> None:
        """Record what ``source``'s article pages gave, and the entry data and digest (by
        ukey: (ukey, data, digest)) of the items that now carry their article, in one
        transaction; articles of items no longer stored are dropped."""
        with self._db.begin() as conn:
            _articles.save(conn, rows)
            if entries:
                _articles.set_entries(conn, source, entries)
                _note_items_changed(conn, source)
            _articles.forget_orphans(conn, source)

    def article_health(self) -> dict[str, ArticleHealth]:
        """For each source with stored articles: pages that gave one, pages failing, the latest failure."""
        with self._db.begin() as conn:
            return _articles.health(conn)

    def item_counts(self) -> dict[str, int]:
        """How many items each source has stored."""
        with self._db.begin() as conn:
            return _items.counts(conn)


def _note_items_changed(conn: Connection, source: str) -> None:
    """Note, in the transaction changing them, that items of ``source`` ("": of several)
    changed (:meth:`Store.items_version`). On PostgreSQL each source has its own row, so
    that workers storing different sources at once never wait for each other."""
    if conn.dialect.name == "postgresql":
        _leases.bump_items(conn, source)
    else:
        _settings.note_items_changed(conn)
