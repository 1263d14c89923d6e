"""Scan the configured posts inputs, and keep the posts of one that vanished.

A posts input that is missing, partly unreadable, or shrank drastically since
the last run (an unmounted disk, a wrong path) is not taken as edited: the
posts the last run read there stay published from their cached rows, and the
input is an error (a warning if it is optional), unless ``--allow-shrink``.

Reads folders (through ``scan_posts``) and the post cache; writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ..errors import DamagedStateError
from . import PostFile, PostScan, _is_glob, input_base, input_matcher, scan_posts

if TYPE_CHECKING:  # the scan is also run before the config, the store and the build stages are loaded
    from ..store import PostIndexRow, PostRow, Store

log = logging.getLogger("feeds")

# A posts input that lost at least SHRINK_MIN posts and more than half of what it had since
# the last run, or all of them, is taken as vanished, not as edited.
SHRINK_MIN = 20
SHRINK_RATIO = 0.5


class Notes(Protocol):
    """Where a stage's warnings and errors go (the run's report)."""

    def warn(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


class PostsInput(Protocol):
    """One configured posts input (``config.posts[i]``): what the scan reads of it."""

    @property
    def path(self) -> str: ...

    @property
    def optional(self) -> bool: ...


class PostsSettings(Protocol):
    """What the scan reads of the config: the posts inputs and the config's folder."""

    @property
    def posts(self) -> Sequence[PostsInput]: ...

    @property
    def root(self) -> Path: ...


class Rows(Protocol):
    """The post cache, as the scan reads it (only when an input vanished or shrank)."""

    def rows(self) -> Mapping[str, PostRow]: ...


class PostCache:
    """The post cache (every post as last read), loaded on first use: a run with nothing
    changed never needs it. Its index (each row in short) is read first; the rows
    themselves only when the index cannot be trusted or a post's front matter is wanted."""

    #: Above this many rows wanted, reading the whole cache is quicker than asking for each.
    WHOLE = 5000

    def __init__(self, store: Store) -> None:
        self._store = store
        self._rows: dict[str, PostRow] | None = None
        self._index: dict[str, PostIndexRow] | None = None
        #: The rows of the index changed since it was saved whole (None: forgotten); None
        #: when it was made from the rows, and so is to be saved whole.
        self.changes: dict[str, PostIndexRow | None] | None = None

    def rows(self) -> dict[str, PostRow]:
        if self._rows is None:
            self._rows = self._store.load_posts()
        return self._rows

    def index(self) -> dict[str, PostIndexRow]:
        """Every row in short: the stored index, or (when there is none, it is garbled or
        it is not of the rows already loaded) one made from the rows."""
        if self._index is None:
            try:
                stored = self._store.load_post_index()
            except DamagedStateError:
                stored = None  # a summary only: made again from the rows
            if stored is None or (self._rows is not None and stored[0].keys() != self._rows.keys()):
                self._index = {path: _index_row(row) for path, row in self.rows().items()}
                self.changes = None
            else:
                self._index, self.changes = stored
        return self._index

    def metas(self, paths: Sequence[str]) -> dict[str, str]:
        """The cached front matter (JSON) of those of ``paths`` that have one."""
        if self._rows is None and len(paths) <= self.WHOLE:
            return self._store.load_post_metas(paths)
        rows = self.rows()
        return {p: meta for p in paths if (row := rows.get(p)) is not None and (meta := row.meta) is not None}


def _index_row(row: PostRow) -> PostIndexRow:
    from ..store import PostIndexRow, meta_from_json
    from ..store.codecs import group_digest

    if row.meta is None:
        return PostIndexRow.of(row, "", "")
    meta = meta_from_json(row.meta)
    return PostIndexRow.of(row, meta.digest, group_digest(meta))


class FoundFile(NamedTuple):
    """A post file and the posts input (its index in ``config.posts``) it belongs to."""

    folder: int
    file: PostFile


#: Makes a FoundFile from a tuple of its fields (see ``posts._post_file``).
new_found = tuple.__new__


@dataclass(frozen=True, slots=True)
class Inputs:
    """Every post file of this run, and how many each input holds now and held last run."""

    files: tuple[FoundFile, ...]
    #: Posts not found on disk whose input is missing: published from their cached rows.
    kept: frozenset[str]
    counts: Mapping[str, int]
    last_counts: Mapping[str, int]

    def by_name(self) -> dict[str, PostFile]:
        return {f.file.name: f.file for f in self.files}


