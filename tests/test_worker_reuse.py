"""A cold run forks its workers once, while it is small: the processes that read the front
matter also clean the bodies and render the feeds, and what they write is byte for byte
what the same run writes in one process."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from feeds import pipeline, workers
from feeds.config import load_config
from feeds.pipeline import generate
from feeds.posts import read as post_read

CONFIG = """\
site:
  title: Reuse
  base_url: "https://example.org/feeds/"
  timezone: UTC
output:
  formats: [atom, rss, json]
  max_entries: 5
posts:
  - path: posts
    clean:
      remove: [".ad"]
state: state/feeds.db
"""
POSTS = 120


def make_site(root: Path) -> Path:
    (root / "posts").mkdir(parents=True)
    (root / "config.yaml").write_text(CONFIG, encoding="utf-8")
    for n in range(POSTS):
        path = root / "posts" / f"2021-01-01-p{n:04d}.md"
        path.write_text(f"---\ntitle: Post {n}\ndate: 2021-01-01 {n // 60 % 24:02d}:{n % 60:02d}\n"
                        f"tags: [t{n % 9}, shared]\ncategories: [c{n % 4}]\n---\n# Post {n}\n\n"
                        f"Body *{n}* with [a link](/p/{n}).\n\n<div class=\"ad\">buy</div>\n", encoding="utf-8")
        os.utime(path, (1_600_000_000 + n, 1_600_000_000 + n))
    return root


def outputs(root: Path) -> dict[str, bytes]:
    folder = root / "output"
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


_PARSE, _CLEAN, _RENDER = post_read.parse_one, post_read.clean_one, pipeline._render_one


def _note(stage: str) -> None:
    with open(os.environ["FEEDS_TEST_PIDS"], "a") as f:
        f.write(f"{stage} {os.getpid()}\n")


def parse_noted(job: Any, shared: Any = None) -> Any:
    _note("read")
    return _PARSE(job, shared)


def clean_noted(job: Any, shared: Any = None) -> Any:
    _note("clean")
    return _CLEAN(job, shared)


def render_noted(job: Any, shared: Any = None) -> Any:
    _note("render")
    return _RENDER(job, shared)


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or not workers.can_fork(), reason="needs fork and 2 cores")
def test_the_workers_that_read_the_posts_clean_and_render_and_write_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "pids"
    with monkeypatch.context() as patch:
        patch.setattr(post_read, "PARALLEL_THRESHOLD", 40)  # cleaning from 10 bodies on
        patch.setattr(pipeline, "RENDER_THRESHOLD", 4)
        patch.setenv("FEEDS_TEST_PIDS", str(log))  # the workers write which stage ran where
        patch.setattr(post_read, "parse_one", parse_noted)
        patch.setattr(post_read, "clean_one", clean_noted)
        patch.setattr(pipeline, "_render_one", render_noted)
        parallel = make_site(tmp_path / "parallel")
        report = generate(load_config(parallel / "config.yaml"), offline=True)
    assert not report.warnings and not report.errors
    pids: dict[str, set[int]] = {}
    for line in log.read_text().splitlines():
        stage, pid = line.split()
        pids.setdefault(stage, set()).add(int(pid))
    assert set(pids) == {"read", "clean", "render"}
    assert os.getpid() not in pids["read"]
    assert pids["clean"] <= pids["read"] and pids["render"] <= pids["read"]

    with monkeypatch.context() as patch:  # the same run in this process
        patch.setattr(post_read, "PARALLEL_THRESHOLD", 10**9)
        patch.setattr(pipeline, "RENDER_THRESHOLD", 10**9)
        alone = make_site(tmp_path / "alone")
        generate(load_config(alone / "config.yaml"), offline=True)
    assert outputs(parallel) == outputs(alone)
    assert len(outputs(alone)) > 20
    shutil.rmtree(tmp_path / "alone")
