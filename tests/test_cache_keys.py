"""Each cache covers only the settings its stage reads.

For each config edit: generate, edit, generate again, and compare with a cold run
on the edited config in a fresh folder. The incremental output must be
byte-identical to the cold one (a setting left out of a key would leave stale
output); an edit of an unrelated setting must re-parse nothing and write nothing.
"""

from __future__ import annotations

import copy
import os
import shutil
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from feeds.config import load_config
from feeds.pipeline import Report, generate
from feeds.store import Store

from .httpserver import Hub, item, rss

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LONG = " ".join(f"Sentence {n} of a long body, with words enough to be cut." for n in range(60))

BASE: dict[str, Any] = {
    "site": {"title": "Keys", "base_url": "https://example.org/feeds/", "link": "https://example.org/",
             "description": "A test site", "language": "en", "author": "Editor", "timezone": "Asia/Singapore"},
    "output": {"dir": "output", "formats": ["atom", "rss"], "max_entries": 5, "summary_length": 120,
               "pages": True, "stylesheet": True, "status_feed": True, "max_bytes": 4_000_000,
               "max_entry_bytes": 512_000},
    "state": "state/feeds.db",
    "posts": [{"path": "posts", "clean": {"remove": [".ad"]}, "tags": ["local"],
               "permalink": "{year}/{month}/{day}/{slug}.html", "summary_only": False}],
    "sources": [{"name": "wire", "url": "wire.xml", "every": 3600, "tags": ["Wire"]}],
    "fetch": {"concurrency": 4, "read_timeout": 30, "max_backoff": 86400},
    "schedule": {"generate": 600, "debounce": 2},
    "feeds": {"tags": {"min_entries": 1}},
    "tags": {"aliases": {"Py": "Python"}, "slugs": {}},
    "categories": {"aliases": {}},
}


def _post(n: int, tags: str, body: str, extra: str = "") -> str:
    return (f"---\nid: post-{n}\ntitle: Post {n}\ndate: 2021-03-0{n} 23:30\ntags: [{tags}]\n"
            f"categories: [Notes]\n{extra}---\n{body}\n\n<div class=\"ad\">Buy now</div>\n\n"
            f"[a relative link](img/{n}.png)\n")


def make_site(root: Path, config: dict[str, Any]) -> Path:
    posts = root / "posts"
    posts.mkdir(parents=True)
    for n in range(1, 8):
        body = LONG if n == 3 else f"Body of post {n}, short. " * (5 if n % 2 else 1)
        (posts / f"2021-03-0{n}-post-{n}.md").write_text(
            _post(n, "Py, Shared" if n % 2 else "python, Other", body), encoding="utf-8")
    big = "<p>" + "x" * 9000 + "</p>"
    (posts / "2021-03-09-big.md").write_text(_post(9, "Shared", big), encoding="utf-8")
    (root / "wire.xml").write_text(rss([item(n, category="Shared") for n in range(1, 4)]), encoding="utf-8")
    write_config(root, config)
    for path in root.rglob("*"):
        # Older than the racy window: a file written a moment ago is read again next run.
        os.utime(path, (1_600_000_000, 1_600_000_000))
    return root


def write_config(root: Path, config: dict[str, Any]) -> None:
    (root / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")


def run(root: Path, *, offline: bool = True) -> Report:
    return generate(load_config(root / "config.yaml"), offline=offline, now=NOW)


def outputs(root: Path) -> dict[str, bytes]:
    out = root / "output"
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def mtimes(root: Path) -> dict[str, int]:
    out = root / "output"
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in sorted(out.rglob("*")) if p.is_file()}


Edit = Callable[[dict[str, Any]], None]


def setting(path: str, value: object) -> Edit:
    """An edit setting the dotted ``path`` (a number is a list index) to ``value``."""
    def edit(config: dict[str, Any]) -> None:
        node: Any = config
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[last] = value
    return edit


