"""Spreading CPU-bound work over worker processes.

A machine's cores are the only way past Python's global lock for parsing
tens of thousands of posts or hundreds of feeds. Workers are forked where the
platform can fork, so they also see what the parent prepared in memory (the
``shared`` value) without it being copied into every job; where it cannot, or
when there is too little work to pay for the processes, jobs run in-process.
A long-running process with threads (the daemon) turns worker processes off.

Workers die with their parent: on Linux each asks the kernel for SIGKILL when
the parent goes (``PR_SET_PDEATHSIG``), and every worker also checks, when it
starts and before each job, that its parent is still the process that made it.
A killed run so leaves no worker behind holding the database or cron's pipes.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from .errors import FeedsError

J = TypeVar("J")
R = TypeVar("R")

Progress = Callable[[str, int, int], None]
"""Called as ``progress(step, done, total)`` while a long step runs."""

# What forked workers read; set (under the lock) only while a pool runs.
_shared: Any = None
_pool_lock = threading.Lock()
_fork_allowed = True
# Workers kept between streams (inside ``keep_workers``): forked for the first stream of
# jobs that need no shared value, and given the next such streams.
_keeping = False
_kept: ProcessPoolExecutor | None = None


def use_processes(fork: bool) -> None:
    """Whether workers may be forked. A process with threads (the daemon) must not fork:
    its workers are spawned instead (slower to start, so only for big jobs), and jobs
    that need the parent's memory run in-process."""
    global _fork_allowed
    _fork_allowed = fork


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class JobFailed(FeedsError):
    """A job raised in a worker process; only its text comes back.

    Exception objects are not sent between processes: some cannot be pickled
    (lxml's carry their error logs), and the pickling error would hide the real one
    and stop the whole pool. Job functions should turn their own failures into
    results; this is the guard for what they did not foresee."""

    def __reduce__(self) -> tuple[type[JobFailed], tuple[str]]:
        return JobFailed, (self.message,)


_PR_SET_PDEATHSIG = 1
_parent_pid: int | None = None


def _die_with_parent(parent: int) -> None:
    """Worker initializer: be killed when ``parent`` exits, however it exits."""
    global _parent_pid
    _parent_pid = parent
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the parent check below still stops the worker at its next job
    # The parent may have died before prctl took effect: then this process was re-parented.
    if os.getppid() != parent:
        os._exit(1)


def _in_worker(fn: Callable[[J, Any], R], job: J) -> R:
    if _parent_pid is not None and os.getppid() != _parent_pid:
        os._exit(1)
    try:
        return fn(job, _shared)
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300]
        raise JobFailed(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__) from None


def run_jobs(fn: Callable[[J, Any], R], jobs: list[J], threshold: int, *, shared: Any = None,
             progress: Progress | None = None, step: str = "", spawn: bool = True) -> list[R]:
    """``[fn(job, shared) for job in jobs]``, spread over worker processes when there are
    at least ``threshold`` jobs: :func:`iter_jobs`, collected into a list."""
    return list(iter_jobs(fn, jobs, threshold, shared=shared, progress=progress, step=step, spawn=spawn))


IN_FLIGHT_PER_WORKER = 4
"""How many chunks each worker may have sent to it, or done and waiting for the
consumer: enough that no worker waits, few enough that results do not pile up in
the parent while the consumer is slower than the workers."""


