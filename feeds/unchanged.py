"""The quick nothing-changed check of ``feeds generate``, run before the program is loaded.

A run of ``feeds generate`` in which no input changed replays the last run's report
(``pipeline.replay_if_unchanged``). Loading the program to find that out (the settings
model, the store, the renderers) takes longer than the check itself, so the command
line first tries this module, which needs only the standard library, the post scanner
and the lock:

- the full run records, beside its last-run record in the state database, what this
  check needs (:func:`make_record`): a fingerprint of everything loading the config
  depends on (its exact bytes, its path, the working folder, ``HOME``, the program's
  version and files), where the state database, the lock, the output folder and the
  posts inputs are, the real paths the config check resolved, the stored items'
  version, a digest of every post file's name, size and mtime, the templates' stats,
  and the run's snapshot;
- :func:`replay` finds the state database from the config's ``state:`` line, opens it
  read-only, takes the same writer lock as a run, scans the posts inputs with the same
  scanner and compares all of that, and every recorded output file's size and mtime,
  exactly as the full run would. Only if all of it matches (so the full run would have
  replayed) does it replay the report; anything it cannot tell cheaply (an input that
  vanished or shrank, a config with sources, a database it cannot read, a record of an
  older version) sends the command to the full run, which decides as always.

The SQL here only reads the ``settings`` and ``outputs`` tables, read-only; the store
writes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import sys
import time
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, unquote

from . import __version__
from .errors import FeedsError
from .lock import lock_path, writer_lock
from .render.templates import template_stats

if TYPE_CHECKING:
    from .config import Config
    from .posts import PostScan
    from .posts.inputs import FoundFile
    from .store.records import PostRow

log = logging.getLogger("feeds")

#: The version of the record's format; a record of another is not read.
FORMAT = 2
#: How long reading the database waits for a writer's transaction (seconds).
READ_TIMEOUT = 5.0
_PACKAGE = Path(__file__).resolve().parent
# A top-level ``state:`` line: its value.
_STATE_LINE = re.compile(r"^state[ \t]*:[ \t]*(.*?)[ \t]*$", re.MULTILINE)


class Undecided(Exception):
    """Something this check cannot tell cheaply: the full run decides."""


# -- what the full run records ---------------------------------------------------------


def fingerprint(config_name: str, data: bytes) -> str:
    """A hash of everything loading the config at ``config_name`` (as given on the command
    line) depends on: its bytes, where it is, the home folder, the program itself."""
    parts = [FORMAT, __version__, sys.version, sys.prefix, config_name, os.path.abspath(config_name), os.getcwd(),
             os.environ.get("HOME"), hashlib.sha256(data).hexdigest(), _code_stamp()]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def _code_stamp() -> list[tuple[str, int, int]]:
    """Name, size and mtime of every module of the program: an edited or upgraded
    program may decide otherwise than the one that made the record."""
    found = []
    stack = [_PACKAGE]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in sorted(it, key=lambda e: e.name):
                if entry.is_dir() and entry.name != "__pycache__":
                    stack.append(Path(entry.path))
                elif entry.name.endswith(".py"):
                    st = entry.stat()
                    found.append((os.path.relpath(entry.path, _PACKAGE), st.st_size, st.st_mtime_ns))
    return found


def files_digest(files: Sequence[FoundFile]) -> str:
    """A hash of every post file's input index, name, mtime_ns and size, in scan order.

    Each field is hashed as one column (the numbers as 8-byte machine words, the names
    joined by NUL, which no file name holds), after the count: the same files give the
    same hash, and a run over 50,000 posts makes no string per file."""
    posts = list(map(_FILE, files))
    digest = hashlib.sha1(len(posts).to_bytes(8, "little"))
    digest.update(array("q", map(_FOLDER, files)).tobytes())
    digest.update(array("q", map(_MTIME, posts)).tobytes())
    digest.update(array("q", map(_SIZE, posts)).tobytes())
    digest.update("\0".join(map(_NAME, posts)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


_FOLDER, _FILE = itemgetter(0), itemgetter(1)
_NAME, _MTIME, _SIZE = itemgetter(1), itemgetter(2), itemgetter(3)  # of a PostFile


def _home() -> str | None:
    try:
        return str(Path.home())
    except (RuntimeError, KeyError):
        return None


def _real_paths(paths: Iterable[str]) -> dict[str, list[object]]:
    """Each path's real path and whether something stands there: what the config's check
    of ``output.dir`` and the posts paths resolved."""
    return {p: [os.path.realpath(p), os.path.lexists(p)] for p in paths}


def _glob_fixed(path: Path) -> Path:
    parts = []
    for part in path.parts:
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def make_record(config: Config, *, snapshot: str, items_version: str | None, files: str,
                templates: Path | None, stats: Sequence[tuple[str, int, int]], schema_version: str | None) -> str:
    """What :func:`replay` needs to tell that a run with ``config`` would replay the run
    whose snapshot is ``snapshot`` (JSON); "" when it cannot tell (sources are configured,
    or the config file no longer reads back as ``config``)."""
    if config.sources_opml or not snapshot or config.state_on_server:
        return ""  # the sources an OPML file lists are read with the config: not in its bytes
    if config.output.s3 is not None:
        return ""  # the bucket is published to by the full run (which retries a failed publication)
    name = config.where("")[0]
    try:
        data = Path(name).read_bytes()
        from .config import parse_config

        again = parse_config(data.decode("utf-8"), name=name, root=config.root)
    except (OSError, UnicodeDecodeError, FeedsError):
        return ""
    if again.root != config.root or again.model_dump(mode="json") != config.model_dump(mode="json"):
        return ""  # the file changed since the run loaded it
    posts = [config.resolve(p.path) for p in config.posts]
    checked = [config.output_dir, config.state_path, *posts, *(_glob_fixed(p) for p in posts),
               *([templates] if templates is not None else [])]
    home = _home()
    return json.dumps({
        "format": FORMAT,
        "config": fingerprint(name, data),
        "state": os.path.abspath(config.state_path),
        "output_dir": str(config.output_dir),
        "output_where": str(config.output_dir.resolve()),
        "root": str(config.root),
        "posts": [[p.path, p.optional] for p in config.posts],
        "home": home,
        "real": _real_paths([str(p) for p in checked] + ([home] if home else [])),
        "templates": str(templates) if templates is not None else None,
        "template_stats": [list(t) for t in stats],
        "items_version": items_version,
        "files": files,
        "schema": schema_version,
        "snapshot": snapshot,
        # The enabled sources, to tell whether one is due (None: no sources configured).
        "sources": [[s.name, s.url] for s in config.sources if s.enabled] if config.sources else None,
    }, ensure_ascii=False)


def with_sources_state(quick: str, state: Path) -> str:
    """The quick record ``quick`` with the state of the sources as stored now (a digest of
    the ``sources`` table and of when each problem was first seen, which is what the status
    files are made from), when it has sources; called once the run stored them."""
    if not quick:
        return quick
    record = json.loads(quick)
    if record.get("sources") is None:
        return quick
    try:
        conn = _connect(state)
        try:
            with conn:
                conn.execute("BEGIN")
                record["sources_state"] = _sources_state(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return ""  # the next quick check cannot tell: the full run decides
    return json.dumps(record, ensure_ascii=False)


def _sources_state(conn: sqlite3.Connection) -> str:
    rows = conn.execute("SELECT * FROM sources ORDER BY name").fetchall()
    health = conn.execute("SELECT value FROM settings WHERE key = 'health'").fetchall()
    return hashlib.sha256(repr((rows, health)).encode()).hexdigest()


# -- the check ---------------------------------------------------------------------------


@dataclass
class Replayed:
    """The last run's report, as the command line prints it (the fields of ``pipeline.Report``
    it reads)."""

    posts: int
    drafts: int
    entries: int
    feeds: int
    warnings: list[str]
    parsed: int = 0
    unchanged: int = 0
    sources: tuple[()] = ()
    written: tuple[()] = ()
    removed: tuple[()] = ()
    errors: tuple[()] = ()
    outdated: tuple[()] = ()

    def __post_init__(self) -> None:
        self.unchanged = self.feeds


class _Input(NamedTuple):
    path: str
    optional: bool


class _Settings(NamedTuple):
    """The posts inputs and the config's folder, as the scan reads them from the config."""

    posts: Sequence[_Input]
    root: Path


