"""Write output files: the only module that writes into the output folder.

A file is replaced only when its bytes change, and always atomically: the new
bytes go to a temporary file in the same folder, are flushed to disk, and the
temporary file is renamed over the old one, so a reader or web server sees the
old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import PublishError

# Files this program writes; only these are ever removed as stale.
MANAGED_SUFFIXES = (".atom.xml", ".rss.xml", ".feed.json")
MANAGED_FOLDERS = ("tags", "categories")


def safe_target(output_dir: Path, relative: str) -> Path:
    """``output_dir / relative``, refusing anything that would land outside it."""
    target = (output_dir / relative).resolve()
    root = output_dir.resolve()
    if target == root or root not in target.parents:
        raise PublishError("refusing to write outside the output folder", where=relative)
    return target


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        raise PublishError(f"cannot read: {exc.strerror}", where=str(path)) from None


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file + rename in the same folder)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise PublishError(f"cannot write: {exc.strerror}", where=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; web servers must read the file
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PublishError(f"cannot write: {exc.strerror}", where=str(path)) from None


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it already holds exactly these bytes."""
    if read_bytes(path) == data:
        return False
    write_atomic(path, data)
    return True


def write_all(files: Sequence[tuple[Path, bytes]]) -> list[bool]:
    """``write_if_changed`` for many files; a few at a time, as fsync waits on the disk."""
    if len(files) < 8:
        return [write_if_changed(path, data) for path, data in files]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda pd: write_if_changed(*pd), files))


def stale_files(output_dir: Path, keep: Iterable[str]) -> list[str]:
    """Managed files in the output folder that are not in ``keep`` (relative POSIX paths):
    feeds at the top, and feeds and their pages in the tag and category folders."""
    wanted = set(keep)
    found: list[str] = []
    for folder in ("", *MANAGED_FOLDERS):
        directory = output_dir / folder
        if not directory.is_dir():
            continue
        suffixes = (*MANAGED_SUFFIXES, ".html") if folder else MANAGED_SUFFIXES
        for child in sorted(directory.iterdir()):
            rel = f"{folder}/{child.name}" if folder else child.name
            if child.is_file() and child.name.endswith(suffixes) and rel not in wanted:
                found.append(rel)
    return found


def remove_files(output_dir: Path, relative_paths: Iterable[str]) -> None:
    for rel in relative_paths:
        try:
            safe_target(output_dir, rel).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise PublishError(f"cannot remove: {exc.strerror}", where=rel) from None


def remove_leftover_temps(output_dir: Path) -> None:
    """Delete temporary files a crashed run left behind."""
    for folder in ("", *MANAGED_FOLDERS):
        directory = output_dir / folder
        if directory.is_dir():
            for child in directory.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    child.unlink()
