"""What the store keeps as text and numbers, to and from the program's own types.

Entries and post metadata become JSON (the formats existing databases hold, kept
byte for byte); times become seconds since the epoch. A stored value that cannot
be read back is a damaged row: :func:`decoding` turns the decoder's exception
into a :class:`DamagedStateError`, and :func:`decoding_in` names the database in
it (and in any :class:`StorageError` raised without a name). Pure functions:
nothing here opens a database, a file or reads the clock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import DamagedStateError, StorageError
from ..models import Author, Enclosure, Entry, PostMeta, Provenance

# What a decoder raises on a value of the wrong shape.
_GARBLED = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


@contextmanager
def decoding(what: str) -> Iterator[None]:
    """Turn a stored value that cannot be decoded into a :class:`DamagedStateError`
    about a garbled ``what`` row (the database is named by :func:`decoding_in`)."""
    try:
        yield
    except _GARBLED as exc:
        raise _garbled(what, exc) from None


def _garbled(what: str, exc: BaseException) -> DamagedStateError:
    return DamagedStateError(f"the state database has a garbled {what} row ({type(exc).__name__}: {str(exc)[:80]})")


@contextmanager
def decoding_in(where: str | Path) -> Iterator[None]:
    """Name the database in a :class:`StorageError` (a :class:`DamagedStateError`...)
    raised without one."""
    try:
        yield
    except StorageError as exc:
        if exc.where is not None:
            raise
        raise type(exc)(exc.message, where=str(where)) from None


# -- times -------------------------------------------------------------------

def timestamp(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def from_timestamp(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


# -- post metadata -------------------------------------------------------------

# ``json.dumps(..., ensure_ascii=False)`` makes an encoder per call: one, made once, writes the same.
_encode = json.JSONEncoder(ensure_ascii=False).encode
_encode_sorted = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def meta_to_json(meta: PostMeta) -> str:
    return meta_row(meta)[0]


def meta_row(meta: PostMeta) -> tuple[str, str]:
    """:func:`meta_to_json` and :func:`group_digest` of ``meta``, its dates written once."""
    published = meta.published.isoformat()
    updated = published if meta.updated is meta.published else meta.updated.isoformat()
    text = _encode({
        "path": meta.path, "digest": meta.digest, "title": meta.title,
        "published": published, "updated": updated,
        "explicit_id": meta.explicit_id, "link": meta.link, "permalink": meta.permalink,
        "authors": [[a.name, a.email, a.uri] for a in meta.authors],
        "tags": meta.tags, "categories": meta.categories, "summary": meta.summary,
        "language": meta.language, "image": meta.image, "body_line": meta.body_line,
    })
    return text, _group_digest(meta, published, updated)


def meta_from_json(text: str, shared: dict[Any, Any] | None = None, *, path: str | None = None,
                   digest: str | None = None) -> PostMeta:
    """The metadata stored as ``text``; a garbled one is a :class:`DamagedStateError`.

    With ``shared`` (a dict kept across calls), equal tags, categories, languages and
    authors of many posts are one object each: tens of thousands of posts name a few
    hundred of them. An updated time equal to the published one is the same object.
    ``path`` and ``digest``: the caller's strings for them, taken instead of the stored
    ones when equal (one string for both, in a run that holds every post's)."""
    # (A try, not ``decoding``: a context manager made per row costs more than the rest of it.)
    try:
        d = json.loads(text)
        published = datetime.fromisoformat(d["published"])
        updated = published if d["updated"] == d["published"] else datetime.fromisoformat(d["updated"])
        if shared is None:
            authors = tuple(Author(*a) for a in d["authors"])
            tags, categories, language = tuple(d["tags"]), tuple(d["categories"]), d["language"]
        else:
            one = shared.setdefault
            authors = tuple(_shared_author(shared, tuple(a)) for a in d["authors"])
            authors = one(authors, authors)  # (a tuple of authors never equals one of tags: no Author is a str)
            tags = one(tuple(d["tags"]), tuple(one(t, t) for t in d["tags"]))
            categories = one(tuple(d["categories"]), tuple(one(c, c) for c in d["categories"]))
            language = d["language"]
            if language is not None:
                language = one(language, language)
        stored_path, stored_digest = d["path"], d["digest"]
        return PostMeta(
            path if path is not None and path == stored_path else stored_path,
            digest if digest is not None and digest == stored_digest else stored_digest,
            d["title"], published, updated, d["explicit_id"], d["link"], d["permalink"], authors, tags, categories,
            d["summary"], language, d["image"], d["body_line"],
        )
    except _GARBLED as exc:
        raise _garbled("post cache", exc) from None


def _shared_author(shared: dict[Any, Any], fields: tuple[Any, ...]) -> Author:
    key = (Author, fields)
    author = shared.get(key)
    if author is None:
        author = shared[key] = Author(*fields)
    return author


def group_digest(meta: PostMeta) -> str:
    """A hash of what grouping reads of a post's front matter (its id, link, title, dates,
    tags and categories; not its digest, summary or authors): equal for two readings of a
    post, grouping takes them the same way."""
    return _group_digest(meta, meta.published.isoformat(), meta.updated.isoformat())


def _group_digest(meta: PostMeta, published: str, updated: str) -> str:
    blob = _encode([meta.path, meta.explicit_id, meta.link, meta.title, published, updated, meta.tags,
                    meta.categories])
    return hashlib.sha1(blob.encode()).hexdigest()[:20]


# -- entries -------------------------------------------------------------------

def entry_to_json(entry: Entry) -> str:
    def prov(p: Provenance) -> list[Any]:
        return [p.source, p.path, p.upstream_id, p.feed_title, p.feed_link, p.feed_id,
                timestamp(p.feed_updated), p.feed_url]

    return _encode_sorted({
        "id": entry.id, "title": entry.title, "link": entry.link,
        "published": entry.published.timestamp(), "updated": entry.updated.timestamp(),
        "authors": [[a.name, a.email, a.uri] for a in entry.authors],
        "tags": entry.tags, "categories": entry.categories, "summary": entry.summary,
        "content": entry.content, "language": entry.language, "image": entry.image,
        "enclosures": [[e.url, e.type, e.length] for e in entry.enclosures],
        "provenance": [prov(p) for p in entry.provenance],
    })


def entry_from_json(text: str) -> Entry:
    """The entry stored as ``text``; :class:`StorageError` when it cannot be read back.

    Stored items may come from older versions or a damaged database: a field of the
    wrong type is left out (an author without a name, a URL that is not a string),
    and only an item without its id, title or dates is refused."""
    try:
        d = json.loads(text)
        if not isinstance(d, dict) or not isinstance(d.get("id"), str) or not isinstance(d.get("title"), str):
            raise ValueError("no id or title")
        published = datetime.fromtimestamp(_number(d["published"]), UTC)
        updated = datetime.fromtimestamp(_number(d["updated"]), UTC)
        return Entry(
            id=d["id"], title=d["title"], link=_opt_str(d.get("link")), published=published,
            updated=max(updated, published),
            authors=tuple(Author(a[0], _opt_str(_at(a, 1)), _opt_str(_at(a, 2))) for a in _rows(d.get("authors"))
                          if isinstance(a[0], str) and a[0]),
            tags=tuple(t for t in _list_of(d.get("tags")) if isinstance(t, str) and t),
            categories=tuple(t for t in _list_of(d.get("categories")) if isinstance(t, str) and t),
            summary=_opt_str(d.get("summary")) or "",
            content=_opt_str(d.get("content")), language=_opt_str(d.get("language")),
            image=_opt_str(d.get("image")),
            enclosures=tuple(Enclosure(e[0], _opt_str(_at(e, 1)) or "application/octet-stream",
                                       _at(e, 2) if type(_at(e, 2)) is int and _at(e, 2) > 0 else 0)
                             for e in _rows(d.get("enclosures")) if isinstance(e[0], str)),
            provenance=tuple(Provenance(p[0], _opt_str(_at(p, 1)), _opt_str(_at(p, 2)), _opt_str(_at(p, 3)),
                                        _opt_str(_at(p, 4)), _opt_str(_at(p, 5)),
                                        _maybe_date(_at(p, 6)),
                                        _opt_str(_at(p, 7)))
                             for p in _rows(d.get("provenance")) if isinstance(p[0], str)),
        )
    except (ValueError, TypeError, KeyError, OverflowError, OSError, RecursionError) as exc:
        raise StorageError(f"a stored item cannot be read ({type(exc).__name__}: {str(exc)[:100]})") from None


def tags_to_json(tags: tuple[str, ...] | list[str]) -> str:
    """An item's tags, kept beside its entry so that grouping can skip the entry data."""
    return _encode(tags)


def tags_from_json(text: str) -> tuple[str, ...]:
    return tuple(str(t) for t in json.loads(text))


def _maybe_date(value: Any) -> datetime | None:
    """A stored date that only adds detail (a feed's updated time): None when unreadable."""
    try:
        return datetime.fromtimestamp(_number(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("a date is not a number")
    return float(value)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _list_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _rows(value: Any) -> list[list[Any]]:
    return [row for row in _list_of(value) if isinstance(row, list) and row]


def _at(row: list[Any], index: int) -> Any:
    return row[index] if index < len(row) else None


# -- output paths --------------------------------------------------------------

def output_path(path: object) -> str:
    """A recorded output path, which is only ever relative, inside the output folder."""
    if not isinstance(path, str) or not path or "\0" in path or path.startswith("/") \
            or any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"not a path inside the output folder: {str(path)[:60]!r}")
    return path