class _NoRows:
    """The post cache, which only an input that vanished or shrank needs: not here."""

    def rows(self) -> Mapping[str, PostRow]:
        raise Undecided("an input vanished or shrank")


@dataclass
class _Notes:
    """The scan's warnings, as the run's report takes them (each once, in order)."""

    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def error(self, message: str) -> None:
        self.errors.append(message)


def state_file(config_path: Path, text: str) -> Path | None:
    """The state database the config at ``config_path`` most likely names, from its
    top-level ``state:`` line (the default without one); None for anything unusual.
    A wrong guess costs only the quick check: the record found there must name this
    config, byte for byte, and this database."""
    lines = _STATE_LINE.findall(text)
    if len(lines) > 1:
        return None
    value = lines[0] if lines else "state/feeds.db"
    if " #" in value:
        value = value[:value.index(" #")].rstrip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
        if "\\" in value or "'" in value or '"' in value:
            return None
    if "://" in value:
        if not value.startswith("sqlite:///") or "?" in value:
            return None
        value = unquote(value[len("sqlite:///"):])
    if not value or value[0] in "{[&*!|>%@`#'\"":
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else config_path.parent / path


def _connect(path: Path) -> sqlite3.Connection:
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=READ_TIMEOUT)


def _settings(conn: sqlite3.Connection) -> dict[str, str]:
    wanted = ("last_run", "post_inputs", "output_dir", "items_version", "schema_version")
    rows = conn.execute(f"SELECT key, value FROM settings WHERE key IN ({', '.join('?' * len(wanted))})", wanted)
    return {str(k): v for k, v in rows if isinstance(v, str)}


