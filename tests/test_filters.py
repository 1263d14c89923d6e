"""Filters: the rule syntax (parsed with Hypothesis-made rules and texts), and real
`feeds generate` runs with rules per source, per feed and in topic feeds (`queries:`),
their outputs parsed back with feedparser."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import feedparser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.build.filters import FIELDS, Facts, facts_of, parse_rule, rule_set, word_pattern
from feeds.errors import ConfigError
from feeds.models import EPOCH, Author, Entry
from feeds.output.serve import make_server

from .conftest import Site

# -- the rules, pure ----------------------------------------------------------------

WORDS = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)


@given(st.text(max_size=40))
def test_any_text_is_a_rule_or_one_value_error(text: str) -> None:
    try:
        rule = parse_rule(text)
    except ValueError as exc:
        assert "rule" in str(exc)
    else:
        assert rule.fields and rule.text == text


@given(WORDS, WORDS, WORDS)
def test_a_word_is_found_whole_and_in_any_case(before: str, word: str, after: str) -> None:
    rule = parse_rule(word)
    for shown in (word, word.upper(), word.lower()):
        if shown.casefold() == word.casefold():
            assert rule.matches(Facts(title=f"{before} {shown} {after}"))
    assert not rule.matches(Facts(title=f"{before} {after}")) or word.casefold() in f"{before} {after}".casefold()


@given(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.from_regex(r"[a-z]{1,4}", fullmatch=True))
def test_a_latin_word_is_not_found_inside_a_longer_one(word: str, tail: str) -> None:
    assert not parse_rule(word).matches(Facts(content=f"1 {word}{tail} 2"))
    assert parse_rule(word).matches(Facts(content=f"1 {word}. 2"))


def test_words_of_unspaced_scripts_are_found_anywhere() -> None:
    assert parse_rule("气候").matches(Facts(title="全球气候变化加剧"))
    assert parse_rule("climate change").matches(Facts(content="on Climate\n  Change today"))
    assert not parse_rule("climate").matches(Facts(title="climates"))
    assert parse_rule("strasse").matches(Facts(title="Die STRASSE")) and parse_rule("Straße").matches(
        Facts(title="strasse"))


@given(st.sampled_from([r"^a.c", r"\d{2,}", r"x|Y", r"(?:ab)+$"]), st.text(alphabet="abcxyXY0123 ", max_size=12))
def test_a_regex_rule_is_re_search(pattern: str, text: str) -> None:
    assert parse_rule(f"/{pattern}/").matches(Facts(title=text)) == bool(re.search(pattern, text, re.IGNORECASE))
    assert parse_rule(f"/{pattern}/c").matches(Facts(title=text)) == bool(re.search(pattern, text))


@given(st.sampled_from(FIELDS), st.sampled_from(FIELDS))
def test_a_field_prefix_looks_at_that_field_only(named: str, holder: str) -> None:
    facts = Facts(**{holder: "needle"})
    assert parse_rule(f"{named}:needle").matches(facts) == (named == holder)
    assert parse_rule(f"{named.upper()} : needle").matches(facts) == (named == holder)
    assert parse_rule("needle").matches(facts) and parse_rule("any:needle").matches(facts)


def test_a_colon_that_names_no_field_is_part_of_the_word() -> None:
    rule = parse_rule("https://example.org/x")
    assert rule.fields == FIELDS and rule.matches(Facts(link="https://example.org/x"))
    assert parse_rule("any:title: x").matches(Facts(content="the title: x"))


@pytest.mark.parametrize("bad", ["/(unclosed/", "title:/[z-a]/", "/a{2,1}/", "", "  ", "title:", "link:  "])
def test_bad_rules_say_what_is_wrong(bad: str) -> None:
    with pytest.raises(ValueError, match="rule"):
        parse_rule(bad)


def test_include_and_exclude() -> None:
    rules = rule_set(["climate", "tags:Weather"], ["title:/^sponsored/"])
    assert rules.admits(Facts(title="Climate talks"))
    assert rules.admits(Facts(tags="China\nWeather"))
    assert not rules.admits(Facts(title="Sponsored: climate"))
    assert not rules.admits(Facts(title="Ports reopen"))
    assert rule_set(None, ["x"]).admits(Facts(title="y")) and not rule_set([], []) and rule_set(["x"], None)


def test_facts_are_the_entrys_text() -> None:
    entry = Entry("urn:x", "T", "https://e.org/a", EPOCH, EPOCH, (Author("Ann", "ann@e.org"),), ("t1",), ("c1",),
                  "the summary", "<p>Body <b>bold</b> &amp; more</p>")
    facts = facts_of(entry)
    assert facts.content == "Body bold & more\nthe summary"
    assert facts.author == "Ann\nann@e.org" and facts.tags == "t1\nc1" and facts.link == "https://e.org/a"
    assert word_pattern("a b") == r"(?<!\w)a\s+b(?!\w)"


# -- real runs ----------------------------------------------------------------------

ITEM = """<item><title>{title}</title><link>https://{host}/{n}</link><guid isPermaLink="false">{host}-{n}</guid>
<pubDate>Mon, 0{n} Jan 2024 10:00:00 +0000</pubDate><dc:creator>{author}</dc:creator>
<category>{tag}</category><description>{body}</description></item>"""


def write_source(path: Path, host: str, items: list[tuple[str, str, str, str]]) -> None:
    body = "".join(ITEM.format(title=t, host=host, n=i + 1, author=a, tag=g, body=b)
                   for i, (t, a, g, b) in enumerate(items))
    path.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>{host}</title>
<link>https://{host}/</link><description>d</description>{body}</channel></rss>""", encoding="utf-8")


