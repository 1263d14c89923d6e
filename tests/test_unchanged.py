"""The quick nothing-changed check (feeds.unchanged) says "unchanged" only when the full run
would have replayed, and then prints and exits exactly as it would.

Every case runs real `feeds` processes over real files and a real SQLite database: the
read-only check alone (what it decides), the command with it, and the command without it
(the full run, whose -v log says whether it replayed).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import feeds.posts
from feeds import unchanged
from feeds.posts import POST_SUFFIXES, PostFile, PostScan, _kind, _Walk, scan_posts
from feeds.posts.inputs import FoundFile
from feeds.render.templates import template_stats

CONFIG = """\
site:
  title: Quick
  base_url: "https://example.org/feeds/"
output:
  formats: [atom, rss, json]
  templates: templates
state: state/feeds.db
posts:
  - path: posts
"""
FEEDS = [sys.executable, "-m", "feeds"]
#: The command with the quick check turned off: the full run decides.
FULL = [sys.executable, "-c", "import sys, feeds.unchanged as u; u.replay = lambda *a, **k: None; "
        "from feeds.cli import main; sys.argv[0] = 'feeds'; main()"]
#: The quick check alone (read-only but for the lock): prints whether it would replay.
PROBE = [sys.executable, "-c", "import sys; from pathlib import Path; from feeds.unchanged import replay; "
         "print(replay(Path('config.yaml'), wait=0, offline='--offline' in sys.argv) is not None)"]


def _post(n: int, tag: str = "news") -> str:
    return textwrap.dedent(f"""\
        ---
        title: Post {n}
        date: 2021-01-{n + 1:02d} 10:00:00
        tags: [{tag}, t{n % 3}]
        ---
        Body of post {n}.
        """)


class QuickSite:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "posts").mkdir(parents=True)
        (root / "templates").mkdir()
        (root / "templates" / "README.txt").write_text("templates here\n")
        (root / "config.yaml").write_text(CONFIG)
        for n in range(6):
            post = root / "posts" / f"2021-01-{n + 1:02d}-post-{n}.md"
            post.write_text(_post(n))
            os.utime(post, (1_600_000_000, 1_600_000_000 + n))  # long saved: no post is read as racy
        self.env = {**os.environ}

    def run(self, cmd: list[str], *args: str) -> tuple[int, str]:
        proc = subprocess.run([*cmd, *args], cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode, proc.stderr + proc.stdout

    def probe(self, *args: str) -> bool:
        code, out = self.run(PROBE, *args)
        assert code == 0, out
        return out.strip() == "True"


def _plain(log: str) -> str:
    """A log without the timings (the -v step lines, and the summary's seconds)."""
    lines = [line for line in log.splitlines()
             if not re.match(r"^\d+\.\d\ds ", line) and line != "nothing changed since the last run (quick check)"]
    return re.sub(r" in \d+\.\ds$", "", "\n".join(lines), flags=re.MULTILINE)


def _full_replayed(log: str) -> bool:
    return bool(re.search(r"^\d+\.\d\ds nothing changed since the last run$", log, re.MULTILINE))


@pytest.fixture
def quick(tmp_path: Path) -> QuickSite:
    site = QuickSite(tmp_path / "site")
    code, out = site.run(FEEDS, "generate")
    assert code == 0, out
    return site


def _compare(site: QuickSite, *args: str) -> tuple[bool, bool]:
    """What the quick check decides, and what the full run then does; when the quick
    check replays, the command with it prints and exits exactly as the full run."""
    said = site.probe(*args)
    if said:
        with_quick = site.run(FEEDS, "generate", "-v", *args)
    full_code, full_log = site.run(FULL, "generate", "-v", *args)
    replayed = _full_replayed(full_log)
    if said:
        assert replayed, "the quick check said unchanged where the full run did not replay"
        assert "nothing changed since the last run (quick check)" in with_quick[1]
        assert (with_quick[0], _plain(with_quick[1])) == (full_code, _plain(full_log))
    return said, replayed


def _touch(site: QuickSite) -> None:
    path = site.root / "posts" / "2021-01-03-post-2.md"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _same_size_edit(site: QuickSite) -> None:
    path = site.root / "posts" / "2021-01-03-post-2.md"
    st = path.stat()
    path.write_text(path.read_text().replace("Body", "Bodx"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _add(site: QuickSite) -> None:
    post = site.root / "posts" / "2021-01-09-post-8.md"
    post.write_text(_post(8))
    os.utime(post, (1_600_000_000, 1_600_000_100))  # saved a while ago: read as settled


def _same_second_edit(site: QuickSite) -> None:
    # Rewritten with the same size within the same second: only the nanoseconds differ.
    path = site.root / "posts" / "2021-01-03-post-2.md"
    st = path.stat()
    path.write_text(path.read_text().replace("Body", "Bodx"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000))


def _state_replaced(site: QuickSite) -> None:
    """The state database put back as it was before a run that changed a post."""
    db = site.root / "state" / "feeds.db"
    saved = db.read_bytes()
    _touch(site)
    code, out = site.run(FEEDS, "generate")
    assert code == 0, out
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    db.write_bytes(saved)


def _delete(site: QuickSite) -> None:
    (site.root / "posts" / "2021-01-03-post-2.md").unlink()


def _rename(site: QuickSite) -> None:
    (site.root / "posts" / "2021-01-03-post-2.md").rename(site.root / "posts" / "2021-01-03-renamed.md")


def _config_whitespace(site: QuickSite) -> None:
    (site.root / "config.yaml").write_text(CONFIG + "\n")


def _config_setting(site: QuickSite) -> None:
    (site.root / "config.yaml").write_text(CONFIG.replace("title: Quick", "title: Quicker"))


def _home(site: QuickSite) -> None:
    site.env["HOME"] = str(site.root)


def _template(site: QuickSite) -> None:
    (site.root / "templates" / "README.txt").write_text("templates here, edited\n")


def _output_deleted(site: QuickSite) -> None:
    (site.root / "output" / "all.rss.xml").unlink()


def _output_modified(site: QuickSite) -> None:
    path = site.root / "output" / "all.atom.xml"
    path.write_bytes(path.read_bytes() + b" ")


def _output_same_stat(site: QuickSite) -> None:
    path = site.root / "output" / "all.atom.xml"
    st = path.stat()
    path.write_bytes(path.read_bytes().replace(b"Post", b"Pots", 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _posts_vanished(site: QuickSite) -> None:
    (site.root / "posts").rename(site.root / "posts-away")


def _old_record(site: QuickSite) -> None:
    """A state database from a version that kept no quick record."""
    db = sqlite3.connect(site.root / "state" / "feeds.db")
    with db:
        (text,) = db.execute("SELECT value FROM settings WHERE key = 'last_run'").fetchone()
        last = json.loads(text)
        del last["quick"]
        db.execute("UPDATE settings SET value = ? WHERE key = 'last_run'", (json.dumps(last),))
    db.close()


def _garbled_record(site: QuickSite) -> None:
    db = sqlite3.connect(site.root / "state" / "feeds.db")
    with db:
        db.execute("UPDATE settings SET value = ? WHERE key = 'last_run'",
                   (json.dumps({"snapshot": "x", "quick": "{not json"}),))
    db.close()


def _items_changed(site: QuickSite) -> None:
    db = sqlite3.connect(site.root / "state" / "feeds.db")
    with db:
        db.execute("INSERT OR REPLACE INTO settings VALUES ('items_version', 'changed')")
    db.close()


def _fifo(site: QuickSite) -> None:
    os.mkfifo(site.root / "posts" / "pipe.md")


def _hidden(site: QuickSite) -> None:
    (site.root / "posts" / ".draft.md").write_text(_post(9))


def _symlink_loop(site: QuickSite) -> None:
    (site.root / "posts" / "loop").symlink_to(".")


def _dangling(site: QuickSite) -> None:
    (site.root / "posts" / "gone.md").symlink_to("nowhere.md")


#: Each mutation, what the quick check then says, and what the full run does.
MUTATIONS: dict[str, tuple[Callable[[QuickSite], None], bool, bool]] = {
    "nothing": (lambda site: None, True, True),
    "touched post": (_touch, False, False),
    # Same size and mtime: the full run does not see it either (feeds generate --check does).
    "same-size edit, mtime restored": (_same_size_edit, True, True),
    "same-size edit in the same second": (_same_second_edit, False, False),
    "state file replaced": (_state_replaced, False, False),
    "added post": (_add, False, False),
    "deleted post": (_delete, False, False),
    "renamed post": (_rename, False, False),
    "config whitespace": (_config_whitespace, False, True),
    "config setting": (_config_setting, False, False),
    "HOME changed": (_home, False, True),
    "template edited": (_template, False, False),
    "output deleted": (_output_deleted, False, False),
    "output modified": (_output_modified, False, False),
    "output modified, stat restored": (_output_same_stat, True, True),
    "posts folder vanished": (_posts_vanished, False, True),
    "record of an older version": (_old_record, False, True),
    "garbled record": (_garbled_record, False, False),
    "items changed": (_items_changed, False, False),
    # A FIFO is refused (one warning more), not read: both replay, with that warning.
    "FIFO added": (_fifo, True, True),
    "hidden post added": (_hidden, True, True),
    "symlink loop added": (_symlink_loop, True, True),
    "dangling symlink added": (_dangling, True, True),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_the_quick_check_says_unchanged_only_when_the_full_run_replays(quick: QuickSite, name: str) -> None:
    mutate, quick_says, full_replays = MUTATIONS[name]
    mutate(quick)
    assert _compare(quick) == (quick_says, full_replays)
    # The run after: whatever the full run did, it left what the quick check needs.
    said_again, replayed_again = _compare(quick)
    assert replayed_again
    assert said_again or name == "posts folder vanished"  # an input missing is always the full run's


def test_warnings_strict_and_the_summary_are_replayed(quick: QuickSite) -> None:
    os.mkfifo(quick.root / "posts" / "pipe.md")
    (quick.root / "posts" / "2021-01-20-bad.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    code, out = quick.run(FEEDS, "generate")
    assert code == 0 and "2 warnings" in out, out
    assert _compare(quick) == (True, True)
    assert _compare(quick, "--strict") == (True, True)
    code, out = quick.run(FEEDS, "generate", "--strict")
    assert code == 1 and "pipe.md: skipped: a named pipe (FIFO)" in out and "--strict" in out
    code, out = quick.run(FEEDS, "generate", "-q")
    assert code == 0 and "generate:" not in out and out.count("warning:") == 2


def test_a_damaged_database_falls_back_without_a_traceback(quick: QuickSite) -> None:
    db = quick.root / "state" / "feeds.db"
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    db.write_bytes(b"SQLite format 3\0" + os.urandom(3000))
    assert not quick.probe()
    with_quick = quick.run(FEEDS, "generate")
    full = quick.run(FULL, "generate")
    assert with_quick == full and with_quick[0] != 0 and "damaged" in with_quick[1]


def test_a_run_holding_the_lock_makes_it_leave_busy(quick: QuickSite) -> None:
    fd = os.open(quick.root / "state" / "feeds.db.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        code, out = quick.run(FEEDS, "generate")
        full_code, full_out = quick.run(FULL, "generate")
        assert code == full_code == 75
        assert out == full_out and "another run holds the lock" in out
        code, out = quick.run(FEEDS, "generate", "--wait", "0.3")
        assert code == 75 and "gave up after 0.3s" in out
    finally:
        os.close(fd)
    assert quick.run(FEEDS, "generate")[0] == 0


def test_flags_that_change_the_run_take_the_full_run(quick: QuickSite) -> None:
    for flag in ("--check", "--allow-shrink", "--rebuild-state"):
        _, out = quick.run(FEEDS, "generate", "-v", flag)
        assert "(quick check)" not in out, flag
    assert "(quick check)" in quick.run(FEEDS, "generate", "-v", "--offline")[1]


WIRE = ('<?xml version="1.0"?><rss version="2.0"><channel><title>W</title><link>https://w.example/</link>'
        '<description>d</description>{items}</channel></rss>')
WIRE_ITEM = ('<item><title>{title}</title><link>https://w.example/{slug}</link>'
             '<pubDate>Mon, 04 Jan 2021 10:00:00 GMT</pubDate></item>')


def _with_source(site: QuickSite, feed: Path, every: str = "30m") -> None:
    feed.write_text(WIRE.format(items=WIRE_ITEM.format(title="Wire A", slug="a")))
    (site.root / "config.yaml").write_text(CONFIG + f"sources:\n  - name: wire\n    url: {feed}\n    every: {every}\n")
    code, out = site.run(FEEDS, "generate")
    assert code == 0 and "1 sources fetched" in out, out


def _make_due(site: QuickSite) -> None:
    db = sqlite3.connect(site.root / "state" / "feeds.db")
    with db:
        db.execute("UPDATE sources SET next_due = 1000")
    db.close()


def test_a_source_not_due_takes_the_quick_path(quick: QuickSite, tmp_path: Path) -> None:
    feed = tmp_path / "wire.xml"
    _with_source(quick, feed)
    assert _compare(quick) == (True, True)
    assert _compare(quick, "--offline") == (True, True)
    # The file changed, not due yet: the full run does not read it either.
    feed.write_text(WIRE.format(items=WIRE_ITEM.format(title="Wire B", slug="b")))
    assert _compare(quick) == (True, True)
    assert "Wire B" not in (quick.root / "output" / "all.atom.xml").read_text()


def test_a_due_source_takes_the_full_run_and_its_change_is_published(quick: QuickSite, tmp_path: Path) -> None:
    feed = tmp_path / "wire.xml"
    _with_source(quick, feed)
    feed.write_text(WIRE.format(items=WIRE_ITEM.format(title="Wire A", slug="a")
                                + WIRE_ITEM.format(title="Wire B", slug="b")))
    _make_due(quick)
    assert not quick.probe()
    # The stored state moved (the full run replays it, and records it); then --offline,
    # which fetches nothing, is the quick check's, due or not.
    assert _compare(quick, "--offline") == (False, True)
    assert _compare(quick, "--offline") == (True, True)
    assert not quick.probe()
    code, out = quick.run(FEEDS, "generate", "-v")
    assert code == 0 and "(quick check)" not in out and "1 sources fetched" in out, out
    assert "Wire B" in (quick.root / "output" / "all.atom.xml").read_text()
    assert _compare(quick) == (True, True)  # fetched: not due for 30 minutes


def test_a_source_never_fetched_or_moved_takes_the_full_run(quick: QuickSite, tmp_path: Path) -> None:
    feed = tmp_path / "wire.xml"
    _with_source(quick, feed)
    db = sqlite3.connect(quick.root / "state" / "feeds.db")
    with db:
        db.execute("UPDATE sources SET url = 'elsewhere.xml'")
    db.close()
    assert not quick.probe()
    assert quick.run(FEEDS, "generate")[0] == 0
    db = sqlite3.connect(quick.root / "state" / "feeds.db")
    with db:
        db.execute("DELETE FROM sources")
    db.close()
    assert not quick.probe()


def test_a_source_state_moved_on_takes_the_full_run(quick: QuickSite, tmp_path: Path) -> None:
    # Another process (the daemon) fetched and failed: the status files follow the stored state.
    feed = tmp_path / "wire.xml"
    _with_source(quick, feed)
    status = (quick.root / "output" / "status.json").read_bytes()
    db = sqlite3.connect(quick.root / "state" / "feeds.db")
    with db:
        db.execute("UPDATE sources SET status = 'error', error = 'HTTP 500', failures = 3")
    db.close()
    assert _compare(quick) == (False, True)
    assert (quick.root / "output" / "status.json").read_bytes() != status
    assert _compare(quick) == (True, True)


def test_a_config_with_an_opml_file_takes_the_full_run(quick: QuickSite, tmp_path: Path) -> None:
    opml = quick.root / "subs.opml"
    opml.write_text('<?xml version="1.0"?><opml version="2.0"><head><title>s</title></head><body>'
                    '<outline type="rss" text="wire" xmlUrl="http://127.0.0.1:1/wire.xml"/></body></opml>')
    (quick.root / "config.yaml").write_text(CONFIG + "sources_opml: subs.opml\n")
    for _ in range(2):
        assert quick.run(FEEDS, "generate")[0] == 0
        assert not quick.probe()


def test_nothing_changed_loads_no_database_library_feed_writer_or_http_client(quick: QuickSite) -> None:
    listing = quick.root / "modules.txt"
    code = ("import atexit, sys; from pathlib import Path; "
            f"atexit.register(lambda: Path({str(listing)!r}).write_text('\\n'.join(sorted(sys.modules)))); "
            "from feeds.cli import main; sys.argv[0] = 'feeds'; main()")
    result = quick.run([sys.executable, "-c", code], "generate", "-v")
    assert result[0] == 0 and "(quick check)" in result[1], result
    loaded = set(listing.read_text().split())
    for heavy in ("sqlalchemy", "feedgen", "httpx", "lxml", "jinja2", "pydantic", "feeds.pipeline", "feeds.config",
                  "frontmatter", "yaml", "listparser", "requests"):
        assert heavy not in loaded, heavy


_FOUND = st.lists(st.tuples(st.integers(0, 3), st.text(st.characters(blacklist_characters="\0"), min_size=1),
                            st.integers(-(2**62), 2**62), st.integers(0, 2**40)), max_size=6)


@settings(max_examples=200, deadline=None)
@given(files=_FOUND, other=_FOUND)
def test_the_files_digest_tells_any_two_lists_of_post_files_apart(files: list[tuple[int, str, int, int]],
                                                                 other: list[tuple[int, str, int, int]]) -> None:
    """Equal digests exactly for equal lists (in order): a file touched (its mtime only), edited
    to the same size, renamed, moved to another input, added or removed is always seen."""
    def found(rows: list[tuple[int, str, int, int]]) -> tuple[FoundFile, ...]:
        return tuple(FoundFile(i, PostFile(f"/p/{n}", n, m, size)) for i, n, m, size in rows)

    assert (unchanged.files_digest(found(files)) == unchanged.files_digest(found(other))) == (files == other)


def test_the_state_line_is_found_or_refused() -> None:
    root = Path("/site/config.yaml")
    assert unchanged.state_file(root, "site: {}\n") == Path("/site/state/feeds.db")
    assert unchanged.state_file(root, "state: db/x.db  # here\n") == Path("/site/db/x.db")
    assert unchanged.state_file(root, "state: 'sqlite:///db/x%20y.db'\n") == Path("/site/db/x y.db")
    assert unchanged.state_file(root, "state: /abs/x.db\n") == Path("/abs/x.db")
    assert unchanged.state_file(root, "state: postgresql://h/db\n") is None
    assert unchanged.state_file(root, "state: a\nstate: b\n") is None
    assert unchanged.state_file(root, "state: *anchor\n") is None


@pytest.mark.parametrize("folder", [None, "templates"])
def test_template_stats_are_the_renderers(tmp_path: Path, folder: str | None) -> None:
    if folder is not None:
        (tmp_path / folder / "sub").mkdir(parents=True)
        (tmp_path / folder / "index.html").write_text("x")
        (tmp_path / folder / "sub" / "feed.html").write_text("yy")
        (tmp_path / folder / "link").symlink_to("sub")
    path = tmp_path / folder if folder is not None else None
    assert unchanged.template_stats(path) == template_stats(path)


# -- the scanner's names, from a per-folder prefix, against os.path.abspath per file --------

_NAMES = st.sampled_from(["a", "b", "c.md", "d.html", ".e.md", "f.markdown", "g.txt", "h.md"])
_TREE = st.recursive(st.just("file") | st.just("link-up") | st.just("dangling"),
                     lambda children: st.dictionaries(_NAMES, children, max_size=4), max_leaves=12)


def _build(folder: Path, tree: object) -> None:
    if not isinstance(tree, dict):
        return
    for name, child in tree.items():
        path = folder / name
        if isinstance(child, dict):
            path.mkdir()
            _build(path, child)
        elif child == "file":
            path.write_text(_post(1))
        elif child == "link-up":
            path.symlink_to("..")
        else:
            path.symlink_to("missing-target")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.dictionaries(_NAMES, _TREE, max_size=5),
       where=st.sampled_from(["posts", "./posts/", "posts/../posts", "{abs}/posts"]),
       root=st.sampled_from(["site", "site/..", "site/sub", "other"]))
def test_post_names_are_what_abspath_makes_them(tmp_path_factory: pytest.TempPathFactory, tree: dict[str, object],
                                                where: str, root: str) -> None:
    base = tmp_path_factory.mktemp("scan")
    site = base / "site"
    (site / "posts").mkdir(parents=True)
    (site / "sub").mkdir()
    (base / "other").mkdir()
    _build(site / "posts", tree)
    config_root = base / root
    pattern = where.format(abs=site)
    if not pattern.startswith("/"):
        pattern = os.path.relpath(site / pattern, config_root) + ("/" if pattern.endswith("/") else "")
    scan = scan_posts(pattern, config_root)
    walk = _Walk(config_root)
    assert [f.name for f in scan.files] == [walk.name(f.path) for f in scan.files]
    assert scan.unreadable == [walk.name(str(config_root / u)) for u in scan.unreadable] or scan.unreadable


class _AbspathWalk:
    """The scanner as it was, with os.path.abspath per name: the reference. One scan's state:
    the folders already entered (symlink loops are followed once)
    and the files already found (a file reached by two paths is one post)."""

    def __init__(self, root: Path) -> None:
        self.prefix = str(root.absolute()) + os.sep
        self.scan = PostScan()
        self.folders: set[tuple[int, int]] = set()
        self.inodes: set[tuple[int, int]] = set()

    def name(self, path: str) -> str:
        absolute = os.path.abspath(path)
        name = absolute[len(self.prefix):] if absolute.startswith(self.prefix) else absolute
        return name.replace(os.sep, "/")

    def add(self, path: str, st: os.stat_result) -> None:
        name = self.name(path)
        if not stat.S_ISREG(st.st_mode):
            self.scan.refused.append(f"{name}: skipped: {_kind(st.st_mode)}, not a regular file")
            return
        if (st.st_dev, st.st_ino) in self.inodes:
            self.scan.notes.append(f"{name}: skipped: the same file as another post path")
            return
        self.inodes.add((st.st_dev, st.st_ino))
        self.scan.files.append(PostFile(path=path, name=name, mtime_ns=st.st_mtime_ns, size=st.st_size))

    def folder(self, top: str, top_stat: os.stat_result) -> None:
        """Find post files under ``top`` (recursively), in name order, skipping hidden entries.

        Depth first with a stack of its own, so that no nesting depth can exhaust Python's."""
        stack: list[Iterator[os.DirEntry[str]]] = []
        opened = self._open(top, top_stat)
        if opened is not None:
            stack.append(opened)
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                continue
            if entry.name.startswith("."):
                continue
            try:
                est = entry.stat()  # follows symlinks
            except OSError as exc:
                self._unstatable(entry, exc)
                continue
            if stat.S_ISDIR(est.st_mode):
                if entry.name.endswith(POST_SUFFIXES):
                    self.scan.notes.append(f"{self.name(entry.path)}: a folder named like a post; searched as a folder")
                opened = self._open(entry.path, est)
                if opened is not None:
                    stack.append(opened)
            elif entry.name.endswith(POST_SUFFIXES):
                self.add(entry.path, est)

    def _open(self, folder: str, st: os.stat_result) -> Iterator[os.DirEntry[str]] | None:
        """The entries of ``folder`` in name order; None if it was searched already or cannot be listed."""
        if (st.st_dev, st.st_ino) in self.folders:
            self.scan.notes.append(f"{self.name(folder)}: skipped: a folder already searched (a symlink loop?)")
            return None
        self.folders.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(folder) as it:
                return iter(sorted(it, key=lambda e: e.name))
        except OSError as exc:
            self.scan.unreadable.append(self.name(folder))
            self.scan.notes.append(f"{self.name(folder)}: cannot list the folder: {exc.strerror}")
            return None

    def _unstatable(self, entry: os.DirEntry[str], exc: OSError) -> None:
        name = self.name(entry.path)
        if exc.errno == errno.ENOENT and entry.is_symlink():
            self.scan.notes.append(f"{name}: skipped: a symlink to nothing")
        elif exc.errno == errno.ELOOP:
            self.scan.notes.append(f"{name}: skipped: a symlink loop")
        elif entry.name.endswith(POST_SUFFIXES):
            self.scan.refused.append(f"{name}: skipped: cannot read: {exc.strerror}")
        else:
            self.scan.unreadable.append(name)
            self.scan.notes.append(f"{name}: cannot read: {exc.strerror}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.dictionaries(_NAMES, _TREE, max_size=5),
       where=st.sampled_from(["posts", "./posts/", "posts/../posts", "{abs}/posts"]),
       root=st.sampled_from(["site", "site/..", "site/sub", "other"]))
def test_the_scan_is_the_abspath_scans(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                                       tree: dict[str, object], where: str, root: str) -> None:
    """Same files, names, order, notes and refusals as the scanner that called abspath per file
    (symlink loops, dangling symlinks, hidden entries, a file reached twice, FIFOs)."""
    base = tmp_path_factory.mktemp("scan")
    site = base / "site"
    (site / "posts").mkdir(parents=True)
    (site / "sub").mkdir()
    (base / "other").mkdir()
    _build(site / "posts", tree)
    os.mkfifo(site / "posts" / "pipe.md")
    (site / "posts" / "twice.md").symlink_to("pipe.md")
    config_root = base / root
    pattern = where.format(abs=site)
    if not pattern.startswith("/"):
        pattern = os.path.relpath(site, config_root) + "/" + pattern
    new = scan_posts(pattern, config_root)
    with monkeypatch.context() as m:
        m.setattr(feeds.posts, "_Walk", _AbspathWalk)
        reference = scan_posts(pattern, config_root)
    assert new == reference


def test_template_stats_follow_symlinked_folders_as_the_loader_does(tmp_path: Path) -> None:
    # A template included from a symlinked folder is a template too: editing it is a change.
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "header.html").write_text("one\n")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "index.html").write_text("{% include 'parts/header.html' %}\n")
    (templates / "parts").symlink_to(tmp_path / "parts")
    (tmp_path / "parts" / "loop").symlink_to(templates)  # a loop: each real folder is walked once
    names = [name for name, _, _ in template_stats(templates) if name.startswith("1:")]
    assert names == ["1:index.html", "1:parts/header.html"]
    before = template_stats(templates)
    (tmp_path / "parts" / "header.html").write_text("two, longer\n")
    assert template_stats(templates) != before
    assert unchanged.template_stats(templates) == template_stats(templates)


def test_generate_runs_without_the_cyclic_collector_and_gives_it_back(tmp_path: Path) -> None:
    """The command turns the collector off for its run (quick check included) and back on
    when it ends, whether it replayed, ran or failed: a caller in the same process keeps it."""
    import gc

    from .safety import cli, make_site

    root = make_site(tmp_path / "site", 5)
    seen: list[bool] = []
    from feeds import unchanged as quick

    replay = quick.replay

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        return replay(*args, **kwargs)  # type: ignore[arg-type]

    assert gc.isenabled()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(quick, "replay", spy)
        for _ in range(2):  # a full run, then a replay
            assert cli(root).returncode == 0
            assert gc.isenabled()
        (root / "config.yaml").write_text("site: [", encoding="utf-8")
        assert cli(root).returncode == 2
        assert gc.isenabled()
    assert seen == [False, False, False]
