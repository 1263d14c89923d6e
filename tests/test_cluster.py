"""Several `feeds run` workers on one PostgreSQL state: real processes, real signals, a real
server (started by the test run, see postgres.py) and a loopback source server that counts
every request. No source is fetched twice for one due time, none is lost, a worker killed
with SIGKILL has its sources taken over once its leases expire, and a host is asked one
request at a time over all the workers."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from feeds.sources.schedule import SourceState, new_state
from feeds.store import Store

from .conftest import Site
from .httpserver import FeedServer, Response, feed_response, item, rss
from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)
from .test_daemon import wait_for


class Counting:
    """Routes on a loopback server that count requests per source and how many are in flight at once."""

    def __init__(self, server: FeedServer, names: list[str], *, delay: float) -> None:
        self.server = server
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.in_flight = 0
        self.most = 0
        for n, name in enumerate(names):
            server.routes[f"/{name}.xml"] = self._route(name, feed_response(rss([item(n + 1)]), etag=None), delay)

    def _route(self, name: str, response: Response, delay: float) -> Callable[[dict[str, str]], Response]:
        def answer(headers: dict[str, str]) -> Response:
            with self.lock:
                self.hits[name] += 1
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
            try:
                time.sleep(delay)
            finally:
                with self.lock:
                    self.in_flight -= 1
            return response

        return answer


class Worker:
    """One `feeds run` process, its log in its own file."""

    def __init__(self, site: Site, index: int, config: str = "config.yaml") -> None:
        self.log = site.root / f"worker{index}.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "feeds", "run", "--config",
                                          str(site.root / config)], stdout=subprocess.DEVNULL, stderr=log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def owner(self) -> str:
        wait_for(lambda: "cluster: working as " in self.text(), 30, "the worker to start")
        found = re.search(r"cluster: working as (\S+)", self.text())
        assert found is not None
        return found[1]

    def fetched(self) -> list[str]:
        return re.findall(r"(\bs\d\d): ok", self.text())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.kill()
        print(f"--- {worker.log.name}\n{worker.text()}")  # shown when the test failed


def cluster_site(site: Site, server: FeedServer, url: str, names: list[str], *, lease: str = "60s",
                 extra: str = "") -> None:
    """A site on the PostgreSQL state ``url`` whose sources are all due now (stored as due a
    minute ago), each fetched once an hour: any second fetch would be a duplicate."""
    text = (site.root / "config.yaml").read_text().replace("state: state/feeds.db", f"state: {url}")
    sources = "".join(f"  - {{name: {n}, url: '{server.url(f'/{n}.xml')}', every: 1h, tags: [T{n}]}}\n"
                      for n in names)
    site.write_config(text + "sources:\n" + sources +
                      "fetch: {host_gap: 0, read_timeout: 10, total_timeout: 20}\n"
                      f"schedule: {{generate: 1h, debounce: 0.3s, lease: {lease}}}\n" + extra)
    store = Store(url)
    try:
        past = datetime.now(UTC) - timedelta(minutes=1)
        store.save_states([SourceState(name=n, url=server.url(f"/{n}.xml"), fetch_url=server.url(f"/{n}.xml"),
                                       next_due=past) for n in names])
    finally:
        store.close()


def stored_ok(url: str) -> set[str]:
    """The sources whose fetch is stored (status ok)."""
    store = Store(url)
    try:
        return {name for name, state in store.load_sources().items() if state.status == "ok"}
    finally:
        store.close()


def status(site: Site) -> str:
    result = subprocess.run([sys.executable, "-m", "feeds", "status", "--config", str(site.root / "config.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


#: More sources than one worker runs fetch jobs at once (32), all on one host (127.0.0.1).
NAMES = [f"s{i:02d}" for i in range(40)]


def test_three_workers_fetch_every_due_source_exactly_once_one_request_at_a_time_on_the_host(
        site: Site, server: FeedServer, postgres_url: str, workers: list[Worker]) -> None:  # noqa: F811
    # Slow answers: the host stays busy long enough for every worker to want it at once.
    counting = Counting(server, NAMES, delay=0.2)
    cluster_site(site, server, postgres_url, NAMES)
    workers.extend(Worker(site, i) for i in range(3))
    owners = {worker.owner() for worker in workers}
    assert len(owners) == 3
    wait_for(lambda: stored_ok(postgres_url) == set(NAMES), 60, "every source stored")
    # A late duplicate would come from a worker whose job fired after another's fetch.
    time.sleep(1.0)
    assert counting.hits == Counter(dict.fromkeys(NAMES, 1))
    fetched = [name for worker in workers for name in worker.fetched()]
    assert sorted(fetched) == NAMES
    assert len([worker for worker in workers if worker.fetched()]) >= 2
    # One request in flight on the host at any moment, over all three workers.
    assert counting.most == 1
    beating = {row[0] for row in query(postgres_url, "SELECT owner FROM workers")}
    assert beating == owners
    # feeds status shows every worker, its leases and the leader with its term.
    shown = status(site)
    leader, term, _ = leader_now(postgres_url)
    assert "cluster: 3 workers; leader " in shown and f"leader {leader}, term {term}" in shown
    assert all(f"worker {owner}: last heartbeat" in shown for owner in owners)
    assert shown.count("    leases: 0") == 3
    for worker in workers:
        assert worker.stop() == 0
    assert query(postgres_url, "SELECT name FROM source_leases WHERE owner IS NOT NULL") == []
    assert query(postgres_url, "SELECT owner FROM workers") == []


def test_a_killed_workers_sources_are_taken_over_once_its_leases_expire(
        site: Site, server: FeedServer, postgres_url: str, workers: list[Worker]) -> None:  # noqa: F811
    names = NAMES[:10]
    counting = Counting(server, names, delay=1.0)
    cluster_site(site, server, postgres_url, names, lease="2s")
    workers.extend(Worker(site, i) for i in range(2))
    by_owner = {worker.owner(): worker for worker in workers}
    held: list[tuple[object, ...]] = []

    def some_are_held() -> bool:
        held[:] = query(postgres_url, "SELECT owner, name FROM source_leases WHERE owner IS NOT NULL "
                                      "AND expires > now()")
        return bool(held)

    wait_for(some_are_held, 30, "a worker to hold a lease")
    owner = str(held[0][0])
    victim = by_owner[owner]
    (survivor,) = [worker for worker in workers if worker is not victim]
    victim.kill()
    # What it held when it died stays in its name until taken over.
    in_flight = {str(row[0]) for row in query(postgres_url, f"SELECT name FROM source_leases "
                                                            f"WHERE owner = '{owner}'")}
    assert in_flight
    wait_for(lambda: stored_ok(postgres_url) == set(names), 60, "every source stored after the kill")
    # The killed worker's fetches in flight may have reached the server: those few twice, no other.
    assert set(counting.hits) == set(names)
    twice = {name for name, count in counting.hits.items() if count > 1}
    assert twice <= in_flight and all(count <= 2 for count in counting.hits.values())
    # feeds status shows the killed worker as silent.
    wait_for(lambda: f"worker {owner}: last heartbeat" in (shown := status(site))
             and "silent longer than a lease" in shown, 60, "the killed worker shown as silent")
    assert survivor.stop() == 0


def test_a_write_under_a_lost_lease_is_refused_and_stores_nothing(postgres_url: str) -> None:  # noqa: F811
    from feeds.errors import LostLease
    from feeds.store import Claimed

    one, two = Store(postgres_url), Store(postgres_url)
    try:
        now = datetime.now(UTC)
        lease = one.claim_due_source("a:1:x", "s00", "http://127.0.0.1/s00", now=now, seconds=60)
        assert lease is not None
        assert two.claim_due_source("b:2:y", "s00", "http://127.0.0.1/s00", now=now, seconds=60) is None
        # The lease lapses (its holder stalled); another worker takes the source over.
        assert one.renew_leases("a:1:x", [lease], seconds=0) == [lease]
        taken = two.claim_due_source("b:2:y", "s00", "http://127.0.0.1/s00", now=now, seconds=60)
        assert taken is not None and taken.token > lease.token
        state = new_state("s00", "http://127.0.0.1/s00")
        with pytest.raises(LostLease):
            one.save_fetch(state, claimed=Claimed("a:1:x", {"s00": lease}))
        assert one.save_states([state], Claimed("a:1:x", {"s00": lease})) == ["s00"]
        assert "s00" not in one.load_sources()
        done = SourceState(name="s00", url=state.url, fetch_url=state.url, status="ok",
                           next_due=now + timedelta(hours=1))
        two.save_fetch(done, claimed=Claimed("b:2:y", {"s00": taken}))
        two.release_lease("b:2:y", taken)
        # Fetched for this due time: nobody claims it again until it is next due.
        assert one.claim_due_source("a:1:x", "s00", "http://127.0.0.1/s00", now=now, seconds=60) is None
        later = now + timedelta(hours=2)
        assert one.claim_due_source("a:1:x", "s00", "http://127.0.0.1/s00", now=later, seconds=60) is not None
    finally:
        one.close()
        two.close()


def test_a_claim_reads_the_state_and_the_write_gives_the_lease_back(postgres_url: str) -> None:  # noqa: F811
    """One transaction claims a source and reads its state; the one storing the fetch gives
    the lease back, so a fetch costs no transaction of its own for either."""
    from feeds.store import Claimed

    store = Store(postgres_url)
    try:
        now = datetime.now(UTC)
        url = "http://127.0.0.1/s00"
        first = store.claim_due("a:1:x", "s00", url, now=now, seconds=60)
        assert first is not None and first[1] is None  # never stored
        released: set[str] = set()
        stored = SourceState(name="s00", url=url, fetch_url=url, status="ok", etag='"v1"',
                             next_due=now - timedelta(seconds=1))
        store.save_fetch(stored, claimed=Claimed("a:1:x", {"s00": first[0]}, {}, released))
        assert released == {"s00"}
        # Due again (next_due passed): another worker claims it at once, and gets its state.
        again = store.claim_due("b:2:y", "s00", url, now=now, seconds=60)
        assert again is not None and again[0].token > first[0].token
        assert again[1] is not None and again[1].etag == '"v1"'
        released = set()
        assert store.save_states([replace(stored, next_due=now + timedelta(hours=1))],
                                 Claimed("b:2:y", {"s00": again[0]}, {}, released)) == []
        assert released == {"s00"}
        # Fetched for this due time: the claim finds it so and gives the lease straight back.
        assert store.claim_due("c:3:z", "s00", url, now=now, seconds=60) is None
        assert store.claim_due("c:3:z", "s00", url, now=now + timedelta(hours=2), seconds=60) is not None
    finally:
        store.close()


def test_a_hosts_turn_is_held_by_one_worker_at_a_time_and_the_pause_after_it_is_shared(
        postgres_url: str) -> None:  # noqa: F811
    from feeds.store.hosts import HostTurns

    Store(postgres_url).close()  # the tables, as a worker makes them when it starts
    one, two = HostTurns(postgres_url, size=2), HostTurns(postgres_url, size=2)
    try:
        turn = one.take("feeds.example")
        got: list[object] = []
        waiting = threading.Thread(target=lambda: got.append(two.take("feeds.example")))
        waiting.start()
        waiting.join(0.5)
        assert not got  # the other worker waits for the host
        elsewhere = two.take("other.example")  # another host is free meanwhile
        elsewhere.give_back(0)
        turn.give_back(30.0)
        waiting.join(30)
        assert len(got) == 1
        second = got[0]
        assert isinstance(second, type(turn)) and 20 < second.wait <= 30  # the pause holds for it too
        second.give_back(0)
    finally:
        one.close()
        two.close()


def leader_now(url: str) -> tuple[str | None, int, bool]:
    rows = query(url, "SELECT owner, term, expires > now() FROM leadership")
    if not rows:
        return None, 0, False
    owner, term, live = rows[0]
    return (None if owner is None else str(owner)), int(str(term)), bool(live)


def generations(worker: Worker) -> list[tuple[str, int]]:
    """(log time, term) of each generation the worker finished."""
    return [(when, int(term)) for when, term in
            re.findall(r"^(\S+) info\s+generate: .* \(term (\d+)", worker.text(), re.MULTILINE)]


def kill_the_leader(leader: Worker, url: str, term: int, by_owner: dict[str, Worker]) -> tuple[Worker, int]:
    """SIGKILL the leader (of ``term``); the worker that took over once it has generated, and its term."""
    owner = leader.owner()
    leader.kill()
    wait_for(lambda: leader_now(url)[0] not in (None, owner), 60, "a new leader")
    new_owner, new_term, _ = leader_now(url)
    assert new_term > term
    successor = by_owner[str(new_owner)]
    wait_for(lambda: any(t == new_term for _, t in generations(successor)), 60, "the new leader's generation")
    return successor, new_term


def entries_in(site: Site, path: str) -> int:
    import feedparser

    file = site.output / path
    return len(feedparser.parse(file.read_bytes()).entries) if file.exists() else 0


def test_only_the_leader_generates_and_a_killed_leader_is_replaced_without_rewriting_anything(
        site: Site, server: FeedServer, postgres_url: str, workers: list[Worker]) -> None:  # noqa: F811
    names = NAMES[:12]
    Counting(server, names, delay=0.05)
    cluster_site(site, server, postgres_url, names, lease="2s")
    workers.extend(Worker(site, i) for i in range(3))
    by_owner = {worker.owner(): worker for worker in workers}
    wait_for(lambda: entries_in(site, "all.atom.xml") == len(names), 60, "every entry published")
    owner, term, live = leader_now(postgres_url)
    assert owner in by_owner and live
    leader = by_owner[owner]
    # Only the leader generated, under its term; the others fetched but published nothing.
    for worker in workers:
        assert generations(worker) if worker is leader else not generations(worker)
        assert "generate:" not in worker.text() or worker is leader
    # Every change generated (no note left), and the last generation done writing.
    wait_for(lambda: query(postgres_url, "SELECT name FROM source_changes") == [], 30, "the last generation")
    time.sleep(2)
    before = site.mtimes()
    successor, new_term = kill_the_leader(leader, postgres_url, term, by_owner)
    # The new leader found every output as it should be: nothing was rewritten.
    assert site.mtimes() == before
    # Terms never overlapped: every generation of the old term ended before the new term's first.
    old_times = [when for when, t in generations(leader)]
    new_times = [when for when, t in generations(successor) if t == new_term]
    assert max(old_times) <= min(new_times)
    for worker in workers:
        if worker is not leader:
            assert worker.stop() == 0


def test_a_leader_stopped_by_sigterm_gives_the_leadership_up_at_once(
        site: Site, server: FeedServer, postgres_url: str, workers: list[Worker]) -> None:  # noqa: F811
    names = NAMES[:2]
    Counting(server, names, delay=0.0)
    cluster_site(site, server, postgres_url, names, lease="1h")
    workers.extend(Worker(site, i) for i in range(2))
    by_owner = {worker.owner(): worker for worker in workers}
    wait_for(lambda: leader_now(postgres_url)[0] in by_owner, 30, "a leader")
    owner, term, _ = leader_now(postgres_url)
    leader = by_owner[str(owner)]
    assert leader.stop() == 0
    assert "gave up the leadership" in leader.text()
    # With an hour-long lease, only giving it up lets the other worker lead now.
    wait_for(lambda: leader_now(postgres_url)[0] not in (None, owner), 60, "the other worker to lead")
    assert leader_now(postgres_url)[1] == term + 1
    for worker in workers:
        assert worker.stop() == 0
    assert leader_now(postgres_url)[0] is None


def test_a_stale_leaders_records_are_refused(postgres_url: str) -> None:  # noqa: F811
    from feeds.errors import LostLeadership
    from feeds.store import LastRun, OutputRecord

    one, two = Store(postgres_url), Store(postgres_url)
    try:
        first = one.lead("a:1:x", seconds=60, term=None)
        assert first is not None and two.lead("b:2:y", seconds=60, term=None) is None
        one.fence_with(first)
        one.save_outputs([OutputRecord("all.atom.xml", "sig-1", 10, 1)])
        # The term lapses (its holder stalled); another worker starts the next one.
        assert one.lead("a:1:x", seconds=0, term=first) == first
        second = two.lead("b:2:y", seconds=60, term=None)
        assert second is not None and second.number == first.number + 1
        with pytest.raises(LostLeadership):
            one.save_outputs([OutputRecord("all.atom.xml", "sig-stale", 99, 2)])
        with pytest.raises(LostLeadership):
            one.save_last_run(LastRun("stale", outputs=1))
        with pytest.raises(LostLeadership):  # nor may it cut archive pages
            one.save_archive_pages([("all", 1, ("tag:example.org,2024:stale",))])
        assert one.load_archive_pages() == {}
        assert one.load_outputs()["all.atom.xml"].signature == "sig-1"
        assert not one.still_leads(first) and two.still_leads(second)
        two.fence_with(second)
        two.save_outputs([OutputRecord("all.atom.xml", "sig-2", 11, 3)])
        assert one.load_outputs()["all.atom.xml"].signature == "sig-2"
        # The stale leader, trying again, gets no term while the new one is live.
        assert one.lead("a:1:x", seconds=60, term=first) is None
        two.resign(second)
        third = one.lead("a:1:x", seconds=60, term=None)
        assert third is not None and third.number == second.number + 1
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize(("value", "ok"), [("30s", True), ("2m", True), ("0s", False), ("2h", False),
                                           ("soon", False)])
def test_schedule_lease_is_checked_with_the_config(site: Site, value: str, ok: bool) -> None:
    from feeds.config import load_config
    from feeds.errors import ConfigError

    site.write_config((site.root / "config.yaml").read_text() + f"schedule: {{lease: {value}}}\n")
    if ok:
        assert load_config(site.root / "config.yaml").schedule.lease > 0
    else:
        with pytest.raises(ConfigError, match=r"schedule\.lease"):
            load_config(site.root / "config.yaml")


def test_change_notes_are_taken_once_and_can_be_noted_again(postgres_url: str) -> None:  # noqa: F811
    store = Store(postgres_url)
    try:
        store.note_changes(["s02", "s01", "s02"])
        assert store.changed_sources() == ["s01", "s02"]
        assert store.take_changes() == ["s01", "s02"]
        assert store.changed_sources() == [] and store.take_changes() == []
        store.note_changes(["s01"])  # a generation that took them failed
        assert store.take_changes() == ["s01"]
    finally:
        store.close()


def test_a_reload_moving_the_state_to_a_server_is_refused_until_a_restart(
        site: Site, server: FeedServer, postgres_url: str, workers: list[Worker]) -> None:  # noqa: F811
    names = NAMES[:1]
    Counting(server, names, delay=0.0)
    cluster_site(site, server, postgres_url, names)
    on_server = (site.root / "config.yaml").read_text()
    site.write_config(on_server.replace(f"state: {postgres_url}", "state: state/feeds.db"))
    workers.append(Worker(site, 0))
    wait_for(lambda: "sources scheduled" in workers[0].text(), 30, "the daemon to start")
    site.write_config(on_server)
    workers[0].proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "needs a restart" in workers[0].text(), 30, "the refused reload")
    assert workers[0].proc.poll() is None
    assert workers[0].stop() == 0


def test_a_generate_run_beside_workers_fetches_nothing_and_fetches_again_once_they_are_gone(
        site: Site, server: FeedServer, postgres_url: str, workers: list[Worker]) -> None:  # noqa: F811
    names = NAMES[:3]
    counting = Counting(server, names, delay=0.0)
    cluster_site(site, server, postgres_url, names)
    # The worker shares the state and the output folder, and has no sources of its own: the
    # three stay due, and only a run that fetches beside it would ask for them.
    text = (site.root / "config.yaml").read_text()
    (site.root / "worker.yaml").write_text(re.sub(r"sources:\n(?:  - .*\n)+", "", text))
    workers.append(Worker(site, 0, "worker.yaml"))
    workers[0].owner()
    wait_for(lambda: "generate:" in workers[0].text(), 60, "the worker's first generation")

    def generate() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "feeds", "generate", "--wait", "30", "--config",
                               str(site.root / "config.yaml")], capture_output=True, text=True, timeout=120)

    beside = generate()
    assert beside.returncode == 0, beside.stderr
    assert "sources: left to the 1 `feeds run` worker sharing this state" in beside.stderr
    assert counting.hits == Counter() and stored_ok(postgres_url) == set()
    assert workers[0].stop() == 0
    alone = generate()
    assert alone.returncode == 0, alone.stderr
    assert "left to the" not in alone.stderr
    assert counting.hits == Counter(dict.fromkeys(names, 1)) and stored_ok(postgres_url) == set(names)
