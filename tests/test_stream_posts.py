"""Post rows are saved while the posts are read, in batches of their own: a run that stops
midway keeps what it saved (the next run reads only the rest), a failing save stops the run
with its own error, and a post that cannot be read is one line and skipped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from feeds import pipeline
from feeds.config import load_config
from feeds.errors import StorageError
from feeds.pipeline import Report, generate
from feeds.posts import read as post_read
from feeds.store import Store
from feeds.workers import JobFailed

CONFIG = """\
site:
  title: Stream
  base_url: "https://example.org/feeds/"
  timezone: UTC
output:
  formats: [atom, rss, json]
  max_entries: 5
posts:
  - path: posts
state: state/feeds.db
"""

POSTS = 700
BATCH = 100
#: The post whose reading fails in the run that stops midway.
FAILING = 450


def make_site(root: Path) -> Path:
    (root / "posts").mkdir(parents=True)
    (root / "config.yaml").write_text(CONFIG, encoding="utf-8")
    for n in range(POSTS):
        path = root / "posts" / f"2021-01-01-p{n:04d}.md"
        path.write_text(f"---\ntitle: Post {n}\ndate: 2021-01-01 {n // 60 % 24:02d}:{n % 60:02d}\n"
                        f"tags: [t{n % 7}]\n---\nBody {n}.\n", encoding="utf-8")
        os.utime(path, (1_600_000_000 + n, 1_600_000_000 + n))
    return root


def run(root: Path) -> Report:
    return generate(load_config(root / "config.yaml"), offline=True)


def outputs(root: Path) -> dict[str, bytes]:
    folder = root / "output"
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stored(root: Path) -> tuple[set[str], bool]:
    """The paths of the post cache's rows, and whether a post index is stored."""
    store = Store(root / "state" / "feeds.db")
    try:
        return set(store.load_posts()), store.load_post_index() is not None
    finally:
        store.close()


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 100 rows, read on worker processes from 200 posts on."""
    monkeypatch.setattr(pipeline, "SAVE_BATCH", BATCH)
    monkeypatch.setattr(post_read, "PARALLEL_THRESHOLD", 200)


PARSE_ONE = post_read.parse_one


def failing_parse(job: post_read.ParseJob, shared: object = None) -> post_read.Parsed:
    if job.post.name.endswith(f"p{FAILING:04d}.md"):
        raise RuntimeError("the disk went away")
    return PARSE_ONE(job, shared)


@pytest.mark.usefixtures("small_batches")
def test_a_run_that_stops_midway_keeps_the_rows_it_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_site(tmp_path / "site")
    with monkeypatch.context() as patch:
        patch.setattr(post_read, "parse_one", failing_parse)  # forked workers inherit it
        with pytest.raises(JobFailed, match="the disk went away"):
            run(site)
    paths, indexed = stored(site)
    # The batches before the failing post were saved; nothing after it; no index claims anything.
    assert {f"posts/2021-01-01-p{n:04d}.md" for n in range(FAILING // BATCH * BATCH)} <= paths
    assert not any(p >= f"posts/2021-01-01-p{FAILING:04d}.md" for p in paths)
    assert not indexed
    assert not (site / "output" / "all.atom.xml").exists()

    report = run(site)
    assert report.parsed == POSTS - len(paths)  # only the posts not saved are read again
    assert stored(site) == ({f"posts/2021-01-01-p{n:04d}.md" for n in range(POSTS)}, True)
    fresh = make_site(tmp_path / "fresh")
    fresh_report = run(fresh)
    assert outputs(site) == outputs(fresh)
    assert (report.posts, report.entries, report.feeds, report.warnings) == \
        (fresh_report.posts, fresh_report.entries, fresh_report.feeds, fresh_report.warnings)


@pytest.mark.usefixtures("small_batches")
def test_a_streamed_run_saves_the_index_and_the_next_run_reads_nothing(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    assert run(site).parsed == POSTS
    assert stored(site) == ({f"posts/2021-01-01-p{n:04d}.md" for n in range(POSTS)}, True)
    shutil.rmtree(site / "output")  # a full run again, from the cache
    assert run(site).parsed == 0
    edited = site / "posts" / "2021-01-01-p0003.md"
    edited.write_text(edited.read_text(encoding="utf-8").replace("Post 3", "Post three"), encoding="utf-8")
    os.utime(edited, (1_600_100_000, 1_600_100_000))
    assert run(site).parsed == 1


@pytest.mark.usefixtures("small_batches")
def test_a_failing_save_stops_the_run_with_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_site(tmp_path / "site")
    real = Store.save_post_rows
    calls: list[int] = []

    def save(self: Store, rows: Any, **kwargs: Any) -> None:
        calls.append(len(calls))
        if len(calls) == 3:
            raise StorageError("disk full", where="feeds.db")
        real(self, rows, **kwargs)

    monkeypatch.setattr(Store, "save_post_rows", save)
    with pytest.raises(StorageError, match="disk full"):
        run(site)
    paths, indexed = stored(site)
    assert len(paths) == 2 * BATCH and not indexed
    monkeypatch.setattr(Store, "save_post_rows", real)
    assert run(site).parsed == POSTS - 2 * BATCH


@pytest.mark.usefixtures("small_batches")
def test_a_post_that_cannot_be_read_is_one_line_and_skipped(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    (site / "posts" / "2021-01-01-p0010.md").write_bytes(b"---\ntitle: Bad \xff bytes\n---\nx\n")
    (site / "posts" / "2021-01-01-p0500.md").write_text("---\ntitle: [unclosed\n---\nx\n", encoding="utf-8")
    report = run(site)
    assert report.posts == POSTS and report.entries == POSTS - 2
    assert len(report.warnings) == 2
    first, second = report.warnings
    assert first.startswith("posts/2021-01-01-p0010.md:") and "UTF-8" in first and "\n" not in first
    assert second.startswith("posts/2021-01-01-p0500.md:") and "YAML" in second and "\n" not in second
    atom = (site / "output" / "all.atom.xml").read_text(encoding="utf-8")
    assert "Post 699" in atom and "Bad" not in atom
    # Saved as skipped: the next run says it again without reading the posts.
    again = run(site)
    assert again.parsed == 0 and again.warnings == report.warnings


def test_a_full_read_holds_each_post_name_and_digest_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that reads every post holds every post's front matter until it has grouped
    them: its path and digest are the strings the scan and the index row hold already,
    not copies (at 200,000 posts a copy of each is tens of MB)."""
    site = make_site(tmp_path / "site")
    seen: list[post_read.FrontMatter] = []
    grouped = pipeline.stories_of

    def spy(run: Any, found: post_read.FrontMatter, inputs: Any) -> Any:
        seen.append(found)
        return grouped(run, found, inputs)

    monkeypatch.setattr(pipeline, "stories_of", spy)
    assert run(site).parsed == POSTS
    (found,) = seen
    assert len(found.posts) == len(found.fresh) == POSTS
    for post in found.posts:
        meta = found.fresh[post.path]
        assert meta.path is post.path and meta.digest is post.digest
