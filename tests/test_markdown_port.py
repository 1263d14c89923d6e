"""The Rust port of markdown-it renders post bodies only where it writes the same bytes as
markdown-it-py, the reference: every text it is given (``port_agrees``) renders alike in
both, and every other text is rendered by markdown-it-py."""

from __future__ import annotations

from pathlib import Path

import markdown_it_pyrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from feeds.normalize.content import port_agrees, port_agrees_reference, render_markdown

REFERENCE = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
PORT = markdown_it_pyrs.MarkdownIt("commonmark").enable_many(["table", "strikethrough"])
ROOT = Path(__file__).resolve().parent.parent

# Pieces of Markdown and of the raw HTML scraped posts hold, to be strung together.
PIECES = [
    "# ", "## ", "\n", "\n\n", "*", "**", "_", "__", "~~", "~", "~~~", "    ", "\t", "- ", "+ ", "1. ", "2) ", " - ",
    "|", "| a | b |\n|---|:-:|\n", "a|b\n-|-\n", "---", "------\n", "===", "<div>", "</div>", "<p>", "</p>", "<!--",
    "-->", "<!--1630640862888-->\n", "<script>", "</script>", "<pre>", "</pre>", "<?x?>", "<!X>", "<![CDATA[", "]]>",
    "&amp;", "&#0;", "&#xD800;", "&nbsp;", "&#65;", "&bogus;", "[", "]", "(", ")", "![", "<", ">", "> ", "`", "```",
    "http://x.y/", "\\", "\r", "\r\n", "中文", "a", "b c", "<img src=x data-src=\"/y.jpg\">", "[x]: http://a.b \"t\"\n",
    "[x]", "[x][]", "  \n", "<http://a.b>", "<a@b.c>", "\"", "'", "\x1f", "\x7f", "\x00", "\x0b", "\u00a0", "\u3000",
    "\u2028", "\x85", "</td></tr>", "<table>", "<br>", "<hr/>", "***", "\\*", "\\\n", "[a](b \"c\")", "[a](<b c>)",
    "www.x.com", "\u00e9", "<p>x <!--y--></p>\n", "<span><!--y--></span>", "[x]: /u '", "<li>", "\U0001f600",
    "<section id=\"imu\">", "</section>", "<a href=\"https://x.y/promotions/1\">",
]
documents = st.lists(st.one_of(st.sampled_from(PIECES), st.sampled_from(PIECES), st.text(max_size=4)),
                     max_size=40).map("".join)


def reference(text: str) -> str:
    rendered: str = REFERENCE.render(text)
    return rendered


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(documents, st.booleans())
def test_the_port_renders_what_it_is_given_as_the_reference_does(text: str, final_newline: bool) -> None:
    if final_newline:
        text += "\n"
    assert render_markdown(text) == reference(text)
    if port_agrees(text):
        assert PORT.render(text) == reference(text)


@settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.sampled_from(["\n", " ", "  ", "\t", ">", "> ", "<!--", "-", "1)",
                                                                 "123456789.", "1234567890.", "* ", "+\t", "<p ",
                                                                 "</div>", "<h7>", "<hr", "<!-", "\r", "_\u00e9",
                                                                 "\u00e9*", "\x1c"]),
                          st.text(max_size=3)), max_size=30).map("".join))
def test_the_quick_test_of_what_the_port_renders_alike_is_the_pattern(text: str) -> None:
    assert port_agrees(text) == port_agrees_reference(text)
    assert port_agrees(text + "\n") == port_agrees_reference(text + "\n")


def test_the_bundled_posts_and_the_sample_render_through_the_port_alike() -> None:
    bodies = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "posts").rglob("*.md"))]
    assert bodies
    for body in bodies:
        assert render_markdown(body) == reference(body)


def test_text_the_port_writes_differently_goes_to_the_reference() -> None:
    for text in ["> \n", "a `b`\n", "x\u00a0y\n", "a<!X>\n", "no final newline", "- > q\n", "x\x00\n",
                 "a\n\n| a |\n|---|\n", "a <!--b-->\n", "\r>\n", "a\n+ <script>x\n\n\n"]:
        assert not port_agrees(text)
        assert render_markdown(text) == reference(text)
    for text in ["<!--1630640862888-->\n[Title](https://x.y/a)\n------\n<div><p>x</p></div>\n",
                 "a\n\n<p>x <!--y--></p>\n", "a\n\n1. b\n- c\n"]:
        assert port_agrees(text)
        assert render_markdown(text) == reference(text)
