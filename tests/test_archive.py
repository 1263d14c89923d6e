"""Complete archives (RFC 5005): cutting pages (a Hypothesis model of the rule), and real
`feeds generate` runs whose pages are parsed back with lxml and feedparser, walked from the
current feed to the oldest page, and kept byte for byte once full."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from feeds.build.archive import cut_pages, new_pages, recorded_pages
from feeds.build.group import FeedPlan
from feeds.config import Policy
from feeds.layout import FeedFormat
from feeds.models import Entry
from feeds.output.archive import entry_ids as read_ids
from feeds.render.feed import FeedHead, render_feed

from .conftest import DATA, Site
from .postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)

ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
BASE = "https://example.org/feeds/"

# -- the rule, pure -------------------------------------------------------------------


def plan_of(history: list[str], shown: int) -> FeedPlan:
    return FeedPlan("all", None, "all", tuple(history[:shown]), Policy(max_entries=shown), len(history),
                    tuple(history))


@given(st.integers(0, 60), st.integers(1, 12), st.integers(0, 40), st.data())
def test_pages_are_whole_and_together_with_the_feed_hold_everything(n: int, size: int, extra: int,
                                                                     data: st.DataObject) -> None:
    shown = data.draw(st.integers(size, size + 10))  # a page is never larger than the feed
    history = [f"e{i:03d}" for i in range(n, 0, -1)]  # newest first
    first = cut_pages(plan_of(history, shown), [], size)
    assert all(len(p) == size for p in first.pages)
    on_pages = [i for p in first.pages for i in p]
    assert len(on_pages) == len(set(on_pages))
    assert set(on_pages) | set(first.entry_ids) == set(history)
    assert len(first.entry_ids) <= max(shown, size - 1)
    # Page 1 holds the oldest entries, each page newest first; all older than the next page's.
    for page, following in zip(first.pages, first.pages[1:], strict=False):
        assert list(page) == sorted(page, reverse=True) and max(page) < min(following)
    # Newer entries arrive: the pages already cut stay as they were, in the same places.
    newer = [f"e{i:03d}" for i in range(n + extra, n, -1)] + history
    later = cut_pages(plan_of(newer, shown), list(first.pages), size)
    assert later.pages[:len(first.pages)] == first.pages and later.frozen == len(first.pages)
    assert set(i for p in later.pages for i in p) | set(later.entry_ids) == set(newer)
    assert [p[2] for p in new_pages([later])] == list(later.pages[len(first.pages):])


@given(st.lists(st.integers(1, 6), max_size=8))
def test_recorded_pages_run_on_from_page_one(numbers: list[int]) -> None:
    pages = recorded_pages([(n, (f"p{n}",)) for n in dict.fromkeys(numbers)])
    run = 0
    while run + 1 in numbers:
        run += 1
    assert pages == [(f"p{n}",) for n in range(1, run + 1)]


def test_a_late_old_entry_waits_in_the_current_feed_until_cut() -> None:
    recorded = [("e003", "e002", "e001")]
    history = ["e004", "e003", "e002", "e001", "e000"]  # e000 came late
    p = cut_pages(plan_of(history, 3), recorded, 3)
    assert p.pages == (("e003", "e002", "e001"),)
    assert p.entry_ids == ("e004", "e003", "e002", "e000")
    history = ["e006", "e005", *history]
    p = cut_pages(plan_of(history, 3), recorded, 3)
    assert p.pages == (("e003", "e002", "e001"), ("e005", "e004", "e000"))
    assert p.entry_ids == ("e006", "e005", "e004")


ID_CHARS = st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%")


@given(st.lists(st.text(ID_CHARS, min_size=1, max_size=30), max_size=6, unique=True),
       st.sampled_from(["atom", "rss", "json"]))
def test_a_page_read_back_gives_the_ids_it_was_rendered_with(tails: list[str], fmt: FeedFormat) -> None:
    ids = [f"tag:example.org,2024:{t}" for t in tails]
    when = datetime(2024, 5, 1, tzinfo=UTC)
    head = FeedHead("Archive", "Older entries", BASE + "all.archive/1.atom.xml", BASE, None, "Someone")
    data = render_feed(head, [Entry(i, f"Title <{n}> &", None, when, when, summary="s") for n, i in enumerate(ids)],
                       fmt)
    assert read_ids(data, fmt) == tuple(ids)
    assert read_ids(data[:len(data) // 2], fmt) is None or not ids


# -- real runs ------------------------------------------------------------------------

CONFIG = f"""\
site: {{title: Archive, base_url: "{BASE}"}}
output: {{formats: [atom, rss, json], archive: true, archive_page_size: 3, max_entries: 4}}
state: state/feeds.db
posts: [{{path: posts}}]
"""
START = datetime(2024, 1, 1, 8, tzinfo=UTC)


def add_posts(site: Site, numbers: range, tag: str = "news") -> None:
    for n in numbers:
        day = (START + timedelta(days=n)).strftime("%Y-%m-%d")
        site.add(f"{day}-post-{n}.md", f"---\ntitle: Post {n}\ndate: {day} 08:00:00\ntags: [{tag}]\n---\n"
                                       f"Body of post {n}.\n")


def links(doc: etree._Element) -> dict[str, str]:
    return {e.get("rel"): e.get("href") for e in doc.iter(f"{ATOM}link")}


def local(site: Site, url: str) -> Path:
    assert url.startswith(BASE)
    return site.output / url[len(BASE):]


def walk(site: Site, current: str) -> list[list[str]]:
    """From the current feed back to the oldest page by prev-archive: each document's titles."""
    seen: list[list[str]] = []
    path: Path | None = site.output / current
    while path is not None:
        data = path.read_bytes()
        doc = etree.fromstring(data)
        parsed = feedparser.parse(data)
        assert not parsed.bozo, (path, parsed.get("bozo_exception"))
        seen.append([e.title for e in parsed.entries])
        found = links(doc)
        assert found["self"] == BASE + path.relative_to(site.output).as_posix()
        if seen[1:]:  # an archive page: says so, and links the current feed
            assert doc.find(f".//{FH}archive") is not None
            assert found["current"] == BASE + current
            assert "next-archive" in found
        else:
            assert doc.find(f".//{FH}archive") is None
        path = local(site, found["prev-archive"]) if "prev-archive" in found else None
    return seen


