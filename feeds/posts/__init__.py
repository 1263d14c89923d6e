"""Find and read local post files, and split their front matter.

This module reads post files and does nothing else: no rendering, no
database, no writing. ``read_post`` returns the parsed front matter and the raw body;
turning those into the entry model is ``normalize``'s job. Beside it,
``inputs`` scans the configured posts inputs (keeping the posts of one that
vanished) and ``read`` runs the front-matter and content jobs through the caches.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import hashlib
import itertools
import json
import os
import re
import stat
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..errors import PostError
from ..models import RawPost

POST_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".html", ".htm")




class PostFile(NamedTuple):
    """A post file found on disk; (mtime_ns, size) tell whether it changed."""

    path: str
    #: Path relative to the config folder, POSIX form: the post's name in messages and the store.
    name: str
    mtime_ns: int
    size: int


@dataclass
class PostScan:
    """What one configured posts folder (or glob) holds, and what could not be read."""

    files: list[PostFile] = field(default_factory=list)
    #: Why the input as a whole cannot be read (missing, unreadable, not a folder), or None.
    problem: str | None = None
    #: Names (as in :attr:`PostFile.name`) of folders under it that could not be listed:
    #: the posts they hold are unknown, not gone.
    unreadable: list[str] = field(default_factory=list)
    #: Files that look like posts but cannot be read as posts, one line each.
    refused: list[str] = field(default_factory=list)
    #: Why other entries were passed over (dangling symlinks, loops...), for ``-v``.
    notes: list[str] = field(default_factory=list)


class _Walk:
    """One scan's state: the folders already entered (symlink loops are followed once)
    and the files already found (a file reached by two paths is one post).

    Folders are listed as names (sorted strings) and each entry is stat'ed by its path as
    the walk reaches it: no ``os.DirEntry`` (with its cached stat) is kept, so what a scan
    holds is the names of the folders it is in and one record per post."""

    def __init__(self, root: Path) -> None:
        self.prefix = str(root.absolute()) + os.sep
        self.scan = PostScan()
        #: Folders entered and files taken, each as ``_key``: one int, not a tuple of two.
        self.folders: set[int] = set()
        self.inodes: set[int] = set()

    def name(self, path: str) -> str:
        absolute = os.path.abspath(path)
        name = absolute[len(self.prefix):] if absolute.startswith(self.prefix) else absolute
        return name.replace(os.sep, "/")

    def names_in(self, folder: str) -> str:
        """What :meth:`name` of every entry of ``folder`` starts with: the entry's own name
        follows it (an entry's name is one plain component, so the folder is made absolute
        once for all of them instead of once per file)."""
        absolute = os.path.abspath(folder)
        absolute = absolute if absolute.endswith(os.sep) else absolute + os.sep
        name = absolute[len(self.prefix):] if absolute.startswith(self.prefix) else absolute
        return name.replace(os.sep, "/")

    def add(self, path: str, st: os.stat_result, name: str | None = None) -> None:
        """Take the file at ``path`` (``name``: its :meth:`name`, when known) as a post."""
        if name is None:
            name = self.name(path)
        if self._not_utf8(name):
            return
        if not stat.S_ISREG(st.st_mode):
            self.scan.refused.append(f"{name}: skipped: {_kind(st.st_mode)}, not a regular file")
            return
        if not MTIME_MIN <= st.st_mtime_ns <= MTIME_MAX:
            self.scan.refused.append(f"{name}: {TIME_OUT_OF_RANGE}")
            return
        key = _key(st)
        if key in self.inodes:
            self.scan.notes.append(f"{name}: skipped: the same file as another post path")
            return
        self.inodes.add(key)
        self.scan.files.append(PostFile(path=path, name=name, mtime_ns=st.st_mtime_ns, size=st.st_size))

    def folder(self, top: str, top_stat: os.stat_result) -> None:
        """Find post files under ``top`` (recursively), in name order, skipping hidden entries.

        Depth first with a stack of its own, so that no nesting depth can exhaust Python's.
        Each level of the stack holds the folder's names still to look at, what their paths
        start with and what their post names start with."""
        stack: list[tuple[Iterator[str], str, str]] = []
        # Looked up once: the loop below runs once per entry of every folder.
        inodes, found, taken = self.inodes, self.scan.files.append, self.inodes.add
        stat_of, is_dir, is_reg, suffixes, make = os.stat, stat.S_ISDIR, stat.S_ISREG, POST_SUFFIXES, _post_file
        opened = self._open(top, top_stat)
        if opened is not None:
            stack.append((opened, _joinable(top), self.names_in(top)))
        while stack:
            names, at, within = stack[-1]
            for name in names:  # until a folder to enter: its entries come first, then the rest of these
                if name[0] == ".":  # (a listed name is never empty)
                    continue
                path = at + name
                try:
                    st = stat_of(path)  # follows symlinks
                except OSError as exc:
                    self._unstatable(path, exc, within + name)
                    continue
                mode = st.st_mode
                if is_dir(mode):
                    if name.endswith(suffixes):
                        self.scan.notes.append(f"{within}{name}: a folder named like a post; searched as a folder")
                    opened = self._open(path, st, within + name)
                    if opened is not None:
                        stack.append((opened, path + os.sep, self.names_in(path)))
                        break
                elif name.endswith(suffixes):
                    key = st.st_dev << 64 | st.st_ino  # _key(st), inline
                    if is_reg(mode) and key not in inodes and MTIME_MIN <= st.st_mtime_ns <= MTIME_MAX:  # add()
                        taken(key)
                        found(make(PostFile, (path, within + name, st.st_mtime_ns, st.st_size)))
                    else:
                        self.add(path, st, within + name)
            else:
                stack.pop()

    def _open(self, folder: str, st: os.stat_result, name: str | None = None) -> Iterator[str] | None:
        """The names in ``folder`` in order; None if it was searched already or cannot be listed."""
        key = _key(st)
        if key in self.folders:
            self.scan.notes.append(f"{name or self.name(folder)}: skipped: a folder already searched "
                                   "(a symlink loop?)")
            return None
        self.folders.add(key)
        try:
            names = os.listdir(folder)
        except OSError as exc:
            name = name or self.name(folder)
            self.scan.unreadable.append(name)
            self.scan.notes.append(f"{name}: cannot list the folder: {exc.strerror}")
            return None
        joined = "".join(names)
        if not joined.isascii() and _NOT_UTF8.search(joined):
            within = self.names_in(folder)
            names = [n for n in names if not self._not_utf8(within + n)]
        names.sort()
        return iter(names)

    def _not_utf8(self, name: str) -> bool:
        """Whether ``name`` (a post name) is not UTF-8 on disk, which no feed, message or
        state row can hold as text: if so it is skipped, with a line that shows its bytes."""
        if _NOT_UTF8.search(name) is None:
            return False
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        line = f"{shown}: skipped: its name is not UTF-8 text; rename it"
        (self.scan.refused if name.endswith(POST_SUFFIXES) else self.scan.notes).append(line)
        return True

    def _unstatable(self, path: str, exc: OSError, name: str) -> None:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            self.scan.notes.append(f"{name}: skipped: a symlink to nothing")
        elif exc.errno == errno.ELOOP:
            self.scan.notes.append(f"{name}: skipped: a symlink loop")
        elif path.endswith(POST_SUFFIXES):
            self.scan.refused.append(f"{name}: skipped: cannot read: {exc.strerror}")
        else:
            self.scan.unreadable.append(name)
            self.scan.notes.append(f"{name}: cannot read: {exc.strerror}")


#: The file times a post may have: what a 64-bit integer holds in nanoseconds (years 1677-2262),
#: as the state database keeps them. A file stamped outside them is skipped, with a line.
MTIME_MIN, MTIME_MAX = -(2**63), 2**63 - 1
TIME_OUT_OF_RANGE = "skipped: its modification time is past the year 2262 or before 1677; touch the file"

#: What a name that is not UTF-8 on disk holds once decoded (Python's "surrogateescape").
_NOT_UTF8 = re.compile("[\udc80-\udcff]")

#: Makes a PostFile from a tuple of its fields without the Python-level ``__new__`` of a
#: named tuple: the same object, for the one call per post of a scan.
_post_file = tuple.__new__


def _key(st: os.stat_result) -> int:
    """The file's identity (device and inode) as one int."""
    return st.st_dev << 64 | st.st_ino


