#!/usr/bin/env python3
"""Time `feeds generate` on synthetic archives, cold and again with nothing changed.

    python benchmarks/bench_generate.py [--sizes 10000 50000] [--work /tmp/feeds-bench] [--cold-only]

For each size it builds a corpus with make_corpus.py (kept between runs), then runs,
each as its own process, measuring wall time, CPU time (user + system, its workers
included) and peak memory (memwatch.py): "peak MB" is the largest RSS of any one process
(a forked worker counts the pages it shares with its parent), "tree MB" the largest sum
of proportional set sizes over the process and its workers at one time (shared pages
split between the processes sharing them: what the run as a whole holds). With
--cold-only (for big sizes, such as --sizes 200000) only the cold, baseline and Hugo
rows are run:

  cold      no state, no output
  unchanged a second run, nothing changed
  touched   1% of the posts touched (mtime only)
  edited    one post's body changed: an old post that no feed shows, then the newest
            one (in "all" and its tags); each followed by a run with it reverted
  baseline  bare_baseline.py: front matter + one Atom file per tag, the floor
  hugo      with --hugo (or `hugo` on PATH): Hugo building the same posts cold, RSS for the
            home page, every tag and category (the posts copied once into a Hugo site,
            `published: false` written as Hugo's `draft: true`)

Each run starts once the newest post file is over 2 s old: a post written less than 2 s
before it is read counts as unsettled (a later save in the same instant might not change its
size and time) and is read again by the next run, so a benchmark that runs right after
writing would time those reads twice.

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
sys.path.insert(0, str(HERE))
import installed  # noqa: E402  (beside this file)
import memwatch  # noqa: E402  (beside this file)

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


def measure(cmd: list[str], cwd: Path) -> tuple[float, float, float, float]:
    """Wall seconds, CPU seconds (user + system), peak RSS of one process (MB) and peak PSS of
    the process tree (MB) of ``cmd`` and everything it started (its worker processes)."""
    if (cwd / "_posts").is_dir():
        settled(cwd)
    usage = memwatch.run(cmd, str(cwd))
    if usage.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({usage.returncode}):\n{usage.stderr}")
    return usage.seconds, usage.cpu, usage.max_rss_mb, usage.tree_pss_mb


RACY_SECONDS = 2.0  # feeds.posts.RACY_WINDOW_NS


def settled(folder: Path) -> Path:
    """Wait until the newest post file in ``folder/_posts`` is over RACY_SECONDS old."""
    with os.scandir(folder / "_posts") as entries:
        newest = max((entry.stat().st_mtime for entry in entries), default=0.0)
    time.sleep(max(0.0, newest + RACY_SECONDS + 0.1 - time.time()))
    return folder


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


def bench(folder: Path, posts: int, hugo: str | None,
          cold_only: bool = False) -> list[tuple[str, float, float, float, float]]:
    for name in ("state", "output", "bare-output"):
        shutil.rmtree(folder / name, ignore_errors=True)
    rows = [("cold", *measure([*FEEDS, "generate", "-q"], folder))]
    if not cold_only:
        rows.extend(changes(folder))
    rows.append(("baseline", *measure([sys.executable, str(HERE / "bare_baseline.py"), "_posts", "bare-output"],
                                      folder)))
    if hugo and hugo != "none":
        hugo = str(Path(hugo).resolve()) if os.sep in hugo else hugo  # run from the Hugo site's folder
        site = hugo_site(folder)
        shutil.rmtree(site / "public", ignore_errors=True)
        shutil.rmtree(site / "resources", ignore_errors=True)
        rows.append(("hugo", *measure([hugo, "--quiet", "--logLevel", "error"], site)))
    return rows


def changes(folder: Path) -> list[tuple[str, float, float, float, float]]:
    """The runs after the cold one: nothing changed, 1% touched, one post edited and reverted."""
    rows = []
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
    return rows


def main() -> None:
    installed.compile_program()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/feeds-bench"))
    ap.add_argument("--hugo", default=shutil.which("hugo"),
                    help="the hugo binary to compare with (default: hugo on PATH; none: skipped)")
    ap.add_argument("--cold-only", action="store_true", help="only the cold run (and the floor, and Hugo)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{'posts':>7}  {'run':<13} {'seconds':>8} {'CPU s':>8} {'peak MB':>8} {'tree MB':>8} {'vs cold':>8}")
    for size in args.sizes:
        rows = bench(corpus(args.work, size), size, args.hugo, args.cold_only)
        cold = rows[0][1]
        for label, seconds, cpu, mb, tree in rows:
            print(f"{size:>7}  {label:<13} {seconds:>8.2f} {cpu:>8.2f} {mb:>8.0f} {tree:>8.0f} {seconds / cold:>8.2f}")


if __name__ == "__main__":
    main()
