"""Feed discovery: a source URL that gives an HTML page leads to the feed the page links to
(or one at a common path), found once, remembered and reported once; loopback pages for each
kind of link, a page without any, and a page whose feed is missing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.sources.discover import choose, common_candidates, feed_links, is_feed, is_html_page

from .conftest import Site
from .httpserver import FeedServer, Response, feed_response, item, rss
from .test_sources import T0, configure, entries, run, status

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom side</title><id>urn:x:atom</id>
<updated>2021-03-01T10:00:00Z</updated>
<entry><title>Atom story</title><id>urn:x:atom:1</id><link href="https://site.example/atom/1"/>
<updated>2021-03-01T10:00:00Z</updated><summary>From Atom.</summary></entry></feed>
"""
JSON_FEED = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "JSON side",
                        "items": [{"id": "j1", "url": "https://site.example/json/1", "title": "JSON story",
                                   "content_text": "From JSON.", "date_published": "2021-03-01T10:00:00Z"}]})


def page(head: str, *, body: str = "<p>Welcome</p>") -> Response:
    text = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Home</title>{head}</head>"
            f"<body>{body}</body></html>")
    return Response(200, text.encode(), {"Content-Type": "text/html; charset=utf-8"})


def _link(kind: str, href: str) -> str:
    return f'<link rel="alternate" type="{kind}" title="feed" href="{href}">'


@pytest.mark.parametrize(("head", "path", "route", "title"), [
    (_link("application/rss+xml", "feeds/main.rss"), "/blog/feeds/main.rss", "rss", "Story 1"),
    (_link("application/atom+xml", "/atom-feed"), "/atom-feed", "atom", "Atom story"),
    (_link("application/feed+json", "http://{host}/feed-json"), "/feed-json", "json", "JSON story"),
    (_link("application/json", "../legacy.json"), "/legacy.json", "json", "JSON story"),
])
def test_each_kind_of_feed_link_is_found_used_remembered_and_reported_once(
        site: Site, server: FeedServer, head: str, path: str, route: str, title: str) -> None:
    server.routes["/blog/"] = page(head.replace("{host}", f"127.0.0.1:{server.port}"))
    server.routes[path] = {"rss": feed_response(rss([item(1)])),
                           "atom": feed_response(ATOM, content_type="application/atom+xml"),
                           "json": feed_response(JSON_FEED, content_type="application/feed+json")}[route]
    configure(site, server, {"home": "/blog/"})
    [outcome] = run(site).sources
    assert outcome.status == "ok", outcome.error
    assert [e.title for e in entries(site)] == [title]
    [note] = outcome.notes
    assert note == f"the address gives an HTML page; found its feed at {server.url(path)} and fetching that from now on"
    # Later fetches go straight to the feed (conditionally), and say nothing more about it.
    again = run(site, T0 + timedelta(minutes=2)).sources[0]
    assert again.status in ("not modified", "unchanged") and again.notes == ()
    assert len(server.hits("/blog/")) == 1 and len(server.hits(path)) == 2
    assert status(site)["home"].error is None


def test_the_atom_link_is_chosen_among_several(site: Site, server: FeedServer) -> None:
    server.routes["/"] = page(_link("application/rss+xml", "/rss.xml") + _link("application/feed+json", "/f.json")
                              + _link("application/atom+xml", "/atom.xml"))
    server.routes["/rss.xml"] = feed_response(rss([item(1)]))
    server.routes["/atom.xml"] = feed_response(ATOM, content_type="application/atom+xml")
    configure(site, server, {"home": "/"})
    run(site)
    assert [e.title for e in entries(site)] == ["Atom story"]
    assert not server.hits("/rss.xml") and not server.hits("/f.json")


def test_a_page_without_links_falls_back_to_the_common_paths(site: Site, server: FeedServer) -> None:
    server.routes["/news/today.html"] = page("")
    server.routes["/index.xml"] = feed_response(rss([item(4)]))
    server.routes["/feed"] = page("")  # an HTML page there is not a feed
    configure(site, server, {"home": "/news/today.html"})
    [outcome] = run(site).sources
    assert outcome.status == "ok", outcome.error
    assert [e.title for e in entries(site)] == ["Story 4"]
    assert [s.path for s in server.seen] == ["/news/today.html", "/feed", "/rss", "/atom.xml", "/feed.xml",
                                             "/index.xml"]
    assert "found its feed at " + server.url("/index.xml") in outcome.notes[0]


def test_a_page_that_leads_to_no_feed_is_one_clear_error(site: Site, server: FeedServer) -> None:
    server.routes["/"] = page("<link rel='stylesheet' href='/s.css'><link rel='alternate' hreflang='de' href='/de/'>")
    server.routes["/ok.xml"] = feed_response(rss([item(1)]))
    configure(site, server, {"home": "/", "other": "/ok.xml"})
    home, other = run(site).sources
    assert other.status == "ok"
    assert home.status == "error"
    assert home.error == ('the URL gives an HTML page, not a feed, and no feed was found from it (no <link '
                          'rel="alternate"> of RSS, Atom or JSON Feed type, and none at /feed, /rss, /atom.xml, '
                          '/feed.xml, /index.xml, /rss.xml, /feed.json)')
    assert home.line().startswith("home: error: the URL gives an HTML page")


