"""Batched claims of due sources on a PostgreSQL state (``Store.claim_batch``): claims made at
once by several real processes are disjoint, a killed worker's batch is taken over once its
leases lapse (and its late write refused), and ordering by due time starves no source."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feeds.errors import LostLease
from feeds.sources.schedule import SourceState, new_state
from feeds.store import Claimed, Lease, Store

from .httpserver import FeedServer, feed_response, item, rss
from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)
from .test_daemon import wait_for


def url_of(name: str) -> str:
    return f"http://127.0.0.1/{name}.xml"


def offered(store: Store, names: list[str], due: datetime | None = None) -> dict[str, str]:
    """Offer ``names`` for claims, all due at ``due`` (None: now); their configured URLs."""
    store.offer_sources(dict.fromkeys(names, due))
    return {name: url_of(name) for name in names}


def _claim_until_dry(url: str, owner: str, names: list[str], start: Any, out: Any) -> None:
    """A worker process: wait for the others, then claim batches of 7 until none is left."""
    store = Store(url)
    try:
        urls = {name: url_of(name) for name in names}
        start.wait(timeout=60)
        got: list[tuple[str, int]] = []
        while True:
            batch = store.claim_batch(owner, urls, now=datetime.now(UTC), seconds=300, limit=7)
            if not batch:
                break
            got += [(lease.name, lease.token) for lease, _ in batch]
        out.put((owner, got))
    finally:
        store.close()


def test_batched_claims_from_several_processes_at_once_are_disjoint_and_skip_what_is_not_due(
        postgres_url: str) -> None:  # noqa: F811
    due = [f"s{i:03d}" for i in range(300)]
    later = [f"l{i:02d}" for i in range(20)]
    store = Store(postgres_url)
    try:
        soon: dict[str, datetime | None] = dict.fromkeys(due, None)
        store.offer_sources(soon | dict.fromkeys(later, datetime.now(UTC) + timedelta(hours=1)))
    finally:
        store.close()
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_claim_until_dry, args=(postgres_url, f"w{i}:1:x", due + later, start, out))
             for i in range(4)]
    for proc in procs:
        proc.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    claimed = [name for got in results.values() for name, _ in got]
    assert sorted(claimed) == due  # each due source once, over every worker; none not due
    assert sum(1 for got in results.values() if got) >= 2  # they did claim side by side


def _claim_and_die(url: str, names: list[str], out: Any) -> None:
    store = Store(url)
    batch = store.claim_batch("dead:1:x", {name: url_of(name) for name in names}, now=datetime.now(UTC),
                              seconds=2, limit=len(names))
    out.send([(lease.name, lease.token) for lease, _ in batch])  # sent before this returns
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_workers_batch_is_taken_over_once_its_leases_lapse_and_its_late_write_refused(
        postgres_url: str) -> None:  # noqa: F811
    names = [f"s{i:02d}" for i in range(10)]
    store = Store(postgres_url)
    try:
        urls = offered(store, names)
        ctx = multiprocessing.get_context("spawn")
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_claim_and_die, args=(postgres_url, names, writer))
        proc.start()
        assert reader.poll(60)
        dead = {name: Lease(name, token) for name, token in reader.recv()}
        proc.join(timeout=60)
        assert proc.exitcode == -signal.SIGKILL and sorted(dead) == names
        now = datetime.now(UTC)
        taken: list[tuple[Lease, SourceState | None]] = []

        def took_over() -> bool:
            taken.extend(store.claim_batch("b:2:y", urls, now=datetime.now(UTC), seconds=60, limit=50))
            return len(taken) == len(names)

        wait_for(took_over, 60, "the dead worker's leases to lapse")
        assert sorted(lease.name for lease, _ in taken) == names
        assert all(lease.token > dead[lease.name].token for lease, _ in taken)
        # The dead worker's write, arriving late, stores nothing; the new holder's does.
        state = new_state("s00", url_of("s00"))
        with pytest.raises(LostLease):
            store.save_fetch(state, claimed=Claimed("dead:1:x", {"s00": dead["s00"]}))
        assert "s00" not in store.load_sources()
        mine = {lease.name: lease for lease, _ in taken}
        done = replace(state, status="ok", next_due=now + timedelta(hours=1))
        store.save_fetch(done, claimed=Claimed("b:2:y", {"s00": mine["s00"]}, {}, set()))
        assert store.load_sources()["s00"].status == "ok"
    finally:
        store.close()


def test_a_claim_finding_a_source_fetched_since_gives_it_back_and_moves_its_due_time(
        postgres_url: str) -> None:  # noqa: F811
    """Another path (a `feeds fetch`, say) stored the source without moving the claim's due
    time: the claim reads the state, gives the lease back, and the next claim skips it."""
    store = Store(postgres_url)
    try:
        urls = offered(store, ["s00", "s01"])
        now = datetime.now(UTC)
        store.save_states([SourceState(name="s00", url=urls["s00"], fetch_url=urls["s00"], status="ok",
                                       next_due=now + timedelta(hours=1))])
        first = store.claim_batch("a:1:x", urls, now=now, seconds=60, limit=10)
        assert [lease.name for lease, _ in first] == ["s01"]
        # The URL changed in the config: offered (as a reload does) due at once, whatever the
        # state says; the claim then keeps it.
        moved = {**urls, "s00": "http://127.0.0.1/elsewhere.xml"}
        store.offer_sources({"s00": None, "s01": None})
        got = store.claim_batch("a:1:x", moved, now=now, seconds=60, limit=10)
        assert [lease.name for lease, _ in got] == ["s00"]
        assert got[0][1] is not None and got[0][1].url == urls["s00"]
        # A source no config offers any more is forgotten once free.
        store.offer_sources({"s01": None})
        store.release_lease("a:1:x", got[0][0])
        store.offer_sources({"s01": None})
        later = now + timedelta(hours=2)
        assert store.claim_batch("b:2:y", moved, now=later, seconds=60, limit=10) == []  # s01: a:1:x's
        assert [lease.name for lease, _ in first] == ["s01"]
        store.release_lease("a:1:x", first[0][0])
        assert [lease.name for lease, _ in store.claim_batch("b:2:y", moved, now=later, seconds=60,
                                                              limit=10)] == ["s01"]
    finally:
        store.close()


def test_no_source_is_starved_every_due_source_is_fetched_within_its_interval_and_a_lease(
        postgres_url: str) -> None:  # noqa: F811
    """Three workers with little room each (batches of 2) and 30 sources fetched every 10 s
    (on a simulated clock, one step a second): the longest due is always taken first, so each
    source is fetched again within its interval plus the lease (here 5 s) of falling due."""
    names = [f"s{i:02d}" for i in range(30)]
    interval, lease = 10, 5
    stores = [Store(postgres_url) for _ in range(3)]
    try:
        start = datetime(2030, 1, 1, tzinfo=UTC)
        urls = offered(stores[0], names, start)
        fetched: dict[str, list[tuple[datetime, datetime]]] = {name: [] for name in names}
        due = dict.fromkeys(names, start)
        for step in range(120):
            now = start + timedelta(seconds=step)
            for n, store in enumerate(stores):
                for held, _ in store.claim_batch(f"w{n}:1:x", urls, now=now, seconds=60, limit=2):
                    fetched[held.name].append((due[held.name], now))
                    due[held.name] = now + timedelta(seconds=interval)
                    state = SourceState(name=held.name, url=urls[held.name], fetch_url=urls[held.name],
                                        status="ok", next_due=due[held.name])
                    store.save_fetch(state, claimed=Claimed(f"w{n}:1:x", {held.name: held}, {}, set()))
        end = start + timedelta(seconds=119)
        for name in names:
            times = fetched[name]
            assert times, f"{name} never fetched"
            assert all((got - was).total_seconds() <= lease for was, got in times), (name, times)
            assert (end - times[-1][1]).total_seconds() <= interval + lease, (name, times[-1])
    finally:
        for store in stores:
            store.close()


def test_the_items_version_on_a_server_changes_with_every_committed_change_of_items(
        postgres_url: str) -> None:  # noqa: F811
    """Each source has its own row (two workers storing different sources never wait for one
    row); the version is their sum, so it moves on with every change, whichever commits first."""
    from feeds.models import Entry
    from feeds.store import ItemRow

    one, two = Store(postgres_url), Store(postgres_url)
    try:
        assert one.items_version() is None
        seen = {one.items_version()}
        when = datetime(2030, 1, 1, tzinfo=UTC)
        for n, store in enumerate([one, two, one, two]):
            name = f"s{n % 2}"
            entry = Entry(id=f"urn:{n}", title=f"t{n}", link=f"https://example.org/{n}", published=when,
                          updated=when)
            store.save_fetch(new_state(name, url_of(name)), [ItemRow.make(name, f"guid:{n}", entry, f"d{n}",
                                                                          when.timestamp(), when.timestamp())])
            version = two.items_version()
            assert version not in seen
            seen.add(version)
        store.save_fetch(new_state("s0", url_of("s0")))  # no item changed: the same version
        assert two.items_version() in seen and len(seen) == 5
    finally:
        one.close()
        two.close()


class _Turn:
    wait = 0.0

    def give_back(self, pause: float) -> None:
        pass


class _Turns:
    """Host turns that are always free, and leases that hold for the sources in ``holding``."""

    def __init__(self, holding: set[str]) -> None:
        self.holding = holding

    def take(self, host: str) -> _Turn:
        return _Turn()

    def may_ask(self, source: str) -> bool:
        return source in self.holding


def test_a_request_whose_lease_lapsed_while_waiting_for_its_host_is_not_sent(server: FeedServer) -> None:
    from feeds.sources.fetch import Fetcher, FetchSettings
    from feeds.sources.results import FetchRequest

    for name in ("held", "lapsed"):
        server.routes[f"/{name}.xml"] = feed_response(rss([item(1)]))
    settings = FetchSettings(host_gap=0.0)

    async def fetch() -> list[Any]:
        fetcher = Fetcher(settings, shared=_Turns({"held"}))
        await fetcher.open()
        try:
            return await fetcher.fetch_all([FetchRequest(name, server.url(f"/{name}.xml"))
                                            for name in ("held", "lapsed")])
        finally:
            await fetcher.aclose()

    held, lapsed = asyncio.run(fetch())
    assert held.failure is None and held.body
    assert lapsed.failure is not None and lapsed.failure.kind == "lease" and lapsed.body is None
    assert [seen.path for seen in server.seen] == ["/held.xml"]  # nothing sent for the other


class _Leases:
    """A store that grants every claim and loses every lease at its renewal."""

    def claim_batch(self, owner: str, urls: dict[str, str], **_: Any) -> list[tuple[Lease, None]]:
        return [(Lease(name, 1), None) for name in urls]

    def heartbeat(self, owner: str) -> None:
        pass

    def renew_leases(self, owner: str, held: list[Lease], *, seconds: float) -> list[Lease]:
        return [lease for lease in held if lease.name == "kept"]

    def release_lease(self, owner: str, lease: Lease, *, due: datetime | None = None) -> None:
        pass


def test_a_worker_may_ask_for_a_source_only_while_its_lease_surely_holds() -> None:
    from feeds.cluster import Membership

    membership, store = Membership(), _Leases()
    claims = membership.claim(store, {"kept": "u", "lost": "v"}, datetime.now(UTC),  # type: ignore[arg-type]
                              seconds=60, limit=2)
    assert membership.may_ask("kept") and membership.may_ask("lost") and not membership.may_ask("other")
    membership.beat(store, seconds=60)  # type: ignore[arg-type]
    assert membership.may_ask("kept") and not membership.may_ask("lost")
    short = Membership()
    short.claim(store, {"s": "u"}, datetime.now(UTC), seconds=0, limit=1)  # type: ignore[arg-type]
    assert not short.may_ask("s")  # its time is up: not asked, whatever the server says
    for claimed in claims:
        membership.release(store, claimed)  # type: ignore[arg-type]
    assert not membership.may_ask("kept") and membership.held() == []
