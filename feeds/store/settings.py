"""The settings (table ``settings``): small values kept between runs, each under its key.

Two layers. The raw one reads and writes a key's text (:func:`get`, :func:`put`,
:func:`get_json`); the typed one is built on it, and outside this module only the
store's raw methods (what the tests check stored formats with) call it. The typed
one owns each key the program keeps, in the format it has always been stored in (byte
for byte, so that existing databases keep working):

- ``last_run``: :class:`LastRun`, a JSON object (``feeds.unchanged`` reads it too, with
  the standard library's sqlite3, before the program is loaded);
- ``post_inputs``: how many posts each posts input had last time, a JSON object;
- ``health``: when each source problem was first seen, a JSON object;
- ``output_dir``: the output folder the output records are of, as text;
- ``items_version``: changes whenever stored items do (random hex);
- ``schema_version``: the schema's version, as decimal text (:mod:`.schema`'s).

A value that cannot be read back is a garbled settings row
(:class:`DamagedStateError`). Runs inside the caller's transaction and never
commits; touches no other table.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .codecs import decoding
from .dialects import upsert
from .records import LastRun
from .schema import settings

LAST_RUN = "last_run"
INPUT_COUNTS = "post_inputs"
HEALTH_SINCE = "health"
OUTPUT_DIR = "output_dir"
ITEMS_VERSION = "items_version"

# -- the raw layer -------------------------------------------------------------


def get(conn: Connection, key: str) -> str | None:
    row = conn.execute(sa.select(settings.c.value).where(settings.c.key == key)).first()
    return str(row[0]) if row else None


def put(conn: Connection, key: str, value: str) -> None:
    # One upsert, not a delete and an insert: two workers on one PostgreSQL state setting the
    # same key at once would both delete, then collide on the insert.
    upsert(conn, settings, [(key, value)])


def get_json(conn: Connection, key: str) -> dict[str, Any] | None:
    """A setting stored as a JSON object, or None when it is not set."""
    text = get(conn, key)
    if text is None:
        return None
    with decoding("settings"):
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(f"{key} is not a JSON object")
        return value


# -- the typed layer -------------------------------------------------------------


def load_last_run(conn: Connection) -> LastRun | None:
    stored = get_json(conn, LAST_RUN)
    if stored is None:
        return None
    with decoding("settings"):
        return last_run_from_dict(stored)


def last_run_from_dict(d: dict[str, Any]) -> LastRun:
    """A stored ``last_run``: each field there must have its type; one not there (as in
    what :func:`forget_last_run` writes) gets its default."""
    warnings = d.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise TypeError("last_run warnings are not a list of text")
    snapshot = d.get("snapshot", "")
    if not isinstance(snapshot, str):
        raise TypeError("last_run snapshot is not text")
    quick = d.get("quick", "")
    if not isinstance(quick, str):
        raise TypeError("last_run quick is not text")
    return LastRun(snapshot=snapshot, outputs=_count(d, "outputs"), feeds=_count(d, "feeds"),
                   posts=_count(d, "posts") or 0, drafts=_count(d, "drafts") or 0,
                   entries=_count(d, "entries") or 0, warnings=tuple(warnings), quick=quick)


def _count(d: dict[str, Any], key: str) -> int | None:
    value = d.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"last_run {key} is not a whole number")
    return value


def save_last_run(conn: Connection, run: LastRun) -> None:
    put(conn, LAST_RUN, json.dumps({
        "snapshot": run.snapshot, "outputs": run.outputs, "feeds": run.feeds, "posts": run.posts,
        "drafts": run.drafts, "entries": run.entries, "warnings": list(run.warnings),
        **({"quick": run.quick} if run.quick else {})}, ensure_ascii=False))


def forget_last_run(conn: Connection) -> None:
    """Make the next run do the work, even if no input's size or mtime moved."""
    put(conn, LAST_RUN, json.dumps({"snapshot": ""}))


def load_input_counts(conn: Connection) -> dict[str, int]:
    """Posts found in each posts input (by its configured path) last time; {} if never saved."""
    stored = get_json(conn, INPUT_COUNTS) or {}
    return {k: v for k, v in stored.items() if isinstance(v, int)}


def save_input_counts(conn: Connection, counts: dict[str, int]) -> None:
    put(conn, INPUT_COUNTS, json.dumps(counts, ensure_ascii=False))


def load_health_since(conn: Connection) -> dict[str, str]:
    """When each source problem (by its key) was first seen, as ISO 8601 text; {} if never saved."""
    stored = get_json(conn, HEALTH_SINCE) or {}
    return {k: v for k, v in stored.items() if isinstance(v, str)}


def save_health_since(conn: Connection, since: dict[str, str]) -> None:
    put(conn, HEALTH_SINCE, json.dumps(since, ensure_ascii=False))


def load_output_dir(conn: Connection) -> str | None:
    return get(conn, OUTPUT_DIR)


def save_output_dir(conn: Connection, where: str) -> None:
    put(conn, OUTPUT_DIR, where)


def items_version(conn: Connection) -> str | None:
    """Changes in every transaction that changes items (None: items never changed)."""
    return get(conn, ITEMS_VERSION)


def note_items_changed(conn: Connection) -> None:
    """Mark, in the transaction that changes items, that they changed: whatever a run
    stores, the next generation sees (a kill between the two cannot split them)."""
    put(conn, ITEMS_VERSION, uuid.uuid4().hex)
