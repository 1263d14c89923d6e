"""The cleaning pipeline on the real sample post and on hostile HTML."""

from __future__ import annotations

import html
import re
from pathlib import Path

import lxml.html
import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.normalize.content import clean_html, defused, html_to_text, render_markdown, shorten, xml_safe
from feeds.posts import split_post

DATA = Path(__file__).parent / "data"
REMOVE = ["section#imu", "[id^=dfp-ad]", "[id^=innity]", "a[href*='subscribe.sph.com.sg']"]
TITLE = "解振华应约与克里举行会谈"
LINK = "https://www.zaobao.com/realtime/china/story20210903-1190070"


@pytest.fixture(scope="module")
def sample_html() -> str:
    text = (DATA / "2021-09-03-xie-zhenhua-kerry-talks.md").read_text(encoding="utf-8")
    raw = split_post(text, "sample.md", "d")
    return clean_html(render_markdown(raw.body), title=TITLE, base_url=LINK, remove=REMOVE)


def test_sample_keeps_every_paragraph(sample_html: str) -> None:
    root = lxml.html.fragment_fromstring(sample_html, create_parent="div")
    paragraphs = [p.text_content() for p in root.iter("p")]
    assert len(paragraphs) == 7
    assert paragraphs[0].startswith("中国生态环境部今天（3日）公布")
    assert paragraphs[-1].endswith("但他的职责范围仅限气候问题。")


def test_sample_has_no_ads_promos_or_repeated_title(sample_html: str) -> None:
    assert "dfp-ad" not in sample_html and "imu" not in sample_html and "innity" not in sample_html
    assert "subscribe.sph.com.sg" not in sample_html and "paywall" not in sample_html
    assert TITLE not in sample_html
    assert "<h2" not in sample_html and "<hr" not in sample_html
    assert "<!--" not in sample_html
    assert "<div></div>" not in sample_html.replace("\n", "")


def test_lazy_images_get_a_real_src_and_urls_become_absolute() -> None:
    html = ('<p><img data-src="/img/a.jpg" src="data:image/gif;base64,AAAA" alt="a">'
            '<a href="../other.html">x</a><img src="b.png"></p>')
    out = clean_html(html, base_url="https://news.example.com/world/story.html")
    assert 'src="https://news.example.com/img/a.jpg"' in out
    assert 'href="https://news.example.com/other.html"' in out
    assert 'src="https://news.example.com/world/b.png"' in out
    assert "data:" not in out


@pytest.mark.parametrize("evil", [
    '<script>alert(1)</script>', '<style>p{}</style>', '<iframe src="https://evil.example"></iframe>',
    '<p onclick="x()">t</p>', '<a href="javascript:alert(1)">t</a>', '<img src="x" onerror="y()">',
    '<object data="x"></object>', '<form><input></form>',
])
def test_sanitizer_removes_active_content(evil: str) -> None:
    out = clean_html("<p>keep</p>" + evil, base_url="https://e.com/")
    assert "keep" in out
    for word in ("script", "alert", "style", "iframe", "onclick", "onerror", "javascript", "object", "input"):
        assert word not in out


def test_title_heading_only_dropped_at_top() -> None:
    out = clean_html("<p>intro</p><h2>Title</h2>", title="Title")
    assert "<h2>Title</h2>" in out
    assert clean_html("<h1> Title </h1><p>x</p>", title="Title") == "<p>x</p>"
    assert "Other" in clean_html("<h1>Other</h1><p>x</p>", title="Title")


def test_xml_illegal_characters() -> None:
    assert xml_safe("a\x00b\x0bc\ufffe") == "abc"
    assert "\x08" not in clean_html("<p>a\x08b</p>")


def test_summary_cut_by_characters() -> None:
    cjk = "中" * 500
    assert shorten(cjk, 100) == "中" * 99 + "…"
    words = "word " * 100
    cut = shorten(words, 50)
    assert len(cut) <= 50 and cut.endswith("word…")
    assert shorten("short", 50) == "short"
    assert html_to_text("<p>a</p><p>b<br>c</p>") == "a b c"




_LENIENT = re.compile(r"[\x00-\x20\x7f]+")


def _read_leniently(text: str) -> str:
    return _LENIENT.sub("", html.unescape(html.unescape(text))).lower()


@given(st.sampled_from(["javascript:", "JaVa\nScRiPt:", "vb script&colon;", "&#106;avascript:",
                        "&amp;#x6a;avascript&#58;", "data:text/html,", "FILE:///", " \x01javascript:", "Data: ",
                        "File: ", "Note: ", ""]),
       st.text(max_size=20))
def test_a_line_of_text_never_starts_a_script_or_local_url(start: str, rest: str) -> None:
    line = defused(xml_safe(start + rest))
    assert re.match(r"(?:java|vb)script:|data:[a-z0-9.+-]*/|file:/", _read_leniently(line)) is None
    # A line that starts no such URL is left as it is (a title "Data: the new oil" too).
    if re.match(r"(?:java|vb)script:|data:[a-z0-9.+-]*/|file:/", _read_leniently(xml_safe(start + rest))) is None:
        assert line == xml_safe(start + rest)


_STARTS = ["javascript:", "JaVa\nScRiPt:", "vb script&colon;", "vbscript:", "&#106;avascript:",
           "&amp;#x6a;avascript&#58;", "data:text/html,", "FILE:///", "file:/", "Data: ", "File: ", "Note: ", "",
           "\u212avascript:", "\uff4aavascript:", "&#x66;ile:/", "&amp;&#100;ata:a/b"]


@given(st.text(alphabet=" \t\n\r\x00\x01\x1f\x7f", max_size=4), st.sampled_from(_STARTS),
       st.text(max_size=12), st.booleans())
def test_the_quick_look_at_the_first_character_defuses_exactly_as_the_whole_reading(
        lead: str, start: str, rest: str, upper: bool) -> None:
    from feeds.normalize.content import _defused

    text = lead + (start.upper() if upper else start) + rest
    assert defused(text) == _defused(text)
