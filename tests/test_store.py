"""The state database, resource by resource, in memory and in a real SQLite file.

Each test runs against ``Store("sqlite://")``, a ``Store(path)`` and a
``Store("sqlite:///path")``. Compatibility with databases written before the
store was split is checked against ``tests/data/store/state-v1.sql``, a dump of
a database the earlier store wrote (with the settings as the pipeline wrote
them): the same writes through the typed methods must give the same dump.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from feeds.config import Config, parse_config
from feeds.errors import Busy, ConfigError, DamagedStateError, StorageError
from feeds.identity import Ledger, LedgerKey
from feeds.lock import lock_path
from feeds.models import Author, Enclosure, Entry, PostMeta, Provenance
from feeds.sources.schedule import SourceState
from feeds.store import (
    SCHEMA_VERSION,
    CachedContent,
    ItemRow,
    Known,
    LastRun,
    OutputRecord,
    PostRow,
    Store,
    entry_from_json,
    meta_from_json,
    meta_to_json,
    move_aside,
)

DATA = Path(__file__).resolve().parent / "data" / "store"
T0 = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)


@pytest.fixture(params=["memory", "path", "url"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    target: str | Path = {"memory": "sqlite://", "path": tmp_path / "state" / "feeds.db",
                          "url": f"sqlite:///{tmp_path}/state/feeds.db"}[request.param]
    opened = Store(target)
    try:
        yield opened
    finally:
        opened.close()


def file_store(tmp_path: Path) -> tuple[Store, Path]:
    db = tmp_path / "feeds.db"
    return Store(db), db


def sql(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


META = PostMeta(
    path="posts/a.md", digest="d" * 40, title="Été à Paris", published=T0, updated=T0.replace(hour=13),
    explicit_id=None, link="https://example.org/a", permalink="https://example.org/posts/a/",
    authors=(Author("Anne", "anne@example.org", None),), tags=("voyage", "été"), categories=("Blog",),
    summary=None, language="fr", image=None, body_line=7)

ENTRY = Entry(
    id="https://wire.example/1", title="One", link="https://wire.example/1", published=T0, updated=T0,
    authors=(Author("Wire", None, "https://wire.example/"),), tags=("news", "世界"), categories=(),
    summary="Sum", content="<p>x</p>", language="en", image=None,
    enclosures=(Enclosure("https://wire.example/a.mp3", "audio/mpeg", 1234),),
    provenance=(Provenance("wire", None, "guid-1", "Wire", "https://wire.example/", "urn:wire", T0,
                           "https://wire.example/feed.xml"),))


def state(name: str = "wire", **changes: object) -> SourceState:
    base = SourceState(name=name, url=f"https://{name}.example/feed.xml", fetch_url=f"https://{name}.example/feed.xml",
                       etag='"abc"', last_modified="Fri, 01 Mar 2024 12:00:00 GMT", body_hash="b" * 40,
                       last_fetch=T0, last_success=T0, status="ok", error=None, failures=0,
                       next_due=T0.replace(hour=14), moved_to=None, moved_seen=0, id_mode="guid", entries=1)
    return replace(base, **changes)  # type: ignore[arg-type]


def item(ukey: str, *, source: str = "wire", first_seen: float = 1000.0, last_seen: float = 2000.0,
         digest: str = "dg") -> ItemRow:
    entry = Entry(id=f"https://{source}.example/{ukey}", title=ukey, link=f"https://{source}.example/{ukey}",
                  published=T0, updated=T0, tags=("t",))
    return ItemRow.make(source, ukey, entry, digest, first_seen, last_seen)


# -- opening -------------------------------------------------------------------


def test_a_new_database_has_the_schema_version(store: Store) -> None:
    assert store.get_setting("schema_version") == str(SCHEMA_VERSION)
    assert store.items_version() is None and store.load_last_run() is None


def test_a_path_and_its_url_are_the_same_database(tmp_path: Path) -> None:
    db = tmp_path / "a b%3F?#" / "feeds.db"
    config = parse_config(f"site:\n  base_url: https://example.org/\nstate: '{db}'\n", root=tmp_path)
    first = Store(config.state_path)
    first.save_output_dir("/srv/out")
    first.close()
    second = Store(config.state_url)
    try:
        assert second.path == db and second.where == str(db)
        assert second.load_output_dir() == "/srv/out"
    finally:
        second.close()
    assert sorted(p.name for p in db.parent.iterdir())[0] == "feeds.db"


def test_a_database_in_memory_is_one_database_for_every_thread() -> None:
    store = Store("sqlite://")
    try:
        assert store.path is None and store.where == "sqlite://"
        worker = threading.Thread(target=store.save_states, args=([state("a"), state("b")],))
        worker.start()
        worker.join()
        assert sorted(store.load_sources()) == ["a", "b"]
    finally:
        store.close()


def test_two_databases_in_memory_are_apart() -> None:
    one, two = Store("sqlite://"), Store("sqlite://")
    try:
        one.save_output_dir("/one")
        assert two.load_output_dir() is None
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://feeds:secret@db.internal/feeds", "only sqlite:///path and postgresql+psycopg://"),
    ("mysql://localhost/feeds", "only sqlite:///path and postgresql+psycopg://"),
    ("sqlite:///feeds.db?mode=ro", "takes no host or options"),
    ("not a url", "not a database URL"),
])
def test_a_url_the_store_cannot_open_is_a_storage_error(url: str, message: str) -> None:
    with pytest.raises(StorageError) as caught:
        Store(url)
    assert message in str(caught.value) and "secret" not in str(caught.value)
    assert not isinstance(caught.value, DamagedStateError)


def test_a_folder_in_place_of_the_database_is_damage(tmp_path: Path) -> None:
    (tmp_path / "feeds.db").mkdir()
    with pytest.raises(DamagedStateError) as caught:
        Store(tmp_path / "feeds.db")
    assert str(caught.value).startswith(f"{tmp_path / 'feeds.db'}: is a folder, not a state database")
    assert str(caught.value).endswith("feeds generate --rebuild-state")


def test_another_programs_database_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "feeds.db"
    sql(db, "CREATE TABLE invoices (n INTEGER)", "INSERT INTO invoices VALUES (1)")
    before = db.read_bytes()
    with pytest.raises(StorageError, match=r"not a feeds state database \(it has the tables invoices\)"):
        Store(f"sqlite:///{db}")
    assert db.read_bytes() == before


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    store.close()
    sql(db, f"UPDATE settings SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema_version'")
    with pytest.raises(StorageError, match=r"from a newer version of feeds \(schema 2\)") as caught:
        Store(db)
    assert caught.value.where == str(db) and not isinstance(caught.value, DamagedStateError)


def test_a_table_lacking_columns_is_damage(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    store.close()
    sql(db, "DROP TABLE items", "CREATE TABLE items (source TEXT, what BLOB_OF_SORTS)")
    with pytest.raises(DamagedStateError, match="table items has no ukey, entry_id"):
        Store(db)


def test_garbage_bytes_are_damage_naming_the_file(tmp_path: Path) -> None:
    db = tmp_path / "feeds.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DamagedStateError) as caught:
        Store(db)
    assert caught.value.where == str(db) and "file is not a database" in caught.value.message


def test_moving_aside_keeps_every_file_and_a_new_database_starts(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    store.save_output_dir("/out")
    moved = move_aside(db, T0)  # while open: the -wal and -shm files go too
    store.close()
    assert moved[0].name == "feeds.db.damaged-20240301T123000Z"
    assert {p.name for p in moved} <= {f"feeds.db.damaged-20240301T123000Z{x}" for x in ("", "-wal", "-shm")}
    assert not db.exists()
    fresh = Store(db)
    try:
        assert fresh.load_output_dir() is None
    finally:
        fresh.close()


# -- database errors -----------------------------------------------------------


def test_a_database_locked_past_the_busy_timeout_is_busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from feeds import store as module

    monkeypatch.setattr(module, "BUSY_TIMEOUT_MS", 50)
    store, db = file_store(tmp_path)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(Busy) as caught:
            store.save_output_dir("/out")
        assert caught.value.where == str(db) and "stayed locked by another program" in caught.value.message
        assert store.load_output_dir() is None  # readers are not held up
    finally:
        holder.close()
        store.close()


def test_a_table_gone_under_an_open_store_is_damage_naming_the_database(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    try:
        sql(db, "DROP TABLE outputs")
        with pytest.raises(DamagedStateError) as caught:
            store.load_outputs()
        assert caught.value.where == str(db) and "no such table: outputs" in caught.value.message
    finally:
        store.close()


def test_any_other_database_error_is_a_storage_error_naming_the_database(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    try:
        sql(db, "CREATE TRIGGER no_outputs BEFORE INSERT ON outputs BEGIN SELECT RAISE(ABORT, 'refused'); END")
        with pytest.raises(StorageError) as caught:
            store.save_outputs([OutputRecord("all.atom.xml", "s", 1, 2)])
        assert type(caught.value) is StorageError
        assert str(caught.value) == f"{db}: database error: refused"
    finally:
        store.close()


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    try:
        sql(db, "CREATE TRIGGER no_items BEFORE INSERT ON items BEGIN SELECT RAISE(ABORT, 'refused'); END")
        with pytest.raises(StorageError):
            store.save_fetch(state(), [item("guid:1")], ["guid:1"], seen_at=2000.0)
        assert store.load_sources() == {} and store.items_version() is None
    finally:
        store.close()


# -- posts and their content -----------------------------------------------------


def test_posts_round_trip_and_replace(store: Store) -> None:
    rows = [PostRow("posts/a.md", 10**18, 120, "fp", meta_to_json(META), None),
            PostRow("posts/b.md", 2, 20, "fp", None, "posts/b.md:1: no title"),
            PostRow("posts/c.md", 3, 30, "fp", None, "")]
    store.save_posts(rows)
    assert store.load_posts() == {r.path: r for r in rows}
    assert meta_from_json(store.load_posts()["posts/a.md"].meta or "") == META
    changed = rows[1]._replace(mtime_ns=5, meta=meta_to_json(META), problem=None)
    store.save_posts([changed])
    assert store.load_posts()["posts/b.md"] == changed and len(store.load_posts()) == 3


def test_posts_saved_from_a_stream_in_batches_and_decoded_with_shared_values(store: Store) -> None:
    metas = [META._replace(path=f"posts/{n}.md", updated=META.published if n % 2 else META.updated)
             for n in range(2500)]
    store.save_posts(PostRow(m.path, n, n, "fp", meta_to_json(m), None) for n, m in enumerate(metas))
    rows = store.load_posts()
    assert len(rows) == 2500
    shared: dict[object, object] = {}
    decoded = [meta_from_json(rows[m.path].meta or "", shared) for m in metas]
    assert decoded == metas == [meta_from_json(rows[m.path].meta or "") for m in metas]
    assert decoded[0].tags is decoded[1].tags and decoded[0].authors[0] is decoded[1].authors[0]
    assert decoded[1].updated is decoded[1].published


def test_forgetting_a_post_forgets_its_content(store: Store) -> None:
    store.save_posts([PostRow(f"posts/{n}.md", 1, 1, "fp", None, "") for n in range(700)])
    store.save_contents([CachedContent(f"posts/{n}.md", "d", "cfp", f"<p>{n}</p>", "") for n in range(700)])
    store.save_posts([], forget=[f"posts/{n}.md" for n in range(1, 700)])
    assert list(store.load_posts()) == ["posts/0.md"]
    everything = [f"posts/{n}.md" for n in range(700)]
    assert list(store.load_contents("cfp", everything)) == ["posts/0.md"]


def test_content_is_found_only_for_the_settings_it_was_made_with(store: Store) -> None:
    one = CachedContent("posts/a.md", "d1", "cfp", "<p>été</p>", "été")
    store.save_contents([one, CachedContent("posts/b.md", "d2", "other", "<p>b</p>", "b")])
    assert store.load_contents("cfp", ["posts/a.md", "posts/b.md", "posts/none.md"]) == {"posts/a.md": one}
    newer = CachedContent("posts/a.md", "d3", "cfp", "<p>new</p>", "new")
    store.save_contents([newer])
    assert store.load_contents("cfp", ["posts/a.md"]) == {"posts/a.md": newer}


def test_a_garbled_post_row_is_damage(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    try:
        store.save_posts([PostRow("posts/a.md", 1, 1, "fp", meta_to_json(META), None)])
        sql(db, "UPDATE post_cache SET mtime_ns = 'yesterday'")
        with pytest.raises(DamagedStateError, match="garbled post cache row") as caught:
            store.load_posts()
        assert caught.value.where == str(db)
    finally:
        store.close()
    with pytest.raises(DamagedStateError, match="garbled post cache row"):
        meta_from_json('{"path": 1')


# -- the id ledger -------------------------------------------------------------------


def test_the_ledger_round_trips_and_keeps_first_ids(store: Store) -> None:
    ledger = Ledger()
    ledger.remember("urn:uuid:1", LedgerKey("content", "n1"), LedgerKey("path", "posts/a.md"))
    ledger.remember("https://x.example/1", LedgerKey("link", "https://x.example/1"))
    store.save_ledger(ledger)
    assert ledger.added() == {}
    loaded = store.load_ledger()
    assert len(loaded) == 3 and loaded.get(LedgerKey("path", "posts/a.md")) == "urn:uuid:1"
    assert loaded.get(LedgerKey("link", "https://x.example/1")) == "https://x.example/1"
    # A writer that did not see the first save (another process) cannot replace its ids.
    late = Ledger()
    late.remember("urn:uuid:2", LedgerKey("content", "n1"), LedgerKey("content", "n2"))
    store.save_ledger(late)
    again = store.load_ledger()
    assert again.get(LedgerKey("content", "n1")) == "urn:uuid:1"
    assert again.get(LedgerKey("content", "n2")) == "urn:uuid:2"


def test_two_stores_on_one_file_keep_the_first_saved_id(tmp_path: Path) -> None:
    one, db = file_store(tmp_path)
    two = Store(f"sqlite:///{db}")
    try:
        first, second = one.load_ledger(), two.load_ledger()
        first.remember("urn:one", LedgerKey("path", "p.md"))
        second.remember("urn:two", LedgerKey("path", "p.md"))
        one.save_ledger(first)
        two.save_ledger(second)
        assert one.load_ledger().get(LedgerKey("path", "p.md")) == "urn:one"
    finally:
        one.close()
        two.close()


def test_a_stored_ledger_key_of_no_known_kind_is_left_out(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    try:
        sql(db, "INSERT INTO id_ledger VALUES ('path:a.md', 'urn:a'), ('future:x', 'urn:x')")
        assert len(store.load_ledger()) == 1
    finally:
        store.close()


# -- outputs -------------------------------------------------------------------------


def test_outputs_round_trip_replace_and_forget(store: Store) -> None:
    records = [OutputRecord("all.atom.xml", "", -1, 0), OutputRecord("tag/été.rss.xml", "s2", 5, 6),
               OutputRecord("index.html", "s3", 7, 8)]
    store.save_outputs(records)
    assert store.load_outputs() == {r.path: r for r in records}
    written = OutputRecord("all.atom.xml", "s1", 100, 1_700_000_000_123_456_789)
    store.save_outputs([written], forget=["index.html", "never-recorded.xml"])
    assert store.load_outputs() == {"all.atom.xml": written, "tag/été.rss.xml": records[1]}
    store.save_outputs([], forget=[f"f{n}.xml" for n in range(600)] + ["tag/été.rss.xml"])
    assert list(store.load_outputs()) == ["all.atom.xml"]


@pytest.mark.parametrize("path", ["../../victim", "/tmp/victim", "a/./b", "a//b", ""])
def test_an_output_path_outside_the_output_folder_is_damage(tmp_path: Path, path: str) -> None:
    store, db = file_store(tmp_path)
    try:
        store.save_outputs([OutputRecord("all.atom.xml", "s", 1, 2)])
        sql(db, f"UPDATE outputs SET path = '{path}'")
        with pytest.raises(DamagedStateError, match="garbled outputs row") as caught:
            store.load_outputs()
        assert caught.value.where == str(db)
    finally:
        store.close()


# -- sources and items ---------------------------------------------------------------


def test_source_states_round_trip(store: Store) -> None:
    wire, other = state(), state("other", last_fetch=None, last_success=None, next_due=None, etag=None,
                                 status="error", error="HTTP 500", failures=3, moved_to="https://new.example/",
                                 moved_seen=2, id_mode=None)
    store.save_states([wire, other])
    assert store.load_sources() == {"wire": wire, "other": other}
    assert store.load_sources(["other", "none"]) == {"other": other}
    assert store.load_sources([]) == {}
    store.save_states([state(failures=1)])
    assert store.load_sources(["wire"])["wire"].failures == 1


def test_a_garbled_source_row_is_damage(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    try:
        store.save_states([state()])
        sql(db, "UPDATE sources SET last_fetch = 'yesterday'")
        with pytest.raises(DamagedStateError, match="garbled sources row"):
            store.load_sources()
    finally:
        store.close()


def test_a_fetch_stores_its_items_and_what_was_listed(store: Store) -> None:
    rows = [ItemRow.make("wire", "guid:1", ENTRY, "dg1", 1000.0, 2000.0), item("guid:2", last_seen=1500.0)]
    assert store.save_fetch(state(), rows, ["guid:1", "guid:2"], seen_at=3000.0) == 0
    assert store.load_sources() == {"wire": state()}
    assert store.known_items(["wire", "none"]) == {
        "wire": {"guid:1": Known(ENTRY.id, "dg1", 1000.0),
                 "guid:2": Known("https://wire.example/guid:2", "dg", 1000.0)},
        "none": {}}
    heads = store.load_item_heads(["wire"])
    assert [(h.ukey, h.tags, h.published) for h in heads] == [("guid:1", ("news", "世界"), T0.timestamp()),
                                                              ("guid:2", ("t",), T0.timestamp())]
    data = store.load_item_data([("wire", "guid:1"), ("wire", "gone")])
    assert list(data) == [("wire", "guid:1")] and entry_from_json(data["wire", "guid:1"]) == ENTRY
    assert store.item_counts() == {"wire": 2}
    assert store.load_item_heads([]) == []


def test_items_version_changes_only_when_items_do(store: Store) -> None:
    store.save_fetch(state(), [item("guid:1")], ["guid:1"], seen_at=2000.0)
    first = store.items_version()
    assert first is not None and len(first) == 32
    store.save_fetch(state(), [], ["guid:1"], seen_at=2500.0)
    store.save_states([state(failures=2)])
    assert store.items_version() == first
    store.save_fetch(state(), [item("guid:1", digest="changed")], ["guid:1"], seen_at=3000.0)
    assert store.items_version() not in (None, first)


def test_listed_items_are_marked_seen(store: Store) -> None:
    store.save_fetch(state(), [item(f"guid:{n}", last_seen=1000.0) for n in range(600)], [], seen_at=None)
    store.save_fetch(state(), [], [f"guid:{n}" for n in range(0, 600, 2)], seen_at=5000.0)
    # Pruning before 2000 drops what was not listed at 5000, and never the latest listing.
    assert store.prune_items(2000.0) == 300
    assert sorted(store.known_items(["wire"])["wire"]) == sorted(f"guid:{n}" for n in range(0, 600, 2))


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.integers(0, 30), st.sampled_from([100.0, 200.0]), max_size=20),
       st.dictionaries(st.integers(0, 30), st.sampled_from([300.0, 150.0]), max_size=20),
       st.sets(st.integers(0, 30)))
def test_after_a_fetch_what_was_listed_was_seen_then_and_nothing_else(stored: dict[int, float],
                                                                       changed: dict[int, float],
                                                                       listed: set[int]) -> None:
    # Rows stored by the fetch carry a last_seen of their own (the fetch's time or not):
    # every listed item ends up seen at the fetch's time, every other one keeps its own.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "feeds.db"
        with contextlib.closing(Store(path)) as opened:
            opened.save_fetch(state(), [item(f"k{n}", last_seen=at) for n, at in stored.items()])
            opened.save_fetch(state(), [item(f"k{n}", last_seen=at) for n, at in changed.items()],
                              [f"k{n}" for n in sorted(listed)], seen_at=300.0)
        with contextlib.closing(sqlite3.connect(path)) as db:
            got = dict(db.execute("SELECT ukey, last_seen FROM items").fetchall())
    want = {f"k{n}": at for n, at in {**stored, **changed}.items()}
    want.update({f"k{n}": 300.0 for n in listed if f"k{n}" in want})
    assert got == want


def test_keep_at_most_drops_the_longest_unlisted_first(store: Store) -> None:
    rows = [item("old", first_seen=1.0, last_seen=10.0), item("older", first_seen=2.0, last_seen=5.0),
            item("a", first_seen=3.0, last_seen=10.0), item("now1", last_seen=20.0), item("now2", last_seen=20.0)]
    assert store.save_fetch(state(), rows, keep_at_most=10) == 0
    assert store.save_fetch(state(), [], keep_at_most=3) == 2
    assert sorted(store.known_items(["wire"])["wire"]) == ["a", "now1", "now2"]
    # The latest listing stays whole, even beyond the cap.
    assert store.save_fetch(state(), [], ["now1", "now2"], seen_at=30.0, keep_at_most=1) == 1
    assert sorted(store.known_items(["wire"])["wire"]) == ["now1", "now2"]


def test_keep_at_most_touches_no_other_source(store: Store) -> None:
    store.save_fetch(state("other"), [item(f"o{n}", source="other", last_seen=float(n)) for n in range(5)])
    store.save_fetch(state(), [item(f"w{n}", last_seen=float(n)) for n in range(5)], keep_at_most=2)
    assert store.item_counts() == {"other": 5, "wire": 2}


def test_pruning_keeps_each_sources_latest_listing(store: Store) -> None:
    store.save_fetch(state("quiet"), [item("q1", source="quiet", last_seen=100.0),
                                      item("q0", source="quiet", last_seen=50.0)])
    store.save_fetch(state(), [item("w1", last_seen=900.0), item("w0", last_seen=200.0)])
    before = store.items_version()
    assert store.prune_items(500.0) == 2
    assert store.item_counts() == {"quiet": 1, "wire": 1} and store.items_version() != before
    after = store.items_version()
    assert store.prune_items(500.0) == 0 and store.items_version() == after


def test_a_garbled_item_row_is_damage(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    try:
        store.save_fetch(state(), [item("guid:1")])
        sql(db, "UPDATE items SET tags = 'not json'")
        with pytest.raises(DamagedStateError, match="garbled item row") as caught:
            store.load_item_heads(["wire"])
        assert caught.value.where == str(db)
        sql(db, "UPDATE items SET tags = '[]', data = '{\"id\": 1}'")
        with pytest.raises(StorageError, match="a stored item cannot be read"):
            entry_from_json(store.load_item_data([("wire", "guid:1")])["wire", "guid:1"])
    finally:
        store.close()


# -- settings --------------------------------------------------------------------------


def test_typed_settings_round_trip(store: Store) -> None:
    run = LastRun(snapshot="abc", outputs=4, feeds=3, posts=10, drafts=1, entries=12,
                  warnings=("posts/x.md:1: no title", "wire: HTTP 500 — ça"))
    store.save_last_run(run)
    assert store.load_last_run() == run
    store.forget_last_run()
    assert store.load_last_run() == LastRun("")
    store.save_input_counts({"posts": 3, "notes/*.md": 0})
    assert store.load_input_counts() == {"posts": 3, "notes/*.md": 0}
    store.save_health_since({"wire:error": "2024-03-01T12:30:00+00:00"})
    assert store.load_health_since() == {"wire:error": "2024-03-01T12:30:00+00:00"}
    store.save_output_dir("/srv/www/feeds")
    assert store.load_output_dir() == "/srv/www/feeds"


def test_unset_typed_settings(store: Store) -> None:
    assert store.load_last_run() is None and store.load_input_counts() == {}
    assert store.load_health_since() == {} and store.load_output_dir() is None and store.items_version() is None


def test_typed_settings_write_what_the_pipeline_wrote(store: Store) -> None:
    """The exact text the pipeline stored with set_setting before the typed methods."""
    store.save_last_run(LastRun(snapshot="abc", outputs=4, feeds=3, posts=10, drafts=1, entries=12,
                                warnings=("é: 1",)))
    assert store.get_setting("last_run") == ('{"snapshot": "abc", "outputs": 4, "feeds": 3, "posts": 10, '
                                             '"drafts": 1, "entries": 12, "warnings": ["é: 1"]}')
    store.forget_last_run()
    assert store.get_setting("last_run") == '{"snapshot": ""}'
    store.save_input_counts({"posts": 3, "帖子": 1})
    assert store.get_setting("post_inputs") == '{"posts": 3, "帖子": 1}'
    store.save_health_since({"wire:é": "2024-03-01T12:30:00+00:00"})
    assert store.get_setting("health") == '{"wire:é": "2024-03-01T12:30:00+00:00"}'
    store.save_output_dir("/srv/é")
    assert store.get_setting("output_dir") == "/srv/é"


def test_typed_settings_read_what_the_pipeline_wrote(store: Store) -> None:
    store.set_setting("last_run", '{"snapshot": "f00", "outputs": 2, "feeds": 1, "posts": 5, "drafts": 0, '
                                  '"entries": 5, "warnings": ["w\\u00e9"]}')
    store.set_setting("post_inputs", '{"posts": 5, "odd": "x", "other": 2}')
    store.set_setting("health", '{"a": "2024-01-01T00:00:00+00:00"}')
    store.set_setting("output_dir", "/out")
    store.set_setting("items_version", "0123abcd")
    assert store.load_last_run() == LastRun("f00", 2, 1, 5, 0, 5, ("wé",))
    assert store.load_input_counts() == {"posts": 5, "other": 2}
    assert store.load_health_since() == {"a": "2024-01-01T00:00:00+00:00"}
    assert store.load_output_dir() == "/out" and store.items_version() == "0123abcd"
    store.set_setting("last_run", '{"snapshot": ""}')
    assert store.load_last_run() == LastRun("")
    store.set_setting("last_run", '{"snapshot": "f00", "posts": 1, "drafts": 0, "entries": 1, "warnings": []}')
    assert store.load_last_run() == LastRun("f00", None, None, 1, 0, 1, ())


def test_raw_settings_still_work(store: Store) -> None:
    assert store.get_setting("x") is None and store.get_json_setting("x") is None
    store.set_setting("x", '{"a": [1]}')
    store.set_setting("x", '{"a": [2]}')
    assert store.get_setting("x") == '{"a": [2]}' and store.get_json_setting("x") == {"a": [2]}


@pytest.mark.parametrize(("key", "value", "load"), [
    ("last_run", "{[", "load_last_run"),
    ("last_run", "[1]", "load_last_run"),
    ("last_run", '{"snapshot": 5}', "load_last_run"),
    ("last_run", '{"snapshot": "x", "posts": "many"}', "load_last_run"),
    ("last_run", '{"snapshot": "x", "outputs": true}', "load_last_run"),
    ("last_run", '{"snapshot": "x", "warnings": "w"}', "load_last_run"),
    ("post_inputs", "[1]", "load_input_counts"),
    ("health", "not json", "load_health_since"),
])
def test_a_garbled_setting_is_damage(store: Store, key: str, value: str, load: str) -> None:
    store.set_setting(key, value)
    with pytest.raises(DamagedStateError, match="garbled settings row") as caught:
        getattr(store, load)()
    assert caught.value.where == store.where


def test_a_garbled_schema_version_is_damage(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    store.close()
    sql(db, "UPDATE settings SET value = 'one' WHERE key = 'schema_version'")
    with pytest.raises(DamagedStateError, match="garbled settings row") as caught:
        Store(db)
    assert caught.value.where == str(db)


# -- a database the earlier store wrote ------------------------------------------------


def fill(store: Store) -> None:
    """The writes behind ``state-v1.sql`` (made then with set_setting for the settings)."""
    store.save_posts([PostRow("posts/a.md", 1_700_000_000_000_000_000, 120, "fp", meta_to_json(META), None),
                      PostRow("posts/b.md", 2, 20, "fp", None, "posts/b.md:1: no title"),
                      PostRow("posts/c.md", 3, 30, "fp", None, "")])
    store.save_contents([CachedContent("posts/a.md", "d1", "cfp", "<p>été</p>", "été")])
    ledger = Ledger()
    ledger.remember("urn:uuid:1", LedgerKey("content", "n1"), LedgerKey("path", "posts/a.md"))
    ledger.remember("https://x.example/1", LedgerKey("link", "https://x.example/1"))
    store.save_ledger(ledger)
    store.save_outputs([OutputRecord("all.atom.xml", "sig", 100, 1_700_000_000_123_456_789),
                        OutputRecord("tag/été.rss.xml", "sig2", 5, 6)])
    store.save_fetch(state(), [ItemRow.make("wire", "guid:1", ENTRY, "dg1", 1000.0, 2000.0),
                               item("guid:2", last_seen=1500.0)], ["guid:1"], seen_at=2000.0, keep_at_most=10)
    store.save_states([state("other", last_fetch=None, status="error", error="HTTP 500", failures=2)])
    store.save_last_run(LastRun(snapshot="abc", outputs=2, feeds=1, posts=3, drafts=1, entries=4,
                                warnings=("posts/b.md:1: no title",)))
    store.save_input_counts({"posts": 3})
    store.save_health_since({"other:error": "2024-03-01T12:30:00+00:00"})
    store.save_output_dir("/srv/feeds")


#: Tables added since ``state-v1.sql`` was made (opening such a database creates them).
ADDED_SINCE_V1 = ("articles",)


def dump(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        conn.execute("UPDATE settings SET value = 'random' WHERE key = 'items_version'")
        added = tuple(f"CREATE TABLE {name} (" for name in ADDED_SINCE_V1)
        return [line for line in conn.iterdump() if not line.startswith(added)]
    finally:
        conn.close()


#: Tables added since state-v1.sql was written (create_all adds them to an older database).
ADDED_TABLES = ("archive_pages",)


def test_the_same_writes_store_what_the_earlier_store_stored(tmp_path: Path) -> None:
    store, db = file_store(tmp_path)
    try:
        fill(store)
    finally:
        store.close()
    statements = [s for s in dump(db) if not s.startswith(tuple(f"CREATE TABLE {t} " for t in ADDED_TABLES))]
    assert "\n".join(statements) + "\n" == (DATA / "state-v1.sql").read_text(encoding="utf-8")


def test_a_database_the_earlier_store_wrote_reads_back(tmp_path: Path) -> None:
    db = tmp_path / "feeds.db"
    conn = sqlite3.connect(db)
    conn.executescript((DATA / "state-v1.sql").read_text(encoding="utf-8"))
    conn.close()
    store = Store(db)
    try:
        assert meta_from_json(store.load_posts()["posts/a.md"].meta or "") == META
        assert store.load_ledger().get(LedgerKey("path", "posts/a.md")) == "urn:uuid:1"
        assert store.load_outputs()["all.atom.xml"].mtime_ns == 1_700_000_000_123_456_789
        assert store.load_sources()["wire"] == state()
        assert entry_from_json(store.load_item_data([("wire", "guid:1")])["wire", "guid:1"]) == ENTRY
        assert store.load_last_run() == LastRun("abc", 2, 1, 3, 1, 4, ("posts/b.md:1: no title",))
        assert store.load_input_counts() == {"posts": 3}
        assert store.load_health_since() == {"other:error": "2024-03-01T12:30:00+00:00"}
        assert store.load_output_dir() == "/srv/feeds" and store.items_version() == "random"
        assert store.load_articles("wire", ["guid:1"]) == {}  # the table added since, made on opening
        assert store.load_archive_pages() == {}  # a table added since: created on opening
        store.save_archive_pages([("all", 1, ["urn:uuid:1"])])
        store.save_archive_pages([("all", 1, ["changed"]), ("all", 2, ["urn:uuid:2"])])  # a page keeps its entries
        assert store.load_archive_pages() == {"all": [(1, ("urn:uuid:1",)), (2, ("urn:uuid:2",))]}
        store.save_archive_pages([], forget=["all"])
        assert store.load_archive_pages() == {}
    finally:
        store.close()


# -- the state key in the config -------------------------------------------------------------


def config_with(state_value: str) -> str:
    return f"site:\n  base_url: https://example.org/\nstate: {json.dumps(state_value)}\n"


@pytest.mark.parametrize(("value", "expected"), [
    ("sqlite:///db/feeds.db", "db/feeds.db"),
    ("sqlite:////var/lib/feeds/feeds.db", "/var/lib/feeds/feeds.db"),
    ("SQLite+pysqlite:///x%3Fy.db", "x?y.db"),
    ("db/feeds.db", "db/feeds.db"),
    ("state:db", "state:db"),
])
def test_the_state_may_be_a_sqlite_url(tmp_path: Path, value: str, expected: str) -> None:
    config = parse_config(config_with(value), root=tmp_path)
    assert config.state_path == tmp_path / expected
    assert make_url(config.state_url).database == str(tmp_path / expected)
    assert lock_path(config.state_path) == (tmp_path / expected).with_name(Path(expected).name + ".lock")


@pytest.mark.parametrize(("value", "message"), [
    ("postgresql://feeds@localhost/feeds", "state: postgresql:// is not supported"),
    ("mysql+pymysql://h/db", "state: mysql+pymysql:// is not supported"),
    ("sqlite://", "state: a database in memory keeps nothing between runs"),
    ("sqlite:///:memory:", "state: a database in memory keeps nothing between runs"),
    ("sqlite://host/feeds.db", "state: a sqlite URL takes no host or options"),
    ("sqlite:///feeds.db?timeout=1", "state: a sqlite URL takes no host or options"),
])
def test_a_state_url_that_is_not_a_sqlite_file_is_a_config_error(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_with(value), name="site.yaml", root=tmp_path)
    assert caught.value.where == "site.yaml" and caught.value.line == 3
    assert caught.value.message.startswith(message)


@settings(deadline=None, max_examples=60)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/"), min_size=1, max_size=12))
def test_state_url_names_the_state_path(name: str) -> None:
    config = Config.model_validate({"site": {"base_url": "https://example.org/"}, "state": "state/" + name,
                                    "root": Path("/srv/site")})
    url = make_url(config.state_url)
    assert url.get_backend_name() == "sqlite" and url.database == str(config.state_path)


# -- dialects --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
def test_upserts_are_each_dialects_own_construct(name: str) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from feeds.store import dialects, schema

    dialect = {"sqlite": sqlite.dialect, "postgresql": postgresql.dialect}[name]()
    update, _ = dialects._compiled(dialect, schema.outputs, "update")
    nothing, _ = dialects._compiled(dialect, schema.ledger, "nothing")
    assert update.startswith("INSERT INTO outputs (path, signature, size, mtime_ns) VALUES")
    assert update.endswith("ON CONFLICT (path) DO UPDATE SET signature = excluded.signature, size = excluded.size, "
                           "mtime_ns = excluded.mtime_ns")
    assert nothing.endswith('ON CONFLICT ("key") DO NOTHING') or nothing.endswith("ON CONFLICT (key) DO NOTHING")


def test_a_dialect_without_an_upsert_is_refused() -> None:
    from sqlalchemy.dialects import mysql

    from feeds.store import dialects, schema

    with pytest.raises(StorageError, match="a mysql database is not supported"):
        dialects._compiled(mysql.dialect(), schema.outputs, "update")


# -- a state URL, end to end -----------------------------------------------------------------


def test_a_site_with_a_state_url_publishes_the_same_files(tmp_path: Path) -> None:
    from .safety import cli, make_site, outputs

    by_path = make_site(tmp_path / "by-path", 6)
    by_url = make_site(tmp_path / "by-url", 6)
    config = by_url / "config.yaml"
    config.write_text(config.read_text().replace("state: state/feeds.db", "state: sqlite:///data/feeds.db"))
    for root in (by_path, by_url):
        assert cli(root, "generate").returncode == 0
    assert outputs(by_url) == outputs(by_path) and outputs(by_url)
    assert (by_url / "data" / "feeds.db").is_file() and (by_url / "data" / "feeds.db.lock").exists()
    assert not (by_url / "state").exists()
    store = Store(f"sqlite:///{by_url}/data/feeds.db")
    try:
        last = store.load_last_run()
        assert last is not None and last.posts == 6 and last.snapshot
    finally:
        store.close()
    config.write_text(config.read_text().replace("sqlite:///data/feeds.db", "postgresql://localhost/feeds"))
    result = cli(by_url, "generate")
    line = config.read_text().splitlines().index("state: postgresql://localhost/feeds") + 1
    assert result.returncode == 2 and f"config.yaml:{line}: state: postgresql:// is not supported" in result.stderr