BASE = """\
site: {title: Filters, base_url: "https://example.org/feeds/"}
output: {formats: [atom, rss, json]}
state: state/feeds.db
posts: [{path: posts}]
"""


def outlets(site: Site) -> str:
    write_source(site.root / "alpha.xml", "alpha.example", [
        ("Climate summit opens", "Ann", "World", "Leaders meet."),
        ("Sponsored: buy a car", "Ads", "World", "Great deals."),
        ("Football results", "Bob", "Sport", "The scores."),
    ])
    write_source(site.root / "beta.xml", "beta.example", [
        ("全球气候会议", "记者", "国际", "各国代表讨论气候问题。"),
        ("Markets close higher", "Cy", "Business", "Stocks rose."),
    ])
    site.add("2024-01-05-post.md", "---\ntitle: Our climate column\ndate: 2024-01-05\ntags: [Opinion]\n---\n"
                                   "Thoughts.\n")
    site.add("2024-01-06-other.md", "---\ntitle: Gardening\ndate: 2024-01-06\ntags: [Opinion]\n---\nRoses.\n")
    return BASE + "sources:\n  - {name: alpha, url: alpha.xml}\n  - {name: beta, url: beta.xml}\n"


def titles(site: Site, relative: str) -> list[str]:
    d = feedparser.parse((site.output / relative).read_bytes())
    assert not d.bozo, d.bozo_exception
    return [e.title for e in d.entries]


def test_source_rules_leave_out_that_sources_items_only(site: Site) -> None:
    config = outlets(site).replace("{name: alpha, url: alpha.xml}",
                                   "{name: alpha, url: alpha.xml, exclude: ['title:/^sponsored/', 'author:bob']}")
    site.write_config(config)
    site.generate()
    shown = titles(site, "all.atom.xml")
    assert "Sponsored: buy a car" not in shown and "Football results" not in shown
    assert {"Climate summit opens", "全球气候会议", "Markets close higher", "Gardening"} <= set(shown)
    assert "tags/sport.atom.xml" not in site.outputs()  # its only entry was left out
    include = config.replace("exclude: ['title:/^sponsored/', 'author:bob']", "include: climate")
    site.write_config(include)
    site.generate()
    assert [t for t in titles(site, "all.atom.xml") if t in ("Climate summit opens", "Football results")] == [
        "Climate summit opens"]


