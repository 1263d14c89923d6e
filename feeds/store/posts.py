"""The post cache (table ``post_cache``): each post's front matter as last read, or why it was skipped.

Beside it, in the same transactions, the post index (the ``post_index`` setting): every
row in short (its file's stat, settings key, digest and grouping digest), so that a run
reads the rows of the posts that changed and no other. The rendered content of posts
is :mod:`.contents`'. Runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice, repeat

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import settings as _settings
from .codecs import decoding
from .dialects import chunks, upsert
from .records import PostIndexRow, PostRow
from .schema import posts, settings

INDEX_KEY = "post_index"
#: The rows of the post index changed since it was saved whole (a small write per run).
INDEX_CHANGES_KEY = "post_index_changes"
#: The last run's grouping of posts and items into feeds (``build.stories``' format).
GROUPING_KEY = "grouping"


def load(conn: Connection) -> dict[str, PostRow]:
    rows = conn.execute(sa.select(posts)).all()
    with decoding("post cache"):
        return {str(r.path): PostRow(r.path, int(r.mtime_ns), int(r.size), r.fingerprint, r.meta, r.problem)
                for r in rows}


def load_metas(conn: Connection, paths: Sequence[str]) -> dict[str, str]:
    """The stored front matter (JSON) of those of ``paths`` that have one."""
    found: dict[str, str] = {}
    for chunk in chunks(paths):
        for path, meta in conn.execute(sa.select(posts.c.path, posts.c.meta).where(posts.c.path.in_(chunk))):
            if meta is not None:
                found[str(path)] = str(meta)
    return found


#: Rows written per statement: ``rows`` may be a stream whose rows are let go of once saved.
SAVE_BATCH = 2000


def save(conn: Connection, rows: Iterable[PostRow]) -> None:
    stream = iter(rows)
    while batch := [tuple(p) for p in islice(stream, SAVE_BATCH)]:
        upsert(conn, posts, batch)


def forget(conn: Connection, paths: Sequence[str]) -> None:
    for chunk in chunks(paths):
        conn.execute(sa.delete(posts).where(posts.c.path.in_(chunk)))


def load_index(conn: Connection) -> tuple[dict[str, PostIndexRow], dict[str, PostIndexRow | None]] | None:
    """The post index and, of it, the rows changed (None: forgotten) since it was last
    saved whole; None when there is no index (never saved, or dropped)."""
    text = _settings.get(conn, INDEX_KEY)
    if text is None:
        return None
    index = index_from_json(text)
    changes: dict[str, PostIndexRow | None] = {}
    text = _settings.get(conn, INDEX_CHANGES_KEY)
    if text is not None:
        with decoding("post index"):
            d = json.loads(text)
            changes.update(index_from_json(json.dumps(d["rows"])))
            changes.update((str(path), None) for path in d["gone"])
    for path, row in changes.items():
        if row is None:
            index.pop(path, None)
        else:
            index[path] = row
    return index, changes


def save_index(conn: Connection, index: Mapping[str, PostIndexRow] | None,
               changes: Mapping[str, PostIndexRow | None] | None) -> None:
    """Save the post index: only its ``changes`` since it was saved whole, or (``changes``
    None) whole. ``index`` None drops it (the next run makes it again from the rows)."""
    if index is None:
        for key in (INDEX_KEY, INDEX_CHANGES_KEY):
            conn.execute(sa.delete(settings).where(settings.c.key == key))
        return
    if changes is None:
        _settings.put(conn, INDEX_KEY, index_to_json(index))
        conn.execute(sa.delete(settings).where(settings.c.key == INDEX_CHANGES_KEY))
        return
    rows = {path: row for path, row in changes.items() if row is not None}
    gone = [path for path, row in changes.items() if row is None]
    _settings.put(conn, INDEX_CHANGES_KEY, f'{{"rows":{index_to_json(rows)},"gone":{json.dumps(gone)}}}')


def load_grouping(conn: Connection) -> str | None:
    return _settings.get(conn, GROUPING_KEY)


def save_grouping(conn: Connection, text: str) -> None:
    _settings.put(conn, GROUPING_KEY, text)


# The index is one JSON object of columns, one value per row in each: paths, mtimes, sizes,
# the settings key (by position in "fingerprints", each listed once), digests and
# grouping digests; "problems" holds the rows skipped, by position.

def index_to_json(rows: Mapping[str, PostIndexRow]) -> str:
    fingerprints: dict[str, int] = {}
    values = rows.values()
    return json.dumps({
        "paths": list(rows), "mtimes": [r.mtime_ns for r in values], "sizes": [r.size for r in values],
        "fingerprints": [fingerprints.setdefault(r.fingerprint, len(fingerprints)) for r in values],
        "keys": list(fingerprints), "digests": [r.digest for r in values], "groups": [r.group for r in values],
        "problems": {str(n): r.problem for n, r in enumerate(values) if r.problem is not None},
    }, ensure_ascii=False, separators=(",", ":"))


def index_from_json(text: str) -> dict[str, PostIndexRow]:
    """The post index stored as ``text``; a garbled one is a :class:`DamagedStateError`."""
    with decoding("post index"):
        d = json.loads(text)
        paths, mtimes, sizes, digests, groups = d["paths"], d["mtimes"], d["sizes"], d["digests"], d["groups"]
        keys = d["keys"]
        if not (len(paths) == len(mtimes) == len(sizes) == len(digests) == len(groups) == len(d["fingerprints"])):
            raise ValueError("the columns differ in length")
        if not (all(type(v) is int for v in mtimes) and all(type(v) is int for v in sizes)
                and all(type(v) is str for v in paths) and all(type(v) is str for v in digests)
                and all(type(v) is str for v in groups) and all(type(v) is str for v in keys)):
            raise TypeError("a column has values of the wrong type")
        fingerprints = [keys[n] for n in d["fingerprints"]]
        problems: list[str | None] = [None] * len(paths)
        for n, problem in d["problems"].items():
            if not isinstance(problem, str):
                raise TypeError("a problem is not text")
            problems[int(n)] = problem
        # tuple.__new__ makes the same named tuples without their Python-level __new__ (one per post).
        rows = map(tuple.__new__, repeat(PostIndexRow),
                   zip(mtimes, sizes, fingerprints, problems, digests, groups, strict=True))
        return dict(zip(paths, rows, strict=True))
