"""Behaviours a differential run of the code before and after the stage split found
equal, pinned where no other test holds them: ids settled through the ledger after the
stored row is gone, and a guid change seen by two sources sharing a link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import feedparser

from feeds.pipeline import generate
from feeds.store import Store

from .conftest import Site
from .httpserver import FeedServer, feed_response, item, rss

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _configure(site: Site, server: FeedServer, sources: dict[str, str], *, stored_items: int) -> None:
    text = (site.root / "config.yaml").read_text().split("sources:")[0]
    lines = ["sources:"] + [f"  - {{name: {name}, url: '{server.url(path)}', every: 60}}"
                            for name, path in sources.items()]
    site.write_config(text + "\n".join(lines) + "\nfetch: {host_gap: 0, read_timeout: 2, total_timeout: 4, "
                      f"limits: {{stored_items: {stored_items}}}}}\n")


def _ids_by_link(site: Site) -> dict[str, str]:
    d = feedparser.parse((site.output / "all.atom.xml").read_bytes())
    assert not d.bozo
    return {e.link: e.id for e in d.entries}


def _stored_ids(site: Site) -> dict[tuple[str, str], str]:
    config = site.config()
    store = Store(config.state_path)
    try:
        return {(h.source, h.ukey): h.entry_id for h in store.load_item_heads([s.name for s in config.sources])}
    finally:
        store.close()


def test_a_guid_change_after_the_old_row_was_capped_away_keeps_the_published_id(
        site: Site, server: FeedServer) -> None:
    server.routes["/a.xml"] = feed_response(rss([item(1, guid="https://site.example/g/1")]), etag='"1"')
    _configure(site, server, {"a": "/a.xml"}, stored_items=2)
    generate(site.config(), now=T0)
    first = _ids_by_link(site)["https://site.example/s/1"]
    # Two newer stories push story 1's row out of the store (stored_items: 2) ...
    server.routes["/a.xml"] = feed_response(rss([item(2, guid="https://site.example/g/2"),
                                                 item(3, guid="https://site.example/g/3")]), etag='"2"')
    generate(site.config(), now=T0 + timedelta(minutes=2))
    assert all(not k[1].endswith("/g/1") for k in _stored_ids(site))
    # ... then it comes back under a new guid: the ledger still knows its link.
    server.routes["/a.xml"] = feed_response(rss([item(1, guid="https://site.example/new/1")]), etag='"3"')
    generate(site.config(), now=T0 + timedelta(minutes=4))
    assert _ids_by_link(site)["https://site.example/s/1"] == first
    assert _stored_ids(site)[("a", "guid:https://site.example/new/1")] == first


def test_two_sources_sharing_links_publish_one_entry_per_story_under_the_first_id(
        site: Site, server: FeedServer) -> None:
    server.routes["/a.xml"] = feed_response(rss([item(n, guid=f"https://a.example/{n}") for n in (1, 2, 3)]))
    _configure(site, server, {"a": "/a.xml"}, stored_items=100)
    generate(site.config(), now=T0)
    server.routes["/b.xml"] = feed_response(rss([item(n, guid=f"https://b.example/{n}") for n in (2, 3, 4)]))
    _configure(site, server, {"a": "/a.xml", "b": "/b.xml"}, stored_items=100)
    generate(site.config(), now=T0 + timedelta(minutes=2))
    ids = _ids_by_link(site)
    assert ids == {f"https://site.example/s/{n}": f"https://{'b' if n == 4 else 'a'}.example/{n}"
                   for n in (1, 2, 3, 4)}
    stored = _stored_ids(site)
    assert stored[("b", "guid:https://b.example/2")] == "https://a.example/2"
    assert stored[("b", "guid:https://b.example/4")] == "https://b.example/4"
