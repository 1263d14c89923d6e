"""The daemon's own decisions: when a reload regenerates, when a fetch job moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from feeds.daemon import Daemon, moved_run_time, output_changed

from .conftest import Site

SOURCES = """sources:
  - {name: wire, url: 'http://127.0.0.1:9/wire.xml', every: 1h, tags: [Wire]}
schedule: {generate: 1h, debounce: 2s}
fetch: {host_gap: 0}
"""


def edited(site: Site, old: str, new: str) -> None:
    text = (site.root / "config.yaml").read_text()
    assert old in text
    site.write_config(text.replace(old, new))


@pytest.fixture
def daemon(site: Site) -> Iterator[Daemon]:
    site.write_config((site.root / "config.yaml").read_text() + SOURCES)
    d = Daemon(site.root / "config.yaml", site.config())
    d.scheduler.start(paused=True)  # jobs are scheduled, none runs
    d.schedule_all()
    try:
        yield d
    finally:
        d.scheduler.shutdown(wait=False)
        d.fetcher.close()
        d.store.close()


@pytest.mark.parametrize(("old", "new"), [
    ("debounce: 2s", "debounce: 5s"),
    ("generate: 1h", "generate: 2h"),
    ("host_gap: 0", "host_gap: 1"),
    ("every: 1h", "every: 2h"),
])
def test_schedule_and_fetch_edits_do_not_regenerate(site: Site, old: str, new: str) -> None:
    site.write_config((site.root / "config.yaml").read_text() + SOURCES)
    before = site.config()
    edited(site, old, new)
    assert not output_changed(before, site.config())


@pytest.mark.parametrize(("old", "new"), [
    ("title: Test archive", "title: Other archive"),
    ("max_entries: 50", "max_entries: 10"),
    ("dir: output", "dir: output2"),
    ("state: state/feeds.db", "state: moved/feeds.db"),
    ("tags: [Wire]", "tags: [Wire, More]"),
    ("aliases: {Zaobao: 联合早报}", "aliases: {}"),
    ("url: 'http://127.0.0.1:9/wire.xml'", "url: 'http://127.0.0.1:9/other.xml'"),
])
def test_output_edits_regenerate(site: Site, old: str, new: str) -> None:
    site.write_config((site.root / "config.yaml").read_text() + SOURCES)
    before = site.config()
    edited(site, old, new)
    assert output_changed(before, site.config())


def test_a_reload_keeps_the_generation_turn_unless_the_output_changes(site: Site, daemon: Daemon) -> None:
    turn = datetime.now(UTC) + timedelta(minutes=30)
    daemon.scheduler.get_job("generate").modify(next_run_time=turn)
    edited(site, "debounce: 2s", "debounce: 5s")
    daemon.reload()
    assert daemon.config.schedule.debounce == 5
    assert daemon.scheduler.get_job("generate").next_run_time == turn
    edited(site, "title: Test archive", "title: Other archive")
    daemon.reload()
    assert daemon.scheduler.get_job("generate").next_run_time < turn


def test_a_shorter_generation_interval_brings_the_turn_closer(site: Site, daemon: Daemon) -> None:
    turn = datetime.now(UTC) + timedelta(minutes=30)
    daemon.scheduler.get_job("generate").modify(next_run_time=turn)
    edited(site, "generate: 1h", "generate: 1m")
    daemon.reload()
    job = daemon.scheduler.get_job("generate")
    assert job.next_run_time < turn
    assert job.trigger.interval == timedelta(minutes=1)


def test_fetch_jobs_move_only_for_a_due_time_far_from_their_turn() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    turn = now + timedelta(hours=1)
    assert moved_run_time(turn, None, 3600, now) is None
    assert moved_run_time(None, turn, 3600, now) is None
    assert moved_run_time(turn, turn + timedelta(minutes=20), 3600, now) is None  # jitter
    later = turn + timedelta(hours=5)
    assert moved_run_time(turn, later, 3600, now) == later
    # A due time already past runs the job a second from now, never in the past.
    assert moved_run_time(turn, now - timedelta(days=1), 3600, now) == now + timedelta(seconds=1)
