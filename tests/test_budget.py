"""Every written file within its byte budget: real posts, real runs, files read back."""

from __future__ import annotations

import json
from collections.abc import Callable

import feedparser
import pytest
from lxml import etree

from .conftest import Site

FORMATS = ("atom.xml", "rss.xml", "feed.json")


def configure(site: Site, extra: str = "", formats: str = "atom, rss, json") -> None:
    text = (site.root / "config.yaml").read_text().replace(
        "  max_entries: 50\n", f"  max_entries: 50\n  formats: [{formats}]\n  pages: true\n{extra}")
    site.write_config(text)


def paragraph(n: int) -> str:
    return f"<p>Paragraph {n}: " + "the quick brown fox jumps over the lazy dog, " * 20 + "</p>\n"


def big_post(site: Site, name: str, size: int, day: int, tags: str = "[Big]") -> None:
    block = paragraph(0)
    body = block * (size // len(block) + 1)
    site.add(name, f"---\ntitle: Post {day}\ndate: 2021-06-{day:02d} 10:00\nlink: https://news.example/{day}\n"
                   f"summary: Summary of post {day}\ntags: {tags}\n---\n{body}")


def small_post(site: Site, day: int) -> None:
    site.add(f"2021-06-{day:02d}-small.md", f"---\ntitle: Small {day}\ndate: 2021-06-{day:02d} 09:00\n"
                                            f"tags: [Big]\n---\nSmall body {day}.\n")


def entries_of(site: Site, path: str) -> list[dict[str, object]]:
    """(title, link, has content, summary) of each entry, newest first, in any format."""
    data = (site.output / path).read_bytes()
    if path.endswith(".json"):
        doc = json.loads(data)
        return [{"title": i["title"], "link": i.get("url"), "content": "content_html" in i,
                 "summary": i.get("summary", "")} for i in doc["items"]]
    d = feedparser.parse(data, response_headers={"content-type": "application/xml"})
    assert not d.bozo, d.get("bozo_exception")
    etree.fromstring(data)
    out = []
    for e in d.entries:
        has = bool(e.get("content"))  # Atom content, RSS content:encoded
        out.append({"title": e.title, "link": e.get("link"), "content": has, "summary": e.get("summary", "")})
    return out


def test_a_6_mb_post_publishes_its_summary_and_link(make_site: Callable[[str], Site]) -> None:
    outputs = []
    for name in ("one", "two"):
        site = make_site(name)
        configure(site)
        big_post(site, "2021-06-10-big.md", 6_000_000, 10)
        small_post(site, 11)
        small_post(site, 9)
        report = site.generate()
        for path, data in site.outputs().items():
            assert len(data) <= 4_000_000, (path, len(data))
        for stem in ("all", "tags/big"):
            for fmt in FORMATS:
                got = entries_of(site, f"{stem}.{fmt}")
                assert [e["title"] for e in got] == ["Small 11", "Post 10", "Small 9"]
                big = got[1]
                assert big["link"] == "https://news.example/10" and not big["content"]
                assert "Summary of post 10" in str(big["summary"])
                assert got[0]["content"] and got[2]["content"]
                # Reported once for that file, in one line.
                lines = [w for w in report.warnings if w.startswith(f"{stem}.{fmt}:")]
                assert lines == [f"{stem}.{fmt}: 1 entry with content over 512,000 bytes published as summary "
                                 "and link"], report.warnings
        outputs.append(site.outputs())
    assert outputs[0] == outputs[1]  # byte-stable


@pytest.mark.parametrize("fmt", FORMATS)
def test_many_400_kb_posts_older_ones_lose_content_first(site: Site, fmt: str) -> None:
    configure(site, formats={"atom.xml": "atom", "rss.xml": "rss", "feed.json": "json"}[fmt])
    for day in range(1, 15):  # 14 x 400 KB: 5.6 MB of content
        big_post(site, f"2021-06-{day:02d}-p.md", 400_000, day)
    report = site.generate()
    data = (site.output / f"all.{fmt}").read_bytes()
    assert len(data) <= 4_000_000
    got = entries_of(site, f"all.{fmt}")
    assert [e["title"] for e in got] == [f"Post {d}" for d in range(14, 0, -1)]  # none left out
    flags = [e["content"] for e in got]
    kept = flags.count(True)
    assert 0 < kept < 14 and flags == [True] * kept + [False] * (14 - kept)  # the newest keep theirs
    assert len(data) > 3_000_000  # and as many as fit do
    assert f"all.{fmt}: over the 4,000,000-byte budget: {14 - kept} older entries without content" in report.warnings
    again = site.outputs()
    site.generate()
    assert site.outputs() == again


def test_a_small_budget_leaves_the_oldest_out_and_bounds_pages_and_index(site: Site) -> None:
    configure(site, "  max_bytes: 20000\n")
    for day in range(1, 29):
        site.add(f"2021-06-{day:02d}-p.md", f"---\ntitle: Post {day} {'t' * 300}\ndate: 2021-06-{day:02d}\n"
                                            f"summary: {'s' * 400}\ntags: [Every, Tag{day}a, Tag{day}b, Tag{day}c]\n"
                                            f"---\n{paragraph(day) * 2}")
    report = site.generate()
    for path, data in site.outputs().items():
        if path != "feed.xsl":
            assert len(data) <= 20_000, (path, len(data))
    for fmt in FORMATS:
        got = entries_of(site, f"tags/every.{fmt}")
        titles = [str(e["title"]).split(" ")[1] for e in got]
        assert 0 < len(titles) < 28 and titles == [str(d) for d in range(28, 28 - len(titles), -1)]
        assert not any(e["content"] for e in got[len(got) // 2:])
    assert any(w.startswith("tags/every.atom.xml: over the 20,000-byte budget:") and "oldest left out" in w
               for w in report.warnings), report.warnings
    index = (site.output / "index.html").read_text()
    assert "smaller feeds not listed here" in index
    assert "Every" in index  # the biggest feed is listed
    page = etree.fromstring((site.output / "tags/every.html").read_bytes(), etree.HTMLParser())
    assert 0 < len(page.findall(".//article")) < 28


def test_a_page_over_its_budget_even_without_entries_is_not_written(site: Site) -> None:
    # The page of such a feed was written whatever its size (a 15 MB page of a 10,000-byte budget).
    configure(site, "  max_bytes: 10000\n")
    text = (site.root / "config.yaml").read_text()
    site.write_config(text + f"feeds:\n  tags: {{title: '{'d' * 12000}'}}\n")
    small_post(site, 1)
    report = site.generate()
    for path, data in site.outputs().items():
        if path != "feed.xsl":
            assert len(data) <= 10_000, (path, len(data))
    assert any(w.startswith("tags/big.html: ") and "even without entries" in w for w in report.warnings), \
        report.warnings
