"""`feeds generate` end to end: real files written, parsed back with feedparser."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from feeds.errors import PublishError
from feeds.output import publish

from .conftest import DATA, ROOT, Site

SAMPLE_LINK = "https://www.zaobao.com/realtime/china/story20210903-1190070"
TAG = "联合早报"


def parse(path: Path) -> feedparser.FeedParserDict:
    d = feedparser.parse(path.read_bytes(), response_headers={"content-type": "application/xml"})
    assert not d.bozo, (path, d.get("bozo_exception"))
    return d


def test_sample_post_comes_out_right(sample_site: Site) -> None:
    sample_site.generate()
    files = sample_site.outputs()
    for stem in ("all", f"tags/{TAG}", f"categories/{TAG}"):
        for suffix in (".atom.xml", ".rss.xml"):
            assert stem + suffix in files
            d = parse(sample_site.output / (stem + suffix))
            assert len(d.entries) == 1
            e = d.entries[0]
            assert e.title == "解振华应约与克里举行会谈"
            assert e.link == SAMPLE_LINK
            assert e.id == SAMPLE_LINK
            assert e.published_parsed[:6] == (2021, 9, 3, 13, 37, 42)
            assert e.author == "联合早报"
            assert [t.term for t in e.tags] == [TAG]
            body = e.content[0].value
            assert body.count("<p>") == 7
            assert "dfp-ad" not in body and "subscribe.sph.com.sg" not in body
            assert "<h2" not in body and "解振华应约与克里举行会谈" not in body
            assert e.summary.startswith("中国生态环境部今天")
    atom = (sample_site.output / "all.atom.xml").read_text(encoding="utf-8")
    assert "<published>2021-09-03T13:37:42.888Z</published>" in atom
    rss = (sample_site.output / f"tags/{TAG}.rss.xml").read_text(encoding="utf-8")
    assert "<dc:creator>联合早报</dc:creator>" in rss
    self_url = "https://example.org/feeds/tags/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.rss.xml"
    assert f'<atom:link href="{self_url}" rel="self"' in rss


def test_every_output_parses_and_urls_are_ascii(site: Site) -> None:
    for post in (ROOT / "posts").iterdir():
        shutil.copy(post, site.posts)
    report = site.generate()
    assert report.warnings == []
    assert report.drafts == 1
    for name, data in site.outputs().items():
        if not name.endswith((".atom.xml", ".rss.xml")):
            continue
        etree.fromstring(data)  # well-formed XML
        d = parse(site.output / name)
        assert d.version in ("atom10", "rss20")
        for link in d.feed.links:
            assert link.href.isascii()
        for e in d.entries:
            assert e.link.startswith(("https://", "http://")) and e.link.isascii()
            assert e.id.isascii()
            assert e.title


def test_second_run_touches_nothing(sample_site: Site) -> None:
    first = sample_site.generate()
    assert len([p for p in first.written if p.endswith(".xml")]) == 6
    before, mtimes = sample_site.outputs(), sample_site.mtimes()
    second = sample_site.generate()
    assert second.written == [] and second.unchanged == 6
    assert sample_site.outputs() == before
    assert sample_site.mtimes() == mtimes


def test_fresh_checkout_without_state_writes_the_same_bytes(sample_site: Site, make_site: object) -> None:
    sample_site.add("2020-01-01-no-link.md", "---\ntitle: No link\ndate: 2020-01-01\ntags: [x]\n---\nHi\n")
    sample_site.generate()
    before, mtimes = sample_site.outputs(), sample_site.mtimes()
    shutil.rmtree(sample_site.root / "state")
    report = sample_site.generate()
    assert report.written == []
    assert sample_site.outputs() == before
    assert sample_site.mtimes() == mtimes


def test_changed_post_rewrites_only_its_feeds(site: Site) -> None:
    site.add("2020-01-01-a.md", "---\ntitle: A\ndate: 2020-01-01\ntags: [a]\n---\nA\n")
    site.add("2020-01-02-b.md", "---\ntitle: B\ndate: 2020-01-02\ntags: [b]\n---\nB\n")
    site.generate()
    site.add("2020-01-01-a.md", "---\ntitle: A\ndate: 2020-01-01\ntags: [a]\n---\nA, edited\n")
    report = site.generate()
    assert sorted(report.written) == ["all.atom.xml", "all.rss.xml", "tags/a.atom.xml", "tags/a.rss.xml"]


def test_feeds_of_vanished_tags_are_removed(site: Site) -> None:
    post = site.add("2020-01-01-a.md", "---\ntitle: A\ndate: 2020-01-01\ntags: [old]\n---\nA\n")
    site.generate()
    assert (site.output / "tags/old.atom.xml").exists()
    post.write_text("---\ntitle: A\ndate: 2020-01-01\ntags: [new]\n---\nA\n", encoding="utf-8")
    report = site.generate()
    assert sorted(report.removed) == ["tags/old.atom.xml", "tags/old.rss.xml"]
    assert not (site.output / "tags/old.atom.xml").exists()
    assert (site.output / "tags/new.atom.xml").exists()


def test_renamed_post_keeps_its_id(site: Site) -> None:
    post = site.add("2020-01-01-a.md", "---\ntitle: No link\ndate: 2020-01-01\n---\nA\n")
    site.generate()
    first = parse(site.output / "all.atom.xml").entries[0].id
    post.rename(site.posts / "2020-01-01-renamed.md")
    site.generate()
    assert parse(site.output / "all.atom.xml").entries[0].id == first
    # A fixed title keeps the id too: the ledger remembers the file.
    (site.posts / "2020-01-01-renamed.md").write_text("---\ntitle: No link, fixed\ndate: 2020-01-01\n---\nA\n")
    site.generate()
    entries = parse(site.output / "all.atom.xml").entries
    assert [e.id for e in entries] == [first]
    assert entries[0].title == "No link, fixed"


def test_ids_do_not_depend_on_base_url(sample_site: Site) -> None:
    sample_site.add("2020-01-01-x.md", "---\ntitle: X\ndate: 2020-01-01\n---\nA\n")
    sample_site.generate()
    ids = sorted(e.id for e in parse(sample_site.output / "all.atom.xml").entries)
    config = (sample_site.root / "config.yaml").read_text()
    sample_site.write_config(config.replace("https://example.org/feeds/", "https://moved.example.net/"))
    shutil.rmtree(sample_site.root / "state")
    sample_site.generate()
    assert sorted(e.id for e in parse(sample_site.output / "all.atom.xml").entries) == ids


def test_duplicate_stories_merge_into_one_entry(site: Site) -> None:
    site.add("2020-01-01-a.md", "---\ntitle: A\ndate: 2020-01-01\nfrom: https://e.com/s?utm_source=x\n"
                                "tags: [one]\n---\nA\n")
    site.add("2020-01-01-a-copy.md", "---\ntitle: A\ndate: 2020-01-01\nfrom: https://e.com/s\ntags: [two]\n---\nA\n")
    site.generate()
    entries = parse(site.output / "all.atom.xml").entries
    assert len(entries) == 1
    assert sorted(t.term for t in entries[0].tags) == ["one", "two"]
    assert (site.output / "tags/one.atom.xml").exists() and (site.output / "tags/two.atom.xml").exists()


def test_newest_first_and_max_entries(site: Site) -> None:
    for day in range(1, 8):
        site.add(f"2020-01-0{day}-p.md", f"---\ntitle: P{day}\ndate: 2020-01-0{day}\ntags: [t]\n---\nx\n")
    site.add("2020-01-07-q.md", "---\ntitle: Q7\ndate: 2020-01-07\ntags: [t]\n---\nx\n")
    site.write_config((site.root / "config.yaml").read_text().replace("max_entries: 50", "max_entries: 5"))
    site.generate()
    titles = [e.title for e in parse(site.output / "tags/t.atom.xml").entries]
    assert len(titles) == 5
    assert set(titles[:2]) == {"P7", "Q7"} and titles[2:] == ["P6", "P5", "P4"]
    d = parse(site.output / "tags/t.atom.xml")
    assert d.feed.updated_parsed[:3] == (2020, 1, 6)  # newest entry's date, never "now"


def test_bad_posts_are_skipped_with_one_line_each(site: Site) -> None:
    site.add("2020-01-01-good.md", "---\ntitle: Good\ndate: 2020-01-01\n---\nok\n")
    site.add("broken.md", "---\ntitle: t\ntags: [a\n---\n")
    site.add("bad-date.md", "---\ntitle: t\ndate: yesterday-ish\n---\n")
    site.add("no-title.md", "---\ndate: 2020-01-01\n---\n")
    (site.posts / "latin1.md").write_bytes("---\ntitle: caf\xe9\ndate: 2020-01-01\n---\n".encode("latin-1"))
    report = site.generate()
    assert len(report.warnings) == 4
    assert any(w.startswith("posts/bad-date.md:3: invalid date") for w in report.warnings)
    assert any(w.startswith("posts/no-title.md:1: the post has no title") for w in report.warnings)
    assert any(w.startswith("posts/latin1.md:2: invalid UTF-8") for w in report.warnings)
    assert any(w.startswith("posts/broken.md:") for w in report.warnings)
    assert [e.title for e in parse(site.output / "all.atom.xml").entries] == ["Good"]
    # Warnings are reported again on a run that reuses the cache.
    assert len(site.generate().warnings) == 4


def run_cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feeds", "generate", "--config",
                           str(site.root / "config.yaml"), *args], capture_output=True, text=True)


def test_cli_exit_codes_and_strict(site: Site) -> None:
    site.add("2020-01-01-good.md", "---\ntitle: Good\ndate: 2020-01-01\n---\nok\n")
    site.add("bad.md", "---\ntitle: t\ndate: nope\n---\n")
    result = run_cli(site)
    assert result.returncode == 0
    assert "warning: posts/bad.md:3: invalid date" in result.stderr
    assert "1 warning" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli(site, "--strict").returncode == 1


def test_check_mode(sample_site: Site) -> None:
    assert run_cli(sample_site, "--check").returncode == 1  # nothing written yet
    assert not sample_site.output.exists() or not sample_site.outputs()
    assert run_cli(sample_site).returncode == 0
    assert run_cli(sample_site, "--check").returncode == 0
    (sample_site.output / "all.atom.xml").write_text("tampered")
    result = run_cli(sample_site, "--check")
    assert result.returncode == 1 and "all.atom.xml: not up to date" in result.stderr


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "feed.xml"
    target.write_bytes(b"old")

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(PublishError):
        publish.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["feed.xml"]


def test_written_files_are_world_readable(sample_site: Site) -> None:
    sample_site.generate()
    assert (sample_site.output / "all.atom.xml").stat().st_mode & 0o644 == 0o644


def test_tag_cannot_escape_output(site: Site) -> None:
    site.add("2020-01-01-a.md",
             "---\ntitle: A\ndate: 2020-01-01\ntags: ['../../escape', '..', 'CON', '/etc']\n---\nA\n")
    site.generate()
    written = {p.resolve() for p in site.root.rglob("*.xml")}
    assert all(site.output.resolve() in p.parents for p in written)
    names = sorted(p.name for p in (site.output / "tags").iterdir())
    assert "con-.atom.xml" in names and "etc.atom.xml" in names


def test_golden_sample_feeds(sample_site: Site) -> None:
    sample_site.generate()
    golden = DATA / "golden"
    for name in ("all.atom.xml", "all.rss.xml"):
        data = (sample_site.output / name).read_bytes()
        if os.environ.get("UPDATE_GOLDEN"):
            golden.mkdir(exist_ok=True)
            (golden / name).write_bytes(data)
        assert data == (golden / name).read_bytes(), f"{name} differs from tests/data/golden/{name}"


def test_deleted_or_edited_output_is_restored(sample_site: Site) -> None:
    sample_site.generate()
    before = sample_site.outputs()
    (sample_site.output / "all.rss.xml").unlink()
    (sample_site.output / f"tags/{TAG}.atom.xml").write_text("edited by hand")
    report = sample_site.generate()
    assert sorted(report.written) == ["all.rss.xml", f"tags/{TAG}.atom.xml"]
    assert sample_site.outputs() == before


def test_touched_post_rewrites_nothing(sample_site: Site) -> None:
    sample_site.generate()
    mtimes = sample_site.mtimes()
    post = next(sample_site.posts.iterdir())
    os.utime(post, ns=(post.stat().st_atime_ns, post.stat().st_mtime_ns + 10**9))
    report = sample_site.generate()
    assert report.parsed == 1 and report.written == []
    assert sample_site.mtimes() == mtimes


def test_ampersands_and_captions_in_summaries(site: Site) -> None:
    site.add("2020-01-01-a.md", "---\ntitle: Q&A\ndate: 2020-01-01\n---\n"
                                "<figure><img src='https://e.com/i.jpg'><figcaption>A caption</figcaption></figure>\n\n"
                                "Salt & pepper <b>&amp;</b> more.\n")
    site.generate()
    for name in ("all.atom.xml", "all.rss.xml"):
        e = parse(site.output / name).entries[0]
        assert e.title == "Q&A"
        assert html.unescape(e.summary) == "Salt & pepper & more."  # feedparser gives HTML
    rss = (site.output / "all.rss.xml").read_text()
    assert "<description>Salt &amp;amp; pepper &amp;amp; more.</description>" in rss


def test_check_command_reports_every_problem(site: Site) -> None:
    site.add("2020-01-01-good.md", "---\ntitle: Good\ndate: 2020-01-01\n---\nok\n")
    site.generate()
    cmd = [sys.executable, "-m", "feeds", "check", "--config", str(site.root / "config.yaml")]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0 and "0 problems" in ok.stderr
    site.add("bad-1.md", "---\ntitle: t\ndate: nope\n---\n")
    site.add("bad-2.md", "---\ndate: 2020-01-01\n---\n")
    (site.output / "all.rss.xml").write_text("<rss><channel>")
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any(line.startswith("posts/bad-1.md:3: invalid date") for line in lines)
    assert any(line.startswith("posts/bad-2.md:1: the post has no title") for line in lines)
    assert any(line.startswith("all.rss.xml:") and "well-formed" in line for line in lines)
    assert "3 problems" in lines[-1]


def test_spawned_workers_when_forking_is_off(tmp_path: Path) -> None:
    """The daemon may not fork (it has threads): big jobs then go to spawned workers."""
    from feeds import workers
    from feeds.posts import scan_posts
    from feeds.posts.read import ParseJob, parse_one

    folder = tmp_path / "posts"
    folder.mkdir()
    for n in range(400):
        (folder / f"2020-01-01-p{n}.md").write_text(f"---\ntitle: P{n}\ntags: [t]\n---\nx\n")
    files = scan_posts("posts", tmp_path).files
    jobs = [ParseJob(f, "UTC", "https://e.org/", "https://e.org/", "{slug}", (), "fp") for f in files]
    workers.use_processes(False)
    try:
        rows = [p.row for p in workers.run_jobs(parse_one, jobs, 50)]
    finally:
        workers.use_processes(True)
    assert len(rows) == 400 and all(r.meta and '"P' in r.meta for r in rows)
