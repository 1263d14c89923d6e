#!/usr/bin/env python3
"""Run a command and report its wall time, CPU time and peak memory, workers included.

    memwatch.py [--timeline] -- CMD [ARGS...]

Peak memory is given three ways, sampled every 50 ms over the command and every process
it starts (its worker processes):

  max RSS   the largest resident size of any one process (what the kernel's rusage
            reports; a forked worker counts the pages it shares with its parent)
  tree RSS  the largest sum of resident sizes over the process tree at one time (pages
            shared between a parent and its forked workers counted in each)
  tree PSS  the largest sum of proportional set sizes (each shared page split between
            the processes sharing it): the memory the run as a whole holds

Linux only (reads /proc). With --timeline, each sample where the tree's PSS grew by
10 MB or more is printed to stderr as seconds since start and MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

INTERVAL = 0.05


@dataclass
class Usage:
    seconds: float
    cpu: float
    max_rss_mb: float
    tree_rss_mb: float
    tree_pss_mb: float
    returncode: int
    stderr: str
    #: PSS (MB) of each process (the command first) when the tree's PSS peaked.
    split: tuple[int, ...] = ()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(_children(p))
    return pids


def _rollup(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB; (0, 0) when it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, pss


def run(cmd: list[str], cwd: str | None = None, *, timeline: bool = False,
        stdout: int | None = subprocess.DEVNULL) -> Usage:
    """Run ``cmd`` to its end, sampling its process tree's memory."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE)
    peak = {"rss": 0, "pss": 0}
    split: list[int] = []
    stop = threading.Event()
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else b""))
    reader.start()

    def sample() -> None:
        shown = 0
        while not stop.is_set():
            rss = pss = 0
            each = []
            for p in _tree(proc.pid):
                r, s = _rollup(p)
                rss, pss = rss + r, pss + s
                each.append(s)
            if pss > peak["pss"]:
                split[:] = each
            peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)
            if timeline and pss - shown >= 10_240:
                shown = pss
                print(f"  {time.perf_counter() - started:7.2f}s  tree PSS {pss / 1024:7.0f} MB", file=sys.stderr)
            stop.wait(INTERVAL)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    reader.join()
    return Usage(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, peak["rss"] / 1024,
                 peak["pss"] / 1024, os.waitstatus_to_exitcode(status), b"".join(err).decode(errors="replace"),
                 tuple(round(s / 1024) for s in split))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeline", action="store_true", help="print the tree's PSS as it grows")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command")
    usage = run(cmd, timeline=args.timeline, stdout=None)
    sys.stderr.write(usage.stderr)
    print(f"wall {usage.seconds:.2f} s  CPU {usage.cpu:.2f} s  max RSS {usage.max_rss_mb:.0f} MB  "
          f"tree RSS {usage.tree_rss_mb:.0f} MB  tree PSS {usage.tree_pss_mb:.0f} MB "
          f"({' + '.join(map(str, usage.split))})  exit {usage.returncode}")
    sys.exit(usage.returncode)


if __name__ == "__main__":
    main()
