"""The front door: index.html, OPML, JSON Feed, the XSL view, per-feed policy, the health feed."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree, html

from feeds.pipeline import generate

from .conftest import Site, posts, with_formats
from .httpserver import FeedServer, Response

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_index_lists_every_feed_with_escaped_text(site: Site) -> None:
    posts(site)
    with_formats(site)
    site.generate()
    doc = html.fromstring((site.output / "index.html").read_bytes())
    hrefs = {a.get("href") for a in doc.iter("a")}
    feeds = [p.relative_to(site.output).as_posix() for p in site.output.rglob("*")
             if p.name.endswith((".atom.xml", ".rss.xml", ".feed.json"))]
    assert len(feeds) == 3 * 7  # all, 4 tags, 2 categories
    from urllib.parse import quote

    for path in feeds:
        assert quote(path) in hrefs, path
    assert "feeds.opml" in hrefs
    alternates = {(link.get("type"), link.get("href")) for link in doc.iter("link") if link.get("rel") == "alternate"}
    assert ("application/atom+xml", "all.atom.xml") in alternates
    assert ("application/rss+xml", "all.rss.xml") in alternates
    text = (site.output / "index.html").read_text()
    # Shown with look-alike brackets, so that no reader can take it for markup.
    assert "<script>" not in text and "&lt;script&gt;" not in text and "\u2039script\u203a" in text
    assert 'name="viewport"' in text and "<script" not in text.lower()
    python = next(li for li in doc.iter("li") if "Python" in li.text_content())
    assert "2 entries" in python.text_content() and "newest 2021-01-03" in python.text_content()


def test_opml_lists_every_feed(site: Site) -> None:
    posts(site)
    site.generate()
    opml = etree.fromstring((site.output / "feeds.opml").read_bytes())
    urls = [o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")]
    assert len(urls) == 7 and all(u.startswith("https://example.org/feeds/") and u.isascii() for u in urls)
    assert all(u.endswith(".atom.xml") for u in urls)


def test_json_feed_follows_the_spec(site: Site) -> None:
    posts(site)
    with_formats(site)
    site.generate()
    doc = json.loads((site.output / "all.feed.json").read_text())
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(doc["title"], str) and doc["feed_url"] == "https://example.org/feeds/all.feed.json"
    assert isinstance(doc["items"], list) and len(doc["items"]) == 4
    for item in doc["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert isinstance(item.get("content_html", item.get("content_text")), str)
        for key in ("date_published", "date_modified"):
            datetime.fromisoformat(item[key].replace("Z", "+00:00"))
        assert all(isinstance(a["name"], str) for a in item.get("authors", []))
        assert all(isinstance(t, str) for t in item.get("tags", []))
        assert all(k in {"id", "url", "external_url", "title", "content_html", "content_text", "summary", "image",
                         "banner_image", "date_published", "date_modified", "authors", "tags", "language",
                         "attachments"} or k.startswith("_") for k in item)
    sample = next(i for i in doc["items"] if i["title"] == "解振华应约与克里举行会谈")
    assert sample["url"] == "https://www.zaobao.com/realtime/china/story20210903-1190070"
    assert sample["date_published"] == "2021-09-03T13:37:42.888Z"


def test_per_feed_policy(site: Site, server: FeedServer) -> None:
    posts(site)
    server.routes["/w.xml"] = Response(200, b'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>'
                                            b"<link>https://w.example/</link><description>d</description>"
                                            b"<item><title>Wire item</title><link>https://w.example/1</link>"
                                            b"<guid>w1</guid><category>Python</category></item>"
                                            b"</channel></rss>")
    with_formats(site, f"""sources:
  - {{name: wire, url: '{server.url("/w.xml")}'}}
feeds:
  tags: {{min_entries: 2, formats: [atom]}}
  categories: {{content: summary, title: "Category {{name}} at {{site}}"}}
  tag:
    python: {{max_entries: 1, exclude_sources: [wire], description: "Only {{name}} posts"}}
  all: {{include_sources: [posts]}}
""")
    site.generate()
    tags = sorted(p.name for p in (site.output / "tags").iterdir())
    assert tags == ["python.atom.xml"]  # Solo, <script>, 联合早报 have one entry; only Atom for tags
    python = feedparser.parse((site.output / "tags/python.atom.xml").read_bytes())
    assert [e.title for e in python.entries] == ["C"] and python.feed.subtitle == "Only Python posts"
    tech = feedparser.parse((site.output / "categories/tech.rss.xml").read_bytes())
    assert tech.feed.title == "Category Tech at Test archive"
    assert all("content" not in e for e in tech.entries)
    everything = [e.title for e in feedparser.parse((site.output / "all.atom.xml").read_bytes()).entries]
    assert "Wire item" not in everything and len(everything) == 4


def test_health_feed(site: Site, server: FeedServer) -> None:
    posts(site)
    server.routes["/ok.xml"] = Response(200, b'<rss version="2.0"><channel><title>t</title><link>https://o.example/'
                                             b'</link><description>d</description><item><title>x</title>'
                                             b"<link>https://o.example/1</link><guid>same</guid></item><item>"
                                             b"<title>y</title><link>https://o.example/2</link><guid>same</guid>"
                                             b"</item></channel></rss>")
    server.routes["/down.xml"] = Response(500, b"")
    text = (site.root / "config.yaml").read_text()
    site.write_config(text + f"""sources:
  - {{name: ok, url: '{server.url("/ok.xml")}', every: 1h}}
  - {{name: down, url: '{server.url("/down.xml")}', every: 1h}}
