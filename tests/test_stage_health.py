"""build/health: source problems as plain data, entries of the health feed, its JSON."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Stage entry points, in one place (they move as the stages are split).
from feeds.build.health import problems, status_entries, status_json
from feeds.config import Config, parse_config
from feeds.identity import ID_NAMESPACE
from feeds.models import EPOCH
from feeds.sources.schedule import SourceState, new_state

STATUS_URL = "https://example.org/feeds/status.atom"


def config() -> Config:
    return parse_config(
        "site: {title: t, base_url: 'https://example.org/feeds/'}\n"
        "sources:\n"
        "  - {name: down, url: 'https://down.example/f'}\n"
        "  - {name: busy, url: 'https://busy.example/f'}\n"
        "  - {name: gone, url: 'https://gone.example/f'}\n"
        "  - {name: moving, url: 'https://moving.example/f'}\n"
        "  - {name: guids, url: 'https://guids.example/f'}\n"
        "  - {name: local, url: 'feeds/local.xml'}\n"
        "  - {name: fine, url: 'https://fine.example/f'}\n"
        "  - {name: paused, url: 'https://paused.example/f', enabled: false}\n")


def states() -> dict[str, SourceState]:
    base = {s.name: new_state(s.name, s.url) for s in config().sources}
    return {
        **base,
        "down": replace(base["down"], status="error", error="HTTP 500", failures=4),
        "busy": replace(base["busy"], status="throttled", error=None),
        "gone": replace(base["gone"], status="gone", error=None),
        "moving": replace(base["moving"], status="ok", moved_to="https://moving.example/new", moved_seen=2),
        "guids": replace(base["guids"], status="ok", id_mode="hash"),
        "local": replace(base["local"], status="error", error="cannot read", id_mode="link"),
        "fine": replace(base["fine"], status="ok", id_mode="guid"),
        "paused": replace(base["paused"], status="error", error="HTTP 500"),
    }


def test_every_kind_of_problem_once_and_only_those() -> None:
    found = problems(config(), states())
    assert [(p["source"], p["problem"], p["detail"]) for p in found] == [
        ("down", "failing", "HTTP 500"),
        ("busy", "throttled", "fetch failed"),
        ("gone", "gone", "the source answered 410 Gone"),
        ("moving", "moved", "permanently redirected to https://moving.example/new"),
        ("guids", "guid downgrade", "its items have missing or repeated guids; they are told apart by content"),
        ("local", "failing", "cannot read"),
        ("local", "guid downgrade", "its items have missing or repeated guids; they are told apart by link"),
    ]
    assert all(p["key"] == f"{p['source']}\0{p['problem']}\0{p['detail']}" for p in found)
    assert found[0]["url"] == "https://down.example/f"


def test_what_changes_on_every_fetch_does_not_change_the_problem() -> None:
    again = states()
    again["down"] = replace(again["down"], failures=9, next_due=datetime(2030, 1, 1, tzinfo=UTC))
    assert problems(config(), again) == problems(config(), states())


def test_a_source_without_state_has_no_problem() -> None:
    assert problems(config(), {}) == []


def test_entries_are_stable_per_episode_and_newest_first() -> None:
    found = problems(config(), states())
    since = {found[0]["key"]: "2026-03-01T10:00:00+00:00", found[5]["key"]: "2026-03-02T10:00:00+00:00"}
    entries = status_entries(found, since, STATUS_URL)
    assert [e.title for e in entries[:2]] == ["local: failing", "down: failing"]
    assert entries[0].published == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert all(e.published == EPOCH for e in entries[2:])  # not seen before: the epoch
    down = entries[1]
    assert down.id == "urn:uuid:" + str(uuid.uuid5(ID_NAMESPACE, f"status:{found[0]['key']}:2026-03-01T10:00:00+00:00"))
    assert down.link == "https://down.example/f" and down.summary == "HTTP 500"
    assert down.content == "<p>HTTP 500</p><p>Source: https://down.example/f</p>"
    assert entries[0].link == STATUS_URL  # a local path is no link
    # A new episode of the same problem is a new entry; the same episode keeps its id.
    later = status_entries(found, {**since, found[0]["key"]: "2026-03-05T00:00:00+00:00"}, STATUS_URL)
    assert down.id not in {e.id for e in later}
    assert status_entries(found, since, STATUS_URL) == entries


def test_the_content_is_escaped() -> None:
    item = {"source": "x", "url": "https://x.example/?a=1&b=<2>", "problem": "failing", "detail": "<b>oops</b> & more",
            "key": "k"}
    (entry,) = status_entries([item], {}, STATUS_URL)
    assert entry.content == ("<p>&lt;b&gt;oops&lt;/b&gt; &amp; more</p>"
                             "<p>Source: https://x.example/?a=1&amp;b=&lt;2&gt;</p>")


def test_status_json() -> None:
    found = problems(config(), states())[:2]
    data = status_json(found, {found[0]["key"]: "2026-03-01T10:00:00+00:00"})
    assert data.endswith(b"}\n")
    assert json.loads(data) == {"problems": [
        {"source": "down", "url": "https://down.example/f", "problem": "failing", "detail": "HTTP 500",
         "since": "2026-03-01T10:00:00+00:00"},
        {"source": "busy", "url": "https://busy.example/f", "problem": "throttled", "detail": "fetch failed",
         "since": None}]}
    assert status_json([], {}) == b'{\n  "problems": []\n}\n'


@given(st.lists(st.tuples(st.sampled_from(["ok", "error", "throttled", "gone", "never"]),
                          st.sampled_from([None, "", "https://moved.example/f"]),
                          st.sampled_from([None, "guid", "link", "hash"]),
                          st.none() | st.floats(min_value=0, max_value=2e9)), min_size=8, max_size=8))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_states_read_for_the_health_files_find_the_same_problems_as_every_state(
        tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str | None, str | None, float | None]]) -> None:
    """A generation reads only the states that may have a problem (and when any source was
    last fetched), not every one: the problems found, and that time, are the same."""
    from feeds.store import Store

    cfg = config()
    every = {s.name: replace(new_state(s.name, s.url), status=status, moved_to=moved, id_mode=mode,
                             last_fetch=None if at is None else datetime.fromtimestamp(at, UTC))
             for s, (status, moved, mode, at) in zip(cfg.sources, rows, strict=True)}
    store = Store(tmp_path_factory.mktemp("health") / "feeds.db")
    try:
        store.save_states(every.values())
        troubled, checked = store.load_troubled_sources()
        stored = store.load_sources()
    finally:
        store.close()
    assert problems(cfg, troubled) == problems(cfg, stored)
    assert checked == max((s.last_fetch for s in stored.values() if s.last_fetch), default=None)
