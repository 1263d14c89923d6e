"""A fetch loads only the ledger keys its decision looks up; ids come out as with the whole ledger.

The updater used to load the whole id ledger (every link ever seen) before deciding about
a source; now it asks the store for the links of the reading's items only
(``Decider.ledger_keys``, ``Store.load_ledger_keys``, ``Ledger.know``). Hypothesis makes
stored ledgers and runs of readings (links shared between sources, items new and old);
each decision must give the same ids and teach the same keys either way.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.config import Limits, Source
from feeds.identity import Ledger, LedgerKey
from feeds.sources.decide import Decider, FeedReading, ItemToStore
from feeds.sources.results import FetchResult
from feeds.sources.schedule import new_state
from feeds.store import Store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STAMP = NOW.timestamp()
URL = "https://site.example/feed.xml"

links = st.sampled_from([f"https://news.example/{n}" for n in range(12)])
ids = st.sampled_from([f"urn:id:{n}" for n in range(8)])
#: One item of a reading: its id as read, its link (or none), whether it is new in this fetch.
items = st.tuples(ids, st.none() | links, st.booleans())
readings = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.lists(items, max_size=6)), max_size=8)


def decider(name: str) -> Decider:
    return Decider(Source(name=name, url=URL), Limits(), NOW, "UTC", 280, 86400.0, "fingerprint")


def reading(parts: list[tuple[str, str | None, bool]]) -> FeedReading[str]:
    made = tuple(ItemToStore(f"guid:{n}", entry_id, link, STAMP if new else 1000.0, "digest", "entry")
                 for n, (entry_id, link, new) in enumerate(parts))
    return FeedReading(None, None, "guid", made, 0, 0, tuple(i.key for i in made), body_hash="hash")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.dictionaries(links, ids, max_size=8), run=readings)
def test_the_keys_a_decision_looks_up_give_the_ids_of_the_whole_ledger(
        tmp_path: Path, stored: dict[str, str], run: list[tuple[str, list[tuple[str, str | None, bool]]]]) -> None:
    store = Store(f"sqlite:///{tmp_path}/state-{random.getrandbits(64):x}.db")
    try:
        start = Ledger({LedgerKey("link", link): entry_id for link, entry_id in stored.items()})
        # Other kinds of keys are in the table too, and never asked for here.
        start.remember("urn:post:1", LedgerKey("content", "urn:uuid:post"), LedgerKey("path", "posts/a.md"))
        store.save_ledger(start)
        whole = store.load_ledger()
        partial = Ledger()
        for name, parts in run:
            d, r = decider(name), reading(parts)
            result = FetchResult(name, URL, URL, 200, b"<rss/>", {})
            before = len(partial)
            partial.know(store.load_ledger_keys(partial.unknown(d.ledger_keys(r))))
            assert len(partial) - before <= len({k for k in d.ledger_keys(r)})
            by_whole = d.decide(new_state(name, URL), result, r, whole, random.Random(1))
            by_partial = d.decide(new_state(name, URL), result, r, partial, random.Random(1))
            assert [i.entry_id for i in by_partial.items] == [i.entry_id for i in by_whole.items]
            assert by_partial.learnt == by_whole.learnt
            whole.learn(by_whole.learnt)
            partial.learn(by_partial.learnt)
            store.save_ledger(partial)  # as save_fetch does, in the fetch's transaction
        # What was stored is what the whole ledger would have stored.
        assert store.load_ledger_keys(whole.added()) == whole.added()
    finally:
        store.close()


def test_only_the_asked_keys_come_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        ledger = Ledger()
        for n in range(1200):  # more than one statement's worth of keys
            ledger.remember(f"urn:id:{n}", LedgerKey("link", f"https://news.example/{n}"))
        ledger.remember("urn:post", LedgerKey("path", "https://news.example/1"))
        store.save_ledger(ledger)
        asked = [LedgerKey("link", f"https://news.example/{n}") for n in range(0, 1200, 2)]
        asked.append(LedgerKey("link", "https://news.example/never"))
        found = store.load_ledger_keys(asked)
        assert found == {LedgerKey("link", f"https://news.example/{n}"): f"urn:id:{n}" for n in range(0, 1200, 2)}
        assert store.load_ledger_keys([]) == {}
    finally:
        store.close()


def test_a_known_key_keeps_its_id_and_is_not_saved_again() -> None:
    ledger = Ledger()
    key = LedgerKey("link", "https://news.example/1")
    ledger.remember("urn:id:mine", key)
    ledger.saved()
    ledger.know({key: "urn:id:stored", LedgerKey("link", "https://news.example/2"): "urn:id:2"})
    assert ledger.get(key) == "urn:id:mine"
    assert ledger.get(LedgerKey("link", "https://news.example/2")) == "urn:id:2"
    assert ledger.added() == {}
    assert ledger.unknown([key, LedgerKey("link", "x"), LedgerKey("link", "x")]) == [LedgerKey("link", "x")]