def test_a_page_whose_feed_link_is_missing_says_so(site: Site, server: FeedServer) -> None:
    server.routes["/"] = page(_link("application/atom+xml", "/gone.atom"))
    configure(site, server, {"home": "/"})
    [outcome] = run(site).sources
    assert outcome.status == "error"
    assert outcome.error == (f"the URL gives an HTML page whose feed link {server.url('/gone.atom')} failed: "
                             "HTTP 404 Not Found")
    assert not server.hits("/feed"), "a page that names its feed is not searched further"


def test_a_feed_sent_as_html_is_still_read_as_a_feed(site: Site, server: FeedServer) -> None:
    server.routes["/f"] = feed_response(rss([item(2)]), content_type="text/html; charset=utf-8")
    configure(site, server, {"f": "/f"})
    [outcome] = run(site).sources
    assert outcome.status == "ok" and outcome.notes == ()
    assert [s.path for s in server.seen] == ["/f"]


# -- the pure half --------------------------------------------------------------------


def test_feed_links_resolve_against_the_page_or_its_base() -> None:
    html = (b"<html><head><base href='https://cdn.example/x/'>"
            b"<link rel='Alternate' type='application/RSS+XML; charset=utf-8' href='a.rss'>"
            b"<link rel='alternate' type='application/atom+xml' href='//other.example/b.atom#top'>"
            b"<link rel='alternate' type='text/html' href='/page'>"
            b"<link rel='alternate' type='application/rss+xml' href='javascript:alert(1)'>"
            b"<link rel='alternate' type='application/rss+xml' href='a.rss'></head></html>")
    links = feed_links(html, "https://site.example/blog/")
    assert links == [("https://cdn.example/x/a.rss", "rss"), ("https://other.example/b.atom", "atom")]
    assert choose(links) == "https://other.example/b.atom"
    assert choose(links[:1]) == "https://cdn.example/x/a.rss" and choose([]) is None


def test_what_is_a_page_and_what_is_a_feed() -> None:
    assert is_html_page(b"\xef\xbb\xbf  <!doctype HTML><title>x</title>", None)
    assert is_html_page(b"<html lang=en>", "text/plain")
    assert is_html_page(b"<head><link rel=alternate></head>", "text/html")
    assert not is_html_page(b"<?xml version='1.0'?><!-- hi --><rss version='2.0'/>", "text/html")
    assert not is_html_page(b'{"version": "https://jsonfeed.org/version/1"}', "text/html")
    assert is_feed(b"<?xml version='1.0'?>\n<rdf:RDF xmlns:rdf='x'/>") and is_feed(b"<feed xmlns='a'/>")
    assert is_feed(JSON_FEED.encode()) and not is_feed(b'{"version": 1}') and not is_feed(b"<html/>")
    assert common_candidates("https://s.example/a/b?c") == [f"https://s.example{p}" for p in
                                                            ("/feed", "/rss", "/atom.xml", "/feed.xml", "/index.xml",
                                                             "/rss.xml", "/feed.json")]
    assert "https://s.example/feed" not in common_candidates("https://s.example/feed")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([None, "text/html", "application/xml"]))
def test_sniffing_and_link_finding_never_raise(body: bytes, content_type: str | None) -> None:
    is_html_page(body, content_type)
    is_feed(body)
    for url, kind in feed_links(body, "https://s.example/"):
        assert url.startswith(("http://", "https://")) and kind in ("rss", "atom", "json")


def test_a_public_page_cannot_lead_the_fetcher_inside(server: FeedServer) -> None:
    from feeds.sources.fetch import FetchSettings, fetch_all
    from feeds.sources.results import FetchRequest

    from .httpserver import running
    from .test_fetch_hostile import as_public

    settings = FetchSettings(host_gap=0, read_timeout=2, total_timeout=3, classify=as_public)
    server.routes["/secret.xml"] = feed_response(rss([item(1)]))
    with running("127.0.0.2") as public:
        public.routes["/"] = page(_link("application/rss+xml", server.url("/secret.xml")))
        public.routes["/fine/"] = page(_link("application/atom+xml", "/a.atom"))
        public.routes["/a.atom"] = feed_response(ATOM, content_type="application/atom+xml")
        inside, fine = fetch_all([FetchRequest("in", public.url("/")), FetchRequest("fine", public.url("/fine/"))],
                                 settings)
    assert inside.failure is not None and inside.failure.kind == "discovery"
    assert "loopback address" in (inside.error or "") and server.hits("/secret.xml") == []
    assert fine.error is None and fine.discovered == public.url("/a.atom") and fine.url == public.url("/fine/")
