#!/usr/bin/env python3
"""Time `feeds generate` on synthetic archives, cold and again with nothing changed.

    python benchmarks/bench_generate.py [--sizes 10000 50000] [--work /tmp/feeds-bench]

For each size it builds a corpus with make_corpus.py (kept between runs), then runs,
each as its own process, measuring wall time, CPU time (user + system, its workers
included) and peak memory (largest RSS of the process and its workers):

  cold      no state, no output
  unchanged a second run, nothing changed
  touched   1% of the posts touched (mtime only)
  edited    one post's body changed: an old post that no feed shows, then the newest
            one (in "all" and its tags); each followed by a run with it reverted
  baseline  bare_baseline.py: front matter + one Atom file per tag, the floor
  hugo      with --hugo (or `hugo` on PATH): Hugo building the same posts cold, RSS for the
            home page, every tag and category (the posts copied once into a Hugo site,
            `published: false` written as Hugo's `draft: true`)

Compare the ratios within one run; absolute seconds vary between machines and runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HUGO_CONFIG = """\
baseURL: "https://example.org/feeds/"
title: Bench
timeZone: Asia/Singapore
disableKinds: [sitemap, robotsTXT, 404]
taxonomies: {tag: tags, category: categories}
services: {rss: {limit: 50}}
markup: {goldmark: {renderer: {unsafe: true}}}
outputs: {home: [rss], section: [rss], taxonomy: [rss], term: [rss], page: []}
"""
FEEDS = [sys.executable, "-m", "feeds"]
CONFIG = """\
site:
  title: Bench
  base_url: "https://example.org/feeds/"
  timezone: Asia/Singapore
output:
  formats: [atom, rss, json]
posts:
  - path: _posts
    clean:
      remove: ["section#imu", "[id^=dfp-ad]", "[id^=innity]", ".ad-slot", "a[href*='/promotions/']"]
"""


def measure(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of ``cmd`` and everything
    it started and waited for (its worker processes)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def corpus(work: Path, posts: int) -> Path:
    folder = work / f"corpus-{posts}"
    if not (folder / "_posts").is_dir():
        subprocess.run([sys.executable, str(HERE / "make_corpus.py"), str(folder), "--posts", str(posts)],
                       check=True)
    (folder / "config.yaml").write_text(CONFIG)
    return folder


def hugo_site(folder: Path) -> Path:
    """A Hugo site holding a copy of the corpus' posts (made once, kept between runs)."""
    site = folder / "hugo-site"
    content = site / "content" / "posts"
    if not content.is_dir():
        partial = site / "content" / "posts.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for path in sorted((folder / "_posts").iterdir()):
            data = path.read_bytes().replace(b"\npublished: false\n", b"\ndraft: true\n", 1)
            (partial / path.name).write_bytes(data)
        partial.rename(content)
    (site / "hugo.yaml").write_text(HUGO_CONFIG)
    return site


def bench(folder: Path, posts: int, hugo: str | None) -> list[tuple[str, float, float, float]]:
    for name in ("state", "output", "bare-output"):
        shutil.rmtree(folder / name, ignore_errors=True)
    rows = [("cold", *measure([*FEEDS, "generate", "-q"], folder))]
    rows.append(("unchanged", *measure([*FEEDS, "generate", "-q"], folder)))
    names = sorted(os.listdir(folder / "_posts"))
    for name in names[:: 100]:
        os.utime(folder / "_posts" / name)
    rows.append(("touched 1%", *measure([*FEEDS, "generate", "-q"], folder)))
    # A post no feed shows any more (an old one), then the newest post, shown by "all" and its tags.
    for label, name in (("edited old", names[len(names) // 2]), ("edited new", names[-1])):
        edited = folder / "_posts" / name
        original = edited.read_bytes()
        edited.write_bytes(original + b"\n<p>An added paragraph.</p>\n")
        try:
            rows.append((label, *measure([*FEEDS, "generate", "-q"], folder)))
        finally:
            edited.write_bytes(original)
        rows.append((label.replace("edited", "reverted"), *measure([*FEEDS, "generate", "-q"], folder)))
    rows.append(("baseline", *measure([sys.executable, str(HERE / "bare_baseline.py"), "_posts", "bare-output"],
                                      folder)))
    if hugo:
        site = hugo_site(folder)
        shutil.rmtree(site / "public", ignore_errors=True)
        shutil.rmtree(site / "resources", ignore_errors=True)
        rows.append(("hugo", *measure([hugo, "--quiet", "--logLevel", "error"], site)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/feeds-bench"))
    ap.add_argument("--hugo", default=shutil.which("hugo"),
                    help="the hugo binary to compare with (default: hugo on PATH; none: skipped)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{'posts':>7}  {'run':<13} {'seconds':>8} {'CPU s':>8} {'peak MB':>8} {'vs cold':>8}")
    for size in args.sizes:
        rows = bench(corpus(args.work, size), size, args.hugo)
        cold = rows[0][1]
        for label, seconds, cpu, mb in rows:
            print(f"{size:>7}  {label:<13} {seconds:>8.2f} {cpu:>8.2f} {mb:>8.0f} {seconds / cold:>8.2f}")


if __name__ == "__main__":
    main()
