"""Full text for summary-only sources, end to end: a source with ``full_text`` gets each new
item's article page fetched once from a loopback server, its article extracted (trafilatura,
or a CSS selector) from saved pages bundled under ``tests/data/fulltext``, cleaned and
sanitized, cached in the state database, and published as the entry's content; failures keep
the summary, are reported once and retried on a back-off; hostile pages never stop a run."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.config import ConfigError, FullText, parse_config
from feeds.models import Entry
from feeds.pipeline import Report
from feeds.sources.fetch import FetchSettings, fetch_all
from feeds.sources.fulltext import article_content, extract_article, retry_delay
from feeds.sources.results import FetchRequest, FetchResult
from feeds.sources.update import update_sources
from feeds.store import Store

from .conftest import Site
from .httpserver import FeedServer, Response, feed_response, running
from .test_sources import T0, entries, run, status

DATA = Path(__file__).parent / "data" / "fulltext"
HARBOUR_TITLE = "Harbour plan approved after six-hour debate"
LIBRARY_TITLE = "Library reopens with a seed bank and a repair café"


def page(name: str, content_type: str = "text/html; charset=utf-8") -> Response:
    return Response(200, (DATA / name).read_bytes(), {"Content-Type": content_type})


def story(n: int, link: str, title: str | None = None, summary: str | None = None) -> dict[str, str]:
    return {"title": title or f"Story {n}", "link": link, "guid": f"guid-{n}",
            "pubDate": f"Mon, 0{n % 9 + 1} Mar 2021 10:00:00 +0000",
            "description": summary or f"Only the first lines of story {n}."}


def rss_of(items: Sequence[dict[str, str]]) -> str:
    body = "".join("<item>" + "".join(f"<{k}>{v}</{k}>" for k, v in i.items()) + "</item>" for i in items)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Tide</title>'
            f"<link>https://tide.example/</link><description>d</description>{body}</channel></rss>\n")


def configure(site: Site, server: FeedServer, full_text: str = "true", more: str = "", read_timeout: int = 2) -> None:
    text = (site.root / "config.yaml").read_text().split("sources:")[0]
    site.write_config(text + "sources:\n"
                      f"  - name: tide\n    url: '{server.url('/feed.xml')}'\n    every: 60\n"
                      f"    full_text: {full_text}\n" + more
                      + f"fetch: {{host_gap: 0, read_timeout: {read_timeout}, total_timeout: 4, max_bytes: 500000"
                      + "}\n")


def by_title(site: Site, name: str = "all.atom.xml") -> dict[str, feedparser.FeedParserDict]:
    return {e.title: e for e in entries(site, name)}


def content_of(entry: feedparser.FeedParserDict) -> str:
    return str(entry.content[0].value) if "content" in entry else ""


def article_hits(server: FeedServer) -> list[str]:
    return [s.path for s in server.seen if s.path.startswith("/articles/")]


def warnings_about(report: Report, needle: str) -> list[str]:
    return [w for w in report.warnings if needle in w]


# -- extraction ---------------------------------------------------------------------


def test_trafilatura_finds_the_article_and_its_fetched_once_across_runs(site: Site, server: FeedServer) -> None:
    link = server.url("/articles/harbour")
    server.routes["/feed.xml"] = feed_response(rss_of([story(1, link, HARBOUR_TITLE, "Council backs the plan.")]))
    server.routes["/articles/harbour"] = page("harbour.html")
    configure(site, server)
    first = run(site)
    assert first.errors == [] and not warnings_about(first, "full text")
    entry = by_title(site)[HARBOUR_TITLE]
    html = content_of(entry)
    # The article, its links and images made absolute against the page...
    assert "drew several hundred residents" in html and "Residents can see the final drawings" in html
    assert f'href="{server.url("/local/2020/11/new-quay-design/")}"' in html
    assert f'src="{server.url("/images/2021/03/harbour-dawn-800.jpg")}"' in html
    assert "<table>" in html and "£48 million" in html
    # ...without the page's menus, ads, comments, promos, scripts or footer.
    for chrome in ("Most read", "Comments (3)", "Save the fish market", "Advertisement", "cookies", "Subscribe",
                   "All rights reserved", "Related stories", "gtag", "renderAd", "Business</a>"):
        assert chrome not in html, chrome
    assert entry.summary == "Council backs the plan."  # the summary stays the feed's
    rss = by_title(site, "all.rss.xml")[HARBOUR_TITLE]
    assert "drew several hundred residents" in content_of(rss)
    published = site.outputs()
    assert article_hits(server) == ["/articles/harbour"]

    # The next polls (the feed unchanged, or changed) never ask for the page again.
    second = run(site, T0 + timedelta(minutes=5))
    assert second.errors == [] and article_hits(server) == ["/articles/harbour"]
    assert site.outputs() == published
    server.routes["/feed.xml"] = feed_response(rss_of([story(1, link, HARBOUR_TITLE, "Council backs the plan."),
                                                       story(2, server.url("/articles/none"))]), etag='"v2"')
    server.routes["/articles/none"] = Response(404, b"gone", {"Content-Type": "text/plain"})
    third = run(site, T0 + timedelta(minutes=10))
    assert article_hits(server) == ["/articles/harbour", "/articles/none"]
    assert content_of(by_title(site)[HARBOUR_TITLE]) == html
    assert len(warnings_about(third, "full text of")) == 1


def test_a_css_selector_takes_the_article_and_the_injections_are_sanitized(site: Site, server: FeedServer) -> None:
    link = server.url("/articles/library")
    server.routes["/feed.xml"] = feed_response(rss_of([story(1, link, LIBRARY_TITLE, "The library reopened.")]))
    server.routes["/articles/library"] = page("library.html", "text/html")
    configure(site, server, '{selector: "#main-column .article-text"}',
              more="    clean: {remove: ['[id^=dfp-ad]']}\n")
    report = run(site)
    assert report.errors == [] and not warnings_about(report, "full text")
    html = content_of(by_title(site)[LIBRARY_TITLE])
    assert "seed bank in the old reading room" in html and "Seeds and screwdrivers" in html
    # Relative links resolve against the page's <base href>.
    assert 'href="https://courier.example/news/2021/local/library-history.html"' in html
    assert 'src="https://courier.example/news/2021/photos/seed-bank.jpg"' in html
    for outside in ("Subscribe from", "Trending", "Will there be parking", "Tags:", "Privacy policy"):
        assert outside not in html, outside
    raw = b"".join(site.outputs().values()).lower()
    for injected in (b"<script", b"onclick", b"onerror", b"javascript:", b"<iframe", b"<object", b"<form",
                     b"evil.example", b"tracker.example", b"document.cookie", b"style=", b"advertisement"):
        assert injected not in raw, injected


def test_a_page_in_a_declared_legacy_charset_is_read(site: Site, server: FeedServer) -> None:
    link = server.url("/articles/binhai")
    server.routes["/feed.xml"] = feed_response(rss_of([story(1, link, "滨海新区图书馆重新开放", "图书馆重新开放。")]))
    server.routes["/articles/binhai"] = page("binhai-gbk.html", "text/html")  # the charset is in a <meta>
    configure(site, server)
    run(site)
    html = content_of(by_title(site)["滨海新区图书馆重新开放"])
    assert "种子图书馆" in html and "周一闭馆" in html
    assert "相关新闻" not in html and "版权所有" not in html and "下载客户端" not in html


# -- failures ---------------------------------------------------------------------


def test_a_failure_keeps_the_summary_is_reported_once_and_retried_on_a_back_off(site: Site,
                                                                                  server: FeedServer) -> None:
    link = server.url("/articles/harbour")
    server.routes["/feed.xml"] = feed_response(rss_of([story(1, link, HARBOUR_TITLE, "Council backs the plan.")]))
    server.routes["/articles/harbour"] = Response(503, b"busy", {"Content-Type": "text/plain"})
    configure(site, server)
    first = run(site)
    lines = warnings_about(first, "full text")
    assert len(lines) == 1 and link in lines[0] and "HTTP 503" in lines[0] and "\n" not in lines[0]
    assert first.errors == []
    entry = by_title(site)[HARBOUR_TITLE]
    assert entry.summary == "Council backs the plan." and "Council backs the plan." in content_of(entry)
    shown = status(site)["tide"]
    assert (shown.articles, shown.articles_failing) == (0, 1) and f"{link}: HTTP 503" in (shown.article_failure or "")
    printed = subprocess.run([sys.executable, "-m", "feeds", "status", "--config", str(site.root / "config.yaml")],
                             capture_output=True, text=True)
    assert "  full text:  0 articles, 1 page failing" in printed.stdout
    assert f"  last page failing: {link}: HTTP 503" in printed.stdout

    # Polls before the back-off ends do not ask again; one after it does, and says nothing new.
    second = run(site, T0 + timedelta(minutes=30))
    assert article_hits(server) == ["/articles/harbour"] and not warnings_about(second, "full text")
    third = run(site, T0 + timedelta(seconds=retry_delay(1, 86400) + 60))
    assert article_hits(server) == ["/articles/harbour"] * 2 and not warnings_about(third, "full text")

    # Once the page answers, at the next try, the article is the entry's content.
    server.routes["/articles/harbour"] = page("harbour.html")
    run(site, T0 + timedelta(seconds=retry_delay(1, 86400) + 120))
    assert article_hits(server) == ["/articles/harbour"] * 2
    run(site, T0 + timedelta(seconds=retry_delay(1, 86400) + retry_delay(2, 86400) + 120))
    assert article_hits(server) == ["/articles/harbour"] * 3
    assert "drew several hundred residents" in content_of(by_title(site)[HARBOUR_TITLE])
    shown = status(site)["tide"]
    assert (shown.articles, shown.articles_failing, shown.article_failure) == (1, 0, None)


def test_a_source_whose_latest_pages_all_fail_is_in_the_health_feed(site: Site, server: FeedServer) -> None:
    items = [story(n, server.url(f"/articles/{n}")) for n in range(1, 4)]
    server.routes["/feed.xml"] = feed_response(rss_of(items))
    for n in range(1, 4):  # a site redesign: the selector matches nothing any more
        server.routes[f"/articles/{n}"] = page("harbour.html")
    configure(site, server, '{selector: "div.old-layout-body"}')
    run(site)
    problems = json.loads((site.output / "status.json").read_bytes())["problems"]
    assert [(p["source"], p["problem"]) for p in problems] == [("tide", "full text failing")]
    status_feed = feedparser.parse((site.output / "status.atom").read_bytes())
    assert not status_feed.bozo and [e.title for e in status_feed.entries] == ["tide: full text failing"]
    published = (site.output / "status.atom").read_bytes()
    run(site, T0 + timedelta(minutes=5))
    assert (site.output / "status.atom").read_bytes() == published  # the same episode, the same bytes

    configure(site, server, '{selector: ".story-body"}')  # fixed: every page is asked for again, once
    run(site, T0 + timedelta(minutes=10))
    assert json.loads((site.output / "status.json").read_bytes())["problems"] == []
    assert all("drew several hundred residents" in content_of(e) for e in entries(site))
    assert len(article_hits(server)) == 6


def test_hostile_pages_never_stop_the_run(site: Site, server: FeedServer) -> None:
    pages = {
        "huge": Response(200, b"<html><body><p>" + b"x" * 600_000 + b"</p></body></html>",
                         {"Content-Type": "text/html"}),
        "huge-chunked": Response(raw=lambda w: w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
                                                       + b"<p>" + b"y" * 700_000)),
        "pdf": Response(200, b"%PDF-1.4 ...", {"Content-Type": "application/pdf"}),
        "json": Response(200, b'{"article": "<p>no</p>"}', {"Content-Type": "application/json"}),
        "empty": Response(200, b"", {"Content-Type": "text/html"}),
        "nothing": Response(200, b"<html><head><title>x</title></head><body><nav>Home</nav></body></html>",
                            {"Content-Type": "text/html"}),
        "loop": Response(302, b"", {"Location": "/articles/loop"}),
        "script": Response(200, b"<html><body><article><p>Fine words about the harbour, long enough to be an "
                           b"article worth keeping for readers.</p><script>alert(1)</script><p onclick=\"x()\">"
                           b"More words <a href=\"javascript:alert(1)\">here</a>.</p><iframe src=\"https://evil."
                           b"example/\"></iframe></article></body></html>", {"Content-Type": "text/html"}),
        "good": page("harbour.html"),
    }
    items = [story(n, server.url(f"/articles/{name}"), f"Story {name}") for n, name in enumerate(pages, 1)]
    server.routes["/feed.xml"] = feed_response(rss_of(items))
    for name, response in pages.items():
        server.routes[f"/articles/{name}"] = response
    configure(site, server)
    report = run(site)
    assert report.errors == [] and [o.status for o in report.sources] == ["ok"]
    failed = warnings_about(report, "full text of")
    assert len(failed) == 7, failed
    for name in ("huge", "huge-chunked", "pdf", "json", "empty", "nothing", "loop"):
        line = next(w for w in failed if server.url(f"/articles/{name}") + " " in w)
        assert "keeps its summary" in line
    got = by_title(site)
    assert "drew several hundred residents" in content_of(got["Story good"])
    assert "Fine words about the harbour" in content_of(got["Story script"])
    for name in ("huge", "pdf", "json"):
        assert content_of(got[f"Story {name}"]) == f"Only the first lines of story {list(pages).index(name) + 1}."
    raw = (site.output / "all.atom.xml").read_bytes()
    assert b"alert(" not in raw and b"onclick" not in raw and b"evil.example" not in raw


def test_a_host_that_stops_answering_costs_one_batch_of_timeouts(site: Site, server: FeedServer) -> None:
    items = [story(n, server.url(f"/articles/{n}")) for n in range(1, 7)]  # story 6 is the newest
    server.routes["/feed.xml"] = feed_response(rss_of(items))
    for n in range(1, 7):
        server.routes[f"/articles/{n}"] = page("harbour.html")
    server.routes["/articles/6"] = Response(200, b"<html></html>", {"Content-Type": "text/html"}, delay=1.5)
    configure(site, server, read_timeout=1)
    first = run(site)
    assert sorted(article_hits(server)) == ["/articles/3", "/articles/4", "/articles/5", "/articles/6"]
    lines = warnings_about(first, "full text of")
    assert len(lines) == 1 and server.url("/articles/6") in lines[0] and "timed out" in lines[0]
    run(site, T0 + timedelta(minutes=5))  # the two left over; the slow one waits for its back-off
    assert sorted(article_hits(server)) == [f"/articles/{n}" for n in range(1, 7)]
    got = by_title(site)
    assert all("drew several hundred residents" in content_of(got[f"Story {n}"]) for n in range(1, 6))
    assert content_of(got["Story 6"]) == "Only the first lines of story 6."


def test_the_pause_between_requests_to_a_host_holds_from_batch_to_batch(site: Site, server: FeedServer) -> None:
    items = [story(n, server.url(f"/articles/{n}")) for n in range(1, 7)]  # two batches of one source
    server.routes["/feed.xml"] = feed_response(rss_of(items))
    for n in range(1, 7):
        server.routes[f"/articles/{n}"] = page("harbour.html")
    configure(site, server)
    config = site.config()
    config = config.model_copy(update={"fetch": config.fetch.model_copy(update={"host_gap": 0.3})})
    store = Store(config.state_target)
    try:
        update_sources(config, store, now=T0)
    finally:
        store.close()
    times = [s.at for s in server.seen if s.path.startswith("/articles/")]
    assert len(times) == 6
    # Each request starts at least the gap after the one before it, in a batch or across two.
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(times))


def as_public(address: object) -> str:
    from .test_fetch_hostile import as_public as judge

    return judge(address)  # type: ignore[arg-type]


def public_fetch(**more: object) -> Callable[[Sequence[FetchRequest]], list[FetchResult]]:
    settings = FetchSettings(host_gap=0, read_timeout=2, total_timeout=3, classify=as_public, **more)  # type: ignore[arg-type]
    return lambda requests: fetch_all(requests, settings)


def test_a_public_feed_cannot_lead_to_an_inside_address(site: Site, server: FeedServer) -> None:
    server.routes["/secret"] = page("harbour.html")
    with running("127.0.0.2") as public:
        public.routes["/feed.xml"] = feed_response(rss_of([
            story(1, server.url("/secret"), "Straight inside"),
            story(2, public.url("/articles/redirect"), "Redirected inside"),
            story(3, public.url("/articles/fine"), HARBOUR_TITLE)]))
        public.routes["/articles/redirect"] = Response(302, b"", {"Location": server.url("/secret")})
        public.routes["/articles/fine"] = page("harbour.html")
        configure(site, public)
        config = site.config()
        store = Store(config.state_target)
        try:
            outcomes = update_sources(config, store, now=T0, fetch=public_fetch())
        finally:
            store.close()
    assert [o.status for o in outcomes] == ["ok"]
    notes = [n for n in outcomes[0].notes if "full text of" in n]
    assert len(notes) == 2 and all("loopback address" in n and "refused" in n for n in notes)
    assert server.hits("/secret") == []
    assert public.hits("/articles/fine") != []


def test_headers_and_credentials_go_only_to_the_sources_own_origin(site: Site, server: FeedServer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDS_TEST_ARTICLE_PASSWORD", "hunter2-article")
    with running() as other:
        server.routes["/feed.xml"] = feed_response(rss_of([
            story(1, server.url("/articles/own"), HARBOUR_TITLE), story(2, other.url("/articles/other"), "Elsewhere")]))
        server.routes["/articles/own"] = page("harbour.html")
        other.routes["/articles/other"] = page("library.html")
        configure(site, server, more="    headers: {X-Archive-Token: t0k3n}\n    user_agent: 'TideReader/2.0'\n"
                                     "    auth: {username: reader, password_env: FEEDS_TEST_ARTICLE_PASSWORD}\n")
        run(site)
        own = server.hits("/articles/own")[0].headers
        elsewhere = other.hits("/articles/other")[0].headers
    assert own["x-archive-token"] == "t0k3n" and own["authorization"].startswith("Basic ")
    assert own["accept"].startswith("text/html")
    assert "x-archive-token" not in elsewhere and "authorization" not in elsewhere
    assert own["user-agent"] == elsewhere["user-agent"] == "TideReader/2.0"


# -- the cache: links that change, caps, settings -----------------------------------


def test_an_item_whose_link_changes_is_fetched_again_once(site: Site, server: FeedServer) -> None:
    server.routes["/feed.xml"] = feed_response(rss_of([story(1, server.url("/articles/a"), HARBOUR_TITLE)]))
    server.routes["/articles/a"] = page("harbour.html")
    server.routes["/articles/b"] = page("library.html")
    configure(site, server)
    run(site)
    assert "drew several hundred residents" in content_of(by_title(site)[HARBOUR_TITLE])
    server.routes["/feed.xml"] = feed_response(rss_of([story(1, server.url("/articles/b"), HARBOUR_TITLE)]),
                                               etag='"v2"')
    run(site, T0 + timedelta(minutes=5))
    run(site, T0 + timedelta(minutes=10))
    assert article_hits(server) == ["/articles/a", "/articles/b"]
    assert "seed bank" in content_of(by_title(site)[HARBOUR_TITLE])


def test_an_item_edited_upstream_keeps_its_article(site: Site, server: FeedServer) -> None:
    link = server.url("/articles/a")
    server.routes["/feed.xml"] = feed_response(rss_of([story(1, link, HARBOUR_TITLE, "Council backs the plan.")]))
    server.routes["/articles/a"] = page("harbour.html")
    configure(site, server)
    run(site)
    server.routes["/feed.xml"] = feed_response(rss_of([story(1, link, HARBOUR_TITLE, "Council backs the plan 9-4.")]),
                                               etag='"v2"')
    report = run(site, T0 + timedelta(minutes=5))
    assert report.sources[0].changed == 1 and article_hits(server) == ["/articles/a"]
    entry = by_title(site)[HARBOUR_TITLE]
    assert entry.summary == "Council backs the plan 9-4." and "drew several hundred residents" in content_of(entry)


def test_one_fetch_asks_for_at_most_articles_per_fetch_pages_newest_first(site: Site, server: FeedServer) -> None:
    items = [story(n, server.url(f"/articles/{n}")) for n in range(1, 6)]
    server.routes["/feed.xml"] = feed_response(rss_of(items))
    for n in range(1, 6):
        server.routes[f"/articles/{n}"] = page("harbour.html")
    configure(site, server, more="    limits: {articles_per_fetch: 2}\n")
    first = run(site)
    assert article_hits(server) == ["/articles/5", "/articles/4"]
    assert len(warnings_about(first, "limits.articles_per_fetch")) == 1
    second = run(site, T0 + timedelta(minutes=5))
    assert not warnings_about(second, "limits.articles_per_fetch")
    run(site, T0 + timedelta(minutes=10))
    run(site, T0 + timedelta(minutes=15))
    assert article_hits(server) == [f"/articles/{n}" for n in (5, 4, 3, 2, 1)]
    assert all("drew several hundred residents" in content_of(e) for e in entries(site))


def test_many_sources_and_pages_in_one_run(site: Site, server: FeedServer) -> None:
    with running() as other:
        for host, name in ((server, "tide"), (other, "courier")):
            host.routes["/feed.xml"] = feed_response(rss_of(
                [story(n, host.url(f"/articles/{n}"), f"{name} {n}") for n in range(1, 21)]))
            for n in range(1, 21):
                host.routes[f"/articles/{n}"] = page("harbour.html") if name == "tide" else page("library.html")
        other.routes["/articles/7"] = Response(500, b"oops", {"Content-Type": "text/plain"})
        text = (site.root / "config.yaml").read_text().split("sources:")[0]
        site.write_config(text + "sources:\n"
                          f"  - {{name: tide, url: '{server.url('/feed.xml')}', full_text: true}}\n"
                          f"  - {{name: courier, url: '{other.url('/feed.xml')}', full_text: {{selector: "
                          "'.article-text'}}\n"
                          "fetch: {host_gap: 0, read_timeout: 2, total_timeout: 4}\n")
        report = run(site)
        assert sorted(article_hits(server)) == sorted(f"/articles/{n}" for n in range(1, 21))
        assert sorted(article_hits(other)) == sorted(f"/articles/{n}" for n in range(1, 21))
    assert [o.status for o in report.sources] == ["ok", "ok"]
    assert len(warnings_about(report, "full text of")) == 1
    got = by_title(site)
    assert all("drew several hundred residents" in content_of(got[f"tide {n}"]) for n in range(1, 21))
    assert all("Seeds and screwdrivers" in content_of(got[f"courier {n}"]) for n in range(1, 21) if n != 7)
    assert content_of(got["courier 7"]) == "Only the first lines of story 7."


def test_outputs_are_byte_stable_and_match_a_cold_run(site: Site, server: FeedServer, tmp_path: Path) -> None:
    items = [story(1, server.url("/articles/a"), HARBOUR_TITLE), story(2, server.url("/articles/b"), LIBRARY_TITLE)]
    server.routes["/feed.xml"] = feed_response(rss_of(items))
    server.routes["/articles/a"] = page("harbour.html")
    server.routes["/articles/b"] = page("library.html")
    configure(site, server)
    run(site)
    warm = site.outputs()
    run(site, T0 + timedelta(minutes=5))
    assert site.outputs() == warm
    cold = Site(tmp_path / "cold")
    configure(cold, server)
    run(cold)
    assert cold.outputs() == warm


# -- config ---------------------------------------------------------------------------

BASE = "site: {title: t, base_url: 'https://e.org/'}\nsources:\n  - name: a\n    url: https://x.org/f\n"


def test_the_full_text_keys_are_read() -> None:
    assert parse_config(BASE + "    full_text: true\n").sources[0].full_text == FullText()
    assert parse_config(BASE + "    full_text: false\n").sources[0].full_text is None
    assert parse_config(BASE).sources[0].full_text is None
    chosen = parse_config(BASE + "    full_text: {selector: 'article .body'}\n").sources[0].full_text
    assert chosen == FullText(selector="article .body")
    assert parse_config(BASE + "    limits: {articles_per_fetch: 5}\n").fetch.limits_of(
        parse_config(BASE + "    limits: {articles_per_fetch: 5}\n").sources[0]).articles_per_fetch == 5


@pytest.mark.parametrize(("extra", "line", "says"), [
    ("    full_text: {selector: 'div[[['}\n", 5, "sources[0].full_text.selector: invalid CSS selector"),
    ("    full_text:\n      selector: 'p:nth-child(x)'\n", 6, "sources[0].full_text.selector: invalid CSS selector"),
    ("    full_text: {selectors: x}\n", 5, "sources[0].full_text.selectors: unknown key"),
    ("    full_text: yes please\n", 5, "sources[0].full_text: full_text is true, false or a mapping"),
    ("    full_text: true\n    summary_only: true\n", 3, "full_text: a summary_only source publishes no content"),
    ("    limits: {articles_per_fetch: -1}\n", 5, "sources[0].limits.articles_per_fetch"),
])
def test_a_bad_full_text_setting_is_a_config_error_naming_key_and_line(extra: str, line: int, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + extra)
    assert caught.value.line == line and says in caught.value.message


def test_feeds_check_reports_a_bad_selector(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(BASE + "    full_text:\n      selector: 'main >> p'\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "feeds", "check", "--config", str(tmp_path / "config.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "config.yaml:6" in result.stderr and "full_text.selector" in result.stderr
    assert "Traceback" not in result.stderr


# -- the pure half ---------------------------------------------------------------------


def _entry(title: str = HARBOUR_TITLE, link: str = "https://tide.example/local/harbour/") -> Entry:
    return Entry(id="urn:x", title=title, link=link, published=T0, updated=T0)


def test_the_same_page_always_gives_the_same_article() -> None:
    body = (DATA / "harbour.html").read_bytes()
    made = {article_content(extract_article(body, {"content-type": "text/html"}, "https://tide.example/h",
                                            FullText(), max_chars=10**6).html or "", _entry(),
                            remove=[], content_bytes=10**6).html for _ in range(3)}
    assert len(made) == 1 and None not in made


def test_xhtml_and_charsets_are_read_as_browsers_read_them() -> None:
    words = "<p>" + "The ferry will run every hour from the new terminal on the north pier. " * 4 + "</p>"
    xhtml = (f'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head>'
             f"<title>t</title></head><body><article>{words}</article></body></html>").encode()
    found = extract_article(xhtml, {"content-type": "application/xhtml+xml"}, "https://s.example/a",
                            FullText(selector="article"), max_chars=10**6)
    assert "north pier" in (found.html or "")
    # "gb2312" pages hold GBK characters (镕); "iso-8859-1" ones hold windows-1252 quotes.
    han = ('<html><head><meta charset="gb2312"></head><body><article><p>朱镕基出席开幕式。</p></article>'
           "</body></html>").encode("gbk")
    assert "朱镕基" in (extract_article(han, {"content-type": "text/html"}, "https://s.example/a",
                                        FullText(selector="article"), max_chars=10**6).html or "")
    quoted = b"<html><body><article><p>\x93Quoted\x94</p></article></body></html>"
    assert "\u201cQuoted\u201d" in (extract_article(quoted, {"content-type": "text/html; charset=ISO-8859-1"},
                                                   "https://s.example/a", FullText(selector="article"),
                                                   max_chars=10**6).html or "")


def test_an_article_over_the_content_cap_is_refused() -> None:
    body = (DATA / "harbour.html").read_bytes()
    found = extract_article(body, {"content-type": "text/html"}, "https://tide.example/h", FullText(),
                            max_chars=10**6)
    assert found.html is not None
    too_big = article_content(found.html, _entry(), remove=[], content_bytes=1024)
    assert too_big.html is None and "limits.content_bytes" in (too_big.problem or "")
    assert extract_article(body, {}, "https://tide.example/h", FullText(), max_chars=100).problem is not None


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.binary(max_size=600), st.text(max_size=600).map(lambda t: f"<html><body>{t}</body></html>"
                                                                     .encode("utf-8", "surrogatepass"))),
       st.sampled_from([None, "text/html", "text/html; charset=latin-1", "text/html; charset=nonsense"]),
       st.sampled_from([None, "p", "article .body"]))
def test_any_page_gives_an_article_or_a_reason_and_never_unsafe_html(body: bytes, content_type: str | None,
                                                                      selector: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    found = extract_article(body, headers, "https://s.example/a", FullText(selector=selector), max_chars=10**6)
    assert (found.html is None) != (found.problem is None)
    if found.html is not None:
        applied = article_content(found.html, _entry(), remove=[], content_bytes=10**6)
        if applied.html is not None:
            assert "<script" not in applied.html.lower() and "javascript:" not in applied.html.lower()


_CODEC_NAMES = sorted({*__import__("encodings.aliases").aliases.aliases, "rot13", "base64", "hex", "zlib", "bz2",
                       "uu", "quopri", "idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape",
                       "utf-7", "utf-32-le", "utf-32-be", "utf-16-le", "nonsense"})


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_CODEC_NAMES), st.booleans())
def test_a_page_naming_any_charset_is_read_or_refused_with_a_reason(name: str, in_header: bool) -> None:
    # A label that names a Python codec but no text encoding of the web (base64, rot13, idna,
    # undefined...) raised out of the extraction: the page was lost with Python's error.
    words = "<p>" + "The ferry will run every hour from the new terminal on the north pier. " * 4 + "</p>"
    meta = "" if in_header else f'<meta charset="{name}">'
    body = f"<html><head>{meta}</head><body><article>{words}</article></body></html>".encode()
    headers = {"content-type": f"text/html; charset={name}" if in_header else "text/html"}
    found = extract_article(body, headers, "https://s.example/a", FullText(selector="article"), max_chars=10**6)
    assert (found.html is None) != (found.problem is None)
    if name.replace("_", "-").lower() in ("base64", "rot13", "hex", "idna", "undefined", "unicode-escape", "utf-7",
                                          "utf-32-le", "nonsense"):
        assert "north pier" in (found.html or ""), found  # read as UTF-8, as a browser does with such a label
