"""The post scanner as it was before folders were listed as plain names and ``**`` globs
were expanded loop-safe: the reference the differential tests hold the scanner to (on
trees without symlink loops under a ``**`` glob, where ``glob.glob`` finishes)."""

from __future__ import annotations

import errno
import glob
import itertools
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from feeds.posts import POST_SUFFIXES, PostFile, PostScan, _is_glob, _kind, input_base


class _Walk:  # as it was
    """One scan's state: the folders already entered (symlink loops are followed once)
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

        Depth first with a stack of its own, so that no nesting depth can exhaust Python's.
        Each level of the stack holds the folder's entries and what their names start with."""
        stack: list[tuple[Iterator[os.DirEntry[str]], str]] = []
        inodes, files = self.inodes, self.scan.files
        opened = self._open(top, top_stat)
        if opened is not None:
            stack.append((opened, self.names_in(top)))
        while stack:
            entries, within = stack[-1]
            for entry in entries:  # until a folder to enter: its entries come first, then the rest of these
                if entry.name.startswith("."):
                    continue
                try:
                    est = entry.stat()  # follows symlinks
                except OSError as exc:
                    self._unstatable(entry, exc, within + entry.name)
                    continue
                if stat.S_ISDIR(est.st_mode):
                    if entry.name.endswith(POST_SUFFIXES):
                        self.scan.notes.append(f"{within}{entry.name}: a folder named like a post; "
                                               "searched as a folder")
                    opened = self._open(entry.path, est, within + entry.name)
                    if opened is not None:
                        stack.append((opened, self.names_in(entry.path)))
                        break
                elif entry.name.endswith(POST_SUFFIXES):
                    key = (est.st_dev, est.st_ino)
                    if stat.S_ISREG(est.st_mode) and key not in inodes:  # the common case of add(), inline
                        inodes.add(key)
                        files.append(PostFile(entry.path, within + entry.name, est.st_mtime_ns, est.st_size))
                    else:
                        self.add(entry.path, est, within + entry.name)
            else:
                stack.pop()

    def _open(self, folder: str, st: os.stat_result, name: str | None = None) -> Iterator[os.DirEntry[str]] | None:
        """The entries of ``folder`` in name order; None if it was searched already or cannot be listed."""
        if (st.st_dev, st.st_ino) in self.folders:
            self.scan.notes.append(f"{name or self.name(folder)}: skipped: a folder already searched "
                                   "(a symlink loop?)")
            return None
        self.folders.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(folder) as it:
                return iter(sorted(it, key=lambda e: e.name))
        except OSError as exc:
            name = name or self.name(folder)
            self.scan.unreadable.append(name)
            self.scan.notes.append(f"{name}: cannot list the folder: {exc.strerror}")
            return None

    def _unstatable(self, entry: os.DirEntry[str], exc: OSError, name: str) -> None:
        if exc.errno == errno.ENOENT and entry.is_symlink():
            self.scan.notes.append(f"{name}: skipped: a symlink to nothing")
        elif exc.errno == errno.ELOOP:
            self.scan.notes.append(f"{name}: skipped: a symlink loop")
        elif entry.name.endswith(POST_SUFFIXES):
            self.scan.refused.append(f"{name}: skipped: cannot read: {exc.strerror}")
        else:
            self.scan.unreadable.append(name)
            self.scan.notes.append(f"{name}: cannot read: {exc.strerror}")




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
        for path in sorted(glob.glob(text, recursive=True)):
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