#: Edits that change what is published: (name, edit, whether posts are read again).
AFFECTING: list[tuple[str, Edit, bool]] = [
    ("site.title", setting("site.title", "Other title"), False),
    ("site.base_url", setting("site.base_url", "https://example.net/f/"), True),
    ("site.link", setting("site.link", "https://example.net/home/"), True),
    ("site.description", setting("site.description", "Another description"), False),
    ("site.language", setting("site.language", "fr"), False),
    ("site.author", setting("site.author", "Someone else"), False),
    ("site.timezone", setting("site.timezone", "America/New_York"), True),
    ("output.formats", setting("output.formats", ["atom", "rss", "json"]), False),
    ("output.max_entries", setting("output.max_entries", 2), False),
    ("output.summary_length", setting("output.summary_length", 40), False),
    ("output.pages", setting("output.pages", False), False),
    ("output.stylesheet", setting("output.stylesheet", False), False),
    ("output.status_feed", setting("output.status_feed", False), False),
    ("output.max_bytes", setting("output.max_bytes", 10_000), False),
    ("output.max_entry_bytes", setting("output.max_entry_bytes", 1_000), False),
    ("posts.clean.remove", setting("posts.0.clean.remove", []), False),
    ("posts.tags", setting("posts.0.tags", ["elsewhere"]), True),
    ("posts.permalink", setting("posts.0.permalink", "{slug}/"), True),
    ("posts.summary_only", setting("posts.0.summary_only", True), False),
    ("feeds.defaults.content", setting("feeds.defaults", {"content": "summary"}), False),
    ("feeds.tags.min_entries", setting("feeds.tags", {"min_entries": 5}), False),
    ("feeds.tag.title", setting("feeds.tag", {"Shared": {"title": "{name} at {site}"}}), False),
    ("feeds.all.exclude_sources", setting("feeds.all", {"exclude_sources": ["wire"]}), False),
    ("tags.aliases", setting("tags.aliases", {"Py": "Snake"}), False),
    ("tags.slugs", setting("tags.slugs", {"Shared": "common"}), False),
    ("categories.aliases", setting("categories.aliases", {"Notes": "Jottings"}), False),
    ("websub.hub", setting("websub.hub", "http://127.0.0.1:9/hub"), False),
    ("sources.exclude", setting("sources.0.exclude", ["title:/story 2$/"]), False),
    ("sources.include", setting("sources.0.include", "content:/story [13]/"), False),
    ("feeds.all.include", setting("feeds.all", {"include": ["tags:python", "title:story"]}), False),
    ("feeds.defaults.exclude", setting("feeds.defaults", {"exclude": "content:cut"}), False),
    ("queries", setting("queries", [{"name": "Odd", "include": "/post [1357]|story 3/"}]), False),
    ("feeds.queries.max_entries", lambda c: (setting("queries", [{"name": "All of it"}])(c),
                                             setting("feeds.queries", {"max_entries": 2})(c)), False),
    ("output.archive", setting("output.archive", True), False),
    ("output.archive_page_size", lambda c: (setting("output.archive", True)(c),
                                            setting("output.archive_page_size", 2)(c)), False),
]

#: Edits of settings no output depends on.
UNRELATED: list[tuple[str, Edit]] = [
    ("schedule.debounce", setting("schedule.debounce", 30)),
    ("schedule.generate", setting("schedule.generate", 60)),
    ("fetch.concurrency", setting("fetch.concurrency", 2)),
    ("fetch.read_timeout", setting("fetch.read_timeout", 5)),
    ("fetch.max_backoff", setting("fetch.max_backoff", 600)),
    ("sources.every", setting("sources.0.every", 60)),
]


def edited(edit: Edit) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    edit(config)
    return config


def warm_then_edit(tmp_path: Path, edit: Edit) -> tuple[Path, dict[str, bytes], Report]:
    """A site generated with BASE (its source fetched), then generated again offline after ``edit``."""
    root = make_site(tmp_path / "warm", BASE)
    first = run(root, offline=False)
    assert not first.errors and first.parsed == 8
    before = outputs(root)
    write_config(root, edited(edit))
    return root, before, run(root)


def cold(tmp_path: Path, edit: Edit) -> dict[str, bytes]:
    """What a cold run on the edited config makes, in the warm site's place (the ids of a
    local source's items are made from its absolute path): the warm site is moved aside."""
    (tmp_path / "warm").rename(tmp_path / "warm-done")
    root = make_site(tmp_path / "warm", edited(edit))
    report = run(root, offline=False)
    assert not report.errors
    return outputs(root)