def shrunk(last: int, found: int) -> bool:
    """Whether an input that had ``last`` posts and has ``found`` now looks vanished.
    Empty where it had posts is an empty mount point more often than a deliberate purge."""
    return (last > 0 and not found) or (last - found >= SHRINK_MIN and found < last * SHRINK_RATIO)


def scan_inputs(config: PostsSettings, cache: Rows, last: Mapping[str, int], notes: Notes, *,
                allow_shrink: bool, scans: MutableMapping[tuple[str, str], PostScan] | None = None) -> Inputs:
    """Scan every posts input; a file matched by two inputs belongs to the first.

    ``scans``: an input's scan found there (by its path and the config's folder) is taken
    out and used instead of scanning it again (the quick check's, a moment ago, in the same
    command); one made here is put there."""
    results = [_scan(folder.path, config.root, scans) for folder in config.posts]
    counts = {folder.path: len(r.files) for folder, r in zip(config.posts, results, strict=True)}
    # Posts of no configured input: the config changed, or a path in it is mistyped. They
    # go with the first input that cannot be read (and so stay published), if there is one.
    strays: list[PostRow] = []
    if any(r.problem is not None for r in results):
        matchers = [input_matcher(folder.path, config.root) for folder in config.posts]
        strays = [row for name, row in cache.rows().items() if not any(m(name) for m in matchers)]
    seen: set[str] = set()
    found: list[FoundFile] = []
    kept_names: set[str] = set()
    for index, (folder, result) in enumerate(zip(config.posts, results, strict=True)):
        for line in result.refused:
            notes.warn(line)
        for line in result.notes:
            log.debug("%s", line)
        kept = _vanished(config, folder.path, folder.optional, result, last.get(folder.path, 0),
                         strays if result.problem is not None else [], cache, notes, allow_shrink)
        if kept:
            strays = []
            counts[folder.path] += len(kept)
            kept_names.update(f.name for f in kept)
        if not result.files and not kept and result.problem is None:
            notes.warn(f"{folder.path}: no post files found")
        if not seen and not kept and not _is_glob(input_base(folder.path, config.root)):
            # The first input found so far, walked as a folder or one file: its names are its
            # paths' (each path once), so none repeats; not looked up one by one.
            found += [new_found(FoundFile, (index, f)) for f in result.files]
            if index + 1 < len(config.posts):
                seen.update(f.name for f in result.files)
            continue
        for f in result.files + kept:
            if f.name not in seen:
                seen.add(f.name)
                found.append(FoundFile(index, f))
    return Inputs(tuple(found), frozenset(kept_names), counts, dict(last))


def _scan(path: str, root: Path, scans: MutableMapping[tuple[str, str], PostScan] | None) -> PostScan:
    if scans is None:
        return scan_posts(path, root)
    key = (path, str(root))
    found = scans.pop(key, None)
    if found is None:
        found = scans[key] = scan_posts(path, root)
    return found


def _vanished(config: PostsSettings, path: str, optional: bool, result: PostScan, last: int,
              strays: Sequence[PostRow], cache: Rows, notes: Notes, allow_shrink: bool) -> list[PostFile]:
    """Posts of this input that the last run read but this scan cannot see, when the
    input is missing, partly unreadable or shrank drastically: they stay published
    from their cached rows, and the input is an error (a warning if optional)."""
    root = config.root
    gone = shrunk(last, len(result.files))
    if result.problem is None and not result.unreadable and not gone:
        return []
    belongs = input_matcher(path, root)
    present = {f.name for f in result.files}
    missing = [row for name, row in cache.rows().items() if belongs(name) and name not in present]
    if result.problem is not None:
        reason = result.problem
        missing += strays
    elif result.unreadable:
        unreadable = [input_matcher(u, root) for u in result.unreadable]
        missing = [row for row in missing if any(m(row.path) for m in unreadable)]
        reason = "cannot read " + ", ".join(result.unreadable[:3]) + (" ..." if len(result.unreadable) > 3
                                                                     else "")
    else:
        reason = f"{len(result.files)} post files found where the last run read {last}"
    if allow_shrink:
        notes.warn(f"{path}: {reason}; --allow-shrink: its {len(missing)} missing posts are unpublished")
        return []
    message = f"{path}: {reason}"
    if missing:
        message += f"; its {len(missing)} other posts stay published as they were"
    if optional:
        notes.warn(message + " (optional)")
    else:
        notes.error(message + (" (if they were removed on purpose: feeds generate --allow-shrink)"
                               if missing else ""))
    return [PostFile(path=str(root / row.path), name=row.path, mtime_ns=row.mtime_ns, size=row.size)
            for row in missing]
