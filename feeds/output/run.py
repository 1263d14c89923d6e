"""The publish side of a run: what was written before, claiming the output folder,
recording before writing, writing, removing stale files, the status files, and what
the next run needs to know.

Only this module writes into the output folder during a run: ``prepare`` first (claim
and record), then ``place`` for each feed where it was rendered (on a worker process
too), then ``publish``; the records it keeps are the store's ``outputs`` and the run
settings.
It decides nothing about what the files hold.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..build.heads import status_head
from ..build.health import problems, status_entries, status_json
from ..config import Config
from ..errors import ConfigError, PublishError
from ..layout import STATUS_ATOM, STATUS_JSON, looks_like_ours
from ..models import EPOCH
from ..render.feed import render_feed
from ..store import OutputRecord, Store
from .publish import (
    Targets,
    read_bytes,
    remove_files,
    remove_leftover_temps,
    safe_target,
    unknown_files,
    write_if_changed,
)

log = logging.getLogger("feeds")

#: The size of a file recorded before it is written.
NOT_WRITTEN = -1

#: How the signature of a file signed by its bytes begins (an archive page's: see ``bytes_signature``).
BYTES = "bytes:"


def bytes_signature(data: bytes) -> str:
    """The signature of a file that is recorded by what it holds, not by what it was made
    from: an archive page, which once cut is never made again while its file holds these bytes."""
    return BYTES + hashlib.sha256(data).hexdigest()


class FeedFile(NamedTuple):
    """A rendered feed or page: its path in the output folder, what it is made from, its bytes."""

    relative: str
    #: What it is made from; None: sign it by its bytes (an archive page).
    signature: str | None
    data: bytes


class Placed(NamedTuple):
    """A feed or page as ``place`` left it: written (or, with ``--check``, found different)
    or not, its size and mtime after, or why it could not be written."""

    relative: str
    signature: str
    changed: bool
    size: int = 0
    mtime_ns: int = 0
    #: The message and path of the PublishError that stopped the write.
    error: tuple[str, str | None] | None = None


def place(output_dir: Path, file: FeedFile, *, check: bool) -> Placed:
    """Write one rendered feed or page unless the published file holds these bytes (with
    ``check``, only compare). Runs where it was rendered, in a worker process too, so that
    no process holds every rendered file; the caller records and reports what it returns."""
    signature = bytes_signature(file.data) if file.signature is None else file.signature
    try:
        target = safe_target(output_dir, file.relative)
        if check:
            return Placed(file.relative, signature, read_bytes(target) != file.data)
        changed = write_if_changed(target, file.data)
    except PublishError as exc:
        return Placed(file.relative, signature, False, error=(exc.message, exc.where))
    size, mtime_ns = stat(target) or (0, 0)
    return Placed(file.relative, signature, changed, size, mtime_ns)


@dataclass(frozen=True, slots=True)
class Published:
    """What writing did: files written (feeds, then the others), feeds left as they were
    (same bytes), stale files removed."""

    written: list[str]
    unchanged: int
    removed: list[str]


def stat(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of what stands at ``path`` (a symlink put in place of an output is a change)."""
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def load_records(config: Config, store: Store) -> dict[str, OutputRecord]:
    """What this program wrote into the output folder; nothing if that was another folder."""
    where = str(config.output_dir.resolve())
    if store.load_output_dir() not in (None, where):
        return {}
    return store.load_outputs()


def as_recorded(config: Config, record: OutputRecord | None, targets: Targets | None = None) -> bool:
    """Whether the file of ``record`` still has the size and mtime it was left with
    (``targets``: where the output folder's files are, for many records at once)."""
    if record is None:
        return False
    target = targets(record.path) if targets is not None else safe_target(config.output_dir, record.path)
    return stat(target) == (record.size, record.mtime_ns)


def still_holds(config: Config, record: OutputRecord) -> OutputRecord | None:
    """For a file signed by its bytes (see :func:`bytes_signature`): its record, with the
    size and mtime the file has now if they changed (touched, copied back from a backup)
    while it still holds the bytes written; None if it is gone or holds others. A file
    recorded by an older version by what it was made from is signed by its bytes if it is
    as recorded, and None if not (its bytes cannot be told apart)."""
    signed = record.signature.startswith(BYTES)
    if signed and as_recorded(config, record):
        return record
    target = safe_target(config.output_dir, record.path)
    before = stat(target)
    data = read_bytes(target)
    if data is None or before is None or stat(target) != before:  # gone, or changing as it is read
        return None
    signature = bytes_signature(data)
    if signature != record.signature if signed else before != (record.size, record.mtime_ns):
        return None
    return OutputRecord(record.path, signature, *before)