""")
    site.generate()
    status = feedparser.parse((site.output / "status.atom").read_bytes())
    assert not status.bozo
    assert sorted(e.title for e in status.entries) == ["down: failing", "ok: guid downgrade"]
    problems = json.loads((site.output / "status.json").read_text())["problems"]
    assert {p["problem"] for p in problems} == {"failing", "guid downgrade"}
    mtime = (site.output / "status.atom").stat().st_mtime_ns
    generate(site.config(), offline=True)
    assert (site.output / "status.atom").stat().st_mtime_ns == mtime


def test_template_override(site: Site) -> None:
    posts(site)
    folder = site.root / "my-templates"
    folder.mkdir()
    (folder / "index.html").write_text("<html><body>{% for g in groups %}{{ g.heading }}={{ g.feeds|length }};"
                                       "{% endfor %}</body></html>")
    site.write_config((site.root / "config.yaml").read_text().replace(
        "  max_entries: 50\n", "  max_entries: 50\n  templates: my-templates\n  pages: true\n"))
    site.generate()
    assert (site.output / "index.html").read_text() == "<html><body>Tags=4;Categories=2;</body></html>"
    page = html.fromstring((site.output / "tags/python.html").read_bytes())
    assert [a.text_content() for a in page.iter("h2")] == ["C", "B"]


def test_stylesheet_keeps_feeds_valid(site: Site) -> None:
    posts(site)
    site.generate()
    data = (site.output / "tags/python.atom.xml").read_bytes()
    assert b'<?xml-stylesheet type="text/xsl" href="../feed.xsl"?>' in data.split(b"\n")[1]
    assert not feedparser.parse(data).bozo
    etree.XSLT(etree.parse(str(site.output / "feed.xsl")))  # a valid stylesheet
    view = etree.XSLT(etree.parse(str(site.output / "feed.xsl")))(etree.fromstring(data))
    assert "C" in str(view) and "This is a web feed" in str(view)


def chromium(url: str, *args: str, user_data: Path) -> str:
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={user_data}", *args, url], capture_output=True, text=True, timeout=90)
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt install chromium)")
def test_chromium_shows_the_index_and_the_feed_view(served_site: tuple[Site, int], tmp_path: Path) -> None:
    _site, port = served_site
    dom = chromium(f"http://127.0.0.1:{port}/", "--dump-dom", user_data=tmp_path / "ud1")
    doc = html.fromstring(dom)
    hrefs = {a.get("href") for a in doc.iter("a")}
    assert {"all.atom.xml", "all.rss.xml", "all.feed.json", "tags/python.atom.xml", "feeds.opml"} <= hrefs
    view = chromium(f"http://127.0.0.1:{port}/tags/python.atom.xml", "--dump-dom", user_data=tmp_path / "ud2")
    assert "This is a web feed" in view
    assert ">C</a>" in view and ">B</a>" in view
    shot = tmp_path / "index.png"
    chromium(f"http://127.0.0.1:{port}/", f"--screenshot={shot}", "--window-size=390,844", user_data=tmp_path / "u3")
    assert shot.exists() and shot.stat().st_size > 1000


@pytest.mark.skipif(shutil.which("newsboat") is None, reason="newsboat is not installed (apt install newsboat)")
def test_newsboat_imports_the_opml_and_reloads_every_feed(served_site: tuple[Site, int], tmp_path: Path) -> None:
    site, port = served_site
    opml = (site.output / "feeds.opml").read_text().replace("https://example.org/feeds/", f"http://127.0.0.1:{port}/")
    (tmp_path / "feeds.opml").write_text(opml)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_DATA_HOME": str(home)}
    urls, cache, conf = tmp_path / "urls", tmp_path / "cache.db", tmp_path / "conf"
    urls.write_text("")
    conf.write_text("")
    common = ["newsboat", "-u", str(urls), "-c", str(cache), "-C", str(conf)]
    result = subprocess.run([*common, "-i", str(tmp_path / "feeds.opml")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert len([line for line in urls.read_text().splitlines() if line.startswith("http")]) == 7
    result = subprocess.run([*common, "-x", "reload"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(cache) as db:
        loaded = db.execute("SELECT rssurl, title FROM rss_feed").fetchall()
        titles = {t for (t,) in db.execute("SELECT title FROM rss_item")}
    # newsboat keeps one copy of an item across feeds, so count the feeds it loaded.
    assert len(loaded) == 7 and all(title for _, title in loaded)
    assert {"A & \u2039b\u203a", "B", "C", "解振华应约与克里举行会谈"} <= titles
