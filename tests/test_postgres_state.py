"""A state database on a real PostgreSQL server: the same outputs as SQLite, a safe start for
several processes at once, clear errors (the server is started by the test run, see postgres.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from feeds.store import Store

from .conftest import Site
from .httpserver import FeedServer, feed_response, item, rss
from .postgres import PostgresServer, postgres_server, postgres_url  # noqa: F401  (fixtures)
from .safety import cli, make_site, outputs


def _on_server(root: Path, url: str) -> None:
    config = root / "config.yaml"
    config.write_text(config.read_text().replace("state: state/feeds.db", f"state: {url}"))


def test_a_site_on_postgresql_publishes_the_same_bytes_as_on_sqlite(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811 (a fixture)
    by_file = make_site(tmp_path / "file", 6)
    by_server = make_site(tmp_path / "server", 6)
    _on_server(by_server, postgres_url)
    for root in (by_file, by_server):
        assert cli(root, "generate").returncode == 0
    assert outputs(by_server) == outputs(by_file) and outputs(by_server)
    assert not (by_server / "state").exists()
    # Again, incrementally: nothing changes, on either backend.
    for root in (by_file, by_server):
        assert cli(root, "generate").returncode == 0
        assert cli(root, "generate", "--offline").returncode == 0
        assert cli(root, "generate", "--check").returncode == 0
        assert cli(root, "check").returncode == 0
        assert cli(root, "status").returncode == 0
    assert outputs(by_server) == outputs(by_file)
    store = Store(postgres_url)
    try:
        last = store.load_last_run()
        assert last is not None and last.posts == 6
    finally:
        store.close()


def test_rebuild_state_on_a_server_is_refused_in_one_line(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811 (a fixture)
    root = make_site(tmp_path / "site", 2)
    _on_server(root, postgres_url)
    assert cli(root, "generate").returncode == 0
    before = outputs(root)
    result = cli(root, "generate", "--rebuild-state")
    assert result.returncode != 0 and "--rebuild-state" in result.stderr
    assert "Traceback" not in result.stderr and outputs(root) == before


def test_an_unreachable_server_is_one_line_without_the_password(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", 2)
    _on_server(root, f"postgresql+psycopg://feeds:hunter2@/nowhere?host={tmp_path / 'no-socket'}")
    result = cli(root, "generate")
    assert result.returncode != 0 and "cannot use the database server" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_several_processes_create_the_schema_of_an_empty_database_at_once(postgres_url: str) -> None:  # noqa: F811 (a fixture)
    code = f"from feeds.store import Store; s = Store({postgres_url!r}); s.save_output_dir('/x'); s.close()"
    runs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
    store = Store(postgres_url)
    try:
        assert store.load_output_dir() == "/x"
    finally:
        store.close()


@pytest.mark.parametrize("value", ["postgresql+psycopg://feeds@localhost/", "postgresql+psycopg://feeds@localhost"])
def test_a_postgresql_url_without_a_database_is_a_config_error(tmp_path: Path, value: str) -> None:
    root = make_site(tmp_path / "site", 1)
    _on_server(root, value)
    result = cli(root, "generate")
    assert result.returncode == 2 and "names its database" in result.stderr


def test_a_writer_on_a_server_state_holds_the_output_folder_lock_there(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811 (a fixture)
    import os

    from feeds.errors import Busy
    from feeds.store import server_lock

    root = make_site(tmp_path / "site", 2)
    _on_server(root, postgres_url)
    (root / "output").mkdir()
    # As another machine would: the same database, the same output folder's name.
    with server_lock(postgres_url, os.path.realpath(root / "output"), wait=0):
        result = cli(root, "generate", "--wait", "0")
        assert result.returncode == 75 and "database server" in result.stderr
        with pytest.raises(Busy), server_lock(postgres_url, os.path.realpath(root / "output"), wait=0):
            pass
    assert cli(root, "generate", "--wait", "0").returncode == 0


def test_the_daemon_on_a_server_state_fetches_generates_and_reports_status(
        site: Site, server: FeedServer, postgres_url: str) -> None:  # noqa: F811 (a fixture)
    from .test_daemon import Running, daemon_config, wait_for

    server.routes["/wire.xml"] = feed_response(rss([item(1)]), etag='"1"')
    daemon_config(site, server)
    _on_server(site.root, postgres_url)
    run = Running(site)
    try:
        wait_for(lambda: run.titles("/tags/wire.atom.xml") == ["Story 1"], 20, "the first entry")
        server.routes["/wire.xml"] = feed_response(rss([item(1), item(2)]), etag='"2"')
        wait_for(lambda: "Story 2" in run.titles("/tags/wire.atom.xml"), 20, "the new entry")
        result = subprocess.run([sys.executable, "-m", "feeds", "status", "--config", str(site.root / "config.yaml")],
                                capture_output=True, text=True, timeout=20)
        assert result.returncode == 0 and "last fetch: 20" in result.stdout and "entries:    2" in result.stdout
    finally:
        assert run.stop() == 0
    assert not (site.root / "state").exists()


def test_concurrent_claims_are_disjoint_and_a_stale_token_cannot_write(postgres_url: str) -> None:  # noqa: F811
    from feeds.sources.schedule import new_state

    names = [f"s{i:02d}" for i in range(20)]
    one, two = Store(postgres_url), Store(postgres_url)
    try:
        first = one.claim_sources("a:1:x", names, seconds=60, limit=12)
        second = two.claim_sources("b:2:y", names, seconds=60, limit=12)
        assert len(first) == 12 and len(second) == 8
        assert not {lease.name for lease in first} & {lease.name for lease in second}
        assert two.claim_sources("b:2:y", names, seconds=60, limit=12) == []
        # A lease past its expiry is taken over, with a newer token; the old holder's write is refused.
        short = first[0]
        assert one.renew_leases("a:1:x", [short], seconds=0) == [short]
        taken = two.claim_sources("b:2:y", [short.name], seconds=60, limit=1)
        assert len(taken) == 1 and taken[0].token == short.token + 1
        state = new_state(short.name, "http://127.0.0.1/x")
        assert not one.save_source_if_held("a:1:x", short, state)
        assert short.name not in one.load_sources()
        assert two.save_source_if_held("b:2:y", taken[0], state)
        assert short.name in one.load_sources()
        one.release_lease("a:1:x", first[1])
        assert [lease.name for lease in two.claim_sources("b:2:y", names, seconds=60, limit=5)] == [first[1].name]
        one.heartbeat("a:1:x")
    finally:
        one.close()
        two.close()


def test_a_pooled_connection_dropped_by_the_server_is_replaced_once_idle(
        postgres_url: str, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Connections just handed back are used without a ping; one idle for a while is pinged
    first, and one the server dropped meanwhile (a restart) is replaced, not an error."""
    import sqlalchemy as sa

    from feeds.store import engine

    store = Store(postgres_url)
    try:
        assert store.load_sources() == {}
        database = sa.make_url(postgres_url).database
        postgres_server.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")
        monkeypatch.setattr(engine, "IDLE_PING", 0.0)
        assert store.load_sources() == {}
        assert store.load_sources() == {}
    finally:
        store.close()
