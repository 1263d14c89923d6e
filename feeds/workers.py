"""Spreading CPU-bound work over worker processes.

A machine's cores are the only way past Python's global lock for parsing
tens of thousands of posts or hundreds of feeds. Workers are forked where the
platform can fork, so they also see what the parent prepared in memory
(:data:`SHARED`) without it being copied into every job; where it cannot, or
when there is too little work to pay for the processes, jobs run in-process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

J = TypeVar("J")
R = TypeVar("R")

Progress = Callable[[str, int, int], None]
"""Called as ``progress(step, done, total)`` while a long step runs."""

#: What forked workers may read: set by the parent just before a ``run_jobs``.
SHARED: dict[str, Any] = {}

# A long-running process with threads (the daemon) turns worker processes off:
# forking while other threads hold locks is not safe.
_enabled = True


def use_processes(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def run_jobs(fn: Callable[[J], R], jobs: list[J], threshold: int,
             progress: Progress | None = None, step: str = "", needs_shared: bool = False) -> list[R]:
    """``[fn(job) for job in jobs]``, spread over worker processes when there are at
    least ``threshold`` jobs. With ``needs_shared``, workers must be forked (to see
    ``SHARED``); without fork the jobs then run in-process."""
    cpus = os.cpu_count() or 1
    results: list[R] = []
    every = max(1, len(jobs) // 100)

    def collect(items: Iterable[R]) -> list[R]:
        for item in items:
            results.append(item)
            if progress is not None and len(results) % every == 0:
                progress(step, len(results), len(jobs))
        if progress is not None and jobs:
            progress(step, len(jobs), len(jobs))
        return results

    if not _enabled or len(jobs) < threshold or cpus < 2 or (needs_shared and not can_fork()):
        return collect(fn(job) for job in jobs)
    context = multiprocessing.get_context("fork" if can_fork() else None)
    with ProcessPoolExecutor(max_workers=min(cpus, 8), mp_context=context) as pool:
        return collect(pool.map(fn, jobs, chunksize=max(1, min(256, len(jobs) // (cpus * 8)))))
