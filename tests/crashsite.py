"""Kill trials: SIGKILL a real ``feeds generate`` at a random instant, run it again
normally, and compare every output file and every entry id with an uninterrupted build.

The site has posts (half with a link, half named by content, so the id ledger is
exercised) and sources served from a loopback server. Before each trial the site has
a complete earlier run; then the sources change (new and edited items), so the killed
run has real work pending: items to store, and a nothing-changed shortcut to avoid.
Used by tests/test_crash.py (a few trials) and benchmarks/kill_trials.py (many).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .httpserver import FeedServer, feed_response, item, rss
from .safety import ROOT, cli, entry_ids, outputs, write_config, write_posts

SOURCES = int(os.environ.get("FEEDS_KILL_SOURCES", "6"))
ITEMS = 25


def serve(server: FeedServer, version: int) -> None:
    """Every source's feed as it is at ``version``: items are added and edited over time."""
    for s in range(SOURCES):
        items = [item(s * 1000 + n, description=f"Text {n} of source {s}, version {version if n % 5 == 0 else 0}.")
                 for n in range(ITEMS + version * 3)]
        server.routes[f"/feed{s}.xml"] = feed_response(rss(items, title=f"Source {s}"), etag=f'"v{version}"')


def sources_config(server: FeedServer) -> str:
    lines = ["fetch:", "  host_gap: 0", "sources:"]
    for s in range(SOURCES):
        lines += [f"  - name: src{s}", f"    url: {server.url(f'/feed{s}.xml')}", "    every: 1s",
                  f"    tags: [Source{s % 2}]"]
    return "\n".join(lines) + "\n"


def prepared(base: Path, server: FeedServer, posts: int) -> Path:
    """A site after one complete run at version 0, then changed: sources at version 1 and
    more posts. Returns the site folder (to be copied for each trial)."""
    site = base / "prepared"
    site.mkdir(parents=True)
    write_config(site, extra=sources_config(server))
    write_posts(site / "posts", posts, per_folder=50)
    serve(server, 0)
    result = cli(site, "generate")
    assert result.returncode == 0, result.stderr
    # Only the sources change: a run killed after storing their items but before noting that
    # items changed would leave the next run nothing-changed (and the items unpublished).
    serve(server, 1)
    time.sleep(1.1)  # the sources are due again (every: 1s)
    return site


@dataclass
class Trial:
    delay: float
    #: The killed run had ended by itself before the signal.
    finished: bool
    same_files: bool
    different: list[str]
    changed_ids: int
    #: Processes the killed run left behind (workers).
    survivors: list[int]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_trial(prepared_site: Path, work: Path, reference: dict[str, bytes], reference_ids: dict[str, str],
              delay: float) -> Trial:
    site = work / "trial"
    if site.exists():
        shutil.rmtree(site)
    shutil.copytree(prepared_site, site, symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "feeds", "generate", "-q", "--config", str(site / "config.yaml")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        seen.update(_children(proc.pid))
        time.sleep(0.005)
    finished = proc.poll() is not None
    if not finished:
        seen.update(_children(proc.pid))
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Workers get SIGKILL from the kernel when their parent dies; give them a moment to go.
    until = time.monotonic() + 10
    while any(alive(p) for p in seen) and time.monotonic() < until:
        time.sleep(0.02)
    survivors = [p for p in seen if alive(p)]
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    result = cli(site, "generate")
    assert result.returncode == 0, result.stderr
    got = outputs(site)
    different = sorted(name for name in reference.keys() | got.keys() if reference.get(name) != got.get(name))
    ids = entry_ids(site)
    changed = sum(1 for title, i in reference_ids.items() if ids.get(title) != i) + len(ids.keys() - reference_ids)
    return Trial(delay, finished, not different, different, changed, survivors)


def reference_build(prepared_site: Path, work: Path) -> tuple[dict[str, bytes], dict[str, str], float]:
    """Outputs and ids of an uninterrupted run from the prepared state, and how long it took."""
    site = work / "reference"
    shutil.copytree(prepared_site, site, symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "feeds", "generate", "-q", "--config", str(site / "config.yaml")],
                   env=env, check=True)
    took = time.monotonic() - started
    return outputs(site), entry_ids(site), took


def delays(n: int, longest: float, seed: int) -> list[float]:
    """``n`` kill instants spread over a run: one per slice, placed at random within it."""
    rng = random.Random(seed)
    return [longest * (i + rng.random()) / n for i in range(n)]
