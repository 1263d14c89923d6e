"""Odd but real-world source feeds, read through a real server and a real run: references to
characters XML forbids, placeholder dates, items without a link. Each is read as much as it
can be, and what is published stays valid for every reader."""

from __future__ import annotations

import feedparser
import pytest
from lxml import etree

from feeds.sources.parse import parse_feed

from .conftest import Site
from .httpserver import FeedServer, feed_response, item, rss

ATOM = "{http://www.w3.org/2005/Atom}"

BAD_REFERENCES = ["&#xD800;", "&#xdfff;", "&#x110000;", "&#99999999999;", "&#" + "9" * 5000 + ";", "&#0;"]


@pytest.mark.parametrize("ref", BAD_REFERENCES)
def test_a_reference_to_a_forbidden_character_costs_that_character_not_the_feed(ref: str) -> None:
    # The reference makes the document malformed: the forgiving parser reads it, in text and in HTML.
    items = [item(1, title=f"before {ref} after", description=f"&lt;p&gt;x {ref} y&lt;/p&gt;"), item(2)]
    feed = parse_feed(rss(items).encode(), {}, "https://f.example/feed")
    assert [str(i.guid).rsplit("/", 1)[-1] for i in feed.items] == ["guid-1", "guid-2"]
    first = feed.items[0]
    assert first.title is not None and first.title.startswith("before") and first.title.endswith("after")
    assert "\ufffd" not in first.title
    assert first.summary_html is not None and "x" in first.summary_html and "y" in first.summary_html


def _configure(site: Site, sources: dict[str, str]) -> None:
    text = (site.root / "config.yaml").read_text().replace("  max_entries: 50\n",
                                                          "  max_entries: 50\n  formats: [atom, rss, json]\n")
    lines = ["sources:"] + [f"  - {{name: {name}, url: '{url}'}}" for name, url in sources.items()]
    site.write_config(text + "\n".join(lines) + "\nfetch: {host_gap: 0}\n")


def test_placeholder_dates_and_missing_links_publish_valid_feeds(site: Site, server: FeedServer) -> None:
    dated = [item(n, pubDate=d) for n, d in enumerate(
        ["Mon, 01 Jan 0001 00:00:00 GMT", "Mon, 01 Jan 1900 00:00:00 -1200", "0001-01-01T00:00:00-14:00"])]
    unlinked = [{"title": "no link", "guid": "plain-guid", "description": "d"},
                item(9, link="javascript:alert(1)", guid="js-link")]
    server.routes["/dated"] = feed_response(rss(dated))
    server.routes["/unlinked"] = feed_response(rss(unlinked, link="https://home.example/"))
    bad_ref = [item(11, title="a &#xD800; b", guid="ref-11"), item(12, guid="ref-12")]
    server.routes["/bad-ref"] = feed_response(rss(bad_ref))
    _configure(site, {"dated": server.url("/dated"), "unlinked": server.url("/unlinked"),
                      "badref": server.url("/bad-ref")})

    report = site.generate()

    assert [(o.name, o.error) for o in report.sources if o.error] == []
    assert {o.name: o.entries for o in report.sources} == {"dated": 3, "unlinked": 2, "badref": 2}
    atom = etree.parse(str(site.output / "all.atom.xml")).getroot()
    entries = atom.findall(f"{ATOM}entry")
    assert len(entries) == 3 + 2 + 2
    for e in entries:
        for name in ("updated", "published"):
            when = e.findtext(f"{ATOM}{name}")
            assert when is not None and when[:4].isdigit() and when[4] == "-" and when >= "1970", when
        links = [a.get("href") for a in e.findall(f"{ATOM}link") if a.get("rel", "alternate") == "alternate"]
        assert len(links) == 1 and str(links[0]).startswith(("http://", "https://")), etree.tostring(e)
    # Readers that fall back to the id for a missing link see the same http(s) link as the rest.
    parsed = feedparser.parse((site.output / "all.atom.xml").read_bytes())
    assert all(e.link.startswith(("http://", "https://")) for e in parsed.entries)
    assert "https://home.example/" in {e.link for e in parsed.entries}
    rss_dates = [e.findtext("pubDate") for e in etree.parse(str(site.output / "all.rss.xml")).iter("item")]
    assert all(d and int(d.split()[3]) >= 1970 for d in rss_dates), rss_dates


