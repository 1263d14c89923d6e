"""The output layout: names, folders, URLs and media types, as pure functions."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import layout
from feeds.build.taxonomy import fit_slug

BASE = "https://example.org/feeds/"


def test_stems_and_files() -> None:
    assert layout.feed_stem("all") == "all"
    assert layout.feed_stem("tag", "python") == "tags/python"
    assert layout.feed_stem("category", "news") == "categories/news"
    assert layout.feed_file("all", "atom") == "all.atom.xml"
    assert layout.feed_file("tags/python", "rss") == "tags/python.rss.xml"
    assert layout.feed_file("categories/news", "json") == "categories/news.feed.json"
    assert layout.feed_file("tags/python", "html") == "tags/python.html"
    with pytest.raises(KeyError):
        layout.feed_file("all", "xml")


def test_urls_percent_encode_each_segment_and_keep_slashes() -> None:
    assert layout.feed_url(BASE, "all.atom.xml") == "https://example.org/feeds/all.atom.xml"
    assert layout.feed_url(BASE, "tags/联合早报.atom.xml") == \
        "https://example.org/feeds/tags/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.atom.xml"
    # Composed and decomposed "é" are different names, so different URLs.
    assert layout.feed_url(BASE, "tags/caf\u00e9.rss.xml").endswith("/tags/caf%C3%A9.rss.xml")
    assert layout.feed_url(BASE, "tags/cafe\u0301.rss.xml").endswith("/tags/cafe%CC%81.rss.xml")
    assert layout.feed_url(BASE, "tags/a b#?.rss.xml").endswith("/tags/a%20b%23%3F.rss.xml")
    assert layout.href("tags/联合早报.html") == "tags/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.html"


@settings(deadline=None, max_examples=200)
@given(st.text(min_size=1, max_size=40))
def test_any_slug_gives_an_ascii_url_that_decodes_back(name: str) -> None:
    slug = fit_slug(name, name)  # only the file-name rules: '%', '#' and '&' stay in it
    relative = layout.feed_file(layout.feed_stem("tag", slug), "atom")
    url = layout.feed_url(BASE, relative)
    assert url.isascii() and " " not in url
    assert unquote(url.removeprefix(BASE), errors="strict") == relative
    assert url.removeprefix(BASE).split("/")[0] == "tags"


@pytest.mark.parametrize(("relative", "expected"), [
    ("all.atom.xml", "feed.xsl"),
    ("tags/python.rss.xml", "../feed.xsl"),
    ("categories/联合早报.atom.xml", "../feed.xsl"),
    ("a/b/c.atom.xml", "../../feed.xsl"),
])
def test_stylesheet_href_climbs_to_the_top_of_the_output_folder(relative: str, expected: str) -> None:
    assert layout.stylesheet_href(relative) == expected


def test_what_looks_like_ours() -> None:
    ours = ["all.atom.xml", "all.rss.xml", "all.feed.json", "index.html", "feeds.opml", "feed.xsl",
            "status.atom", "status.json", "tags/python.atom.xml", "tags/python.html",
            "categories/news.feed.json"]
    theirs = ["README.md", "notes.html", "tags/python.txt", "other/x.atom.xml", "tags/sub/x.atom.xml",
              "index.htm", "all.atom", "tags/", "categories/x.xml"]
    assert [p for p in ours if not layout.looks_like_ours(p)] == []
    assert [p for p in theirs if layout.looks_like_ours(p)] == []


def test_feed_files_and_announcements() -> None:
    assert layout.is_feed_file("tags/x.feed.json")
    assert not layout.is_feed_file("tags/x.feed.json", layout.XML_FORMATS)
    assert layout.is_feed_file("tags/x.rss.xml", layout.XML_FORMATS)
    announced = [p for p in ("all.atom.xml", "all.rss.xml", "all.feed.json", "tags/x.html", "index.html",
                             "status.atom", "status.json", "feeds.opml", "feed.xsl")
                 if layout.is_announced(p)]
    assert announced == ["all.atom.xml", "all.rss.xml", "all.feed.json"]


@pytest.mark.parametrize(("name", "kind"), [
    ("all.atom.xml", "application/atom+xml; charset=utf-8"),
    ("tags/x.rss.xml", "application/rss+xml; charset=utf-8"),
    ("tags/x.feed.json", "application/feed+json; charset=utf-8"),
    ("status.json", "application/json; charset=utf-8"),  # problems, not a JSON Feed
    ("index.html", "text/html; charset=utf-8"),
    ("feeds.opml", "text/x-opml; charset=utf-8"),
    ("feed.xsl", "text/xsl; charset=utf-8"),
    ("sitemap.xml", "application/xml; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("robots.txt", "text/plain; charset=utf-8"),
    ("status.atom", "application/atom+xml; charset=utf-8"),  # a feed an operator subscribes to
    ("notes.json", "application/json; charset=utf-8"),
    ("photo.jpg", "application/octet-stream"),
])
def test_media_types_by_suffix(name: str, kind: str) -> None:
    assert layout.media_type(name) == kind


def test_every_feed_format_has_a_media_type_matching_its_link_type() -> None:
    for fmt, suffix in layout.FORMATS.items():
        assert layout.media_type("x" + suffix).split(";")[0] == layout.LINK_TYPES[fmt].media_type


def test_listing_order_is_folder_by_folder() -> None:
    paths = ["tags/b.atom.xml", "categories/a.atom.xml", "all.rss.xml", "tags/a.atom.xml", "all.atom.xml"]
    assert sorted(paths, key=layout.listing_order) == ["all.atom.xml", "all.rss.xml", "tags/a.atom.xml",
                                                       "tags/b.atom.xml", "categories/a.atom.xml"]


def test_archive_pages_are_named_beside_their_feed_and_listed_after_every_feed() -> None:
    assert layout.feed_file(layout.archive_stem("tags/联合早报", 3), "rss") == "tags/联合早报.archive/3.rss.xml"
    assert layout.feed_stem("query", "climate") == "queries/climate"
    paths = ["tags/a.archive/10.atom.xml", "all.archive/2.atom.xml", "queries/q.atom.xml", "tags/a.archive/9.atom.xml",
             "all.atom.xml", "all.archive/1.atom.xml"]
    assert sorted(paths, key=layout.listing_order) == [
        "all.atom.xml", "queries/q.atom.xml", "all.archive/1.atom.xml", "all.archive/2.atom.xml",
        "tags/a.archive/9.atom.xml", "tags/a.archive/10.atom.xml"]
    for ours in ("all.archive/1.atom.xml", "tags/x.archive/2.feed.json", "queries/q.archive/", "queries/q.rss.xml"):
        assert layout.looks_like_ours(ours), ours
    for foreign in ("all.archive/notes.txt", "x.archive/1.atom.xml", "tags/x/1.atom.xml", "tags/.archive/1.atom.xml"):
        assert not layout.looks_like_ours(foreign), foreign