def _json_object(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text is not None else None
    if not isinstance(value, dict):
        raise Undecided("not a JSON object")
    return value


def _last_run(settings: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The last-run record and the quick record in it."""
    last = _json_object(settings.get("last_run"))
    quick = last.get("quick")
    if not isinstance(quick, str) or not quick:
        raise Undecided("no quick record")
    record = _json_object(quick)
    if record.get("format") != FORMAT:
        raise Undecided("a record of another format")
    return last, record


def _count(last: Mapping[str, Any], key: str) -> int:
    value = last.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Undecided(f"last_run {key} is not a whole number")
    return value


def replay(config_path: Path, *, wait: float | None, offline: bool = False,
           scans: dict[tuple[str, str], PostScan] | None = None) -> Replayed | None:
    """The last run's report when a full run over the config at ``config_path`` (with
    ``--offline`` if ``offline``) would replay it (the same lock held meanwhile:
    :class:`~feeds.errors.Busy` as a run raises it); None when the full run must decide.

    ``scans`` gets what the posts inputs held (by input path and config folder), for the
    full run to take instead of scanning them again."""
    try:
        data = config_path.read_bytes()
        text = data.decode("utf-8")
        state = state_file(config_path, text)
        if state is None or not state.is_file():
            return None
        # First a look without the lock, to know what to lock (and not to wait for nothing).
        conn = _connect(state)
        try:
            _, record = _last_run(_settings(conn))
        finally:
            conn.close()
        if record.get("config") != fingerprint(str(config_path), data) or \
                record.get("state") != os.path.abspath(state):
            return None
        output_dir = Path(record["output_dir"])
        locks = [lock_path(state), *([output_dir] if output_dir.is_dir() else [])]
        with writer_lock(locks, wait=wait):
            return _replay_locked(state, record, offline=offline, scans=scans)
    except (Undecided, OSError, sqlite3.Error, ValueError, TypeError, KeyError, LookupError) as exc:
        log.debug("the quick check cannot tell (%s): the full run decides", exc)
        return None


def _replay_locked(state: Path, record: Mapping[str, Any], *, offline: bool,
                   scans: dict[tuple[str, str], PostScan] | None) -> Replayed | None:
    conn = _connect(state)
    sources_state: str | None = None
    due = False
    try:
        with conn:  # one read transaction: what a writer commits meanwhile is all or nothing
            conn.execute("BEGIN")
            settings = _settings(conn)
            outputs = [(str(p), int(size), int(mtime)) for p, size, mtime in
                       conn.execute("SELECT path, size, mtime_ns FROM outputs")]
            if record.get("sources") is not None:
                sources_state = _sources_state(conn)
                due = not offline and _any_due(conn, record["sources"])
    finally:
        conn.close()
    last, again = _last_run(settings)
    if record.get("sources") is not None and (due or sources_state != again.get("sources_state")):
        return None  # a source is to be fetched, or its state moved on since (the status files follow it)
    if again != record or not last.get("snapshot") or last.get("snapshot") != record["snapshot"]:
        return None
    if settings.get("schema_version") != record["schema"] or settings.get("items_version") != record["items_version"]:
        return None
    output_dir = Path(record["output_dir"])
    if str(output_dir.resolve()) != record["output_where"] or \
            settings.get("output_dir") not in (None, record["output_where"]):
        return None
    if _home() != record["home"] or _real_paths(record["real"]) != record["real"]:
        return None
    templates = record["templates"]
    if [list(t) for t in template_stats(Path(templates) if templates is not None else None)] \
            != record["template_stats"]:
        return None
    outputs_count = _count(last, "outputs")
    if len(outputs) != outputs_count or not _as_recorded(output_dir, outputs):
        return None
    notes = _Notes()
    if not _same_posts(record, settings, notes, scans):
        return None
    warnings = list(notes.warnings)
    replayed = last.get("warnings", [])
    if not isinstance(replayed, list) or not all(isinstance(w, str) for w in replayed):
        return None
    warnings += [w for w in replayed if w not in warnings]
    feeds = last.get("feeds")
    return Replayed(posts=_count(last, "posts"), drafts=_count(last, "drafts"), entries=_count(last, "entries"),
                    feeds=outputs_count if feeds is None else _count(last, "feeds"), warnings=warnings)


def _as_recorded(output_dir: Path, outputs: Sequence[tuple[str, int, int]]) -> bool:
    """Whether every recorded output still has its size and mtime, as ``output.run.as_recorded``
    tells (a symlink in place of a file is a change)."""
    from .output.publish import safe_target

    folders: dict[Path, Path] = {}  # safe_target resolves each file's folder: once per folder here
    for relative, size, mtime_ns in outputs:
        lexical = output_dir / relative
        try:
            if lexical.parent not in folders:
                folders[lexical.parent] = safe_target(output_dir, relative).parent
            elif lexical.name in ("", ".", ".."):
                safe_target(output_dir, relative)  # refuses it
            st = os.lstat(folders[lexical.parent] / lexical.name)
        except OSError:
            return False
        except FeedsError:
            raise Undecided(f"{relative}: outside the output folder") from None
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            return False
    return True


#: A source due this close (seconds) to now is taken as due.
DUE_MARGIN = 1.0


def _any_due(conn: sqlite3.Connection, sources: Sequence[Sequence[str]]) -> bool:
    """Whether a run now would fetch one of the enabled ``sources`` (name, URL): one never
    fetched, fetched at another URL, or due (as ``sources.update.due_sources`` tells)."""
    stored = {str(name): (url, next_due) for name, url, next_due in
              conn.execute("SELECT name, url, next_due FROM sources")}
    now = time.time() + DUE_MARGIN
    for name, url in sources:
        found = stored.get(name)
        if found is None or found[0] != url or not isinstance(found[1], int | float) or found[1] <= now:
            return True
    return False


def _same_posts(record: Mapping[str, Any], settings: Mapping[str, str], notes: _Notes,
                scans: dict[tuple[str, str], PostScan] | None) -> bool:
    """Scan the posts inputs as the full run does; whether every post file is as recorded."""
    from .posts.inputs import scan_inputs

    counts = _json_object(settings["post_inputs"]) if "post_inputs" in settings else {}
    last = {k: v for k, v in counts.items() if isinstance(v, int)}
    config = _Settings([_Input(str(p), bool(o)) for p, o in record["posts"]], Path(record["root"]))
    inputs = scan_inputs(config, _NoRows(), last, notes, allow_shrink=False, scans=scans)
    if notes.errors or inputs.kept:
        return False
    return bool(files_digest(inputs.files) == record["files"])
