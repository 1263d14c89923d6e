"""sources/schedule: what a fetch result means for a source's state, and when it is due.

Pure: the time is passed in, and the jitter comes from a ``random.Random`` given to it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# Stage entry points, in one place (they move as the stages are split).
from feeds.sources.results import FetchFailure, FetchResult
from feeds.sources.schedule import ADOPT_AFTER, SourceState, after_fetch, new_state

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "https://feeds.example/a.xml"
EVERY = 600.0
MAX_BACKOFF = 86400.0


class Fixed(random.Random):
    """Jitter that is always the same factor."""

    def __init__(self, factor: float) -> None:
        super().__init__(0)
        self.factor = factor

    def uniform(self, a: float, b: float) -> float:
        assert (a, b) == (0.8, 1.2)
        return self.factor


def fetched(state: SourceState, result: FetchResult, *, now: datetime = NOW, factor: float = 1.0,
            ttl: int | None = None) -> tuple[SourceState, list[str]]:
    return after_fetch(state, result, every=EVERY, now=now, max_backoff=MAX_BACKOFF, ttl_minutes=ttl,
                       rng=Fixed(factor))


def ok(**fields: object) -> FetchResult:
    return FetchResult("a", URL, URL, **{"status": 200, "body": b"<rss/>", **fields})  # type: ignore[arg-type]


def failed(*, error: str = "HTTP 500", gone: bool = False, **fields: object) -> FetchResult:
    failure = FetchFailure("gone" if gone else "http", error)
    return FetchResult("a", URL, URL, **{"status": 500, "failure": failure, **fields})  # type: ignore[arg-type]


def after(state: SourceState) -> float:
    assert state.next_due is not None
    return (state.next_due - NOW).total_seconds()


def test_a_new_source_is_due_at_once() -> None:
    state = new_state("a", URL)
    assert state == SourceState("a", URL, URL) and state.status == "new" and state.due(NOW)
    assert replace(state, next_due=NOW).due(NOW) and not replace(state, next_due=NOW + timedelta(seconds=1)).due(NOW)


def test_success_waits_every_or_what_the_server_asks() -> None:
    state, notes = fetched(new_state("a", URL), ok(headers={"etag": '"e1"', "last-modified": "Sun, 01 Mar 2026"}))
    assert (state.status, state.failures, state.error, notes) == ("ok", 0, None, [])
    assert state.last_fetch == state.last_success == NOW and after(state) == EVERY
    assert (state.etag, state.last_modified) == ('"e1"', "Sun, 01 Mar 2026")
    assert after(fetched(state, ok(max_age=3600.0))[0]) == 3600.0
    assert after(fetched(state, ok(max_age=60.0))[0]) == EVERY  # never sooner than every
    assert after(fetched(state, ok(), ttl=90)[0]) == 5400.0
    assert after(fetched(state, ok(max_age=10**9))[0]) == MAX_BACKOFF  # bounded


def test_not_modified_keeps_the_validators() -> None:
    state = replace(new_state("a", URL), etag='"e1"', last_modified="then", failures=3, status="error")
    state, _ = fetched(state, ok(status=304, body=None, not_modified=True))
    assert (state.status, state.etag, state.last_modified, state.failures) == ("not modified", '"e1"', "then", 0)


def test_failures_back_off_exponentially_with_jitter_and_never_stop() -> None:
    state = new_state("a", URL)
    waits = []
    for _ in range(12):
        state, _ = fetched(state, failed())
        waits.append(after(state))
    assert state.status == "error" and state.error == "HTTP 500" and state.failures == 12
    assert waits[:5] == [1200.0, 2400.0, 4800.0, 9600.0, 19200.0]
    assert waits[-1] == MAX_BACKOFF and state.last_success is None
    state, _ = fetched(replace(state, failures=1), failed(), factor=0.8)
    assert after(state) == 2400.0 * 0.8
    state, _ = fetched(replace(state, failures=100), failed(), factor=1.2)
    assert after(state) == MAX_BACKOFF  # the jitter never takes it past the ceiling


def test_jitter_never_brings_a_retry_sooner_than_every() -> None:
    state, _ = fetched(new_state("a", URL), failed(), factor=0.8)
    assert after(state) == 2 * EVERY * 0.8
    tiny, _ = after_fetch(new_state("a", URL), failed(), every=EVERY, now=NOW, max_backoff=1.0, rng=Fixed(0.8))
    assert after(tiny) == EVERY  # the ceiling is at least every


def test_a_failure_waits_at_least_its_retry_after() -> None:
    state, _ = fetched(new_state("a", URL), failed(retry_after=7200.0))
    assert after(state) == 7200.0 and state.status == "error"


def test_throttled_waits_as_asked_without_counting_a_failure() -> None:
    for status in (429, 503):
        state, _ = fetched(replace(new_state("a", URL), failures=2),
                           failed(status=status, error="busy", retry_after=3600.0))
        assert (state.status, state.failures, after(state)) == ("throttled", 2, 3600.0)
    short, _ = fetched(new_state("a", URL), failed(status=429, error="busy", retry_after=5.0))
    assert after(short) == EVERY
    long, _ = fetched(new_state("a", URL), failed(status=503, error="busy", retry_after=10.0**9))
    assert after(long) == MAX_BACKOFF
    plain, _ = fetched(new_state("a", URL), failed(status=503, error="busy"))  # no Retry-After: a failure
    assert plain.status == "error" and plain.failures == 1


def test_gone_is_reported_and_checked_rarely() -> None:
    state, _ = fetched(new_state("a", URL), failed(status=410, error="410 Gone", gone=True))
    assert (state.status, state.error, state.failures, after(state)) == ("gone", "410 Gone", 1, MAX_BACKOFF)


def test_a_permanent_redirect_is_adopted_after_three_sightings_in_a_row() -> None:
    new = "https://feeds.example/b.xml"
    state = replace(new_state("a", URL), etag='"e"', last_modified="then")
    for seen in range(1, ADOPT_AFTER):
        state, notes = fetched(state, ok(moved_to=new, headers={"etag": '"e"'}))
        assert (state.fetch_url, state.moved_to, state.moved_seen, notes) == (URL, new, seen, [])
    state, notes = fetched(state, ok(moved_to=new))
    assert (state.url, state.fetch_url, state.moved_to, state.moved_seen) == (URL, new, None, 0)
    assert notes == [f"moved permanently to {new}; now fetching that address"]
    assert state.etag is None and state.last_modified is None  # validators of the old address


def test_a_redirect_not_seen_every_time_starts_again() -> None:
    b, c = "https://feeds.example/b.xml", "https://feeds.example/c.xml"
    state, _ = fetched(new_state("a", URL), ok(moved_to=b))
    state, _ = fetched(state, ok(moved_to=b))
    state, _ = fetched(state, ok())  # not redirected this time
    assert (state.moved_to, state.moved_seen) == (None, 0)
    state, _ = fetched(state, ok(moved_to=b))
    state, _ = fetched(state, ok(moved_to=c))
    assert (state.moved_to, state.moved_seen, state.fetch_url) == (c, 1, URL)
    state, _ = fetched(state, failed(moved_to=c))  # seen on a failed fetch too
    assert state.moved_seen == 2
    same, _ = fetched(state, ok(moved_to=URL))  # a redirect to where it already fetches
    assert (same.moved_to, same.moved_seen) == (c, 2)


@pytest.mark.parametrize("factor", [0.8, 1.0, 1.2])
@settings(deadline=None, max_examples=100)
@given(failures=st.integers(0, 200), every=st.floats(1, 10**6), backoff=st.floats(1, 10**7),
       retry=st.none() | st.floats(0, 10**8))
def test_the_next_attempt_is_never_sooner_than_every_nor_later_than_the_ceiling(
        factor: float, failures: int, every: float, backoff: float, retry: float | None) -> None:
    state = replace(new_state("a", URL), failures=failures)
    for result in (failed(retry_after=retry), failed(status=429, retry_after=retry), ok(max_age=retry)):
        new, _ = after_fetch(state, result, every=every, now=NOW, max_backoff=backoff, rng=Fixed(factor))
        # (timedelta keeps microseconds)
        assert every - 1e-6 <= after(new) <= max(every, backoff) + 1e-6
