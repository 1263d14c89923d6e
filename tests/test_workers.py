"""iter_jobs: results streamed in order from real worker processes, a bounded number of
chunks in flight, a clean stop when the consumer stops early, a worker's error in place."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import pytest

from feeds import workers
from feeds.workers import JobFailed, iter_jobs, run_jobs


def square(job: int, shared: Any) -> tuple[int, int]:
    return job * job, os.getpid()


def fail_at_500(job: int, shared: Any) -> int:
    if job == 500:
        raise ValueError("bad job\n 500")
    return job


def plus_shared(job: int, shared: Any) -> int:
    return job + int(shared)


def test_results_stream_in_the_jobs_order_from_workers() -> None:
    jobs = list(range(3000))
    seen: list[int] = []
    pids: set[int] = set()
    for value, pid in iter_jobs(square, jobs, 10):
        seen.append(value)
        pids.add(pid)
    assert seen == [j * j for j in jobs]
    if (os.cpu_count() or 1) >= 2 and workers.can_fork():
        assert os.getpid() not in pids
    assert [v for v, _ in run_jobs(square, jobs, 10)] == seen
    assert not multiprocessing.active_children()


def test_shared_value_reaches_forked_workers() -> None:
    assert list(iter_jobs(plus_shared, list(range(500)), 10, shared=7)) == [j + 7 for j in range(500)]


def test_stopping_early_cancels_and_shuts_the_workers_down() -> None:
    jobs = list(range(200_000))
    stream = iter_jobs(square, jobs, 10)
    first = [next(stream)[0] for _ in range(5)]
    assert first == [0, 1, 4, 9, 16]
    stream.close()
    assert not multiprocessing.active_children()
    # The pool's lock is free again: another run goes through.
    assert [v for v, _ in iter_jobs(square, list(range(100)), 10)] == [j * j for j in range(100)]


def test_a_consumer_that_raises_leaves_no_worker() -> None:
    with pytest.raises(RuntimeError):
        for value, _ in iter_jobs(square, list(range(100_000)), 10):
            if value > 100:
                raise RuntimeError("consumer gives up")
    assert not multiprocessing.active_children()


def test_a_worker_exception_comes_back_in_place() -> None:
    got: list[int] = []
    with pytest.raises(JobFailed) as info:
        for value in iter_jobs(fail_at_500, list(range(2000)), 10):
            got.append(value)
    assert "ValueError: bad job 500" in str(info.value)
    assert got == list(range(500))
    assert not multiprocessing.active_children()


def test_in_process_below_the_threshold() -> None:
    pids = {pid for _, pid in iter_jobs(square, list(range(5)), 10)}
    assert pids == {os.getpid()}
    with pytest.raises(ValueError):
        list(iter_jobs(fail_at_500, [499, 500], 10))


def test_progress_reports_the_whole_run() -> None:
    calls: list[tuple[str, int, int]] = []
    run_jobs(square, list(range(1000)), 10, progress=lambda s, d, t: calls.append((s, d, t)), step="x")
    assert calls[-1] == ("x", 1000, 1000)
    assert [d for _, d, _ in calls] == sorted(d for _, d, _ in calls)


forking = pytest.mark.skipif((os.cpu_count() or 1) < 2 or not workers.can_fork(), reason="needs fork and 2 cores")


@forking
def test_kept_workers_take_the_next_streams_and_go_at_the_end() -> None:
    with workers.keep_workers():
        first = {pid for _, pid in iter_jobs(square, list(range(400)), 10)}
        # A consumer that stops early leaves the kept workers usable.
        for _ in iter_jobs(square, list(range(4000)), 10):
            break
        second = {pid for _, pid in iter_jobs(square, list(range(400)), 10)}
        # Jobs that read a shared value get workers forked for them (which inherit it).
        shared = {pid for _, pid in iter_jobs(square, list(range(400)), 10, shared=1)}
        assert workers._kept is not None
        kept = set(workers._kept._processes)  # the kept pool's processes
    assert os.getpid() not in first
    assert first | second <= kept
    assert 2 <= len(kept) <= min(os.cpu_count() or 1, 8)
    assert shared.isdisjoint(kept)
    after = {pid for _, pid in iter_jobs(square, list(range(400)), 10)}
    assert after.isdisjoint(kept)
    for pid in kept:  # shut down with the block
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_without_spawn_jobs_run_in_process_where_workers_cannot_be_forked() -> None:
    workers.use_processes(False)
    try:
        pids = {pid for _, pid in iter_jobs(square, list(range(400)), 10, spawn=False)}
    finally:
        workers.use_processes(True)
    assert pids == {os.getpid()}