def _joinable(folder: str) -> str:
    """``folder`` as the start of its entries' paths (as ``os.path.join`` makes them)."""
    return folder if folder.endswith(os.sep) else folder + os.sep


def _join(folder: str, name: str) -> str:
    return _joinable(folder) + name if folder else name


def _list(folder: str, folders_only: bool) -> list[tuple[str, bool]]:
    """The names in ``folder`` ("" is the working folder), each with whether it is a folder
    (symlinks followed); only the folders if ``folders_only``; nothing if it cannot be listed."""
    found = []
    try:
        with os.scandir(folder or os.curdir) as it:
            for entry in it:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir or not folders_only:
                    found.append((entry.name, is_dir))
    except OSError:
        pass
    return found


def _below(folder: str, folders_only: bool) -> list[str]:
    """What ``**`` stands for under ``folder``: every entry below it that is not hidden and
    not under a hidden folder, as a path relative to it (folders only if ``folders_only``).

    A folder is entered once: one reached again (a symlink loop, or two symlinks to one
    folder) is passed over, so a loop costs nothing (``glob.glob`` goes round it again
    and again, in time exponential in the loops). Depth first in name order, as the folder
    walk: the first path to a folder in that order is the one kept."""
    found: list[str] = []
    entered: set[int] = set()

    def identity(path: str) -> int | None:
        try:
            return _key(os.stat(path or os.curdir))
        except OSError:
            return None

    def entries(path: str) -> Iterator[tuple[str, bool]]:
        return iter(sorted(_list(path, folders_only)))

    top = identity(folder)
    if top is not None:
        entered.add(top)
    stack = [(entries(folder), folder, "")]
    while stack:
        names, path, relative = stack[-1]
        for name, is_dir in names:
            if name.startswith("."):
                continue
            if is_dir:
                child = _join(path, name)
                key = identity(child)
                if key is not None:
                    if key in entered:
                        continue
                    entered.add(key)
                found.append(relative + name)
                stack.append((entries(child), child, relative + name + os.sep))
                break
            found.append(relative + name)
        else:
            stack.pop()
    return found


