"""WebSub announcements against a real hub on loopback, through the one HTTP module."""

from __future__ import annotations

import logging
import socket

import pytest

from feeds.output import websub
from feeds.sources.fetch import USER_AGENT, post_form

from .httpserver import Hub

BASE = "https://example.org/feeds/"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_announces_atom_rss_and_json_feeds_only(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    written = ["all.atom.xml", "all.rss.xml", "all.feed.json", "tags/联合早报.feed.json", "tags/x.html",
               "index.html", "feeds.opml", "feed.xsl", "status.atom", "status.json"]
    with caplog.at_level(logging.INFO, logger="feeds"):
        assert websub.announce(hub.url, BASE, written)
    assert len(hub.posts) == 1
    post = hub.posts[0]
    assert post.path == "/hub"
    assert post.form["hub.mode"] == ["publish"]
    assert post.form["hub.url"] == [
        BASE + "all.atom.xml", BASE + "all.rss.xml", BASE + "all.feed.json",
        BASE + "tags/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.feed.json",
    ]
    assert post.user_agent == USER_AGENT
    assert post.content_type == "application/x-www-form-urlencoded"
    assert "websub: announced 4 changed feeds" in caplog.text


def test_nothing_to_announce_sends_nothing(hub: Hub) -> None:
    assert websub.announce(hub.url, BASE, [])
    assert websub.announce(hub.url, BASE, ["index.html", "status.atom"])
    assert hub.posts == []


def test_a_hub_answering_500_is_a_warning(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    hub.status = 500
    with caplog.at_level(logging.WARNING, logger="feeds"):
        assert not websub.announce(hub.url, BASE, ["all.atom.xml"])
    assert len(hub.posts) == 1
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert f"websub: the hub {hub.url} answered HTTP 500" in caplog.text


def test_a_hub_not_listening_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hub"
    with caplog.at_level(logging.WARNING, logger="feeds"):
        assert not websub.announce(url, BASE, ["all.atom.xml", "all.feed.json"])
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert f"websub: cannot reach the hub {url}: cannot connect" in caplog.text


def test_a_redirect_is_not_followed(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    hub.status = 307
    hub.location = "/elsewhere"
    with caplog.at_level(logging.WARNING, logger="feeds"):
        assert not websub.announce(hub.url, BASE, ["all.atom.xml"])
    assert [p.path for p in hub.posts] == ["/hub"]
    assert "answered HTTP 307" in caplog.text


def test_post_form_repeats_list_fields_and_never_raises(hub: Hub) -> None:
    first = post_form(hub.url, {"a": "1"}, timeout=5)
    second = post_form(hub.url, {"a": ["1", "2"], "b": ""}, timeout=5)
    assert (first.status, first.error, second.status) == (204, None, 204)
    assert [p.form for p in hub.posts] == [{"a": ["1"]}, {"a": ["1", "2"], "b": [""]}]
    for bad in ("ftp://127.0.0.1/hub", "http:///hub", "http://[::1/hub", "not a url"):
        result = post_form(bad, {"a": "1"}, timeout=5)
        assert result.status is None and result.error, bad
    assert len(hub.posts) == 2
