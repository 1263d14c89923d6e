"""One writer at a time: an exclusive lock per state database and per output folder.

A run that writes (``feeds generate``, each generation of ``feeds run``) holds
``flock`` locks on ``<state>.lock`` beside the state database and on the output
folder itself, always in that order. A second writer either leaves at once with
:class:`~feeds.errors.Busy`, or waits (saying for whom) up to a limit. Readers
(``feeds status``, ``feeds check``, ``feeds serve``) take no lock. The kernel
drops a lock when its holder dies, so a killed run never leaves one behind; the
lock file itself is never removed (removing it would let two runs lock two
different files of the same name).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import Busy, Cancelled, FeedsError

log = logging.getLogger("feeds")

#: How often a waiting run tries the lock again (seconds).
POLL = 0.2


def lock_path(state_path: Path) -> Path:
    """The lock file of a state database: ``feeds.db`` -> ``feeds.db.lock``."""
    return state_path.with_name(state_path.name + ".lock")


def _holder(path: Path, fd: int) -> str:
    """The pid holding the lock on ``path``, as text ("unknown" when it cannot be told)."""
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):
            text = os.pread(fd, 32, 0).decode("ascii").strip()
            if text.isdigit():
                return text
    # A folder cannot hold a pid: the kernel's list of locks names it by inode.
    with contextlib.suppress(OSError):
        st = os.fstat(fd)
        wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == wanted:
                return fields[4]
    return "unknown"


def _open(path: Path) -> int:
    try:
        if path.is_dir():
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise FeedsError(f"cannot open the lock: {exc.strerror}", where=str(path)) from None


def _acquire(path: Path, wait: float | None, deadline: float | None, cancel: Callable[[], bool]) -> int:
    """Lock ``path`` (a file or folder); return the open descriptor holding the lock."""
    fd = _open(path)
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            except OSError as exc:
                raise FeedsError(f"cannot lock: {exc.strerror}", where=str(path)) from None
            pid = _holder(path, fd)
            if deadline is not None and time.monotonic() >= deadline:
                if wait:
                    raise Busy(f"gave up after {wait:g}s waiting for the run holding the lock (pid {pid})",
                               where=str(path))
                raise Busy(f"another run holds the lock (pid {pid}); try again later, or pass --wait SECONDS",
                           where=str(path))
            if not told:
                log.warning("waiting for the run holding %s (pid %s)", path, pid)
                told = True
            if cancel():
                raise Cancelled("cancelled while waiting for the lock", where=str(path))
            time.sleep(POLL)
        if not path.is_dir():
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def writer_lock(paths: list[Path], *, wait: float | None = None,
                cancel: Callable[[], bool] | None = None) -> Iterator[None]:
    """Hold exclusive locks on ``paths`` (in order) for the duration of the block.

    ``wait``: seconds to wait for a busy lock (0: leave at once; None: as long as it
    takes, or until ``cancel()`` says to stop)."""
    held: list[int] = []
    deadline = None if wait is None else time.monotonic() + wait
    try:
        for path in paths:
            held.append(_acquire(path, wait, deadline, cancel or (lambda: False)))
        yield
    finally:
        for fd in reversed(held):
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
