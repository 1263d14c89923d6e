"""The ``feeds`` process ends as soon as its work is done: with the status, the output and
the exit functions of a normal exit, after any thread of the program still running (a
command that failed exits the usual way)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FEEDS = [sys.executable, "-m", "feeds"]

CONFIG = """\
site:
  title: Exit
  base_url: "https://example.org/feeds/"
state: state/feeds.db
posts:
  - path: posts
"""


def _site(root: Path) -> Path:
    (root / "posts").mkdir()
    (root / "posts" / "2021-01-02-one.md").write_text(textwrap.dedent("""\
        ---
        title: One
        date: 2021-01-02 10:00:00
        tags: [news]
        ---
        Body.
        """))
    (root / "config.yaml").write_text(CONFIG)
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FEEDS, *args], cwd=root, capture_output=True, text=True, timeout=120)


def test_each_outcome_keeps_its_exit_status_and_message(tmp_path: Path) -> None:
    root = _site(tmp_path)
    done = _run(root, "generate")
    assert done.returncode == 0, done.stderr
    assert (root / "output" / "all.atom.xml").read_bytes().startswith(b"<?xml")
    assert _run(root, "generate", "--check").returncode == 0
    (root / "posts" / "2021-01-03-two.md").write_text("---\ntitle: Two\ndate: 2021-01-03\n---\nMore.\n")
    stale = _run(root, "generate", "--check")
    assert stale.returncode == 1 and "not up to date" in stale.stderr
    missing = _run(root, "generate", "--config", "nowhere.yaml")
    assert missing.returncode == 2 and "nowhere.yaml" in missing.stderr
    assert "Traceback" not in missing.stderr + stale.stderr


def test_everything_printed_reaches_a_pipe(tmp_path: Path) -> None:
    root = _site(tmp_path)
    assert _run(root, "generate").returncode == 0
    # The same lines as the command run in a process that exits the usual way.
    for args in (["status"], ["--help"]):
        quick = _run(root, *args)
        usual = subprocess.run([sys.executable, "-c", "import sys; from feeds.cli import main; sys.argv[0] = 'feeds'; "
                                "main()", *args], cwd=root, capture_output=True, text=True, timeout=120)
        assert quick.returncode == usual.returncode == 0
        assert quick.stdout == usual.stdout and quick.stdout.strip()


def test_exit_functions_run_and_a_thread_still_working_is_waited_for(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    code = textwrap.dedent(f"""\
        import atexit, sys, threading, time
        from pathlib import Path
        marks = Path({str(marks)!r})
        atexit.register(lambda: (marks / "atexit").write_text("ran"))
        def late() -> None:
            time.sleep(0.5)
            (marks / "thread").write_text("done")
        threading.Thread(target=late).start()
        sys.argv = ["feeds", "--help"]
        from feeds.cli import run_program
        run_program()
        """)
    marks.mkdir()
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and "Usage: feeds" in ran.stdout
    assert (marks / "atexit").read_text() == "ran"
    assert (marks / "thread").read_text() == "done"


def test_without_threads_the_exit_functions_still_run(tmp_path: Path) -> None:
    marks = tmp_path / "ran"
    code = (f"import atexit, sys; from pathlib import Path; atexit.register(lambda: Path({str(marks)!r})"
            ".write_text('yes')); sys.argv = ['feeds', '--help']; from feeds.cli import run_program; run_program()")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and "Usage: feeds" in ran.stdout
    assert marks.read_text() == "yes"



def test_a_job_on_a_pool_of_daemon_threads_is_let_finish(tmp_path: Path) -> None:
    """As a pool started from a daemon thread (the scheduler's) has daemon threads itself."""
    mark = tmp_path / "stored"
    code = textwrap.dedent(f"""\
        import concurrent.futures, sys, threading, time
        from pathlib import Path
        pool = concurrent.futures.ThreadPoolExecutor(2)
        def job() -> None:
            time.sleep(0.5)
            Path({str(mark)!r}).write_text("stored")
        starter = threading.Thread(target=lambda: pool.submit(job), daemon=True)
        starter.start()
        starter.join()
        sys.argv = ["feeds", "--version"]
        from feeds.cli import run_program
        run_program()
        """)
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert mark.read_text() == "stored"


@pytest.mark.parametrize("closed", ["1", "2"])
def test_a_command_started_without_stdout_or_stderr_exits_as_a_usual_exit_does(tmp_path: Path, closed: str) -> None:
    root = _site(tmp_path)
    assert _run(root, "generate").returncode == 0
    usual = f"{sys.executable} -c 'import sys; from feeds.cli import main; sys.argv[0] = \"feeds\"; main()'"
    for args in ("generate", "status", "--version"):
        quick, slow = (subprocess.run(f"{command} {args} {closed}>&-", shell=True, cwd=root, capture_output=True,
                                      text=True, timeout=120) for command in (f"{sys.executable} -m feeds", usual))
        assert quick.returncode == slow.returncode, (args, quick.stderr, slow.stderr)
        assert "flush" not in quick.stderr
