"""The post scanner against the scanner it replaced (tests/reference_scan.py) and against
``glob.glob``: the same files, names, order, notes and refusals on every tree where the old
one finishes, and a ``**`` glob over symlink loops that finishes."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.posts import glob_paths, scan_posts
from feeds.posts.inputs import scan_inputs

from . import reference_scan

_NAMES = st.sampled_from(["a", "b", "c.md", "d.html", ".e.md", "f.markdown", "g.txt", "h.md", "ab.md", "[x].md"])
# Leaves: a post, a FIFO, a dangling symlink, symlinks to a file and to a folder outside
# the tree (the same target reached twice is one post), an unreadable folder.
_LEAF = st.sampled_from(["file", "file", "fifo", "dangling", "to-file", "to-folder", "to-hidden", "closed"])
_TREE = st.recursive(_LEAF, lambda children: st.dictionaries(_NAMES, children, max_size=4), max_leaves=14)
# Components of a glob below the posts folder (one ".." at most: two reach the folders the
# tree's symlinks point to, by a second path).
_PARTS = st.lists(st.sampled_from(["*", "*.md", "**", "?.md", "[ab]*", ".*", "c.md", "a", "b", "..", "*.h*",
                                   "[!a]*", "*.markdown", "**", "x*"]), max_size=4).filter(lambda p: p.count("..") <= 1)


def _post(n: int) -> str:
    return f"---\ntitle: Post {n}\ndate: 2024-01-0{n % 9 + 1}\n---\nBody {n}\n"


def _elsewhere(elsewhere: Path, name: str) -> Path:
    """A folder of posts outside the site, new for each symlink to one: each folder is
    reachable by one path only (the trees the old glob scan is the reference on)."""
    target = elsewhere / f"{name}{len(list(elsewhere.iterdir()))}"
    (target / "deeper").mkdir(parents=True)
    (target / "a.md").write_text(_post(2))
    (target / "deeper" / "b.md").write_text(_post(3))
    return target


def _build(folder: Path, tree: object, elsewhere: Path, loops: bool) -> None:
    if not isinstance(tree, dict):
        return
    for n, (name, child) in enumerate(tree.items()):
        path = folder / name
        if isinstance(child, dict):
            path.mkdir()
            _build(path, child, elsewhere, loops)
        elif child == "file":
            path.write_text(_post(n))
        elif child == "fifo":
            os.mkfifo(path)
        elif child == "dangling":
            path.symlink_to("missing-target")
        elif child == "to-file":
            path.symlink_to(elsewhere.parent / "shared.md")
        elif child == "to-folder":
            path.symlink_to(_elsewhere(elsewhere, "folder"))
        elif child == "to-hidden":
            path.symlink_to(_elsewhere(elsewhere, ".hidden"))
        elif child == "closed":
            path.mkdir()
            (path / "inside.md").write_text(_post(n))
            path.chmod(0)
        if loops and n == 0 and isinstance(child, dict):
            (path / "up").symlink_to("..")


def _site(base: Path, tree: dict[str, object], *, loops: bool = False) -> Path:
    site = base / "site"
    (site / "posts").mkdir(parents=True)
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    (base / "shared.md").write_text(_post(1))
    _build(site / "posts", tree, elsewhere, loops)
    return site


def _reopen(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.dictionaries(_NAMES, _TREE, max_size=5), parts=_PARTS.filter(bool),
       relative=st.booleans())
def test_glob_paths_is_glob_on_trees_without_loops(tmp_path_factory: pytest.TempPathFactory,
                                                   monkeypatch: pytest.MonkeyPatch, tree: dict[str, object],
                                                   parts: list[str], relative: bool) -> None:
    base = tmp_path_factory.mktemp("glob")
    site = _site(base, tree)
    try:
        pattern = str(Path(site, "posts", *parts))
        if relative:
            monkeypatch.chdir(site)
            pattern = str(Path("posts", *parts))
        assert sorted(glob_paths(pattern)) == sorted(glob.glob(pattern, recursive=True))
        if relative:
            monkeypatch.chdir(site / "posts")
            pattern = str(Path(*parts))
            assert sorted(glob_paths(pattern)) == sorted(p for p in glob.glob(pattern, recursive=True) if p)
    finally:
        _reopen(base)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.dictionaries(_NAMES, _TREE, max_size=5), parts=_PARTS,
       root=st.sampled_from(["site", "site/..", "site/posts", "other"]), absolute=st.booleans())
def test_the_scan_is_the_old_scan(tmp_path_factory: pytest.TempPathFactory, tree: dict[str, object],
                                  parts: list[str], root: str, absolute: bool) -> None:
    """Folders (symlink loops included: the old walk was loop-safe) and globs (no loops)."""
    base = tmp_path_factory.mktemp("scan")
    site = _site(base, tree, loops=not parts)
    (base / "other").mkdir()
    config_root = base / root
    try:
        target = Path(site, "posts", *parts)
        pattern = str(target) if absolute else os.path.relpath(target, config_root)
        new = scan_posts(pattern, config_root)
        old = reference_scan.scan_posts(pattern, config_root)
        assert new == old
    finally:
        _reopen(base)


def test_an_unreadable_folder_is_the_same_as_before(tmp_path: Path) -> None:
    if _running_as_root():
        pytest.skip("root reads every folder")
    site = _site(tmp_path, {"a": {"c.md": "file"}, "b": "closed"})
    try:
        new = scan_posts("posts", site)
        assert new == reference_scan.scan_posts("posts", site)
        assert new.unreadable == ["posts/b"]
    finally:
        _reopen(tmp_path)


def test_the_scan_of_a_big_folder_is_the_old_one(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    posts.mkdir()
    for n in range(3000):
        (posts / f"{n * 7919 % 3001:05d}-post.md").write_text(_post(n))
    (posts / "sub").mkdir()
    (posts / "sub" / "x.md").write_text(_post(1))
    (posts / "again.md").symlink_to("00000-post.md")
    assert scan_posts("posts", tmp_path) == reference_scan.scan_posts("posts", tmp_path)


def _looped(base: Path) -> Path:
    """A posts folder whose subfolders each hold symlinks back to it and to each other:
    ``glob.glob("posts/**/*.md")`` would take time exponential in their number."""
    posts = base / "posts"
    posts.mkdir()
    (posts / "top.md").write_text(_post(0))
    for n in range(6):
        folder = posts / f"f{n}"
        folder.mkdir()
        (folder / f"p{n}.md").write_text(_post(n))
        (folder / "back").symlink_to("..")
        (folder / "self").symlink_to(".")
        for m in range(6):
            if m != n:
                (folder / f"to{m}").symlink_to(f"../f{m}")
    return posts


def test_a_glob_over_symlink_loops_finishes(tmp_path: Path) -> None:
    # In a child process, so that a scan that never ends fails the test instead of hanging it.
    _looped(tmp_path)
    code = textwrap.dedent(f"""
        from pathlib import Path
        from feeds.posts import scan_posts
        scan = scan_posts("posts/**/*.md", Path({str(tmp_path)!r}))
        walk = scan_posts("posts", Path({str(tmp_path)!r}))
        print([f.name for f in scan.files] == [f.name for f in walk.files])
        print(sorted(f.name.rsplit("/", 1)[-1] for f in scan.files))
        print(scan.refused, scan.problem)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    same, names, rest = done.stdout.splitlines()
    # Each post once, by the path the folder walk takes to it: a folder reached again is passed over.
    assert same == "True"
    assert names == repr([f"p{n}.md" for n in range(6)] + ["top.md"])
    assert rest == "[] None"


