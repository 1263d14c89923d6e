"""Crash safety with real processes and real signals: SIGKILL at random instants loses
nothing (outputs and ids equal an uninterrupted build after one normal run), workers die
with their parent, and posts saved while a run reads them never poison its caches."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .crashsite import alive, delays, prepared, reference_build, run_trial
from .httpserver import FeedServer
from .safety import ROOT, cli, make_site, outputs, post_text, write_posts

TRIALS = 8


def test_sigkill_at_random_instants_then_a_normal_run_equals_an_uninterrupted_build(
        tmp_path: Path, server: FeedServer) -> None:
    site = prepared(tmp_path, server, posts=60)
    reference, ids, took = reference_build(site, tmp_path)
    failures = []
    for delay in delays(TRIALS, took * 1.1, seed=9):
        trial = run_trial(site, tmp_path, reference, ids, delay)
        if not trial.same_files or trial.changed_ids or trial.survivors:
            failures.append(trial)
    assert not failures, failures


def _worker_pids(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="worker processes need Linux /proc and two cores")
def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", 0)
    write_posts(root / "posts", 2100, per_folder=500)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "feeds", "generate", "--offline", "-q", "--config",
                                 str(root / "config.yaml")], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        workers: list[int] = []
        while proc.poll() is None and len(workers) < 2:
            workers = _worker_pids(proc.pid)
            time.sleep(0.002)
        if proc.poll() is None:
            time.sleep(0.05)
            workers = sorted(set(workers) | set(_worker_pids(proc.pid)))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            break
        proc.wait()
        shutil.rmtree(root / "state")  # it finished before its workers were seen: again, from scratch
    else:
        pytest.skip("the run never had worker processes to kill")
    assert workers
    until = time.monotonic() + 30  # the kernel kills them at once; this only bounds the wait
    while any(alive(p) for p in workers) and time.monotonic() < until:
        time.sleep(0.02)
    survivors = [p for p in workers if alive(p)]
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    assert not survivors


def test_posts_saved_during_runs_never_poison_the_caches(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", 60, per_folder=20)
    assert cli(root).returncode == 0
    victims = sorted((root / "posts").rglob("*.md"))[::3]
    stop = threading.Event()
    counter = [0]

    def edit() -> None:
        # Rewrites in place (same size or not), as editors and sync tools do, as fast as it can.
        while not stop.is_set():
            for path in victims:
                counter[0] += 1
                i = int(path.stem.rsplit("-", 1)[1])
                version = counter[0] % 7
                body = f"Version {version} of post {i}." + ("!" * (counter[0] % 3))
                text = post_text(i, tag=f"v{version % 2}", body=body)
                with open(path, "r+b") as f:  # not atomic: a reader can see it half written
                    f.truncate(0)
                    f.write(text.encode())
            time.sleep(0.001)

    editor = threading.Thread(target=edit)
    editor.start()
    try:
        for _ in range(6):
            result = cli(root)
            assert result.returncode == 0, result.stderr
    finally:
        stop.set()
        editor.join()
    assert counter[0] > len(victims)
    # The edits are over; one normal run, then the result must be a fresh build's.
    assert cli(root).returncode == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(root / "config.yaml", fresh)
    shutil.copytree(root / "posts", fresh / "posts")
    assert cli(fresh).returncode == 0
    assert outputs(root) == outputs(fresh)
    assert cli(root, "generate", "--offline", "--check").returncode == 0
