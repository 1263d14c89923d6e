"""A damaged state database is one line that says what to do, on every command; and
``feeds generate --rebuild-state`` moves it aside (never deletes it) and rebuilds the
same outputs with the same ids."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .safety import cli, entry_ids, make_site, outputs

WIRE = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title><link>https://wire.example/</link>
<item><title>Wire one</title><link>https://wire.example/1</link><guid>w1</guid>
<pubDate>Tue, 02 Mar 2021 10:00:00 GMT</pubDate><description>One</description></item>
<item><title>Wire two</title><guid isPermaLink="false">w2</guid>
<pubDate>Wed, 03 Mar 2021 10:00:00 GMT</pubDate><description>Two</description></item>
</channel></rss>"""


def _sql(*statements: str) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        conn = sqlite3.connect(db)
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.close()
    return damage


def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(3000))


def _truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[:len(data) // 3])


def _folder(db: Path) -> None:
    db.unlink()
    db.mkdir()
    (db / "x").write_text("a folder where the database should be")


DAMAGES: dict[str, Callable[[Path], None]] = {
    "garbage bytes": _garbage,
    "truncated": _truncated,
    "a folder in its place": _folder,
    "garbled post row": _sql("UPDATE post_cache SET meta = '{\"path\": 1' WHERE meta IS NOT NULL"),
    "garbled item row": _sql("UPDATE items SET tags = 'not json'"),
    "garbled source row": _sql("UPDATE sources SET last_fetch = 'yesterday', next_due = 'soon'"),
    "garbled setting": _sql("UPDATE settings SET value = '{[' WHERE key = 'last_run'"),
    "setting of the wrong shape": _sql("UPDATE settings SET value = '[1]' WHERE key = 'post_inputs'"),
    "garbled schema version": _sql("UPDATE settings SET value = 'one' WHERE key = 'schema_version'"),
    "wrong schema": _sql("DROP TABLE items", "CREATE TABLE items (source TEXT, what TEXT)"),
    "an output path outside the output folder":
        _sql("UPDATE outputs SET path = '../../victim' WHERE path = 'all.atom.xml'"),
    "an absolute output path": _sql("UPDATE outputs SET path = '/tmp/victim' WHERE path = 'all.rss.xml'"),
    "a garbled output time": _sql("UPDATE outputs SET mtime_ns = 'soon'"),
}


@pytest.mark.parametrize("kind", list(DAMAGES))
def test_damage_is_one_line_with_the_fix_then_rebuild_gives_the_same(tmp_path: Path, kind: str) -> None:
    root = make_site(tmp_path / "site", 8, extra="sources:\n  - name: wire\n    url: wire.xml\n    every: 1s\n")
    (root / "wire.xml").write_text(WIRE)
    assert cli(root, "generate").returncode == 0
    before, ids = outputs(root), entry_ids(root)
    db = root / "state" / "feeds.db"
    for extra in ("-wal", "-shm"):  # the database as one file, as a copy or a backup would be
        if db.with_name(db.name + extra).exists():
            sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()
    DAMAGES[kind](db)
    next(iter((root / "posts").iterdir())).touch()  # so the run reads what it has cached
    for command in (("generate",), ("status",)):
        result = cli(root, *command)
        if command == ("status",) and result.returncode == 0:
            continue  # status reads only the sources' rows; those may be whole
        assert result.returncode == 1, (command, result.stderr)
        lines = [line for line in result.stderr.splitlines() if "feeds.db" in line]
        assert len(lines) == 1 and "feeds generate --rebuild-state" in lines[0], result.stderr
    assert outputs(root) == before  # nothing published was touched
    result = cli(root, "generate", "--rebuild-state")
    assert result.returncode == 0, result.stderr
    assert outputs(root) == before
    assert entry_ids(root) == ids
    aside = [p for p in db.parent.iterdir() if ".damaged-" in p.name]
    assert aside, "the damaged database is kept"
    assert cli(root, "generate").returncode == 0


def test_rebuild_of_a_healthy_state_keeps_ids_of_posts_without_id_or_link(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", 10)
    assert cli(root).returncode == 0
    before, ids = outputs(root), entry_ids(root)
    result = cli(root, "generate", "--offline", "--rebuild-state")
    assert result.returncode == 0, result.stderr
    assert entry_ids(root) == ids and outputs(root) == before
    shutil.rmtree(root / "state")
    assert cli(root).returncode == 0 and entry_ids(root) == ids


def test_another_programs_database_is_neither_written_nor_moved(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", 3)
    db = root / "state" / "feeds.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (n INTEGER)")
    conn.execute("INSERT INTO invoices VALUES (7)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    for command in (("generate",), ("status",)):
        result = cli(root, *command)
        assert result.returncode == 1, result.stderr
        assert "feeds.db: not a feeds state database (it has the tables invoices)" in result.stderr
    assert db.read_bytes() == before and not outputs(root)


def test_a_database_held_locked_by_another_process_is_the_busy_exit(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding a write transaction longer than the busy timeout (lowered
    here) is one line and exit 75, and what is published stays."""
    from feeds import store

    root = make_site(tmp_path / "site", 3)
    assert cli(root, "generate").returncode == 0
    before = outputs(root)
    next(iter((root / "posts").iterdir())).write_text("---\ntitle: Changed\ndate: 2021-05-05\n---\nx\n")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); c.execute(\"DELETE FROM settings WHERE key = 'none'\")\n"
        "print('held', flush=True); time.sleep(120)\n"), str(root / "state" / "feeds.db")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 300)
        result = cli(root, "generate")
        assert result.returncode == 75, result.stderr
        assert result.stderr.count("\n") == 1 and "feeds.db: the state database stayed locked" in result.stderr
        assert outputs(root) == before
    finally:
        holder.kill()
        holder.communicate()
    monkeypatch.undo()
    assert cli(root, "generate").returncode == 0 and "Changed" in entry_ids(root)