def glob_paths(pattern: str) -> list[str]:
    """The paths ``glob.glob(pattern, recursive=True)`` finds (in no particular order), except
    that ``**`` does not follow a symlink loop round and round (``glob`` does, in time that
    grows exponentially with the loops). ``pattern`` is a normalized path (as ``str`` of a
    ``Path``: single separators, no trailing one)."""
    parts = pattern.split(os.sep)
    first = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    if first == len(parts):  # nothing to match: there or not
        return [pattern] if os.path.lexists(pattern) else []
    fixed = os.sep.join(parts[:first]) or (os.sep if first else "")
    paths = [fixed]
    last = len(parts) - 1
    for index in range(first, len(parts)):
        part, folders_only = parts[index], index < last
        found: list[str] = []
        for folder in paths:
            if part == "**":
                found.append(_join(folder, "") if folder else "")
                found += [_join(folder, below) for below in _below(folder, folders_only)]
            elif glob.has_magic(part):
                names = [name for name, _ in _list(folder, folders_only)]
                if not part.startswith("."):
                    names = [name for name in names if not name.startswith(".")]
                found += [_join(folder, name) for name in fnmatch.filter(names, part)]
            elif part and os.path.lexists(candidate := _join(folder, part)):
                found.append(candidate)
        paths = found
    return [path for path in paths if path]


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file without a post's suffix (.md, .html...)"
    return "a special file"


def input_base(pattern: str, root: Path) -> Path:
    """The configured posts path made absolute against the config folder."""
    base = Path(pattern).expanduser()
    return base if base.is_absolute() else root / base


def _is_glob(path: Path) -> bool:
    """Whether a posts path is a glob: it has glob characters and is not the name of
    something that exists (a folder may be called ``drafts[old]``)."""
    return glob.has_magic(str(path)) and not os.path.lexists(path)