def test_a_glob_over_symlink_loops_is_an_input_like_another(tmp_path: Path) -> None:
    _looped(tmp_path)

    class Notes:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def warn(self, message: str) -> None:
            self.lines.append(message)

        def error(self, message: str) -> None:
            self.lines.append(message)

    class Input:
        path = "posts/**/f*/*.md"
        optional = False

    class Settings:
        posts = (Input(),)
        root = tmp_path

    class NoRows:
        def rows(self) -> dict[str, object]:
            raise AssertionError("not needed")

    notes = Notes()
    inputs = scan_inputs(Settings(), NoRows(), {}, notes, allow_shrink=False)  # type: ignore[arg-type]
    assert [f.file.name for f in inputs.files] == [f"posts/f{n}/p{n}.md" for n in range(6)]
    assert notes.lines == []


def test_a_name_that_is_not_utf8_is_skipped_with_a_line_showing_its_bytes(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    (posts / "sub").mkdir(parents=True)
    for name in (b"a.md", b"dr\xe9.md", b"sub/b.md", b"sub/n\xff.html", b"note\xe9.txt"):
        with open(os.fsencode(posts) + b"/" + name, "w") as f:
            f.write(_post(1))
    os.mkdir(os.fsencode(posts) + b"/f\xe9")
    with open(os.fsencode(posts) + b"/f\xe9/c.md", "w") as f:
        f.write(_post(2))
    found = scan_posts("posts", tmp_path)
    assert [f.name for f in found.files] == ["posts/a.md", "posts/sub/b.md"]
    assert found.refused == ["posts/dr\\xe9.md: skipped: its name is not UTF-8 text; rename it",
                             "posts/sub/n\\xff.html: skipped: its name is not UTF-8 text; rename it"]
    assert "posts/f\\xe9: skipped: its name is not UTF-8 text; rename it" in found.notes
    # A glob reaches the same files through the single-file path, with the same lines.
    globbed = scan_posts("posts/*.md", tmp_path)
    assert [f.name for f in globbed.files] == ["posts/a.md"]
    assert globbed.refused == ["posts/dr\\xe9.md: skipped: its name is not UTF-8 text; rename it"]


def test_a_file_time_a_64_bit_integer_cannot_hold_is_skipped_with_a_line(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    posts.mkdir()
    for name in ("a.md", "far.md", "past.md"):
        (posts / name).write_text(_post(1), encoding="utf-8")
    try:
        os.utime(posts / "far.md", ns=(2**63 + 5, 2**63 + 5))
        os.utime(posts / "past.md", ns=(2**63 - 1, 2**63 - 1))  # the last time that fits
    except (OverflowError, OSError):
        pytest.skip("this file system cannot stamp a file past 2262")
    if os.stat(posts / "far.md").st_mtime_ns <= 2**63 - 1:
        pytest.skip("this file system clamps file times")
    for pattern in ("posts", "posts/*.md"):
        found = scan_posts(pattern, tmp_path)
        assert [f.name for f in found.files] == ["posts/a.md", "posts/past.md"]
        assert found.refused == ["posts/far.md: skipped: its modification time is past the year 2262 or before "
                                 "1677; touch the file"]