def test_feed_rules_per_level(site: Site) -> None:
    site.write_config(outlets(site) + """\
feeds:
  defaults: {exclude: "title:sponsored"}
  tag:
    Opinion: {include: ["title:/column/"]}
""")
    site.generate()
    assert "Sponsored: buy a car" not in titles(site, "all.rss.xml")
    assert "Sponsored: buy a car" not in titles(site, "tags/world.rss.xml")
    assert titles(site, "tags/opinion.rss.xml") == ["Our climate column"]


def test_a_filter_added_later_takes_entries_out_and_loses_nothing_else(site: Site) -> None:
    config = outlets(site)
    site.write_config(config)
    site.generate()
    before = site.outputs()
    assert "Football results" in titles(site, "all.atom.xml")
    (site.output / "notes.txt").write_text("mine")  # not ours: never touched
    site.write_config(config + "feeds:\n  defaults: {exclude: 'tags:sport'}\n")
    report = site.generate()
    after = site.outputs()
    assert "Football results" not in titles(site, "all.atom.xml")
    assert not any(name.startswith("tags/sport.") for name in after)
    assert sorted(report.removed) == ["tags/sport.atom.xml", "tags/sport.feed.json", "tags/sport.rss.xml"]
    for name in ("tags/world.atom.xml", "tags/opinion.atom.xml", "tags/国际.atom.xml"):
        assert after[name] == before[name]
    assert after["notes.txt"] == b"mine"
    site.write_config(config)  # and back: the entry returns, with its id
    site.generate()
    assert site.outputs()["tags/sport.atom.xml"] == before["tags/sport.atom.xml"]


def test_a_topic_feed_across_sources_and_posts(site: Site) -> None:
    site.write_config(outlets(site) + """\
queries:
  - name: Climate
    include: "/气候|climate/"
    exclude: "title:sponsored"
  - {name: Beta business, slug: beta-biz, include: "tags:business", include_sources: [beta], max_entries: 5,
     content: summary}
""")
    site.generate()
    files = site.outputs()
    assert titles(site, "queries/climate.atom.xml") == ["Our climate column", "全球气候会议", "Climate summit opens"]
    assert titles(site, "queries/climate.rss.xml") == titles(site, "queries/climate.atom.xml")
    feed = json.loads(files["queries/climate.feed.json"])
    assert feed["feed_url"] == "https://example.org/feeds/queries/climate.feed.json"
    assert feed["title"] == "Climate — Filters"
    assert [i["title"] for i in feed["items"]] == titles(site, "queries/climate.atom.xml")
    d = feedparser.parse(files["queries/beta-biz.atom.xml"])
    assert [e.title for e in d.entries] == ["Markets close higher"] and "content" not in d.entries[0]
    # The same ids as in the tag feeds: a reader sees one entry wherever it meets it.
    ids = {e.title: e.id for e in feedparser.parse(files["all.atom.xml"]).entries}
    assert all(ids[e.title] == e.id for e in feedparser.parse(files["queries/climate.atom.xml"]).entries)
    index, opml = files["index.html"].decode(), files["feeds.opml"].decode()
    assert 'href="queries/climate.atom.xml"' in index and "Topics" in index
    assert 'xmlUrl="https://example.org/feeds/queries/beta-biz.atom.xml"' in opml
    again = site.generate()
    assert again.written == [] and site.outputs() == files