@pytest.mark.parametrize(("name", "edit", "reparsed"), AFFECTING, ids=[a[0] for a in AFFECTING])
def test_an_edit_that_changes_output_gives_what_a_cold_run_gives(tmp_path: Path, name: str, edit: Edit,
                                                                 reparsed: bool) -> None:
    _root, before, report = warm_then_edit(tmp_path, edit)
    after = outputs(tmp_path / "warm")
    assert after != before, f"{name}: the edit changes nothing here, so it proves nothing"
    assert after == cold(tmp_path, edit)
    # Only the settings front matter is read with make the posts be read again.
    assert report.parsed == (8 if reparsed else 0)


@pytest.mark.parametrize(("name", "edit"), UNRELATED, ids=[u[0] for u in UNRELATED])
def test_an_unrelated_edit_reads_and_writes_nothing(tmp_path: Path, name: str, edit: Edit) -> None:
    root = make_site(tmp_path / "warm", BASE)
    run(root, offline=False)
    before, stamps = outputs(root), mtimes(root)
    write_config(root, edited(edit))
    report = run(root)
    assert (report.parsed, report.written, report.removed) == (0, [], [])
    assert outputs(root) == before and mtimes(root) == stamps
    assert before == cold(tmp_path, edit)


def test_generate_announces_changed_feeds_json_feed_included(tmp_path: Path, hub: Hub) -> None:
    config = edited(setting("websub.hub", hub.url))
    config["output"]["formats"] = ["atom", "rss", "json"]
    root = make_site(tmp_path / "site", config)
    report = run(root, offline=False)
    announced = sorted(u for p in hub.published for u in p)
    assert "https://example.org/feeds/all.feed.json" in announced
    assert "https://example.org/feeds/all.atom.xml" in announced
    # Feeds only: never a page, the index or the status files.
    assert announced == sorted("https://example.org/feeds/" + urllib.parse.quote(p) for p in report.written
                               if p.endswith((".atom.xml", ".rss.xml", ".feed.json")))
    hub.published.clear()
    assert run(root).written == [] and hub.published == []
    # One post changed: only the feeds showing it are announced.
    post = root / "posts" / "2021-03-06-post-6.md"
    post.write_text(post.read_text(encoding="utf-8").replace("short", "edited"), encoding="utf-8")
    report = run(root)
    announced = sorted(u for p in hub.published for u in p)
    assert announced and "https://example.org/feeds/tags/shared.atom.xml" not in announced
    assert "https://example.org/feeds/all.rss.xml" in announced


def test_a_hub_that_fails_is_no_failure_of_the_run(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", edited(setting("websub.hub", "http://127.0.0.1:9/hub")))
    report = run(root, offline=False)
    assert not report.errors and report.written


def test_a_run_with_nothing_changed_loads_no_post_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_site(tmp_path / "site", BASE)
    run(root, offline=False)
    write_config(root, edited(setting("schedule.debounce", 30)))

    def refuse(self: Store) -> None:
        raise AssertionError("the post cache was loaded")

    monkeypatch.setattr(Store, "load_posts", refuse)
    monkeypatch.setattr(Store, "load_post_index", refuse)
    report = run(root)
    assert (report.posts, report.written) == (8, [])
    # A post edited: now it must be read.
    (root / "posts" / "2021-03-01-post-1.md").write_text(_post(1, "Py", "New body"), encoding="utf-8")
    with pytest.raises(AssertionError, match="post cache"):
        run(root)


def test_an_edited_page_template_makes_the_pages_again(tmp_path: Path) -> None:
    from importlib import resources

    config = edited(setting("output.templates", "templates"))
    root = make_site(tmp_path / "warm", config)
    template = root / "templates" / "feed.html"
    template.parent.mkdir()
    original = resources.files("feeds").joinpath("templates", "feed.html").read_text(encoding="utf-8")
    template.write_text(original, encoding="utf-8")
    os.utime(template, (1_600_000_000, 1_600_000_000))
    run(root, offline=False)
    before = outputs(root)
    template.write_text(original.replace("</body>", "<footer>edited</footer></body>"), encoding="utf-8")
    os.utime(template, (1_600_000_100, 1_600_000_100))
    report = run(root)
    assert report.parsed == 0 and "all.html" in report.written
    after = outputs(root)
    assert after != before and all(b"<footer>edited</footer>" in data for name, data in after.items()
                                   if name.endswith(".html") and name != "index.html")
    (tmp_path / "warm").rename(tmp_path / "warm-done")
    fresh = make_site(tmp_path / "warm", config)
    shutil.copytree(tmp_path / "warm-done" / "templates", fresh / "templates")
    run(fresh, offline=False)
    assert outputs(fresh) == after
