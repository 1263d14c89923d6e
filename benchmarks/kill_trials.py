#!/usr/bin/env python3
"""SIGKILL `feeds generate` at many random instants and check that nothing is lost.

    python benchmarks/kill_trials.py [--trials 100] [--posts 300] [--seed 1]

FEEDS_KILL_SOURCES=40 in the environment serves 40 sources instead of 6: storing their
items takes longer, so more kills land between storing items and the end of the run.

A site with posts and sources on a loopback server has one complete run behind it;
then its sources change and posts are added. Each trial copies that site, starts
`feeds generate`, SIGKILLs it at an instant spread over the length of an uninterrupted
run, runs `feeds generate` again normally, and compares every output file byte for byte
and every entry id with the uninterrupted build. It also records worker processes the
killed run left alive. Prints one line per failing trial and a summary.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.crashsite import delays, prepared, reference_build, run_trial
from tests.httpserver import FeedServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    server = FeedServer()
    server.thread.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            site = prepared(work, server, args.posts)
            reference, ids, took = reference_build(site, work)
            print(f"uninterrupted run: {took:.2f}s, {len(reference)} files, {len(ids)} entries", flush=True)
            killed = differing = id_changes = leftovers = 0
            for n, delay in enumerate(delays(args.trials, took * 1.1, args.seed), 1):
                trial = run_trial(site, work, reference, ids, delay)
                killed += not trial.finished
                differing += not trial.same_files
                id_changes += trial.changed_ids
                leftovers += bool(trial.survivors)
                if n % 10 == 0:
                    print(f"  {n} trials done", flush=True)
                if not trial.same_files or trial.changed_ids or trial.survivors:
                    print(f"trial {n}: killed at {delay:.3f}s: {len(trial.different)} files differ "
                          f"{trial.different[:5]}, {trial.changed_ids} ids changed, "
                          f"{len(trial.survivors)} workers left")
            print(f"{args.trials} trials ({killed} killed before they ended): {differing} with differing files, "
                  f"{id_changes} changed ids, {leftovers} with workers left behind")
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
    sys.exit(1 if differing or id_changes or leftovers else 0)


if __name__ == "__main__":
    main()