@pytest.fixture
def archived(site: Site) -> Site:
    site.write_config(CONFIG)
    add_posts(site, range(1, 8))
    site.generate()
    return site


def test_every_feed_links_its_pages_and_they_hold_its_whole_history(archived: Site) -> None:
    files = archived.outputs()
    for fmt in ("atom", "rss"):
        docs = walk(archived, f"all.{fmt}.xml")
        assert docs[0] == ["Post 7", "Post 6", "Post 5", "Post 4"]
        assert docs[1:] == [["Post 6", "Post 5", "Post 4"], ["Post 3", "Post 2", "Post 1"]]
        assert walk(archived, f"tags/news.{fmt}.xml")[1:] == docs[1:]
    assert "all.archive/3.atom.xml" not in files  # only whole pages
    page = etree.fromstring(files["all.archive/1.atom.xml"])
    assert "prev-archive" not in links(page) and links(page)["next-archive"] == BASE + "all.archive/2.atom.xml"
    # JSON Feed pages by next_url, from the current feed to the oldest page.
    url, titles = BASE + "all.feed.json", []
    while url:
        doc = json.loads(local(archived, url).read_bytes())
        titles.append([i["title"] for i in doc["items"]])
        url = doc.get("next_url")
    assert titles[1:] == [["Post 6", "Post 5", "Post 4"], ["Post 3", "Post 2", "Post 1"]]


