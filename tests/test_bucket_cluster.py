"""Workers on one PostgreSQL state publishing to one bucket: only the leader publishes, under
its term; when it is killed, the new leader's term takes the bucket over without rewriting
an object whose bytes did not change, and the old term can publish nothing more."""

from __future__ import annotations

import feedparser
import pytest

from feeds.output.bucket import MANIFEST, Fence, StaleTerm, sync

from .conftest import Site
from .httpserver import FeedServer
from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)
from .test_bucket import Remote, aws_env, moto_url  # noqa: F401  (fixtures)
from .test_cluster import NAMES, Counting, Worker, cluster_site, kill_the_leader, leader_now, workers  # noqa: F401
from .test_daemon import wait_for


def test_the_leaders_term_fences_the_bucket_and_a_new_leader_rewrites_nothing(
        site: Site, server: FeedServer, postgres_url: str, moto_url: str,  # noqa: F811
        workers: list[Worker]) -> None:  # noqa: F811
    names = NAMES[:6]
    Counting(server, names, delay=0.05)
    remote = Remote(moto_url, "pub/")
    cluster_site(site, server, postgres_url, names, lease="2s")
    text = (site.root / "config.yaml").read_text()
    site.write_config(text.replace("output:\n", "output:\n" + remote.config(), 1))
    workers.extend(Worker(site, i) for i in range(2))
    by_owner = {worker.owner(): worker for worker in workers}

    def published() -> int:
        body = remote.files().get("all.atom.xml")
        return len(feedparser.parse(body).entries) if body else 0

    wait_for(lambda: published() == len(names), 90, "every entry in the bucket")
    owner, term, _ = leader_now(postgres_url)
    leader = by_owner[str(owner)]
    wait_for(lambda: remote.manifest()["term"] == term and not remote.manifest()["pending"], 30,
             "the leader's publication")
    wait_for(lambda: remote.files() == site.outputs(), 30, "the bucket to hold the folder")
    before = {k: n for k, n in remote.writes().items() if not k.endswith(MANIFEST)}
    successor, new_term = kill_the_leader(leader, postgres_url, term, by_owner)
    wait_for(lambda: remote.manifest()["term"] == new_term, 30, "the new term recorded in the bucket")
    after = {k: n for k, n in remote.writes().items() if not k.endswith(MANIFEST)}
    assert after == before, "the new leader rewrote objects whose bytes had not changed"
    assert remote.files() == site.outputs()
    # The old term is over: whatever it would still publish is refused.
    with pytest.raises(StaleTerm):
        sync(remote.settings(), site.output, list(site.outputs()), fence=Fence(term=term))
    assert successor.stop() == 0
