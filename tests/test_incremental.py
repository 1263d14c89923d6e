"""Runs after posts changed read only what changed, and write what a cold run writes.

The post cache's index (each row in short) and the saved grouping let a run skip the
rows and the merging of posts that did not change. Whatever the edits, an incremental
run must write the same files as a cold run on the same posts in a fresh folder, and
report the same entries and warnings; a garbled index or grouping is made again.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds import pipeline
from feeds.config import load_config
from feeds.pipeline import Report, generate
from feeds.posts.inputs import PostCache
from feeds.store import Store

CONFIG = """\
site:
  title: Incremental
  base_url: "https://example.org/feeds/"
  timezone: Asia/Singapore
output:
  formats: [atom, rss, json]
  max_entries: 3
posts:
  - path: posts
feeds:
  tags:
    min_entries: 1
tags:
  aliases: {Py: Python}
state: state/feeds.db
"""

#: Each post: (front matter lines, body). Some have an id, some only a link (two share one:
#: one entry), some neither (their ids come from the ledger).
POSTS = {
    "2021-03-01-a.md": ("id: post-a\ntitle: A\ndate: 2021-03-01 10:00\ntags: [Py, Shared]\ncategories: [Notes]",
                        "Body of A."),
    "2021-03-02-b.md": ("title: B\ndate: 2021-03-02\nlink: https://news.example/b\ntags: [python]", "Body of B."),
    "2021-03-03-c.md": ("title: C\ndate: 2021-03-03\nlink: https://news.example/b\ntags: [Other]", "Same as B."),
    "2021-03-04-d.md": ("title: D\ntags: [Shared, Other]", "No date but the file name's."),
    "2021-03-05-e.md": ("title: E\ndate: 2021-03-05 08:00\ncategories: [Notes, Misc]", "Body of E."),
    "2021-03-06-f.md": ("title: F\ndate: 2021-03-06\ntags: Shared", "Body of F."),
}


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = 1_600_000_000
        (root / "posts").mkdir(parents=True)
        (root / "config.yaml").write_text(CONFIG, encoding="utf-8")
        for name, (front, body) in POSTS.items():
            self.write(name, front, body)

    def write(self, name: str, front: str, body: str) -> None:
        path = self.root / "posts" / name
        path.write_text(f"---\n{front}\n---\n{body}\n", encoding="utf-8")
        self.stamp(path)

    def stamp(self, path: Path) -> None:
        # Each change a later mtime, all older than the racy window.
        self.clock += 7
        os.utime(path, (self.clock, self.clock))

    def posts(self) -> list[Path]:
        return sorted((self.root / "posts").iterdir())


def run(root: Path, **kwargs: bool) -> Report:
    return generate(load_config(root / "config.yaml"), offline=True, **kwargs)


def outputs(root: Path) -> dict[str, bytes]:
    folder = root / "output"
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cold(site: Site, where: Path) -> tuple[Report, dict[str, bytes]]:
    """A run in a fresh folder on the same posts, whose state holds only the id ledger (the
    ids remembered per file are meant to outlive edits: no cold run could know them)."""
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    shutil.copytree(site.root / "posts", where / "posts")
    shutil.copy(site.root / "config.yaml", where / "config.yaml")
    (where / "state").mkdir()
    conn = sqlite3.connect(site.root / "state" / "feeds.db")
    conn.execute("VACUUM INTO ?", (str(where / "state" / "feeds.db"),))
    conn.close()
    conn = sqlite3.connect(where / "state" / "feeds.db")
    for table in ("post_cache", "post_content", "outputs", "items", "sources"):
        conn.execute(f"DELETE FROM {table}")
    conn.execute("DELETE FROM settings WHERE key != 'schema_version'")
    conn.commit()
    conn.close()
    report = run(where)
    return report, outputs(where)


def assert_as_cold(site: Site, report: Report, where: Path) -> None:
    cold_report, cold_files = cold(site, where)
    assert outputs(site.root) == cold_files
    assert (report.posts, report.drafts, report.entries, report.feeds) == \
        (cold_report.posts, cold_report.drafts, cold_report.entries, cold_report.feeds)
    assert sorted(report.warnings) == sorted(cold_report.warnings)


def stored_index(root: Path) -> dict[str, object]:
    store = Store(root / "state" / "feeds.db")
    try:
        loaded = store.load_post_index()
        assert loaded is not None
        rows = store.load_posts()
    finally:
        store.close()
    return {"index": loaded[0], "paths": set(rows)}


# -- edits ---------------------------------------------------------------------------------

EDITS = st.sampled_from(["body", "title", "tags", "date", "delete", "add", "draft", "undraft", "touch", "break",
                         "link", "same size"])


def edit(site: Site, kind: str, pick: int) -> None:
    posts = site.posts()
    path = posts[pick % len(posts)] if posts else None
    if kind == "add" or path is None:
        n = site.clock % 1000
        site.write(f"2022-01-{pick % 28 + 1:02d}-new-{n}.md", f"title: New {n}\ntags: [Shared, New{pick % 3}]",
                   f"New post {n}.")
        return
    text = path.read_text(encoding="utf-8")
    front, _, body = text.removeprefix("---\n").partition("\n---\n")
    if kind == "body":
        body += "<p>An added paragraph.</p>\n"
    elif kind == "title":
        front = "\n".join(f"title: {line[7:]} again" if line.startswith("title: ") else line
                          for line in front.split("\n"))
    elif kind == "tags":
        front = "\n".join(line for line in front.split("\n") if not line.startswith("tags:")) \
            + f"\ntags: [Moved{pick % 2}, Shared]"
    elif kind == "date":
        front = "\n".join(line for line in front.split("\n") if not line.startswith("date:")) \
            + f"\ndate: 2023-0{pick % 9 + 1}-10 12:00"
    elif kind == "delete":
        path.unlink()
        return
    elif kind == "draft":
        front += "\ndraft: true"
    elif kind == "undraft":
        front = "\n".join(line for line in front.split("\n") if line != "draft: true")
    elif kind == "touch":
        site.stamp(path)
        return
    elif kind == "break":
        front += "\ndate: [not, a, date"
    elif kind == "link":
        front = "\n".join(line for line in front.split("\n") if not line.startswith(("link:", "id:"))) \
            + "\nlink: https://news.example/b"
    elif kind == "same size":
        body = body.replace("o", "0", 1) if "o" in body else body.replace("0", "o", 1)
    path.write_text(f"---\n{front}\n---\n{body}", encoding="utf-8")
    site.stamp(path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(EDITS, st.integers(0, 50)), min_size=1, max_size=6))
def test_incremental_runs_write_what_cold_runs_write(tmp_path_factory: pytest.TempPathFactory,
                                                     steps: list[tuple[str, int]]) -> None:
    base = tmp_path_factory.mktemp("inc")
    site = Site(base / "site")
    run(site.root)
    for kind, pick in steps:
        edit(site, kind, pick)
        report = run(site.root)
        assert_as_cold(site, report, base / "cold")
        # The index saved (whole or as changes) is the index of the rows there are.
        saved = stored_index(site.root)
        assert set(saved["index"]) == saved["paths"]  # type: ignore[arg-type]
        cache = PostCache(Store(site.root / "state" / "feeds.db"))
        try:
            assert saved["index"] == {p: r for p, r in _rebuilt(cache).items()}
        finally:
            cache._store.close()


def _rebuilt(cache: PostCache) -> dict[str, object]:
    from feeds.posts.inputs import _index_row
    return {path: _index_row(row) for path, row in cache.rows().items()}


def test_a_body_edit_keeps_the_grouping_and_a_front_matter_edit_does_not(tmp_path: Path) -> None:
    site = Site(tmp_path / "site")
    run(site.root)
    merged = mock.patch.object(pipeline, "merge_stories", wraps=pipeline.merge_stories)
    edit(site, "body", 0)
    with merged as merge:
        report = run(site.root)
    assert merge.call_count == 0 and report.parsed == 1 and report.written
    assert_as_cold(site, report, tmp_path / "cold1")
    edit(site, "tags", 0)
    with merged as merge:
        report = run(site.root)
    assert merge.call_count == 1
    assert_as_cold(site, report, tmp_path / "cold2")


def test_only_the_rows_of_changed_posts_are_read(tmp_path: Path) -> None:
    site = Site(tmp_path / "site")
    run(site.root)
    edit(site, "body", 2)
    with mock.patch.object(Store, "load_posts", side_effect=AssertionError("every row was read")):
        report = run(site.root)
    assert report.parsed == 1
    assert_as_cold(site, report, tmp_path / "cold")


@pytest.mark.parametrize("key", ["post_index", "post_index_changes", "grouping"])
@pytest.mark.parametrize("value", ["{[", "[1]", '{"paths": [1]}', '{"key": 1}'])
def test_a_garbled_index_or_grouping_is_made_again(tmp_path: Path, key: str, value: str) -> None:
    site = Site(tmp_path / "site")
    run(site.root)
    edit(site, "body", 1)
    run(site.root)  # saves the index's changes
    conn = sqlite3.connect(site.root / "state" / "feeds.db")
    conn.execute("DELETE FROM settings WHERE key = ?", (key,))
    conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (key, value))
    conn.commit()
    conn.close()
    edit(site, "title", 3)
    report = run(site.root)
    assert not report.errors
    assert_as_cold(site, report, tmp_path / "cold")
    edit(site, "body", 4)
    report = run(site.root)
    assert_as_cold(site, report, tmp_path / "cold")


def test_check_reads_every_post_again(tmp_path: Path) -> None:
    site = Site(tmp_path / "site")
    run(site.root)
    report = run(site.root, check=True)
    assert report.parsed == len(POSTS) and not report.outdated
    # Rewritten with its old size and mtime: only --check can see it.
    path = site.posts()[0]
    st_before = path.stat()
    edit(site, "same size", 0)
    os.utime(path, ns=(st_before.st_atime_ns, st_before.st_mtime_ns))
    assert run(site.root).written == []
    assert run(site.root, check=True).outdated