def status_files(config: Config, store: Store, *, check: bool) -> dict[str, bytes]:
    """status.atom and status.json: the operator's view of source problems."""
    if not config.output.status_feed or not config.sources:
        return {}
    # Only the states that may have a problem: a generation beside thousands of sources
    # need not read every one.
    states, checked = store.load_troubled_sources()
    failing = ({name for name, pages in store.article_health().items() if pages.streak}
               if any(s.full_text for s in config.sources) else set())
    if failing - states.keys():  # a source whose article pages fail has a problem of its own
        states |= store.load_sources(sorted(failing - states.keys()))
    found = problems(config, states, failing)
    # When each problem was first seen is remembered, so its entry keeps its date.
    remembered = store.load_health_since()
    now = (checked or EPOCH).isoformat()
    since = {p["key"]: remembered.get(p["key"], now) for p in found}
    if since != remembered and not check:
        store.save_health_since(since)
    head = status_head(config)
    return {STATUS_ATOM: render_feed(head, status_entries(found, since, head.self_url), "atom"),
            STATUS_JSON: status_json(found, since)}


def publish_extra(config: Config, files: Mapping[str, bytes], written: list[str]) -> list[OutputRecord]:
    """Write the front door and status files that changed (adding them to ``written``); their records."""
    records = []
    for name, data in files.items():
        target = safe_target(config.output_dir, name)
        if write_if_changed(target, data):
            written.append(name)
        size, mtime_ns = stat(target) or (0, 0)
        records.append(OutputRecord(name, "", size, mtime_ns))
    return records


def outdated(config: Config, feeds: Sequence[Placed], extra: Mapping[str, bytes], stale: Sequence[str]) -> list[str]:
    """With ``--check``: the files that are missing, different, or stale and still there
    (``feeds`` were compared where they were rendered)."""
    output_dir = config.output_dir
    for f in feeds:
        if f.error is not None:  # the file could not even be compared, as publishing would fail
            raise PublishError(f.error[0], where=f.error[1])
    found = [f.relative for f in feeds if f.changed]
    found += [name for name, data in extra.items() if read_bytes(safe_target(output_dir, name)) != data]
    found += [p for p in stale if _removable(safe_target(output_dir, p))]
    return found


def _removable(path: Path) -> bool:
    """A stale output still there, as the next run would remove it (a folder there is left)."""
    return path.is_symlink() or path.is_file()


def claim_output(config: Config, store: Store, records: Mapping[str, OutputRecord], every: set[str]) -> None:
    """Before the first write into a folder: refuse one holding files this program
    would not write (unless the config allows it), then remember the folder."""
    output_dir = config.output_dir
    where = str(output_dir.resolve())
    last = store.load_output_dir()
    if records and last in (None, where):  # None: recorded by a version that did not note the folder
        if last is None:
            store.save_output_dir(where)
        return
    if last is not None and last != where:
        # What was recorded is another folder's: nothing here is known to be ours.
        store.save_outputs([], forget=list(store.load_outputs()))
    if not config.output.allow_foreign_files:
        found = unknown_files(output_dir, lambda rel: rel in every or looks_like_ours(rel))
        if found:
            name, line = config.where("output.dir")
            raise ConfigError(
                f"output.dir: {output_dir} holds files feeds did not write ({', '.join(found)}); "
                "empty it, choose another folder, or set output.allow_foreign_files: true",
                where=name, line=line)
        # Files in the shape of what this program writes, but not recorded (the state
        # database is new), stay where they are: adopted only if written again.
        for rel in sorted(unknown_files(output_dir, lambda rel: rel in every, limit=20)):
            log.info("%s: not recorded as written by feeds; left in place", rel)
    store.save_output_dir(where)


def prepare(config: Config, store: Store, records: Mapping[str, OutputRecord], every: set[str]) -> None:
    """Before anything is written: claim the folder, record every new file (a run killed
    while writing leaves no file unowned), and remove the temporary files of dead runs."""
    output_dir = config.output_dir
    claim_output(config, store, records, every)
    store.save_outputs([OutputRecord(p, "", NOT_WRITTEN, 0) for p in sorted(every - records.keys())])
    targets = Targets(output_dir)  # each folder resolved once
    remove_leftover_temps(sorted({output_dir} | {targets(p).parent for p in every | set(records)}))


def publish(config: Config, store: Store, feeds: Sequence[Placed], extra: Mapping[str, bytes],
            stale: Sequence[str]) -> Published:
    """After ``prepare`` and the feeds' ``place``: raise the first write that failed (what was
    written stays unrecorded, so the next run looks again), write the front door and status
    files that changed, remove what is stale, and record it all."""
    for f in feeds:
        if f.error is not None:
            raise PublishError(f.error[0], where=f.error[1])
    written = [f.relative for f in feeds if f.changed]
    unchanged = len(feeds) - len(written)
    new_records = [OutputRecord(f.relative, f.signature, f.size, f.mtime_ns) for f in feeds]
    new_records += publish_extra(config, extra, written)
    removed = remove_files(config.output_dir, stale)
    store.save_outputs(new_records, forget=stale)
    return Published(written, unchanged, removed)