def test_full_pages_never_change_again(archived: Site) -> None:
    before, mtimes = archived.outputs(), archived.mtimes()
    pages = {name: data for name, data in before.items() if ".archive/" in name}
    add_posts(archived, range(8, 12))  # two more pages' worth, nearly
    archived.posts.joinpath("2024-01-03-post-2.md").write_text(
        "---\ntitle: Post 2, edited\ndate: 2024-01-03 08:00:00\ntags: [news]\n---\nEdited.\n")
    archived.posts.joinpath("2024-01-02-post-1.md").unlink()
    report = archived.generate()
    after = archived.outputs()
    for name, data in pages.items():
        assert after[name] == data, name
        assert archived.mtimes()[name] == mtimes[name], name
    assert "all.archive/3.atom.xml" in after and not any(w in pages for w in report.written)
    docs = walk(archived, "all.atom.xml")
    assert docs[0] == ["Post 11", "Post 10", "Post 9", "Post 8"]
    assert docs[1:] == [["Post 9", "Post 8", "Post 7"], ["Post 6", "Post 5", "Post 4"],
                        ["Post 3", "Post 2", "Post 1"]]  # a page keeps what it was cut with
    again = archived.generate()
    assert again.written == [] and archived.outputs() == after
    assert archived.generate(check=True).outdated == []
    # A page removed by hand is made again from its entries as they are now.
    (archived.output / "all.archive/1.atom.xml").unlink()
    archived.generate()
    assert walk(archived, "all.atom.xml")[-1] == ["Post 3", "Post 2, edited"]


def edit_post_2(site: Site, body: str = "Edited.") -> None:
    site.posts.joinpath("2024-01-03-post-2.md").write_text(
        f"---\ntitle: Post 2, edited\ndate: 2024-01-03 08:00:00\ntags: [news]\n---\n{body}\n")


def test_a_touched_or_restored_page_keeps_its_bytes_though_its_entries_changed(archived: Site) -> None:
    pages = {name: data for name, data in archived.outputs().items() if ".archive/" in name}
    edit_post_2(archived)
    archived.generate()
    assert {n: d for n, d in archived.outputs().items() if n in pages} == pages
    # Touched, and copied back from a backup (same bytes, new mtime): neither is made again
    # with the entries as they are now.
    first = archived.output / "all.archive/1.atom.xml"
    os.utime(first, ns=(1_600_000_000_000_000_000,) * 2)
    shutil.copyfile(first, archived.root / "backup.xml")
    (archived.output / "tags/news.archive/1.rss.xml").unlink()
    shutil.copyfile(archived.root / "backup.xml", first)
    for name in pages:
        if name != "tags/news.archive/1.rss.xml":
            os.utime(archived.output / name)
    assert archived.generate(check=True).outdated == ["tags/news.archive/1.rss.xml"]
    report = archived.generate()
    assert report.written == ["tags/news.archive/1.rss.xml"]  # removed by hand: made again, as documented
    after = archived.outputs()
    for name, data in pages.items():
        if name != "tags/news.archive/1.rss.xml":
            assert after[name] == data, name
    assert b"Edited." in after["tags/news.archive/1.rss.xml"]
    assert b"Edited." not in after["all.archive/1.rss.xml"] and b"Edited." not in after["all.archive/1.atom.xml"]
    # The touched pages' records now have their new mtimes: nothing is read or written again.
    mtimes = archived.mtimes()
    again = archived.generate()
    assert again.written == [] and archived.mtimes() == mtimes and archived.outputs() == after
    assert archived.generate(check=True).outdated == []


def test_a_page_changed_by_hand_is_made_again_from_its_recorded_entries(archived: Site) -> None:
    page = archived.output / "all.archive/2.atom.xml"
    page.write_bytes(page.read_bytes().replace(b"Post 5", b"Post five"))
    assert archived.generate(check=True).outdated == ["all.archive/2.atom.xml"]
    add_posts(archived, range(0, 1))  # an older post arrives: the page keeps the entries it was cut with
    report = archived.generate()
    assert "all.archive/2.atom.xml" in report.written
    assert walk(archived, "all.atom.xml")[1] == ["Post 6", "Post 5", "Post 4"]


class Killed(BaseException):
    """Stands for the kill of a run while it writes."""


