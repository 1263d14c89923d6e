"""Helpers for the safety tests: sites with many posts, the real CLI in a subprocess,
runs without root's privileges, and a fingerprint of every output file."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import feedparser

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """\
site:
  title: Safety
  base_url: "https://example.org/feeds/"
  timezone: UTC
output:
  dir: output
  formats: [atom, rss]
  max_entries: 500
state: state/feeds.db
posts:
  - path: {posts}{optional}
{extra}"""


#: A time well before any run (2020-01-01), for post files that are not being edited.
OLD_NS = 1_577_836_800 * 10**9


def post_text(i: int, tag: str = "", body: str = "") -> str:
    tags = f"[t{i % 3}{', ' + tag if tag else ''}]"
    link = f"link: https://example.org/p/{i}\n" if i % 2 else ""
    return (f"---\ntitle: Post {i}\ndate: 2021-{1 + i % 12:02d}-{1 + i % 28:02d} 10:{i % 60:02d}:00\n"
            f"tags: {tags}\n{link}---\n{body or f'Body of post number {i}.'}\n")


def write_posts(folder: Path, n: int, start: int = 0, per_folder: int = 0) -> list[Path]:
    """``n`` posts (half with a link, half named by content), optionally in subfolders."""
    paths = []
    for i in range(start, start + n):
        sub = folder / f"y{i // per_folder}" if per_folder else folder
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"2021-01-01-post-{i}.md"
        path.write_text(post_text(i), encoding="utf-8")
        os.utime(path, ns=(OLD_NS + i, OLD_NS + i))  # written long ago, as most posts are
        paths.append(path)
    return paths


def make_site(root: Path, n: int = 30, *, posts: str = "posts", optional: bool = False, extra: str = "",
              per_folder: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_config(root, posts=posts, optional=optional, extra=extra)
    if n:
        write_posts(root / "posts", n, per_folder=per_folder)
    return root


def write_config(root: Path, *, posts: str = "posts", optional: bool = False, extra: str = "") -> None:
    (root / "config.yaml").write_text(CONFIG.format(posts=posts, optional="\n    optional: true" if optional
                                                    else "", extra=extra), encoding="utf-8")


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_file_capabilities() -> None:
    """In the child before exec: give up root's power to ignore file permissions, so that
    chmod 000 binds the run as it binds any user (capabilities(7): bounding set)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def permissions_bind() -> str | None:
    """None when a subprocess run with ``unprivileged=True`` obeys chmod; else why not."""
    if os.geteuid() != 0:
        return None
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            result = subprocess.run([sys.executable, "-c", f"open({str(probe)!r}).read()"],
                                    preexec_fn=_drop_file_capabilities, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot drop root's file capabilities: {exc}"
        return None if result.returncode != 0 else "root still reads a chmod 000 file"


def feeds(root: Path, *args: str, unprivileged: bool = False,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``feeds generate --offline`` (or the given command) in a real subprocess; with
    ``unprivileged``, as root without the power to ignore file permissions."""
    cmd = [sys.executable, "-m", "feeds", *(args or ("generate", "--offline")), "--config",
           str(root / "config.yaml")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    drop = _drop_file_capabilities if unprivileged and os.geteuid() == 0 else None
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=root,
                          preexec_fn=drop)


def outputs(root: Path) -> dict[str, bytes]:
    out = root / "output"
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def entry_ids(root: Path) -> dict[str, str]:
    """Title -> id of every entry in all.atom.xml."""
    d = feedparser.parse((root / "output" / "all.atom.xml").read_bytes())
    return {e.title: e.id for e in d.entries}


def no_traceback(result: Any) -> None:
    assert "Traceback" not in result.stderr, result.stderr




class Ran(NamedTuple):
    returncode: int
    stderr: str


def cli(root: Path, *args: str) -> Ran:
    """The CLI run in this process (faster than a subprocess; the same code path): its exit
    status and what it printed on stderr. An exception that escapes fails the test."""
    from feeds.cli import cli as command

    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            command.main(args=[*(args or ("generate", "--offline")), "--config", str(root / "config.yaml")],
                         standalone_mode=False)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return Ran(code, err.getvalue())