def scan_posts(pattern: str, root: Path) -> PostScan:
    """Post files under a folder (recursively), matching a glob, or one post file, sorted by name.

    A folder that is missing, unreadable or not a folder, and a glob whose fixed part is
    not a readable folder, set :attr:`PostScan.problem`; nothing here raises."""
    walk = _Walk(root)
    base = input_base(pattern, root)
    text = str(base)
    if _is_glob(base):
        fixed = Path(*[part for part in itertools.takewhile(lambda p: not glob.has_magic(p), base.parts)])
        try:
            st = os.stat(fixed)
            if not stat.S_ISDIR(st.st_mode):
                walk.scan.problem = f"{walk.name(str(fixed))} is {_kind(st.st_mode)}, not a folder"
                return walk.scan
            os.scandir(fixed).close()
        except OSError as exc:
            walk.scan.problem = f"cannot read the folder {walk.name(str(fixed))}: {exc.strerror}"
            return walk.scan
        for path in sorted(glob_paths(text)):
            try:
                st = os.stat(path)
            except OSError:
                walk.scan.notes.append(f"{walk.name(path)}: skipped: a symlink to nothing")
                continue
            if not stat.S_ISDIR(st.st_mode):
                walk.add(path, st)
        return walk.scan
    try:
        st = os.stat(base)
    except OSError as exc:
        reason = "not found" if exc.errno == errno.ENOENT else f"cannot read: {exc.strerror}"
        walk.scan.problem = f"posts folder {reason}"
        return walk.scan
    if stat.S_ISDIR(st.st_mode):
        try:
            os.scandir(text).close()
        except OSError as exc:
            walk.scan.problem = f"cannot read the posts folder: {exc.strerror}"
            return walk.scan
        walk.folder(text, st)
    elif stat.S_ISREG(st.st_mode) and base.name.endswith(POST_SUFFIXES):
        walk.add(text, st)
    else:
        walk.scan.problem = f"is {_kind(st.st_mode)}, not a posts folder"
    return walk.scan


def input_matcher(pattern: str, root: Path) -> Callable[[str], bool]:
    """Whether a post of a given name (as in :attr:`PostFile.name`) is found through this posts input."""
    path = input_base(pattern, root)
    base = _Walk(root).name(str(path))
    if _is_glob(path):
        return lambda name: fnmatch.fnmatchcase(name, base)
    folder = base.rstrip("/") + "/"
    return lambda name: name == base or name.startswith(folder)