def test_a_run_killed_while_writing_pages_leaves_their_cut_recorded(site: Site,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import feeds.pipeline

    site.write_config(CONFIG)
    add_posts(site, range(1, 8))
    placed = feeds.pipeline.place

    def killed_at_the_second_page(output_dir: Path, file: feeds.pipeline.FeedFile, *, check: bool) -> object:
        if file.relative == "all.archive/2.atom.xml":
            raise Killed
        return placed(output_dir, file, check=check)

    monkeypatch.setattr(feeds.pipeline, "place", killed_at_the_second_page)
    with pytest.raises(Killed):
        site.generate()
    assert "all.archive/1.atom.xml" in site.outputs()
    monkeypatch.undo()
    # Posts older than every page arrive before the next run: pages 1 and 2 are written with
    # the entries they were cut with (page 1 may already have been read), the late ones go
    # to page 3.
    add_posts(site, range(-2, 1))
    site.generate()
    assert walk(site, "all.atom.xml") == [["Post 7", "Post 6", "Post 5", "Post 4"], ["Post 0", "Post -1", "Post -2"],
                                          ["Post 6", "Post 5", "Post 4"], ["Post 3", "Post 2", "Post 1"]]


def test_pages_recorded_by_what_they_were_made_from_are_signed_by_their_bytes(archived: Site) -> None:
    # A database written before pages were signed by their bytes: its records carry what the
    # pages were made from. Pages as recorded are signed by their bytes on the next run.
    import sqlite3

    db = sqlite3.connect(archived.root / "state/feeds.db")
    with db:
        db.execute("UPDATE outputs SET signature = 'made-from' WHERE path LIKE '%.archive/%'")
    db.close()
    pages = {name: data for name, data in archived.outputs().items() if ".archive/" in name}
    edit_post_2(archived)
    archived.generate()
    for name in pages:
        os.utime(archived.output / name, ns=(1_600_000_000_000_000_000,) * 2)
    report = archived.generate()
    assert not any(".archive/" in w for w in report.written)
    assert {n: d for n, d in archived.outputs().items() if n in pages} == pages


@pytest.mark.parametrize("how", ["rebuild", "lost"])
def test_a_new_state_database_keeps_the_pages_as_published(archived: Site, how: str) -> None:
    pages = {name: data for name, data in archived.outputs().items() if ".archive/" in name}
    mtimes = archived.mtimes()
    # Since the pages were cut: an entry on page 1 edited, older posts that would be cut
    # into page 1 if it were cut again, and one page's RSS cut short.
    edit_post_2(archived)
    add_posts(archived, range(-2, 1))
    odd = archived.output / "tags/news.archive/2.rss.xml"
    odd.write_bytes(odd.read_bytes()[:400])
    if how == "rebuild":
        run = subprocess.run([sys.executable, "-m", "feeds", "generate", "--rebuild-state"], cwd=archived.root,
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr
        assert "archive pages read back" in run.stderr
    else:
        (archived.root / "state/feeds.db").unlink()
        archived.generate()
    after, now = archived.outputs(), archived.mtimes()
    for name, data in pages.items():
        if name != "tags/news.archive/2.rss.xml":
            assert after[name] == data and now[name] == mtimes[name], name
    # The page whose RSS file is not a page is written again from the entries read back.
    assert feedparser.parse(after["tags/news.archive/2.rss.xml"]).entries[1].title == "Post 5"
    assert walk(archived, "all.atom.xml")[1:] == [["Post 0", "Post -1", "Post -2"], ["Post 6", "Post 5", "Post 4"],
                                                  ["Post 3", "Post 2", "Post 1"]]
    again = archived.generate()
    assert again.written == [] and archived.generate(check=True).outdated == []


def test_pages_of_another_feed_are_not_read_back(archived: Site) -> None:
    # The folder's pages hold entries none of the new site's feeds has: they are cut anew.
    (archived.root / "state/feeds.db").unlink()
    for post in archived.posts.iterdir():
        post.unlink()
    add_posts(archived, range(50, 57))
    archived.generate()
    assert walk(archived, "all.atom.xml")[1:] == [["Post 55", "Post 54", "Post 53"], ["Post 52", "Post 51", "Post 50"]]


def test_turning_archives_off_removes_only_the_pages(archived: Site) -> None:
    (archived.output / "all.archive" / "notes.txt").write_text("mine")
    archived.write_config(CONFIG.replace("archive: true, ", ""))
    report = archived.generate()
    left = archived.outputs()
    assert not any(".archive/" in name and name.endswith((".xml", ".json")) for name in left)
    assert len([r for r in report.removed if ".archive/" in r]) == 12
    assert left["all.archive/notes.txt"] == b"mine"
    assert "prev-archive" not in links(etree.fromstring(left["all.atom.xml"]))
    archived.write_config(CONFIG)  # on again: the same pages
    archived.generate()
    assert walk(archived, "all.atom.xml")[1:] == [["Post 6", "Post 5", "Post 4"], ["Post 3", "Post 2", "Post 1"]]


def test_a_vanished_tag_takes_its_pages_along(archived: Site) -> None:
    add_posts(archived, range(20, 24), tag="brief")
    archived.generate()
    assert "tags/brief.archive/1.atom.xml" in archived.outputs()
    for n in range(20, 24):
        next(archived.posts.glob(f"*-post-{n}.md")).unlink()
    archived.generate()
    assert not any(name.startswith("tags/brief") for name in archived.outputs())
    add_posts(archived, range(20, 24), tag="brief")  # back: cut anew
    archived.generate()
    assert walk(archived, "tags/brief.atom.xml")[1:] == [["Post 22", "Post 21", "Post 20"]]


def test_feeds_check_reads_the_pages(archived: Site) -> None:
    run = subprocess.run([sys.executable, "-m", "feeds", "check"], cwd=archived.root, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "12 feed files, 0 problems" in run.stderr  # 2 feeds and 2 pages each, in Atom and RSS
    page = archived.output / "tags/news.archive/2.rss.xml"
    page.write_bytes(page.read_bytes().replace(b"<fh:archive", b"<fh:other"))
    run = subprocess.run([sys.executable, "-m", "feeds", "check"], cwd=archived.root, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 1 and "tags/news.archive/2.rss.xml: an archive page without <fh:archive/>" in run.stderr


GOLDEN = DATA / "golden" / "topics"
GOLDEN_FILES = ("queries/climate.atom.xml", "queries/climate.rss.xml", "queries/climate.feed.json",
                "all.archive/1.atom.xml", "all.archive/1.rss.xml", "all.archive/1.feed.json", "all.atom.xml")


def test_golden_topic_feed_and_archive_page(sample_site: Site) -> None:
    shutil.copy(Path(__file__).resolve().parent.parent / "sources" / "example-wire.rss.xml", sample_site.root)
    text = (sample_site.root / "config.yaml").read_text()
    text = text.replace("  max_entries: 50\n", "  max_entries: 50\n  formats: [atom, rss, json]\n  archive: true\n"
                                               "  archive_page_size: 2\n")
    sample_site.write_config(text + "sources:\n  - {name: wire, url: example-wire.rss.xml}\n"
                                    "queries:\n  - {name: Climate, include: '/气候|climate/'}\n")
    sample_site.generate()
    files = sample_site.outputs()
    for name in GOLDEN_FILES:
        target = GOLDEN / name
        if os.environ.get("UPDATE_GOLDEN"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[name])
        assert files[name] == target.read_bytes(), f"{name} differs from {target}"


def test_archives_and_topic_feeds_on_postgresql_are_the_bytes_of_sqlite(make_site: Callable[[str], Site],
                                                                        postgres_url: str) -> None:  # noqa: F811
    sites = make_site("file"), make_site("server")
    for site in sites:
        site.write_config(CONFIG + "queries:\n  - {name: Odd, include: '/post [13579]$/'}\n")
        add_posts(site, range(1, 8))
    sites[1].write_config(CONFIG.replace("state: state/feeds.db", f"state: {postgres_url}")
                          + "queries:\n  - {name: Odd, include: '/post [13579]$/'}\n")
    for site in sites:
        site.generate()
    assert sites[0].outputs() == sites[1].outputs()
    assert "queries/odd.archive/1.atom.xml" in sites[1].outputs()
    pages = {n: d for n, d in sites[1].outputs().items() if ".archive/" in n}
    for site in sites:
        add_posts(site, range(8, 12))
        site.generate()
    assert sites[0].outputs() == sites[1].outputs()
    assert all(sites[1].outputs()[n] == d for n, d in pages.items())
