"""Write output files: the only module that writes into the output folder.

A file is replaced only when its bytes change, and always atomically: the new
bytes go to a temporary file in the same folder, are flushed to disk, and the
temporary file is renamed over the old one, so a reader or web server sees the
old file or the new one, never half of one. If the disk is full or the folder
is read-only, the old file stays as it was and the temporary file is removed.

Nothing here decides what is stale: the caller removes only files it recorded
writing. Temporary files carry this program's mark and the writer's pid
(``.<name>.feeds-<pid>-<random>.tmp``); leftovers are removed only when they
carry that mark and their writer is gone (or they are old), so one run never
removes another's file in flight.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import PublishError
from ..layout import MANAGED_FOLDERS

_TEMP = re.compile(r"^\..*\.feeds-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")
#: A temporary file older than this is a leftover even if its pid is alive (pids are reused).
TEMP_MAX_AGE = 3600.0


def safe_target(output_dir: Path, relative: str) -> Path:
    """``output_dir / relative`` with its folder resolved, refusing anything that would land
    outside it. The name itself is not followed: a symlink there is replaced, not written through."""
    lexical = output_dir / relative
    try:
        parent = lexical.parent.resolve()
        root = output_dir.resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before Python 3.13)
        raise PublishError("cannot resolve its folder (a symlink loop?)", where=relative) from exc
    if lexical.name in ("", ".", "..") or (parent != root and root not in parent.parents):
        raise PublishError("refusing to write outside the output folder", where=relative)
    return parent / lexical.name


class Targets:
    """:func:`safe_target` for many files of one output folder, each folder resolved once
    (the same paths, the same refusals): for one pass over the recorded files."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.root = output_dir.resolve()
        self._folders: dict[Path, Path] = {}

    def __call__(self, relative: str) -> Path:
        lexical = self.output_dir / relative
        parent = self._folders.get(lexical.parent)
        if parent is None or lexical.name in ("", ".", ".."):
            target = safe_target(self.output_dir, relative)
            self._folders[lexical.parent] = target.parent
            return target
        return parent / lexical.name


def read_bytes(path: Path) -> bytes | None:
    """The bytes of the regular file at ``path``; None if there is none (a symlink is none)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise PublishError(f"cannot read: {exc.strerror}", where=str(path)) from None
    try:
        with os.fdopen(fd, "rb") as f:
            return f.read()
    except IsADirectoryError:
        return None
    except OSError as exc:
        raise PublishError(f"cannot read: {exc.strerror}", where=str(path)) from None


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file this program makes."""
    return _TEMP.match(name) is not None


def _temp_name(name: str) -> str:
    # Keep the whole name under the usual 255-byte limit.
    stem = name.encode()[:150].decode(errors="ignore")
    return f".{stem}.feeds-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _open_temp(folder: Path, name: str) -> tuple[int, Path]:
    while True:
        tmp = folder / _temp_name(name)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), tmp
        except FileExistsError:
            continue


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full (the published file was kept)"
    if exc.errno == errno.EROFS:
        return "the file system is read-only (the published file was kept)"
    return f"{exc.strerror or exc} (the published file was kept)"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file + rename in the same folder)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_temp(path.parent, path.name)
    except OSError as exc:
        raise PublishError(f"cannot write: {_reason(exc)}", where=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # the umask may have taken bits away; web servers must read the file
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PublishError(f"cannot write: {_reason(exc)}", where=str(path)) from None


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it already holds exactly these bytes."""
    if read_bytes(path) == data:
        return False
    write_atomic(path, data)
    return True


def remove_files(output_dir: Path, relative_paths: Iterable[str]) -> list[str]:
    """Remove the given files (this program's own, from its record); return those removed.
    Something else now standing at such a path (a folder) is left alone."""
    removed = []
    for rel in relative_paths:
        # The name itself goes, not what it may point to now (a symlink is removed, not followed).
        try:
            target = safe_target(output_dir, rel)
        except PublishError:
            continue  # its folder is now elsewhere: not this program's any more
        try:
            if target.is_dir() and not target.is_symlink():
                continue
            target.unlink()
            removed.append(rel)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise PublishError(f"cannot remove: {exc.strerror}", where=rel) from None
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # called before this process writes anything: a namesake's leftover
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def remove_leftover_temps(folders: Iterable[Path], now: Callable[[], float] = time.time) -> list[Path]:
    """Delete temporary files a crashed run left behind in ``folders``: only names with this
    program's mark, whose writer is no longer running or which are older than an hour."""
    removed = []
    for folder in folders:
        try:
            children = list(os.scandir(folder))
        except OSError:
            continue
        for child in children:
            match = _TEMP.match(child.name)
            if match is None:
                continue
            with contextlib.suppress(OSError):
                if not child.is_file(follow_symlinks=False):
                    continue
                old = now() - child.stat(follow_symlinks=False).st_mtime > TEMP_MAX_AGE
                if old or not _alive(int(match["pid"])):
                    os.unlink(child.path)
                    removed.append(Path(child.path))
    return removed


def unknown_files(output_dir: Path, ours: Callable[[str], bool], limit: int = 5) -> list[str]:
    """Up to ``limit`` files (relative POSIX paths, folders end with '/') in ``output_dir``
    that ``ours`` does not claim: what a first run into a used folder would find."""
    found: list[str] = []

    def walk(folder: Path, prefix: str) -> None:
        try:
            children = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for child in children:
            if len(found) >= limit:
                return
            rel = prefix + child.name
            if is_temp_name(child.name):
                continue
            if child.is_dir(follow_symlinks=False):
                if prefix == "" and child.name in MANAGED_FOLDERS:
                    walk(Path(child.path), rel + "/")
                elif not ours(rel + "/"):
                    found.append(rel + "/")
            elif not ours(rel):
                found.append(rel)

    walk(output_dir, "")
    return found
