"""Golden pairs for the stage tests: an input file beside the output it must give.

A test compares what a stage makes now with the file under ``tests/data/stages/``
and fails on any difference. To accept a deliberate change, regenerate them:

    UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/test_stage_*.py

then read the diff (``git diff tests/data/stages``) before committing it.
Rendered feeds are compared byte for byte; JSON expectations as data, so that
their layout can be edited by hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

STAGES = Path(__file__).resolve().parent / "data" / "stages"
UPDATE = bool(os.environ.get("UPDATE_GOLDEN"))
HOW = "regenerate with UPDATE_GOLDEN=1 and review the diff"


def plain(value: Any) -> Any:
    """``value`` as JSON data: records as objects (field order kept), dates as ISO text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(plain(v) for v in value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def check_json(path: Path, value: Any) -> None:
    """``value`` (made :func:`plain`) equals the JSON in ``path``."""
    got = plain(value)
    if UPDATE:
        path.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert path.exists(), f"{path} is missing: {HOW}"
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert got == expected, f"{path.relative_to(STAGES)} differs: {HOW}"


def check_bytes(path: Path, data: bytes) -> None:
    """``data`` is exactly the bytes of ``path``."""
    if UPDATE:
        path.write_bytes(data)
    assert path.exists(), f"{path} is missing: {HOW}"
    assert data == path.read_bytes(), f"{path.relative_to(STAGES)} differs: {HOW}"
