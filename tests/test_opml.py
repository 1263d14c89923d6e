"""Sources from OPML subscription lists: one exported by a real reader (newsboat), nested
folders as tags, stable unique names, one source per feed, and a clear error for a bad file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.config import ConfigError, load_config
from feeds.config.opml import Subscription, merged, normal_url

from .conftest import Site
from .httpserver import FeedServer, feed_response, item, rss
from .test_sources import entries, run

NESTED = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Exported subscriptions</title></head>
  <body>
    <outline text="Tech" title="Tech">
      <outline text="Python" title="Python">
        <outline type="rss" text="Planet" title="Planet" xmlUrl="{a}" htmlUrl="https://planet.example/"/>
      </outline>
      <outline type="rss" text="Blog" xmlUrl="{b}"/>
    </outline>
    <outline text="News">
      <outline type="rss" text="Blog" xmlUrl="{c}" category="/World/Asia"/>
      <outline type="rss" text="Planet again" xmlUrl="{a_again}"/>
    </outline>
    <outline type="rss" text="Configured" xmlUrl="{d}"/>
  </body>
</opml>
"""


def _configure(site: Site, body: str) -> None:
    text = (site.root / "config.yaml").read_text().split("sources:")[0]
    site.write_config(text + body + "fetch: {host_gap: 0, read_timeout: 2, total_timeout: 4}\n")


def _serve(server: FeedServer, *paths: str) -> None:
    for n, path in enumerate(paths, 1):
        server.routes[path] = feed_response(rss([item(n, guid=f"{path}-{n}", link=f"https://s.example{path}/{n}")],
                                                title=f"Feed {path}"))


def test_an_opml_exported_by_newsboat_imports(site: Site, server: FeedServer, tmp_path: Path) -> None:
    newsboat = shutil.which("newsboat")
    if newsboat is None:
        pytest.skip("newsboat is not installed")
    _serve(server, "/a.xml", "/b.xml", "/c.xml")
    home = tmp_path / "newsboat"
    home.mkdir()
    (home / "urls").write_text(f"{server.url('/a.xml')}\n{server.url('/b.xml')} \"Tech\"\n"
                               f"{server.url('/c.xml')} \"~Custom Title\"\n")
    (home / "config").write_text("")
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_DATA_HOME": str(home)}
    exported = subprocess.run([newsboat, "-u", str(home / "urls"), "-C", str(home / "config"),
                               "-c", str(home / "cache.db"), "-e"], capture_output=True, env=env, check=True)
    assert b"<opml" in exported.stdout
    (site.root / "subscriptions.opml").write_bytes(exported.stdout)
    _configure(site, "sources_opml: subscriptions.opml\n")
    config = site.config()
    host = f"127.0.0.1:{server.port}"
    assert [(s.name, s.url) for s in config.sources] == [
        (f"{host}/a.xml", server.url("/a.xml")), (f"{host}/b.xml", server.url("/b.xml")),
        ("Custom Title", server.url("/c.xml"))]
    report = run(site)
    assert [o.status for o in report.sources] == ["ok", "ok", "ok"]
    assert sorted(e.title for e in entries(site)) == ["Story 1", "Story 2", "Story 3"]
    cli = subprocess.run([sys.executable, "-m", "feeds", "check", "--config", str(site.root / "config.yaml")],
                         capture_output=True, text=True)
    assert "config ok" in cli.stderr


def test_nested_folders_become_tags_and_the_config_wins(site: Site, server: FeedServer) -> None:
    _serve(server, "/a.xml", "/b.xml", "/c.xml", "/d.xml")
    (site.root / "lists").mkdir()
    (site.root / "lists" / "subs.opml").write_text(NESTED.format(
        a=server.url("/a.xml"), b=server.url("/b.xml"), c=server.url("/c.xml"), d=server.url("/d.xml"),
        a_again=server.url("/a.xml") + "#top"))
    _configure(site, f"sources:\n  - {{name: Configured, url: '{server.url('/d.xml')}', every: 60, "
                     "tags: [Mine]}\n  - {name: Blog, url: 'https://elsewhere.example/x.xml', enabled: false}\n"
                     "sources_opml: [lists/subs.opml]\n")
    config = site.config()
    by_name = {s.name: s for s in config.sources}
    host = f"127.0.0.1:{server.port}"
    # The feed in two folders is one source with the tags of both; both "Blog"s are renamed
    # (a config source has that name), from their hosts, then from their URLs.
    assert len(config.sources) == 5 and len(by_name) == 5
    renamed = sorted(n for n in by_name if n.startswith("Blog ("))
    assert len(renamed) == 2 and f"Blog ({host})" not in renamed
    assert by_name["Planet"].tags == ["Tech", "Python", "News"]
    blogs = sorted((s for s in config.sources if s.name.startswith("Blog (")), key=lambda s: s.url)
    assert [s.url for s in blogs] == [server.url("/b.xml"), server.url("/c.xml")]
    assert blogs[0].tags == ["Tech"] and blogs[1].tags == ["World", "Asia", "News"]
    assert by_name["Configured"].tags == ["Mine"]  # the config's source, not the outline
    report = run(site)
    assert sorted(o.status for o in report.sources) == ["ok"] * 4
    assert (site.output / "tags" / "python.atom.xml").exists() and (site.output / "tags" / "asia.atom.xml").exists()


