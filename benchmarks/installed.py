"""The program as installed: its modules compiled to bytecode before anything is timed.

An installed package (``pip install .``) carries its bytecode; an editable checkout gets it
on its first run, unless PYTHONDONTWRITEBYTECODE is set, in which case every run would
compile every module again and the start-up times would measure the compiler. The
benchmarks call :func:`compile_program` first so that they time what users run.
"""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "feeds"


def compile_program() -> None:
    """Write the bytecode of every module of the package that lacks it (or has a stale one)."""
    if not compileall.compile_dir(str(PACKAGE), quiet=1):
        raise SystemExit(f"cannot compile {PACKAGE}")
