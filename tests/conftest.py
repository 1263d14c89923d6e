from __future__ import annotations

import shutil
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feeds.config import Config, load_config
from feeds.output.serve import make_server
from feeds.pipeline import Report, generate

from .httpserver import hub, server  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

CONFIG = """\
site:
  title: Test archive
  base_url: "https://example.org/feeds/"
  language: zh
  timezone: Asia/Singapore
output:
  dir: output
  max_entries: 50
state: state/feeds.db
posts:
  - path: posts
    clean:
      remove: ["section#imu", "[id^=dfp-ad]", "[id^=innity]", "a[href*='subscribe.sph.com.sg']"]
tags:
  aliases: {Zaobao: 联合早报}
"""


class Site:
    """A throw-away project folder: config.yaml, posts/, and helpers to run and read it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.posts = root / "posts"
        self.posts.mkdir(parents=True, exist_ok=True)
        self.output = root / "output"
        self.write_config(CONFIG)

    def write_config(self, text: str) -> None:
        (self.root / "config.yaml").write_text(text, encoding="utf-8")

    def add(self, name: str, text: str) -> Path:
        path = self.posts / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def config(self) -> Config:
        return load_config(self.root / "config.yaml")

    def generate(self, check: bool = False) -> Report:
        return generate(self.config(), check=check)

    def outputs(self) -> dict[str, bytes]:
        return {p.relative_to(self.output).as_posix(): p.read_bytes()
                for p in sorted(self.output.rglob("*")) if p.is_file()}

    def mtimes(self) -> dict[str, int]:
        return {p.relative_to(self.output).as_posix(): p.stat().st_mtime_ns
                for p in sorted(self.output.rglob("*")) if p.is_file()}


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


@pytest.fixture
def sample_site(site: Site) -> Site:
    shutil.copy(DATA / "2021-09-03-xie-zhenhua-kerry-talks.md", site.posts)
    return site


@pytest.fixture
def make_site(tmp_path: Path) -> Callable[[str], Site]:
    return lambda name: Site(tmp_path / name)


# A small site of posts with every feed format, and a server of its output (the pages and serving tests).
def posts(site: Site) -> None:
    shutil.copy(DATA / "2021-09-03-xie-zhenhua-kerry-talks.md", site.posts)
    site.add("2021-01-01-a.md", "---\ntitle: 'A & <b>'\ndate: 2021-01-01\ntags: ['<script>x</script>', Solo]\n"
                                "categories: [Tech]\n---\nBody of A.\n")
    site.add("2021-01-02-b.md", "---\ntitle: B\ndate: 2021-01-02\ntags: [Python]\ncategories: [Tech]\n---\nB.\n")
    site.add("2021-01-03-c.md", "---\ntitle: C\ndate: 2021-01-03\ntags: [Python]\n---\nC.\n")


def with_formats(site: Site, extra: str = "") -> None:
    text = (site.root / "config.yaml").read_text().replace("  max_entries: 50\n",
                                                           "  max_entries: 50\n  formats: [atom, rss, json]\n")
    site.write_config(text + extra)


@pytest.fixture
def served_site(site: Site) -> Iterator[tuple[Site, int]]:
    posts(site)
    with_formats(site)
    site.generate()
    httpd = make_server(site.output, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield site, httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
