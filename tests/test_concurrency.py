"""Overlapping runs, with real processes: cron starting runs while others still work,
`feeds generate` beside `feeds run`. One writer at a time; the others wait or leave with
exit 75 and one line; the outputs end as a fresh build; never a traceback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

from feeds.lock import lock_path, writer_lock
from feeds.pipeline import generate

from .conftest import DATA, Site
from .httpserver import FeedServer, feed_response, item, rss
from .test_daemon import Running, daemon_config, wait_for

BUSY = 75


def cmd(site: Site, *args: str) -> list[str]:
    return [sys.executable, "-m", "feeds", "generate", "--config", str(site.root / "config.yaml"), *args]


def fill(site: Site) -> None:
    shutil.copy(DATA / "2021-09-03-xie-zhenhua-kerry-talks.md", site.posts)
    for n in range(1, 8):
        site.add(f"2020-01-0{n}-p{n}.md", f"---\ntitle: Post {n}\ndate: 2020-01-0{n}\ntags: [t{n % 3}, all]\n"
                                          f"categories: [c{n % 2}]\n---\nBody {n}\n")


def fresh_build(site: Site, name: str) -> dict[str, bytes]:
    other = Site(site.root.parent / name)
    shutil.copytree(site.posts, other.posts, dirs_exist_ok=True)
    other.write_config((site.root / "config.yaml").read_text())
    generate(other.config())
    return other.outputs()


def run_many(site: Site, n: int) -> list[tuple[int, str]]:
    procs = [subprocess.Popen(cmd(site, *(["--wait", "120"] if i % 2 else [])), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    return [(p.returncode, err) for p, err in zip(procs, errs, strict=True)]


def test_six_runs_at_once_on_a_new_site(make_site: Callable[[str], Site]) -> None:
    for round_ in range(2):
        site = make_site(f"site{round_}")
        fill(site)
        # Readers (no lock) create the database too: schema creation must not race.
        status = [sys.executable, "-m", "feeds", "status", "--config", str(site.root / "config.yaml")]
        readers = [subprocess.Popen(status, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                   for _ in range(2)]
        results = run_many(site, 6)
        for reader in readers:
            err = reader.communicate(timeout=300)[1]
            assert reader.returncode == 0 and err == "", err
        for code, err in results:
            assert "Traceback" not in err, err
            assert code in (0, BUSY), err
            if code == BUSY:
                lines = err.strip().splitlines()
                assert len(lines) == 1 and "another run holds the lock (pid " in lines[0], err
        assert sum(code == 0 for code, _ in results) >= 3  # every run that waited got its turn
        assert site.outputs() == fresh_build(site, f"fresh{round_}")
        assert generate(site.config(), check=True).outdated == []


def test_a_busy_lock_is_one_line_and_waiting_says_for_whom(sample_site: Site) -> None:
    site = sample_site
    generate(site.config())
    config = site.config()
    with writer_lock([lock_path(config.state_path)]):
        now = subprocess.run(cmd(site), capture_output=True, text=True, timeout=60)
        assert now.returncode == BUSY
        assert now.stderr.strip() == (f"error: {lock_path(config.state_path)}: another run holds the lock "
                                      f"(pid {os.getpid()}); try again later, or pass --wait SECONDS")
        later = subprocess.run(cmd(site, "--wait", "0.5"), capture_output=True, text=True, timeout=60)
        assert later.returncode == BUSY
        assert f"waiting for the run holding {lock_path(config.state_path)} (pid {os.getpid()})" in later.stderr
        assert "gave up after 0.5s" in later.stderr
        log = site.root / "waiting.log"
        with log.open("w") as err:
            waiting = subprocess.Popen(cmd(site, "--wait", "300"), stdout=subprocess.DEVNULL, stderr=err)
        wait_for(lambda: "waiting for" in log.read_text(), 60, "the second run to wait")
    assert waiting.wait(timeout=120) == 0
    assert "Traceback" not in log.read_text()


def test_the_output_folder_is_locked_too(sample_site: Site) -> None:
    site = sample_site
    generate(site.config())
    # A second config with its own state database, publishing into the same folder.
    other = site.root / "other.yaml"
    other.write_text((site.root / "config.yaml").read_text().replace("state: state/feeds.db",
                                                                     "state: state2/feeds.db"))
    with writer_lock([site.output.resolve()]):
        result = subprocess.run([sys.executable, "-m", "feeds", "generate", "--config", str(other)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == BUSY
    assert f"{site.output.resolve()}: another run holds the lock (pid {os.getpid()})" in result.stderr


def test_generate_beside_the_daemon(site: Site, server: FeedServer) -> None:
    server.routes["/wire.xml"] = feed_response(rss([item(1), item(2), item(3)]))
    fill(site)
    daemon_config(site, server)
    text = (site.root / "config.yaml").read_text()
    site.write_config(text.replace("generate: 1h, debounce: 0.3s", "generate: 1s, debounce: 0.1s"))
    run = Running(site)
    try:
        wait_for(lambda: (site.output / "tags/wire.atom.xml").exists(), 60, "the daemon's first generation")
        # Damage something: whoever runs next (the daemon or a one-shot) repairs it.
        (site.output / "index.html").unlink(missing_ok=True)
        for code, err in run_many(site, 3):
            assert "Traceback" not in err and code in (0, BUSY), err
    finally:
        assert run.stop() == 0
    log = run.log.read_text()
    assert "Traceback" not in log and " error " not in log, log
    assert subprocess.run(cmd(site), capture_output=True, text=True, timeout=60).returncode == 0
    assert generate(site.config(), check=True, offline=True).outdated == []
    fresh = fresh_build(site, "fresh")
    assert site.outputs() == fresh


def test_a_killed_holder_leaves_no_lock_behind(sample_site: Site) -> None:
    site = sample_site
    lock = lock_path(site.config().state_path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    code = ("import sys, time\nfrom pathlib import Path\nfrom feeds.lock import writer_lock\n"
            f"with writer_lock([Path({str(lock)!r})]):\n    print('held', flush=True)\n    time.sleep(300)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        busy = subprocess.run(cmd(site), capture_output=True, text=True, timeout=60)
        assert busy.returncode == BUSY and f"(pid {holder.pid})" in busy.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert generate(site.config(), wait=0).feeds > 0