def test_names_do_not_depend_on_the_order_of_the_outlines(tmp_path: Path) -> None:
    outlines = ['<outline text="Blog" xmlUrl="https://a.example/feed"/>',
                '<outline text="Blog" xmlUrl="https://b.example/feed"/>',
                '<outline text="Blog" xmlUrl="https://b.example/other"/>',
                '<outline text="Blog (a.example)" xmlUrl="https://c.example/feed"/>',
                '<outline xmlUrl="https://d.example/rss"/>']
    names = []
    for order in (outlines, outlines[::-1], outlines[2:] + outlines[:2]):
        (tmp_path / "s.opml").write_text(f'<opml version="1.0"><body>{"".join(order)}</body></opml>')
        (tmp_path / "config.yaml").write_text("site: {base_url: 'https://example.org/'}\nsources_opml: s.opml\n")
        names.append(sorted((s.url, s.name) for s in load_config(tmp_path / "config.yaml").sources))
    assert names[0] == names[1] == names[2]
    got = dict(names[0])
    assert got["https://a.example/feed"].startswith("Blog (") and got["https://a.example/feed"] != "Blog (a.example)"
    assert got["https://c.example/feed"] == "Blog (a.example)"
    assert got["https://d.example/rss"] == "d.example/rss"
    assert len(set(got.values())) == 5


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "OPML file not found"),
    ("<opml><body><outline xmlUrl='https://a.example/'></body>", "not well-formed OPML"),
    ("<rss version='2.0'><channel/></rss>", "not an OPML file"),
    ("<opml version='1.0'><head/></opml>", "no <body>"),
    ("<opml version='1.0'><body><outline text='x' xmlUrl='feed.xml'/></body></opml>", "not an absolute http(s) URL"),
    ("<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><opml><body><outline text='&e;' "
     "xmlUrl='https://a.example/'/></body></opml>", "OPML"),
])
def test_a_bad_opml_file_is_one_config_error_naming_it(tmp_path: Path, content: str | None, fragment: str) -> None:
    if content is not None:
        (tmp_path / "bad.opml").write_text(content)
    (tmp_path / "config.yaml").write_text("site: {base_url: 'https://example.org/'}\n\nsources_opml: bad.opml\n")
    try:
        config = load_config(tmp_path / "config.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(str(tmp_path / "bad.opml")), message
        assert fragment in message
        if content is None:
            assert f"(sources_opml, {tmp_path / 'config.yaml'}:3)" in message
    else:
        # An external entity is never read: the outline's title is empty and nothing leaks.
        assert fragment == "OPML" and "root:" not in repr(config.sources)
        return
    for command in ("generate", "check"):
        cli = subprocess.run([sys.executable, "-m", "feeds", command, "--config", str(tmp_path / "config.yaml")],
                             capture_output=True, text=True)
        assert cli.returncode == 2, cli.stderr
        assert "bad.opml" in cli.stderr and "Traceback" not in cli.stderr
        assert len(cli.stderr.strip().splitlines()) == 1


def test_normal_url() -> None:
    assert normal_url("HTTP://Example.ORG:80/feed#x") == "http://example.org/feed"
    assert normal_url("https://example.org") == "https://example.org/"
    assert normal_url("https://example.org:8443/a?b=1") == "https://example.org:8443/a?b=1"


_TITLES = st.sampled_from(["", "Blog", "Blog (a.example)", "News", "d.example/rss", "x" * 300])
_URLS = st.sampled_from([f"https://{h}/{p}" for h in ("a.example", "b.example", "d.example")
                         for p in ("feed", "rss", "")])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_TITLES, _URLS), max_size=12), st.lists(_TITLES.filter(bool), max_size=3, unique=True),
       st.randoms(use_true_random=False))
def test_merged_names_are_unique_and_independent_of_order(subs: list[tuple[str, str]], taken: list[str],
                                                          rnd: object) -> None:
    items = [Subscription(t, u, "f.opml") for t, u in subs]
    first = merged(items, taken, [])
    assert len({n for n, _ in first}) == len(first)
    assert not {n for n, _ in first} & set(taken)
    assert all(0 < len(n) <= 200 for n, _ in first)
    assert len(first) == len({normal_url(u) for _, u in subs})
    # Shuffled, each URL keeps its name unless titles of the same URL differ (the first title wins).
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    if all(len({t for t, u2 in subs if normal_url(u2) == normal_url(u)}) == 1 for _, u in subs):
        again = merged(shuffled, taken, [])
        assert {normal_url(s.url): n for n, s in first} == {normal_url(s.url): n for n, s in again}


def test_an_outline_named_posts_is_renamed_and_a_source_may_not_be_named_so(tmp_path: Path) -> None:
    # "posts" is what include_sources/exclude_sources call the local posts: a source of that
    # name would be left out (or let in) with them.
    (tmp_path / "s.opml").write_text('<opml version="1.0"><body><outline text="posts" '
                                     'xmlUrl="https://a.example/feed"/></body></opml>')
    (tmp_path / "config.yaml").write_text("site: {base_url: 'https://example.org/'}\nsources_opml: s.opml\n")
    [source] = load_config(tmp_path / "config.yaml").sources
    assert source.name == "posts (a.example)"
    (tmp_path / "config.yaml").write_text("site: {base_url: 'https://example.org/'}\n"
                                          "sources:\n  - {name: posts, url: 'https://a.example/feed'}\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'config.yaml'}:3: ") and "'posts'" in str(info.value)