def iter_jobs(fn: Callable[[J, Any], R], jobs: list[J], threshold: int, *, shared: Any = None,
              progress: Progress | None = None, step: str = "", spawn: bool = True) -> Iterator[R]:
    """``fn(job, shared)`` for each job, yielded in the jobs' order as soon as it is
    done, spread over worker processes when there are at least ``threshold`` jobs.
    With a ``shared`` value, workers must be forked (to inherit it); without fork those
    jobs run in-process, as do all jobs with ``spawn=False`` (jobs so big to send that
    spawned workers would not pay).

    At most :data:`IN_FLIGHT_PER_WORKER` chunks per worker are submitted and not yet
    consumed, so a slow consumer holds only a few chunks of results. A job that raises
    in a worker comes back as :class:`JobFailed` where its result would be (the results
    before it have been yielded). The pool's lock is held while the stream is open: the
    consumer must not start other worker jobs before it ends. When the consumer stops early (closes the generator,
    or raises), chunks not yet started are cancelled and the workers shut down."""
    cpus = os.cpu_count() or 1
    total = len(jobs)
    every = max(1, total // 100)
    forking = _fork_allowed and can_fork()
    parallel = not (total < threshold or cpus < 2 or ((shared is not None or not spawn) and not forking) or
                    (not forking and total < threshold * 4))
    done = 0
    results = _iter_parallel(fn, jobs, shared, forking, cpus) if parallel else \
        (fn(job, shared) for job in jobs)
    try:
        for item in results:
            done += 1
            if progress is not None and done % every == 0:
                progress(step, done, total)
            yield item
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
    if progress is not None and total:
        progress(step, total, total)


@contextlib.contextmanager
def keep_workers() -> Iterator[None]:
    """Inside this, the workers forked for a stream of jobs without a shared value are kept
    for the next such streams, and shut down at its end.

    A run reads every post's front matter first, then cleans the bodies some feed shows:
    by then it holds the front matter of every post. Workers forked then would copy pages
    of it as they allocate (a fork shares the parent's memory until either side writes to
    a page); the workers forked for the first stream, while the run is small, stay small."""
    global _keeping, _kept
    with _pool_lock:
        outer, _keeping = not _keeping, True
    if not outer:  # inside another: that one keeps them
        yield
        return
    try:
        yield
    finally:
        with _pool_lock:
            pool, _kept, _keeping = _kept, None, False
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _new_pool(context: multiprocessing.context.BaseContext, workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_die_with_parent, initargs=(os.getpid(),))


def _iter_parallel(fn: Callable[[J, Any], R], jobs: list[J], shared: Any, forking: bool,
                   cpus: int) -> Iterator[R]:
    global _shared, _kept
    context = multiprocessing.get_context("fork" if forking else "spawn")
    workers = min(cpus, 8)
    size = max(1, min(256, len(jobs) // (cpus * 8)))
    chunks = (jobs[i:i + size] for i in range(0, len(jobs), size))
    with _pool_lock:
        _shared = shared
        keep = _keeping and forking and shared is None
        if keep and (_kept is None or getattr(_kept, "_broken", False)):
            if _kept is not None:  # a worker of it was killed: the next stream gets new ones
                _kept.shutdown(wait=False, cancel_futures=True)
            _kept = _new_pool(context, workers)
        pool = _kept if keep and _kept is not None else _new_pool(context, workers)
        pending: collections.deque[Future[tuple[list[R], JobFailed | None]]] = collections.deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(_run_chunk, fn, chunk))
                if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                    yield from _chunk_results(pending.popleft())
            while pending:
                yield from _chunk_results(pending.popleft())
        finally:
            for future in pending:
                future.cancel()
            if keep:
                # Chunks already started finish on their worker, their results unread.
                for future in pending:
                    with contextlib.suppress(BaseException):
                        future.exception()
            pending.clear()
            if not keep:
                pool.shutdown(wait=True, cancel_futures=True)
            _shared = None


def _run_chunk(fn: Callable[[J, Any], R], chunk: list[J]) -> tuple[list[R], JobFailed | None]:
    """The results of a chunk's jobs up to the first that raised, and its error."""
    results: list[R] = []
    for job in chunk:
        try:
            results.append(_in_worker(fn, job))
        except JobFailed as exc:
            return results, exc
    return results, None


def _chunk_results(future: Future[tuple[list[R], JobFailed | None]]) -> Iterator[R]:
    results, failed = future.result()
    yield from results
    if failed is not None:
        raise failed


class JobPool:
    """Worker processes that take jobs one at a time, as they come, for a stream of work
    (bodies arriving from the network) where :func:`run_jobs` wants the whole list.

    ``with JobPool(fn, shared, expected) as pool:`` forks the workers at once, before the
    caller starts threads of its own (an event loop's look-ups), so no worker inherits a
    lock some other thread held. ``pool.submit(job)`` returns a future of
    ``fn(job, shared)``. With fewer than ``threshold`` jobs ``expected``, or where
    workers cannot be forked (or would not help), jobs run in-process in ``submit``
    and their futures are already done. A job's exception comes back as
    :class:`JobFailed` from a worker; in-process it comes back as raised."""

    def __init__(self, fn: Callable[[J, Any], R], shared: Any, expected: int, threshold: int) -> None:
        self.fn = fn
        self.shared = shared
        self.parallel = (expected >= threshold and (os.cpu_count() or 1) >= 2 and _fork_allowed and can_fork())
        self._pool: ProcessPoolExecutor | None = None
        self._locked = False

    def __enter__(self) -> JobPool:
        global _shared
        if self.parallel:
            _pool_lock.acquire()
            self._locked = True
            _shared = self.shared
            try:
                self._pool = ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 8),
                                                 mp_context=multiprocessing.get_context("fork"),
                                                 initializer=_die_with_parent, initargs=(os.getpid(),))
                # With fork, the first submission forks every worker: do it now.
                self._pool.submit(_started).result()
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        global _shared
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        finally:
            if self._locked:
                _shared = None
                self._locked = False
                _pool_lock.release()

    def submit(self, job: Any) -> Future[Any]:
        if self._pool is not None:
            return self._pool.submit(_in_worker, self.fn, job)
        future: Future[Any] = Future()
        try:
            future.set_result(self.fn(job, self.shared))
        except Exception as exc:
            future.set_exception(exc)
        return future


def _started() -> None:
    """The first job of a :class:`JobPool`: makes its workers exist."""