def test_posts_dated_before_1970_are_refused_alone(site: Site) -> None:
    # The site's zone (Asia/Singapore) is east of UTC: year 1 there is before year 1 in UTC.
    site.add("0001-01-01-first.md", "---\ntitle: Named year one\n---\nb\n")
    site.add("2021-01-01-front.md", "---\ntitle: Dated year one\ndate: 0001-01-01T00:00:00+14:00\n---\nb\n")
    site.add("2021-01-02-old.md", "---\ntitle: Old\ndate: 1900-01-01\n---\nb\n")
    site.add("2021-01-03-good.md", "---\ntitle: Good\n---\nb\n")

    report = site.generate()

    assert report.entries == 1
    refused = [w for w in report.warnings if "before 1970" in w or "invalid date" in w]
    assert len(refused) == 3, report.warnings
    assert all("\n" not in w for w in report.warnings)
    pub_dates = [e.findtext("pubDate") for e in etree.parse(str(site.output / "all.rss.xml")).iter("item")]
    assert len(pub_dates) == 1 and pub_dates[0] and pub_dates[0].split()[3] == "2021"


def test_posts_dated_past_2038_are_refused_alone(site: Site) -> None:
    site.add("2021-01-01-far.md", "---\ntitle: Far\ndate: 2286-11-20\n---\nb\n")
    site.add("epoch.md", "---\ntitle: Epoch\n---\n<!--9999999999999-->\nb\n")
    site.add("2021-01-03-good.md", "---\ntitle: Good\ndate: 2030-01-01\n---\nb\n")

    report = site.generate()

    assert report.entries == 1
    assert len([w for w in report.warnings if "after 2038-01-19" in w]) == 2, report.warnings


def test_tags_differing_by_case_width_or_composition_are_one_tag(site: Site, server: FeedServer) -> None:
    spellings = ["Case", "case", "ＣＡＳＥ", "ｃａｓｅ", "e\u0301te", "\u00e9te", "\ufb01le", "file"]
    items = [item(n, guid=f"tag-{n}", category=s) for n, s in enumerate(spellings)]
    server.routes["/tags"] = feed_response(rss(items))
    _configure(site, {"tags": server.url("/tags")})

    report = site.generate()

    assert not [w for w in report.warnings if "collision" in w], report.warnings
    stems = {p.name.split(".")[0] for p in (site.output / "tags").iterdir()}
    assert stems == {"case", "\u00e9te", "file"}, stems
    for stem, count in (("case", 4), ("\u00e9te", 2), ("file", 2)):
        assert len(feedparser.parse((site.output / "tags" / f"{stem}.atom.xml").read_bytes()).entries) == count


@pytest.mark.parametrize("tail", ["", "\x00"], ids=["well-formed", "malformed"])
def test_names_read_from_a_malformed_feed_are_text_as_from_a_well_formed_one(tail: str) -> None:
    creator = '<dc:creator xmlns:dc="http://purl.org/dc/elements/1.1/">A &amp; B</dc:creator>'
    one = item(1, category="x &amp; &lt;y&gt;", enclosure="")
    body = rss([one]).replace("<enclosure></enclosure>", creator
                              + '<enclosure url="https://e.example/m?a=1&amp;b=2" type="audio/mpeg" length="1"/>')
    feed = parse_feed((body + tail).encode(), {}, "https://f.example/feed")
    assert (feed.problem is not None) == bool(tail)
    (parsed,) = feed.items
    assert parsed.tags == ("x & <y>",)
    assert [a.name for a in parsed.authors] == ["A & B"]
    assert [e.url for e in parsed.enclosures] == ["https://e.example/m?a=1&b=2"]


def test_an_entry_whose_content_is_all_removed_still_has_text(site: Site, server: FeedServer) -> None:
    removed = ["&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;iframe src=x&gt;&lt;/iframe&gt;", ""]
    server.routes["/empty"] = feed_response(rss([item(n, description=d) for n, d in enumerate(removed)]))
    _configure(site, {"empty": server.url("/empty")})

    site.generate()

    entries = etree.parse(str(site.output / "all.atom.xml")).getroot().findall(f"{ATOM}entry")
    assert len(entries) == 3
    for e in entries:
        texts = [e.findtext(f"{ATOM}{name}") for name in ("summary", "content")]
        assert any(t and t.strip() for t in texts), etree.tostring(e)
