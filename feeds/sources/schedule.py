"""When to fetch each source next, and what a fetch result means for it.

Pure: takes the source's state, the fetch result and the current time (passed
in, never read from a clock) and returns the new state. Rules:

- success: fetch again after ``every``, or later if the server's Cache-Control
  max-age or the feed's RSS ``ttl`` asks for it;
- 429/503 with Retry-After: wait as long as the server asks (bounded);
- 410 Gone: the source is marked gone and reported, and checked again rarely;
- any other failure: back off exponentially, with jitter, up to ``max_backoff``;
  polling never stops for good;
- a permanent redirect is adopted as the new address only after it has been
  seen on three fetches in a row;
- a feed discovered from the HTML page an address gave is fetched from then on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from ..identity import IdMode
from .results import FetchResult

ADOPT_AFTER = 3  # consecutive sightings of the same permanent redirect

#: Where a source stands: never fetched ("new"); its last fetch brought a feed ("ok"), a 304
#: ("not modified") or the same bytes as before ("unchanged"); it failed ("error"), is asked
#: to wait ("throttled"), or answered 410 ("gone").
SourceStatus = Literal["new", "ok", "not modified", "unchanged", "error", "throttled", "gone"]


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store keeps about one source between runs."""

    name: str
    #: The address in the config, and the one fetched (differs once a move is adopted).
    url: str
    fetch_url: str
    etag: str | None = None
    last_modified: str | None = None
    #: SHA-1 of the last body parsed, to skip parsing when a server sends no validators.
    body_hash: str | None = None
    last_fetch: datetime | None = None
    last_success: datetime | None = None
    status: SourceStatus = "new"
    error: str | None = None
    failures: int = 0
    next_due: datetime | None = None
    #: A permanent redirect seen, and on how many fetches in a row.
    moved_to: str | None = None
    moved_seen: int = 0
    #: How its items are told apart (``identity.id_mode``).
    id_mode: IdMode | None = None
    #: Items in the last parsed body.
    entries: int = 0

    def due(self, now: datetime) -> bool:
        return self.next_due is None or self.next_due <= now


def new_state(name: str, url: str) -> SourceState:
    return SourceState(name=name, url=url, fetch_url=url)


def after_fetch(state: SourceState, result: FetchResult, *, every: float, now: datetime, max_backoff: float,
                ttl_minutes: int | None = None, rng: random.Random | None = None) -> tuple[SourceState, list[str]]:
    """The state after ``result``, and notes worth reporting (moves adopted...)."""
    rng = rng or random.Random()
    notes: list[str] = []
    ceiling = max(every, max_backoff)
    state = replace(state, last_fetch=now)

    # A feed found from the HTML page the address gave: fetched from now on, reported once.
    if result.discovered and result.error is None:
        notes.append(f"the address gives an HTML page; found its feed at {result.discovered} and fetching that "
                     "from now on")
        state = replace(state, fetch_url=result.discovered, moved_to=None, moved_seen=0, etag=None,
                        last_modified=None)
    # Permanent redirects: remembered, adopted once seen consistently.
    if result.moved_to and result.moved_to != state.fetch_url:
        seen = state.moved_seen + 1 if result.moved_to == state.moved_to else 1
        state = replace(state, moved_to=result.moved_to, moved_seen=seen)
        if seen >= ADOPT_AFTER:
            notes.append(f"moved permanently to {result.moved_to}; now fetching that address")
            state = replace(state, fetch_url=result.moved_to, moved_to=None, moved_seen=0,
                            etag=None, last_modified=None)
    elif not result.moved_to:
        state = replace(state, moved_to=None, moved_seen=0)

    if result.gone:
        return replace(state, status="gone", error=result.error, failures=state.failures + 1,
                       next_due=now + timedelta(seconds=ceiling)), notes
    if result.error is None:
        wait = max(every, result.max_age or 0.0, (ttl_minutes or 0) * 60.0)
        status: SourceStatus = "not modified" if result.not_modified else "ok"
        etag, modified = state.etag, state.last_modified
        if not result.not_modified:
            etag, modified = result.etag, result.last_modified
        return replace(state, status=status, error=None, failures=0, last_success=now, etag=etag,
                       last_modified=modified, next_due=now + timedelta(seconds=min(wait, ceiling))), notes
    if result.status in (429, 503) and result.retry_after is not None:
        wait = min(max(every, result.retry_after), ceiling)
        return replace(state, status="throttled", error=result.error,
                       next_due=now + timedelta(seconds=wait)), notes
    failures = state.failures + 1
    wait = min(ceiling, every * 2 ** min(failures, 30)) * rng.uniform(0.8, 1.2)
    if result.retry_after is not None:
        wait = max(wait, min(result.retry_after, ceiling))
    return replace(state, status="error", error=result.error, failures=failures,
                   next_due=now + timedelta(seconds=max(every, min(wait, ceiling)))), notes
