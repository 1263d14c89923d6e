"""Only safe output, whatever comes in: URLs, ids, titles, stored data, file names.

Hostile source feeds served from a real loopback server and hostile posts on
disk go through real `feeds generate` runs; every output file is read back with
feedparser, lxml and json, and every URL in it (feed links, ids, authors,
sources, enclosures, JSON Feed fields, and every URL attribute inside content)
must be http(s), ids http(s), tag: or urn:.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import feedparser
import lxml.html
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from feeds import identity
from feeds.build.taxonomy import MAX_SLUG_BYTES, make_slug
from feeds.identity import safe_id, web_url
from feeds.normalize.content import TAG_CHARS, clean_html, display_text, safe_html, term_name

from .conftest import Site
from .httpserver import FeedServer, feed_response

# Each is a URL some reader or browser would run, open or load from disk.
SCHEMES = ["javascript", "vbscript", "data", "file"]
PAYLOADS = {
    "javascript:alert(1)", "JaVaScRiPt:alert(2)", " javascript:alert(3)", "java\tscript:alert(4)",
    "java\nscript:alert(5)", "jav&#x09;ascript:alert(6)", "&#106;avascript:alert(7)", "\x01javascript:alert(8)",
    "java\x00script:alert(9)", "data:text/html;base64,PHNjcmlwdD4=", "DATA:image/svg+xml,<svg/onload=x>",
    "vbscript:msgbox(10)", "file:///etc/passwd", "  FILE:///etc/shadow", "javascript&colon;alert(11)",
    "jav&#x0A;ascript:alert(12)", "&#x6A;&#x61;vascript:alert(13)",
}
# Payloads as they can be written in XML text or attributes (no control characters).
XML_PAYLOADS = sorted(p for p in PAYLOADS if not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", p))
URL_ATTRIBUTES = {"href", "src", "cite", "poster", "longdesc", "action", "formaction", "data", "background",
                  "codebase", "usemap", "ping", "lowsrc", "dynsrc", "manifest", "icon", "xlink:href"}


def _squeezed(text: str) -> str:
    """What a lenient reader could make of text: entities decoded twice, controls and spaces gone."""
    return re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(html.unescape(text))).lower()


def assert_url(value: str | None, where: str) -> None:
    assert value is not None
    assert value.startswith(("http://", "https://")), (where, value)
    assert value.isascii() and not re.search(r"[\s\"<>]", value), (where, value)


def assert_id(value: str, where: str) -> None:
    assert re.match(r"(https?://|tag:|urn:)", value), (where, value)
    assert not re.search(r"[\x00-\x20\"<>]", value), (where, value)


def assert_html(fragment: str, where: str) -> None:
    """Every URL attribute inside HTML content is http(s); no script, no handler."""
    if not fragment.strip():
        return
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        assert el.tag not in ("script", "iframe", "object", "embed", "form", "svg", "math", "style"), (where, el.tag)
        for name, value in el.attrib.items():
            name = name.lower()
            assert not name.startswith("on"), (where, name)
            if name in URL_ATTRIBUTES or name.endswith("href"):
                assert_url(value, f"{where} <{el.tag} {name}>")
            if name in ("srcset", "imagesrcset"):
                for candidate in value.split(","):
                    assert_url(candidate.strip().split(" ")[0], f"{where} <{el.tag} srcset>")


# A dangerous scheme where a URL could start: not inside the path of an http(s) URL.
_RUNNABLE = re.compile(r"(?<![a-z0-9/._~%&#;?=+-])(javascript|vbscript|data|file):")


def assert_nothing_runs(data: bytes, where: str) -> None:
    found = _RUNNABLE.search(_squeezed(data.decode("utf-8")))
    assert found is None, (where, _squeezed(data.decode("utf-8"))[max(0, found.start() - 80):found.end() + 40])


def check_xml_feed(path: Path) -> feedparser.FeedParserDict:
    data = path.read_bytes()
    root = etree.fromstring(data)
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        local = etree.QName(el).localname
        for name in ("href", "url", "uri", "src"):
            if el.get(name) is not None:
                assert_url(el.get(name), f"{path.name} <{local} {name}>")
        if local in ("id", "guid"):
            assert_id(el.text or "", f"{path.name} <{local}>")
        if local in ("uri", "comments", "docs") or (local == "link" and el.text and el.text.strip()):
            assert_url((el.text or "").strip(), f"{path.name} <{local}>")
        if local in ("content", "summary", "description", "encoded") and (el.get("type") in (None, "html")):
            assert_html(el.text or "", f"{path.name} <{local}>")
    assert_nothing_runs(data, path.name)
    d = feedparser.parse(data, response_headers={"content-type": "application/xml"})
    assert not d.bozo, (path, d.get("bozo_exception"))
    return d


_JSON_URLS = {"url", "external_url", "image", "banner_image", "home_page_url", "feed_url", "icon", "favicon",
              "avatar"}


def check_json_feed(path: Path) -> dict[str, object]:
    data = path.read_bytes()
    doc = json.loads(data)

    def walk(value: object, where: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in _JSON_URLS:
                    assert isinstance(inner, str)
                    assert_url(inner, f"{where}.{key}")
                elif key == "id" and where.startswith("items"):
                    assert isinstance(inner, str)
                    assert_id(inner, f"{where}.id")
                elif key == "content_html":
                    assert isinstance(inner, str)
                    assert_html(inner, f"{where}.content_html")
                else:
                    walk(inner, f"{where}.{key}")
        elif isinstance(value, list):
            for n, inner in enumerate(value):
                walk(inner, f"{where}[{n}]" if where else f"items[{n}]")

    walk(doc, "")
    assert_nothing_runs(data, path.name)
    return dict(doc)


def check_outputs(site: Site) -> dict[str, object]:
    """Every output file checked; feedparser results and JSON documents by path."""
    parsed: dict[str, object] = {}
    for path in sorted(site.output.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(site.output).as_posix()
        if rel.endswith((".atom.xml", ".rss.xml")) or rel == "status.atom":
            parsed[rel] = check_xml_feed(path)
        elif rel.endswith(".json"):
            parsed[rel] = check_json_feed(path)
        elif rel.endswith((".html", ".opml")):
            data = path.read_bytes()
            assert_nothing_runs(data, rel)
            doc = lxml.html.fromstring(data) if rel.endswith(".html") else etree.fromstring(data)
            for el in doc.iter():
                for name in ("href", "src", "xmlUrl", "htmlUrl"):
                    value = el.get(name) if isinstance(el.tag, str) else None
                    if value is not None and re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", value):
                        assert_url(value, f"{rel} {name}")
    return parsed


# -- the one gate, on its own ------------------------------------------------------------

_obfuscation = st.lists(st.sampled_from(["\t", "\n", "\r", " ", "\x00", "\x01", "\x1f", "&#x09;", "&#10;",
                                         "&Tab;", "&NewLine;", ""]), max_size=3)


@st.composite
def hostile_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(SCHEMES))
    letters = []
    for c in scheme:
        letters.append(c.upper() if draw(st.booleans()) else c)
        letters.extend(draw(_obfuscation))
    head = "".join(draw(_obfuscation)) + "".join(letters)
    colon = draw(st.sampled_from([":", "&#58;", "&colon;", "&#x3a;"]))
    return head + colon + draw(st.text(max_size=20))


@settings(deadline=None, max_examples=300)
@given(hostile_urls(), st.sampled_from([None, "https://site.example/a/"]))
def test_no_spelling_of_a_dangerous_scheme_gets_through(url: str, base: str | None) -> None:
    got = web_url(url, base)
    if got is not None:  # only a harmless relative path, resolved under the base
        assert base is not None and got.startswith(base.rsplit("/", 2)[0])
        assert not any(_squeezed(got).startswith(s) for s in SCHEMES)
    # Never kept as it is: the id is the name-based URN of the text, the same one every time.
    assert safe_id(url) == "urn:uuid:" + str(uuid.uuid5(identity.ID_NAMESPACE, "id:" + url.strip()))


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=60), st.sampled_from([None, "https://site.example/a/", "javascript:x/"]))
def test_web_url_gives_http_or_nothing(text: str, base: str | None) -> None:
    got = web_url(text, base)
    if got is not None:
        assert_url(got, repr(text))
    assert_id(safe_id(text), repr(text))


def test_web_url_keeps_good_urls_and_drops_the_rest() -> None:
    assert web_url("https://例子.测试/路径?q=ü") == "https://xn--fsqu00a.xn--0zwm56d/%E8%B7%AF%E5%BE%84?q=%C3%BC"
    assert web_url("/a b", "https://site.example/x/") == "https://site.example/a%20b"
    for bad in [*PAYLOADS, "mailto:a@b.example", "https:no-host", "https://exa mple.org/", "//x", 5, None, ["x"]]:
        assert web_url(bad) is None, bad
    assert safe_id("tag:example.org,2021:1") == "tag:example.org,2021:1"
    assert safe_id("urn:uuid:6c4d1c8e-63a2-5d8a-9f0c-2f1e9d3b7a51").startswith("urn:uuid:6c4d")
    assert safe_id("https://site.example/1") == "https://site.example/1"
    assert safe_id("javascript:alert(1)").startswith("urn:uuid:")
    assert safe_id("javascript:alert(1)") != safe_id("javascript:alert(2)")


@st.composite
def hostile_html(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        tag = draw(st.sampled_from(["a", "img", "blockquote", "q", "del", "ins", "video", "audio", "source",
                                    "form", "button", "object", "table", "td", "body", "svg", "image", "img"]))
        attr = draw(st.sampled_from(sorted(URL_ATTRIBUTES | {"srcset", "style", "onerror"})))
        value = draw(st.one_of(hostile_urls(), st.sampled_from(sorted(PAYLOADS)),
                               st.just("https://ok.example/x"), st.just("/relative")))
        quoted = html.escape(value, quote=True) if draw(st.booleans()) else value.replace('"', "")
        parts.append(f'<{tag} {attr}="{quoted}">x</{tag}>')
    return "".join(parts)


@settings(deadline=None, max_examples=200)
@given(hostile_html(), st.sampled_from([None, "https://site.example/post/"]))
def test_every_url_attribute_in_content_is_http(fragment: str, base: str | None) -> None:
    cleaned = clean_html(fragment, base_url=base)
    assert_html(cleaned, fragment)
    assert safe_html(cleaned) == cleaned  # the final pass changes nothing that was cleaned
    assert_html(safe_html(fragment), fragment)  # and makes raw HTML from anywhere safe


def test_titles_that_look_like_markup_cannot_be_parsed_as_markup() -> None:
    assert display_text("AT&T: 1 < 2 > 0") == "AT&T: 1 < 2 > 0"
    for title in ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a <b>bold</b> move",
                  "&lt;b&gt;escaped&lt;/b&gt;", "<!-- comment -->", "x</title><script>"]:
        shown = display_text(title)
        assert not re.search(r"<[A-Za-z/!?]|&(#|[A-Za-z]+;|lt|gt|amp)", shown), shown
        # A reader that takes it for HTML sees the same text, no element.
        parsed = lxml.html.fragment_fromstring(shown, create_parent="div")
        assert len(parsed) == 0 and parsed.text_content() == shown


# -- end to end: hostile sources and posts through `feeds generate` ------------------------

def _xml_attr(value: str) -> str:
    return html.escape(value, quote=True).replace("\t", "&#9;").replace("\n", "&#10;")


def _content(payloads: list[str]) -> str:
    """HTML with every payload in every URL attribute of the elements that take one."""
    out = []
    for n, p in enumerate(payloads):
        a = _xml_attr(p)
        out.append(
            f'<p><a href="{a}">link {n}</a> <img src="{a}" srcset="{a} 1x, https://ok.example/i{n}.png 2x" '
            f'longdesc="{a}"></p><blockquote cite="{a}">q</blockquote><q cite="{a}">q</q>'
            f'<del cite="{a}">d</del><ins cite="{a}">i</ins><video poster="{a}" src="{a}"></video>'
            f'<form action="{a}"><button formaction="{a}">b</button></form><object data="{a}"></object>'
            f'<table background="{a}"><tr><td background="{a}">t</td></tr></table>'
            f'<svg><a xlink:href="{a}">s</a></svg><iframe src="{a}"></iframe>'
            f'<a href="https://ok.example/{n}">ok {n}</a>')
    return "".join(out)


def _hostile_rss(payloads: list[str]) -> str:
    items = []
    for n, p in enumerate(payloads):
        a = _xml_attr(p)
        items.append(
            f"<item><title>&lt;script&gt;alert({n})&lt;/script&gt; RSS {n}</title><link>{a}</link>"
            f"<guid>{a}</guid><comments>{a}</comments><author>{a}</author>"
            f'<enclosure url="{a}" type="audio/mpeg" length="1"/><source url="{a}">s</source>'
            f"<pubDate>Mon, 01 Mar 2021 10:{n:02d}:00 +0000</pubDate>"
            f"<description>{html.escape(_content([p]))}</description></item>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Hostile RSS</title>'
            f"<link>{_xml_attr(payloads[0])}</link><description>d</description>{''.join(items)}</channel></rss>")


def _hostile_atom(payloads: list[str]) -> str:
    entries = []
    for n, p in enumerate(payloads):
        a = _xml_attr(p)
        entries.append(
            f'<entry><title type="html">&lt;img src=x onerror=alert({n})&gt; Atom {n}</title>'
            f'<link rel="alternate" href="{a}"/><link rel="enclosure" href="{a}" type="image/png"/>'
            f"<id>{a}</id><updated>2021-03-02T10:{n:02d}:00Z</updated>"
            f"<author><name>&lt;b&gt;Evil&lt;/b&gt; {n}</name><uri>{a}</uri><email>{a}</email></author>"
            f'<content type="html">{html.escape(_content([p]))}</content></entry>')
    return ('<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f'<title>Hostile Atom</title><id>{_xml_attr(payloads[1])}</id><link href="{_xml_attr(payloads[2])}"/>'
            f"<updated>2021-03-02T10:00:00Z</updated>{''.join(entries)}</feed>")


def _hostile_json(payloads: list[str]) -> str:
    items = [{
        "id": p, "url": p, "external_url": p, "image": p, "banner_image": p,
        "title": f"<b>JSON</b> {n} &amp; <i>more</i>",
        "content_html": _content([p]), "summary": f"<script>alert({n})</script>",
        "date_published": f"2021-03-03T10:{n:02d}:00Z",
        "authors": [{"name": f"<img src=x> {n}", "url": p, "avatar": p}],
        "attachments": [{"url": p, "mime_type": "audio/mpeg"}],
    } for n, p in enumerate(payloads)]
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "<b>Hostile JSON</b>",
                       "home_page_url": payloads[0], "feed_url": payloads[1], "icon": payloads[2],
                       "items": items})


def _post(site: Site, name: str, payload: str, n: int) -> None:
    q = json.dumps(payload)
    site.add(name, f"""\
        ---
        title: {json.dumps(f"<script>alert({n})</script> post {n}")}
        date: 2021-03-04 10:{n:02d}:00
        id: {q}
        link: {q}
        author: {{name: "<b>A</b>", uri: {q}}}
        image: {q}
        tags: ["<b>tag</b>", Safe]
        ---
        {_content([payload])}
        """)


def generate_cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feeds", "generate", "--config", str(site.root / "config.yaml"),
                           *args], capture_output=True, text=True, timeout=300)


def _configure(site: Site, sources: dict[str, str], output: str = "") -> None:
    text = (site.root / "config.yaml").read_text().replace(
        "  max_entries: 50\n", f"  max_entries: 50\n  formats: [atom, rss, json]\n  pages: true\n{output}")
    lines = ["sources:"] + [f"  - {{name: {name}, url: '{url}', every: 60}}" for name, url in sources.items()]
    site.write_config(text + ("\n".join(lines) + "\nfetch: {host_gap: 0}\n" if sources else ""))


def test_hostile_sources_and_posts_publish_only_safe_urls_and_titles(site: Site, server: FeedServer) -> None:
    payloads = XML_PAYLOADS
    server.routes["/rss"] = feed_response(_hostile_rss(payloads))
    server.routes["/atom"] = feed_response(_hostile_atom(payloads), content_type="application/atom+xml")
    json_payloads = sorted(PAYLOADS)
    server.routes["/json"] = feed_response(_hostile_json(json_payloads), content_type="application/feed+json")
    for n, p in enumerate(payloads[:6]):
        _post(site, f"2021-03-04-hostile-{n}.md", p, n)
    _configure(site, {"rss": server.url("/rss"), "atom": server.url("/atom"), "json": server.url("/json")})

    result = generate_cli(site)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    parsed = check_outputs(site)
    everything = parsed["all.atom.xml"]
    assert isinstance(everything, feedparser.FeedParserDict)
    titles = [e.title for e in everything.entries]
    # Items sharing an id (the same payload) are one story; every kind of input is there.
    assert len(titles) >= 15
    assert any("post" in t for t in titles) and any("JSON" in t for t in titles)
    assert any("Atom" in t or "RSS" in t for t in titles)
    for name in ("all.atom.xml", "all.rss.xml"):
        d = parsed[name]
        assert isinstance(d, feedparser.FeedParserDict)
        for e in d.entries:
            # A reader that takes the title for HTML finds no element in it.
            assert not re.search(r"<[A-Za-z/!?]", e.title), e.title
            assert_id(e.id, name)
    doc = parsed["all.feed.json"]
    assert isinstance(doc, dict)
    items = doc["items"]
    assert isinstance(items, list) and items
    for it in items:
        assert not re.search(r"<[A-Za-z/!?]", it["title"]), it["title"]
    # The good links survive next to the bad ones.
    assert "https://ok.example/0" in (site.output / "all.atom.xml").read_text()


def test_hostile_stored_items_fail_alone(site: Site, tmp_path: Path) -> None:
    source = tmp_path / "wire.rss.xml"
    source.write_text(_plain_rss(6), encoding="utf-8")
    site.add("2021-05-01-post.md", "---\ntitle: A post\ndate: 2021-05-01\ntags: [Wire]\n---\nBody.\n")
    _configure(site, {"wire": str(source)})
    site.generate()

    db = sqlite3.connect(site.root / "state" / "feeds.db")
    rows = db.execute("SELECT ukey, data FROM items WHERE source = 'wire' ORDER BY ukey").fetchall()
    assert len(rows) == 6
    damage = [
        lambda d: d.update(authors=[["Name", None, 12345]], title="bad\x00title\x01\ufffe"),
        lambda d: d.update(link=["not", "a", "string"], content=42, tags=[5, None, "<b>x</b>"]),
        lambda d: d.update(published=1e20, updated=-1e20),
        lambda d: d.update(id=None, image={"x": 1}, enclosures=[["javascript:x", 5, "big"]], language="<x>"),
        lambda d: d.update(provenance=[["wire", None, None, "<b>t</b>", "javascript:x", 7, 1e30, "data:x"]]),
    ]
    for (ukey, data), hurt in zip(rows, damage, strict=False):
        d = json.loads(data)
        hurt(d)
        db.execute("UPDATE items SET data = ?, digest = 'damaged' WHERE source = 'wire' AND ukey = ?",
                   (json.dumps(d), ukey))
    db.execute("UPDATE items SET data = 'not json {', digest = 'damaged', published = 1e300 "
               "WHERE source = 'wire' AND ukey = ?", (rows[5][0],))
    db.execute("UPDATE items SET tags = '[5, null, {\"a\": 1}, \"\", \"Fine\"]' WHERE source = 'wire' AND ukey = ?",
               (rows[0][0],))
    db.execute("DELETE FROM settings WHERE key = 'last_run'")
    db.commit()
    db.close()

    again = generate_cli(site, "--offline")
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    problems = [line for line in again.stderr.splitlines() if "left out" in line]
    assert problems and all(len(line) < 600 for line in problems)
    parsed = check_outputs(site)
    d = parsed["all.atom.xml"]
    assert isinstance(d, feedparser.FeedParserDict)
    titles = {e.title for e in d.entries}
    assert "A post" in titles
    assert "badtitle" in titles  # NULs and non-characters removed, the rest kept
    assert len(d.entries) >= 4  # the post and the items that could be repaired
    assert "tags/fine.atom.xml" in parsed  # the one good tag of a damaged tag list
    tag = parsed["tags/wire.atom.xml"]
    assert isinstance(tag, feedparser.FeedParserDict) and [e.title for e in tag.entries] == ["A post"]


def _plain_rss(n: int, title: str = "Wire") -> str:
    items = "".join(f"<item><title>Story {i}</title><link>https://wire.example/{i}</link>"
                    f"<guid>https://wire.example/{i}</guid><pubDate>Mon, 01 Mar 2021 1{i}:00:00 +0000</pubDate>"
                    f"<description>Text {i}</description></item>" for i in range(n))
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>https://wire.example/</link><description>d</description>{items}</channel></rss>")


def test_a_feed_that_cannot_be_rendered_keeps_its_published_file(site: Site) -> None:
    site.add("2021-01-01-a.md", "---\ntitle: A\ndate: 2021-01-01\ntags: [Huge, Small]\n---\nA.\n")
    site.add("2021-01-02-b.md", "---\ntitle: B\ndate: 2021-01-02\ntags: [Small]\n---\nB.\n")
    _configure(site, {})
    site.generate()
    huge_feed = site.output / "tags/huge.atom.xml"
    before = huge_feed.read_bytes()
    # With a budget its title alone is over, the feed cannot be written: the old file stays.
    text = (site.root / "config.yaml").read_text().replace("  pages: true\n", "  pages: true\n  max_bytes: 10000\n")
    site.write_config(text + "feeds:\n  tag:\n    Huge: {title: '" + "Huge " * 2_400 + "'}\n")
    site.add("2021-01-03-c.md", "---\ntitle: C\ndate: 2021-01-03\ntags: [Small]\n---\nC.\n")
    warnings = site.generate().warnings
    assert huge_feed.read_bytes() == before
    assert any(huge_feed.name in line and "budget" in line for line in warnings), warnings
    small = feedparser.parse((site.output / "tags/small.atom.xml").read_bytes())
    assert [e.title for e in small.entries] == ["C", "B", "A"]
    for path in site.output.rglob("*"):
        if path.is_file() and not path.name.startswith("huge") and path.suffix != ".html":
            assert path.stat().st_size <= 10_000, path


# -- file names -------------------------------------------------------------------------

LONG_TAGS = {
    "cjk": "联合早报" * 20,  # 80 CJK characters, 240 bytes
    "astral": "\U00020000\U0002a6d6\U0001d11e" * 20,  # 60 astral-plane characters
    "combining": "e\u0301\u0302a\u0308" * 40,
    "rtl": ("שלום עולם مرحبا بالعالم " * 8).strip(),
    "ascii": "a-very-long-tag-" * 20,
    "ascii2": "a-very-long-tag-" * 20 + "but-another",
}


def test_long_tags_make_short_distinct_stable_file_names(make_site: object) -> None:
    outputs = []
    for name in ("one", "two"):
        site = make_site(name)  # type: ignore[operator]
        for n, tag in enumerate(LONG_TAGS.values()):
            quoted = json.dumps(tag, ensure_ascii=False)
            site.add(f"2021-02-0{n + 1}-p.md",
                     f"---\ntitle: P{n}\ndate: 2021-02-0{n + 1}\ntags: [{quoted}]\n---\nBody.\n")
        _configure(site, {})
        report = site.generate()
        assert not [w for w in report.warnings if "collision" in w]
        outputs.append(site.outputs())
        tag_files = [p for p in (site.output / "tags").iterdir()]
        assert len(tag_files) == len(LONG_TAGS) * 4  # atom, rss, json, html
        for path in tag_files:
            # The name with a temporary prefix and suffix (".<name>.XXXXXXXX.tmp") stays far below 255.
            assert len(path.name.encode()) + 14 <= 160, path.name
            d = feedparser.parse(path.read_bytes()) if path.name.endswith(".atom.xml") else None
            if d is not None:
                assert not d.bozo and len(d.entries) == 1
                term = d.entries[0].tags[0].term
                assert term in {display_text(term_name(t)) for t in LONG_TAGS.values()}
    assert outputs[0] == outputs[1]  # byte-stable across checkouts


@settings(deadline=None, max_examples=200)
@given(st.text(min_size=1, max_size=400), st.text(min_size=1, max_size=40))
def test_long_names_are_cut_and_stay_distinct(name: str, other_end: str) -> None:
    cut = term_name(name)
    assert len(cut) <= TAG_CHARS and term_name(name) == cut
    assert cut == name or len(name) > TAG_CHARS
    # Two long names that begin alike are two names.
    long, longer = "x" * TAG_CHARS + name, "x" * TAG_CHARS + name + other_end
    assert term_name(long) != term_name(longer)


def test_a_huge_tag_stops_no_feed(make_site: object) -> None:
    site = make_site("huge")  # type: ignore[operator]
    huge = "联合早报" * 750_000
    site.add("2021-02-01-p.md", f"---\ntitle: Huge\ndate: 2021-02-01\ntags: [{huge}, news]\n---\nBody.\n")
    site.add("2021-02-02-q.md", "---\ntitle: Other\ndate: 2021-02-02\ntags: [news]\n---\nBody.\n")
    _configure(site, {})
    report = site.generate()
    assert not report.errors
    files = site.outputs()
    assert [e.title for e in feedparser.parse(files["all.atom.xml"]).entries] == ["Other", "Huge"]
    assert [e.title for e in feedparser.parse(files["tags/news.atom.xml"]).entries] == ["Other", "Huge"]
    assert max(len(data) for data in files.values()) < 100_000
    assert len([name for name in files if name.startswith("tags/") and name.endswith(".atom.xml")]) == 2


@settings(deadline=None, max_examples=200)
@given(st.text(min_size=1, max_size=300))
def test_any_tag_makes_a_safe_slug_within_the_byte_cap(name: str) -> None:
    slug = make_slug(name)
    assert slug and len(slug.encode()) <= MAX_SLUG_BYTES + 1
    assert "/" not in slug and "\\" not in slug and not slug.startswith(".") and slug.isprintable()
    assert make_slug(name) == slug


@settings(deadline=None, max_examples=200)
@given(st.from_regex(identity._CLEAN_WEB_URL, fullmatch=True))
def test_urls_taken_as_they_are_are_what_the_full_check_gives(url: str) -> None:
    assert identity.absolute_url(url) == url


def test_an_entry_that_cannot_be_written_fails_alone_not_its_feed() -> None:
    from datetime import UTC, datetime

    from feeds.render.feed import FeedHead, render_checked
    from feeds.render.safe import SafeEntry

    when = datetime(2021, 1, 1, tzinfo=UTC)
    head = FeedHead("T", "D", "https://site.example/all.atom.xml", "https://site.example/", None, "A")
    good = [SafeEntry(id=f"urn:x:{n}", title=f"Good {n}", link=None, published=when, updated=when) for n in (1, 2)]
    # Marked safe by hand, so nothing repairs it: lxml refuses the NUL when the feed is written.
    bad = SafeEntry(id="urn:x:bad", title="bad\x00", link=None, published=when, updated=when)
    for fmt in ("atom", "rss"):
        result = render_checked(head, [good[0], bad, good[1]], fmt)
        assert result.data is not None
        d = feedparser.parse(result.data)
        assert [e.title for e in d.entries] == ["Good 1", "Good 2"]
        assert len(result.notes) == 1 and result.notes[0].startswith("urn:x:bad: entry left out")
