"""The source-update decider on its own: no database, no network, no clock.

Each test builds a fetch result by hand, parses a small feed string, hands in what is
known (the source's state, its stored items, the id ledger) and checks the decision.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple, cast

from feeds.build.keys import items_key
from feeds.config import Fetch, Limits, Source, parse_config
from feeds.identity import Ledger, LedgerKey
from feeds.models import Enclosure, Entry
from feeds.sources.decide import (
    Decider,
    FeedReading,
    ItemToStore,
    SourceDecision,
    failure_text,
    must_read,
)
from feeds.sources.fetch import FetchSettings, read_local
from feeds.sources.parse import parse_feed
from feeds.sources.results import FailureKind, FetchFailure, FetchRequest, FetchResult
from feeds.sources.schedule import SourceState, new_state

from .httpserver import item, rss

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "https://site.example/feed.xml"
EVERY = 3600.0


class Known(NamedTuple):
    """What a store keeps of an item, as the decider reads it."""

    entry_id: str
    digest: str
    first_seen: float


def decider(name: str = "s", *, limits: Limits | None = None, tags: tuple[str, ...] = (),
            timezone: str | None = None) -> Decider:
    return Decider(Source(name=name, url=URL, every=EVERY, tags=list(tags), timezone=timezone), limits or Limits(),
                   NOW, "UTC", 280, 86400.0, "fingerprint")


def story(n: int, **more: str) -> dict[str, str]:
    """An RSS item with the guid ``urn:s:<n>`` (a URI, so it is its id as it is)."""
    return item(n, **{"guid": f"urn:s:{n}", **more})


def fetched(text: str, *, name: str = "s", etag: str | None = '"v1"') -> FetchResult:
    headers = {"content-type": "application/rss+xml"} | ({"etag": etag} if etag else {})
    return FetchResult(name, URL, URL, 200, text.encode(), headers)


def read(d: Decider, result: FetchResult, known: dict[str, Known] | None = None) -> FeedReading[Entry]:
    assert result.body is not None
    feed = parse_feed(result.body, result.headers, result.final_url, max_items=d.limits.items_per_fetch)
    return d.read(result, feed, known or {})


def decide(d: Decider, result: FetchResult, reading: FeedReading[Entry] | FetchFailure | None = None, *,
           state: SourceState | None = None, ledger: Ledger | None = None, seed: int = 1) -> SourceDecision[Entry]:
    return d.decide(state or new_state(d.source.name, URL), result, reading, ledger or Ledger(),
                    random.Random(seed))


def known_of(items: tuple[ItemToStore[Entry], ...]) -> dict[str, Known]:
    return {i.key: Known(i.entry_id, i.digest, i.first_seen) for i in items}


# -- items: new, changed, unchanged ----------------------------------------------


def test_a_first_fetch_brings_every_item_as_new() -> None:
    d = decider(tags=("Extra",))
    result = fetched(rss([story(1), story(2)]))
    decision = decide(d, result, read(d, result))
    assert [i.key for i in decision.items] == ["guid:urn:s:1", "guid:urn:s:2"]
    assert decision.listed == ("guid:urn:s:1", "guid:urn:s:2")
    first = decision.items[0]
    assert first.entry_id == first.entry.id == "urn:s:1"
    assert first.link == first.entry.link == "https://site.example/s/1" and first.entry.title == "Story 1"
    assert first.entry.tags == ("Extra",) and first.first_seen == NOW.timestamp()
    out = decision.outcome
    assert (out.status, out.new, out.changed, out.entries, out.error, out.notes) == ("ok", 2, 0, 2, None, ())
    assert out.line() == "s: ok, 2 items (2 new, 0 changed)"
    state = decision.state
    assert state.status == "ok" and state.id_mode == "guid" and state.entries == 2 and state.etag == '"v1"'
    assert state.body_hash == hashlib.sha1(result.body or b"").hexdigest()
    assert state.next_due == NOW + timedelta(seconds=EVERY) == out.next_due
    # What the ledger learns: each story's link, under its id.
    assert decision.learnt == {LedgerKey("link", i.link or ""): i.entry_id for i in decision.items}
    assert decision.keep_at_most == Limits().stored_items


def test_unchanged_items_are_only_listed_and_changed_ones_keep_their_id() -> None:
    d = decider()
    first = read(d, fetched(rss([story(1), story(2)])))
    known = known_of(first.items)
    known["guid:urn:s:2"] = known["guid:urn:s:2"]._replace(entry_id="urn:x:kept", first_seen=1000.0)
    again = fetched(rss([story(1), story(2, title="Story 2, corrected"), story(3)]))
    reading = read(d, again, known)
    assert (reading.new, reading.changed) == (1, 1)
    assert reading.listed == ("guid:urn:s:1", "guid:urn:s:2", "guid:urn:s:3")
    changed, new = reading.items
    assert changed.key == "guid:urn:s:2" and changed.entry_id == "urn:x:kept" and changed.first_seen == 1000.0
    assert changed.entry.title == "Story 2, corrected"
    assert new.key == "guid:urn:s:3" and new.first_seen == NOW.timestamp()
    decision = decide(d, again, reading)
    assert [i.entry_id for i in decision.items] == ["urn:x:kept", new.entry_id]
    assert decision.outcome.line() == "s: ok, 3 items (1 new, 1 changed)"


def test_a_new_fingerprint_rebuilds_every_item() -> None:
    d = decider()
    result = fetched(rss([story(1)]))
    known = known_of(read(d, result).items)
    rebuilt = Decider(d.source, d.limits, NOW, "UTC", 280, 86400.0, "another fingerprint")
    reading = read(rebuilt, result, known)
    assert (reading.new, reading.changed) == (0, 1)


def test_the_same_item_twice_is_listed_once() -> None:
    d = decider()
    reading = read(d, fetched(rss([story(1), story(1), story(2)])))
    assert reading.listed == ("guid:urn:s:1", "guid:urn:s:2") and reading.new == 2


def test_items_without_guids_are_told_apart_by_link_and_a_note_says_so() -> None:
    d = decider()
    result = fetched(rss([story(1, guid="same"), story(2, guid="same")]))
    reading = read(d, result)
    assert reading.mode == "link" and reading.listed == ("link:https://site.example/s/1",
                                                         "link:https://site.example/s/2")
    decision = decide(d, result, reading)
    assert decision.items[0].entry_id == "https://site.example/s/1"
    assert decision.outcome.notes == ("items have missing or repeated guids; telling them apart by link",)
    assert decision.state.id_mode == "link"
    # Once known, the same mode is not news.
    assert decide(d, result, reading, state=decision.state).outcome.notes == ()


# -- nothing to read: a 304, the same bytes --------------------------------------


def test_not_modified_keeps_the_validators_and_lists_nothing() -> None:
    d = decider()
    state = SourceState("s", URL, URL, etag='"v1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT", entries=7,
                        status="ok", body_hash="abc")
    result = FetchResult("s", URL, URL, 304, headers={}, not_modified=True)
    assert not must_read(state, result)
    decision = decide(d, result, None, state=state)
    assert decision.listed is None and decision.items == () and decision.learnt == {}
    assert decision.state.status == "not modified" and decision.state.etag == '"v1"'
    assert decision.state.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT" and decision.state.body_hash == "abc"
    assert decision.outcome.line() == "s: not modified, 7 items (0 new, 0 changed)"
    assert decision.outcome.next_due == NOW + timedelta(seconds=EVERY)


def test_the_same_bytes_again_are_not_read() -> None:
    d = decider()
    result = fetched(rss([story(1)]), etag=None)
    first = decide(d, result, read(d, result))
    assert must_read(new_state("s", URL), result)
    assert not must_read(first.state, result)
    decision = decide(d, result, None, state=first.state)
    assert decision.state.status == "unchanged" and decision.listed is None
    assert decision.outcome.line() == "s: unchanged, 1 items (0 new, 0 changed)"


# -- failures and when the source is due again -----------------------------------


def failed(kind: FailureKind, message: str, status: int | None = None,
           retry_after: float | None = None) -> FetchResult:
    return FetchResult("s", URL, URL, status, failure=FetchFailure(kind, message), retry_after=retry_after)


def test_a_failure_backs_off_more_each_time_within_the_jitter() -> None:
    d = decider()
    state = SourceState("s", URL, URL, status="ok", entries=4)
    waits = []
    for failures in range(1, 5):
        decision = decide(d, failed("http", "HTTP 500 Internal Server Error", 500), None, state=state,
                          seed=failures)
        state = decision.state
        assert state.status == "error" and state.failures == failures and decision.listed is None
        assert state.error == decision.outcome.error == "HTTP 500 Internal Server Error"
        assert decision.outcome.line() == "s: error: HTTP 500 Internal Server Error"
        assert state.next_due is not None and decision.outcome.next_due == state.next_due
        waits.append((state.next_due - NOW).total_seconds())
    for failures, wait in enumerate(waits, start=1):
        assert EVERY * 2 ** failures * 0.8 <= wait <= EVERY * 2 ** failures * 1.2, (failures, wait)
    # The same state, result and random source: the same decision.
    again = decide(d, failed("http", "HTTP 500 Internal Server Error", 500), None, seed=3)
    assert again == decide(d, failed("http", "HTTP 500 Internal Server Error", 500), None, seed=3)


def test_backoff_stops_growing_at_max_backoff() -> None:
    d = decider()
    state = SourceState("s", URL, URL, status="error", failures=20)
    decision = decide(d, failed("timeout", "timed out connecting"), None, state=state)
    assert decision.state.next_due is not None
    assert 0.8 * d.max_backoff <= (decision.state.next_due - NOW).total_seconds() <= d.max_backoff


def test_retry_after_throttles_and_410_marks_the_source_gone() -> None:
    d = decider()
    throttled = decide(d, failed("http", "HTTP 429 Too Many Requests", 429, retry_after=7200.0), None)
    assert throttled.state.status == "throttled" and throttled.state.failures == 0
    assert throttled.state.next_due == NOW + timedelta(seconds=7200)
    gone = decide(d, failed("gone", "HTTP 410 Gone: the source was removed for good", 410), None)
    assert gone.state.status == "gone" and gone.state.next_due == NOW + timedelta(seconds=d.max_backoff)
    assert gone.outcome.line() == "s: gone: HTTP 410 Gone: the source was removed for good"


def test_a_body_that_is_no_feed_fails_the_source_like_a_fetch() -> None:
    d = decider()
    result = fetched("<html><body>not a feed</body></html>")
    decision = decide(d, result, FetchFailure("feed", f"{URL}: not a feed"))
    assert decision.state.status == "error" and decision.state.failures == 1
    assert decision.state.body_hash is None and decision.listed is None
    assert decision.outcome.line() == f"s: error: {URL}: not a feed"


def test_a_missing_local_file_is_a_typed_failure_with_its_line(tmp_path: Path) -> None:
    result = read_local(FetchRequest("s", str(tmp_path / "missing.xml")), 1 << 20)
    assert result.failure == FetchFailure("file", "cannot read: No such file or directory")
    assert result.error == "cannot read: No such file or directory" and not result.gone
    decision = decide(decider(), result, None)
    assert decision.outcome.line() == "s: error: cannot read: No such file or directory"


def test_the_fetchers_settings_are_the_configs() -> None:
    fetch = Fetch(concurrency=3, host_gap=1, read_timeout=4, max_redirects=2, allow_private_redirects=True,
                  max_backoff=99)
    settings = FetchSettings.from_config(fetch)
    assert (settings.concurrency, settings.host_gap, settings.read_timeout, settings.max_redirects) == (3, 1, 4, 2)
    assert settings.allow_private_redirects and settings.longest_host_block == 99
    assert FetchSettings.from_config(Fetch()) == FetchSettings()


def test_failure_text_is_one_line() -> None:
    assert failure_text(ValueError("bad\n  thing")) == "could not be handled (ValueError: bad thing)"
    assert failure_text(RecursionError()) == "the feed is nested too deeply to read"


# -- one id per story across sources ---------------------------------------------


def test_a_story_new_to_two_sources_in_one_run_gets_the_first_ones_id() -> None:
    shared_link = "https://news.example/story?utm_source=rss"
    a, b = decider("a"), decider("b")
    result_a = fetched(rss([story(1, guid="urn:a:1", link=shared_link)]), name="a")
    result_b = fetched(rss([story(1, guid="urn:b:1", link=shared_link)]), name="b")
    reading_a, reading_b = read(a, result_a), read(b, result_b)  # as on two workers
    ledger = Ledger()
    first = decide(a, result_a, reading_a, ledger=ledger)
    assert first.items[0].entry_id == "urn:a:1"
    link = LedgerKey("link", "https://news.example/story")
    assert first.learnt == {link: "urn:a:1"}
    assert ledger.get(link) is None  # deciding changes nothing: the updater applies what was learnt
    second_alone = decide(b, result_b, reading_b, ledger=ledger)
    assert second_alone.items[0].entry_id == "urn:b:1"
    ledger.learn(first.learnt)
    second = decide(b, result_b, reading_b, ledger=ledger)
    assert second.items[0].entry_id == "urn:a:1" and second.items[0].key == "guid:urn:b:1"
    assert second.items[0].entry.id == "urn:b:1"  # the entry as read: the store keeps the final id beside it
    assert second.learnt == {}


def test_a_stored_story_keeps_its_id_even_when_its_link_has_another() -> None:
    d = decider()
    result = fetched(rss([story(1, title="Story 1, edited")]))
    known = {"guid:urn:s:1": Known("urn:x:stored", "an older digest", NOW.timestamp() - 86400)}
    ledger = Ledger({LedgerKey("link", "https://site.example/s/1"): "urn:x:other"})
    decision = decide(d, result, read(d, result, known), ledger=ledger)
    assert [i.entry_id for i in decision.items] == ["urn:x:stored"] and decision.learnt == {}


def test_a_link_known_from_before_names_a_new_story() -> None:
    d = decider()
    result = fetched(rss([story(1, guid="a-new-guid")]))
    ledger = Ledger({LedgerKey("link", "https://site.example/s/1"): "urn:x:before"})
    decision = decide(d, result, read(d, result), ledger=ledger)
    assert decision.items[0].entry_id == "urn:x:before" and decision.learnt == {}


# -- caps -------------------------------------------------------------------------


def test_every_cap_hit_is_one_note() -> None:
    limits = Limits(items_per_fetch=3, tags_per_entry=2, tags_per_source=3, content_bytes=1024, stored_items=2)
    d = decider(limits=limits)
    cats = "".join(f"<category>t{k}</category>" for k in range(4))
    big = "&lt;p&gt;" + "word " * 400 + "&lt;/p&gt;"
    result = fetched(rss([story(1, description=big, extra=""), story(2), story(3), story(4), story(5)])
                     .replace("<extra></extra>", cats))
    reading = read(d, result)
    assert len(reading.listed) == 3
    assert all(len(i.entry.tags) <= 2 for i in reading.items)
    assert reading.items[0].entry.content is None and reading.items[0].entry.summary
    decision = decide(d, result, reading)
    assert decision.outcome.notes == (
        "the feed lists 5 items; read the first 3 (limits.items_per_fetch)",
        "1 items have more than 2 tags; kept the first 2 of each (limits.tags_per_entry)",
        "1 items have content over 1024 bytes; they keep their summary and link (limits.content_bytes)",
    )
    assert decision.keep_at_most == 2
    stored = decision.stored(dropped=4)
    assert stored.notes[-1] == "dropped the 4 oldest stored items, keeping 2 (limits.stored_items)"
    assert decision.stored(dropped=0) == decision.outcome


def test_tags_beyond_the_sources_cap_are_dropped_in_document_order() -> None:
    d = decider(limits=Limits(tags_per_entry=5, tags_per_source=3))
    items = [item(n, extra="") for n in (1, 2)]
    text = rss(items).replace("<extra></extra>", "<category>a</category><category>b</category>", 1)
    text = text.replace("<extra></extra>", "<category>c</category><category>d</category>", 1)
    reading = read(d, fetched(text))
    assert [i.entry.tags for i in reading.items] == [("a", "b"), ("c",)]
    assert reading.notes == ("the feed has 4 distinct tags; kept the first 3 (limits.tags_per_source)",)


def test_an_item_nobody_can_read_is_left_out_with_a_note() -> None:
    d = decider(timezone="Asia/Tokyo")
    result = fetched(rss([story(1), story(2)]))
    feed = parse_feed(result.body or b"", result.headers, URL)
    # What no parser makes, and no entry can hold.
    broken = replace(feed.items[1], enclosures=(cast(Enclosure, object()),))
    feed = replace(feed, items=(feed.items[0], broken))
    reading = d.read(result, feed, {})
    assert reading.listed == ("guid:urn:s:1",) and reading.new == 1
    assert len(reading.notes) == 1 and reading.notes[0].startswith("1 items could not be read and were left out")


ITEMS_CONFIG = """\
site: {{title: T, base_url: "https://example.org/", timezone: {zone}}}
schedule: {{debounce: {debounce}}}
fetch: {{read_timeout: {timeout}, limits: {{tags_per_entry: {tags}}}}}
sources:
  - {{name: a, url: "https://a.example/feed", every: {every}, tags: [{source_tags}]}}
"""


def _items_key(**changed: object) -> str:
    values: dict[str, object] = {"zone": "UTC", "debounce": "5s", "timeout": 10, "tags": 20, "every": "30m",
                                 "source_tags": "X"}
    config = parse_config(ITEMS_CONFIG.format(**{**values, **changed}))
    return items_key(config, config.sources[0])


def test_the_items_key_covers_what_shapes_items_and_nothing_else() -> None:
    base = _items_key()
    # When and how a source is fetched does not rebuild its stored items...
    assert _items_key(debounce="9s") == _items_key(timeout=30) == _items_key(every="2h") == base
    # ...what its entries are made with does.
    for changed in ({"zone": "Asia/Singapore"}, {"tags": 3}, {"source_tags": "Y"}):
        assert _items_key(**changed) != base, changed