def test_removing_a_query_removes_only_its_files(site: Site) -> None:
    config = outlets(site)
    site.write_config(config + "queries:\n  - {name: Climate, include: climate}\n  - {name: Sport, include: sport}\n")
    site.generate()
    (site.output / "queries" / "mine.atom.xml").write_text("<feed/>")  # in the folder, not written by feeds
    site.write_config(config + "queries:\n  - {name: Sport, include: sport}\n")
    report = site.generate()
    assert sorted(report.removed) == ["queries/climate.atom.xml", "queries/climate.feed.json",
                                      "queries/climate.rss.xml"]
    left = site.outputs()
    assert "queries/sport.atom.xml" in left and left["queries/mine.atom.xml"] == b"<feed/>"
    assert "queries/climate" not in left["index.html"].decode()


def test_a_query_that_matches_nothing_yet_has_an_empty_feed(site: Site) -> None:
    site.write_config(outlets(site) + "queries:\n  - {name: Volcanoes, include: volcano}\n")
    site.generate()
    assert titles(site, "queries/volcanoes.atom.xml") == []


@pytest.mark.parametrize(("extra", "line", "says"), [
    ("feeds:\n  tag:\n    World:\n      include: ['ok', '/(bad/']\n", 8, "feeds.tag.World.include[1]"),
    ("queries:\n  - name: A\n    include: ok\n  - name: B\n    exclude: '/[b-a]/'\n", 9, "queries[1].exclude[0]"),
    ("queries:\n  - name: Climate\n  - {name: climate}\n", 5, "would both be written as queries/climate"),
    ("queries:\n  - {name: A, slug: a/b}\n", 6, "one path segment"),
    # A slug the file system cannot hold (over 255 bytes with its suffix) failed the run with exit 1,
    # and one a tag could not have (a Windows device name, characters Windows refuses) was written.
    ("queries:\n  - {name: A, slug: " + "词" * 90 + "}\n", 6, "at most 80 characters and 120 bytes"),
    ("queries:\n  - {name: A, slug: CON}\n", 6, "one path segment"),
    ("queries:\n  - {name: A, slug: 'a?b'}\n", 6, "one path segment"),
    ("queries:\n  - {name: A, includ: x}\n", 6, "queries[0].includ: unknown key"),
])
def test_bad_rules_and_queries_are_config_errors_with_their_line(site: Site, extra: str, line: int,
                                                                  says: str) -> None:
    site.write_config(BASE + extra)
    with pytest.raises(ConfigError) as caught:
        site.config()
    assert caught.value.line == line and says in caught.value.message
    run = subprocess.run([sys.executable, "-m", "feeds", "check"], cwd=site.root, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 2 and f"config.yaml:{line}:" in run.stderr and "Traceback" not in run.stderr


def test_a_filter_edit_of_a_posts_only_config_takes_the_full_run(site: Site) -> None:
    site.add("2024-01-01-a.md", "---\ntitle: Keep me\ndate: 2024-01-01\n---\nA.\n")
    site.add("2024-01-02-b.md", "---\ntitle: Drop me\ndate: 2024-01-02\n---\nB.\n")
    site.write_config(BASE)
    feeds = [sys.executable, "-m", "feeds", "generate", "-q"]
    subprocess.run(feeds, cwd=site.root, check=True)
    subprocess.run(feeds, cwd=site.root, check=True)  # the quick path's record is in place
    assert titles(site, "all.atom.xml") == ["Drop me", "Keep me"]
    site.write_config(BASE + "feeds:\n  all: {exclude: 'title:drop'}\n")
    subprocess.run(feeds, cwd=site.root, check=True)
    assert titles(site, "all.atom.xml") == ["Keep me"]
    # A post edit that only a rule sees (its title) moves it out of the feed.
    site.add("2024-01-01-a.md", "---\ntitle: Drop me too\ndate: 2024-01-01\n---\nA.\n")
    subprocess.run(feeds, cwd=site.root, check=True)
    assert titles(site, "all.atom.xml") == []


@pytest.mark.skipif(shutil.which("newsboat") is None, reason="newsboat is not installed (apt install newsboat)")
def test_newsboat_reads_a_topic_feed_and_its_archive_page(site: Site, tmp_path: Path) -> None:
    site.write_config(outlets(site).replace("formats: [atom, rss, json]", "formats: [atom, rss, json], archive: true, "
                                            "archive_page_size: 2")
                      + "queries:\n  - {name: Climate, include: '/气候|climate/', max_entries: 2}\n")
    site.generate()
    assert (site.output / "queries/climate.archive/1.atom.xml").is_file()
    httpd = make_server(site.output, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        urls = tmp_path / "urls"
        urls.write_text(f"http://127.0.0.1:{port}/queries/climate.atom.xml\n"
                        f"http://127.0.0.1:{port}/queries/climate.archive/1.rss.xml\n")
        home = tmp_path / "home"
        home.mkdir()
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_DATA_HOME": str(home)}
        (tmp_path / "newsboat.conf").write_text("")
        cache = tmp_path / "cache.db"
        run = subprocess.run(["newsboat", "-u", str(urls), "-c", str(cache), "-C", str(tmp_path / "newsboat.conf"),
                              "-x", "reload"], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stderr
        with sqlite3.connect(cache) as db:
            feeds = dict(db.execute("SELECT rssurl, title FROM rss_feed").fetchall())
            titles_seen = {t for (t,) in db.execute("SELECT title FROM rss_item")}
        assert feeds[f"http://127.0.0.1:{port}/queries/climate.atom.xml"] == "Climate — Filters"
        # newsboat keeps one copy of an entry whichever feed it came in: the topic's three, once each.
        assert titles_seen == {"Our climate column", "全球气候会议", "Climate summit opens"}
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- a regular expression that backtracks without end -----------------------------------

SLOW = ["/(x+x+)+y/", "/^(a|aa)+$/", r"/(\w+\s?)+$/"]


@pytest.mark.parametrize("pattern", SLOW)
def test_a_catastrophic_regex_is_given_up_once_and_named(pattern: str) -> None:
    from feeds.build.filters import given_up

    rule = parse_rule(f"title:{pattern}")
    hostile = Facts(title="a" * 3000 + "x" * 3000 + "!")
    assert not rule.matches(hostile)  # stopped after MATCH_TIMEOUT, not after the heat death of the sun
    assert given_up() == [f"title:{pattern}"] and given_up() == []
    assert not rule.matches(Facts(title="xxy aa"))  # given up: matches nothing more, costs nothing
    assert given_up() == []


def test_a_run_with_catastrophic_rules_ends_warns_and_publishes_the_rest(site: Site) -> None:
    long_title = "a" * 3000 + "!"
    site.write_config(outlets(site).replace("{name: beta, url: beta.xml}",
                                            "{name: beta, url: beta.xml, exclude: ['/^(a|aa)+$/']}") +
                      "feeds:\n  defaults: {exclude: ['title:/(x+x+)+y/', 'sponsored']}\n")
    site.add("2024-01-07-long.md", f"---\ntitle: {'x' * 3000}\ndate: 2024-01-07\ntags: [Opinion]\n---\n{long_title}\n")
    write_source(site.root / "beta.xml", "beta.example", [(long_title, "Cy", "Business", long_title)])
    for _ in range(2):
        result = subprocess.run([sys.executable, "-m", "feeds", "generate", "--config", str(site.root / "config.yaml")],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    shown = titles(site, "all.atom.xml")
    assert "Sponsored: buy a car" not in shown  # the other rule of the same list still works
    assert {"Climate summit opens", "Gardening", "x" * 3000} <= set(shown)
    assert any(t.startswith("aaaa") for t in shown)  # the beta item its source's slow rule was to judge
    # Every run that plans says which rules were given up, one line each.
    warned = [line for line in result.stderr.splitlines() if "given up" in line]
    assert len(warned) == 2 and any("/^(a|aa)+$/" in w for w in warned) and any("(x+x+)+y" in w for w in warned)