def _decode(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PostError(f"invalid UTF-8 (byte {data[exc.start]:#04x}); save the file as UTF-8",
                        where=name, line=line) from None
    text = text.removeprefix("\ufeff")
    # (Looking for a carriage return in the bytes is quicker than replacing it in the text.)
    return text.replace("\r\n", "\n").replace("\r", "\n") if b"\r" in data else text


def _no_front_matter(text: str) -> str:
    if text.startswith("{"):
        return "JSON front matter opens with '{' alone on the first line and closes with '}' alone on a line"
    return "no front matter (the file must start with '---', '+++' or '{')"


def split_post(text: str, name: str, digest: str) -> RawPost:
    """Split a post's text into parsed front matter and body."""
    import yaml

    from .formats import JSONHandler, detect_format

    handler = detect_format(text)
    if handler is None:
        raise PostError(_no_front_matter(text), where=name, line=1)
    try:
        front, body = handler.split(text)
    except ValueError:
        raise PostError("front matter is not closed", where=name, line=1) from None
    front_line = 1 if isinstance(handler, JSONHandler) else 1 + (0 if front.startswith("\n") else 1)
    body_line = text.count("\n", 0, len(text) - len(body)) + 1
    try:
        meta = handler.load(front)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        line = front_line + mark.line if mark is not None else front_line
        raise PostError(f"broken YAML front matter: {problem}", where=name, line=line) from None
    except tomllib.TOMLDecodeError as exc:
        raise PostError(f"broken TOML front matter: {exc}", where=name, line=front_line) from None
    except json.JSONDecodeError as exc:
        raise PostError(f"broken JSON front matter: {exc.msg}", where=name,
                        line=front_line + exc.lineno - 1) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise PostError(f"front matter cannot be read: {exc}", where=name, line=front_line) from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise PostError("front matter is not a mapping of keys", where=name, line=front_line)
    return RawPost(name=name, digest=digest, meta=meta, front=front, body=body,
                   front_line=front_line, body_line=body_line)


#: A file modified this close (ns) to when it was read could be modified again without its
#: (mtime, size) changing (timestamps are coarse: 2 s on FAT, a clock tick on Linux), so
#: what was read from it is not trusted to stay current ("racily clean", as version
#: control systems call it).
RACY_WINDOW_NS = 2_000_000_000
#: An mtime this far (ns) ahead of the clock was set on purpose (restored, extracted, touched),
#: not written by a clock a little ahead: a later save with the clock moves it, so it is
#: trusted like an old one (else the post is read again, and the site regenerated, forever).
FUTURE_MTIME_NS = 86_400 * 10**9


def is_racy(mtime_ns: int, read_at_ns: int) -> bool:
    """Whether a file with this mtime, read at ``read_at_ns``, may be saved again unseen."""
    return read_at_ns - RACY_WINDOW_NS <= mtime_ns <= read_at_ns + FUTURE_MTIME_NS
_READ_ATTEMPTS = 3
#: The largest post file read (bytes). A bigger one is a mistake (a log, a dump, a disk
#: image named .md); reading it would take its size in memory, several times over.
MAX_POST_BYTES = 16 * 1024 * 1024


class PostUnreadableError(PostError):
    """The file is there but cannot be read (permissions, I/O error, not a regular file)."""


class PostChangedError(PostError):
    """The file kept changing while it was read; it is left for the next run."""


class Snapshot(NamedTuple):
    """A post's bytes and the (mtime_ns, size) they were read at."""

    data: bytes
    mtime_ns: int
    size: int
    #: Written so recently that a later save might not change (mtime_ns, size).
    racy: bool


def _read_once(post: PostFile) -> Snapshot | None:
    """The file's bytes, or None when it changed while being read."""
    started = time.time_ns()
    # O_NONBLOCK: a FIFO put where a post was opens at once instead of waiting for a writer.
    fd = os.open(post.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise PostUnreadableError(f"cannot read: {_kind(before.st_mode)}, not a regular file",
                                      where=post.name)
        if not MTIME_MIN <= before.st_mtime_ns <= MTIME_MAX:
            raise PostError(TIME_OUT_OF_RANGE, where=post.name)
        if before.st_size > MAX_POST_BYTES:
            raise PostError(f"skipped: {before.st_size} bytes is over the post size limit of "
                            f"{MAX_POST_BYTES} bytes", where=post.name)
        chunks, left = [], before.st_size + 1  # one byte more than its size tells it grew
        while left > 0 and (chunk := os.read(fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if (before.st_mtime_ns, before.st_size, before.st_ino) != (after.st_mtime_ns, after.st_size, after.st_ino) \
            or len(data) != after.st_size:
        return None
    return Snapshot(data, after.st_mtime_ns, after.st_size, is_racy(after.st_mtime_ns, started))


def read_snapshot(post: PostFile) -> Snapshot:
    """A consistent read of a post file: read again if it changed while being read."""
    try:
        for _ in range(_READ_ATTEMPTS):
            snapshot = _read_once(post)
            if snapshot is not None:
                return snapshot
    except OSError as exc:
        raise PostUnreadableError(f"cannot read: {exc.strerror}", where=post.name) from None
    raise PostChangedError("changed while being read; left for the next run", where=post.name)


def _read(post: PostFile) -> bytes:
    return read_snapshot(post).data


def read_body(post: PostFile) -> tuple[str, str]:
    """The digest and the body (after the front matter) of a post, without parsing the front matter."""
    data = _read(post)
    text = _decode(data, post.name)
    from .formats import detect_format

    handler = detect_format(text)
    if handler is None:
        raise PostError(_no_front_matter(text), where=post.name, line=1)
    try:
        _front, body = handler.split(text)
    except ValueError:
        raise PostError("front matter is not closed", where=post.name, line=1) from None
    return hashlib.sha1(data).hexdigest(), body


def read_post_snapshot(post: PostFile) -> tuple[RawPost, Snapshot]:
    """Read and split one post file, with the (mtime_ns, size) the bytes were read at."""
    snapshot = read_snapshot(post)
    digest = hashlib.sha1(snapshot.data).hexdigest()
    return split_post(_decode(snapshot.data, post.name), post.name, digest), snapshot


def read_post(post: PostFile) -> RawPost:
    """Read and split one post file; :class:`PostError` says what is wrong and where."""
    return read_post_snapshot(post)[0]
