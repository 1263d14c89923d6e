"""The article pages of ``full_text`` sources' items (table ``articles``): each item's
extracted article, or why its page failed and when to ask again.

Reads and writes that table only, and reads ``items`` to choose the pages wanted (and
writes an item's entry data when its article arrives). What an article is and whether a
page is wanted again is :mod:`feeds.sources.fulltext`'s and :mod:`feeds.sources.articles`'.
Runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .codecs import decoding
from .dialects import chunks, upsert
from .records import ArticleHealth, ArticleRow, ArticleWanted
from .schema import articles, items

_a = articles.c
_i = items.c


def _row(m: sa.RowMapping, prefix: str = "") -> ArticleRow:
    """An article row from a result row's mapping (its columns named with ``prefix``)."""
    next_try = m[prefix + "next_try"]
    return ArticleRow(str(m[prefix + "source"]), str(m[prefix + "ukey"]), str(m[prefix + "link"]),
                      str(m[prefix + "how"]), m[prefix + "html"], m[prefix + "error"], int(m[prefix + "failures"]),
                      None if next_try is None else float(next_try), float(m[prefix + "fetched_at"]))


def wanted(conn: Connection, source: str, *, how: str, now: float, limit: int) -> list[ArticleWanted]:
    """Items of ``source``'s latest listing whose article page is to be asked for, newest
    first, at most ``limit``: those with no stored article, one of another link or made with
    another extraction than ``how``, or one that failed and whose next try has come."""
    if limit <= 0:
        return []
    latest = sa.select(sa.func.max(_i.last_seen)).where(_i.source == source).scalar_subquery()
    joined = items.outerjoin(articles, sa.and_(_a.source == _i.source, _a.ukey == _i.ukey))
    stored = [c.label("a_" + c.name) for c in articles.columns]
    query = (sa.select(_i.ukey, _i.link, _i.data, _i.digest, *stored).select_from(joined)
             .where(_i.source == source, _i.last_seen == latest, _i.link.is_not(None),
                    sa.or_(_a.ukey.is_(None), _a.link != _i.link, _a.how != how,
                           sa.and_(_a.html.is_(None), _a.next_try <= now)))
             .order_by(_i.published.desc(), _i.ukey).limit(limit))
    with decoding("articles"):
        return [ArticleWanted(str(r.ukey), str(r.link), str(r.data), str(r.digest),
                              None if r.a_ukey is None else _row(r._mapping, "a_"))
                for r in conn.execute(query)]


def load(conn: Connection, source: str, ukeys: Sequence[str]) -> dict[str, ArticleRow]:
    """The stored articles of the given items of ``source``."""
    out: dict[str, ArticleRow] = {}
    for chunk in chunks(ukeys):
        rows = conn.execute(sa.select(articles).where(_a.source == source, _a.ukey.in_(chunk)))
        with decoding("articles"):
            out.update((str(r.ukey), _row(r._mapping)) for r in rows)
    return out


def save(conn: Connection, rows: Sequence[ArticleRow]) -> None:
    upsert(conn, articles, rows)


def set_entries(conn: Connection, source: str, entries: Sequence[tuple[str, str, str]]) -> None:
    """Replace the entry data and digest of the given (ukey, data, digest) items of ``source``."""
    for ukey, data, digest in entries:
        conn.execute(sa.update(items).where(_i.source == source, _i.ukey == ukey).values(data=data, digest=digest))


#: The latest pages of a source that must all have failed for its full text to be failing.
FAILING_STREAK = 3


def health(conn: Connection) -> dict[str, ArticleHealth]:
    """For each source with stored articles: how many pages gave one, how many are failing,
    the latest failure (its link and error), and whether its :data:`FAILING_STREAK` latest
    pages all failed."""
    failed = _a.html.is_(None).label("failed")
    rows = conn.execute(sa.select(_a.source, _a.link, _a.error, failed)
                        .order_by(_a.source, _a.fetched_at.desc(), _a.ukey))
    out: dict[str, ArticleHealth] = {}
    recent: dict[str, list[bool]] = {}
    for r in rows:
        name = str(r.source)
        was = out.get(name, ArticleHealth(0, 0))
        latest = recent.setdefault(name, [])
        if len(latest) < FAILING_STREAK:
            latest.append(bool(r.failed))
        if r.failed:
            out[name] = was._replace(failing=was.failing + 1,
                                     last_failure=was.last_failure or f"{r.link}: {r.error}")
        else:
            out[name] = was._replace(fetched=was.fetched + 1)
    return {name: h._replace(streak=len(recent[name]) == FAILING_STREAK and all(recent[name]))
            for name, h in out.items()}


def forget_orphans(conn: Connection, source: str | None = None) -> None:
    """Drop the articles of items no longer stored (of ``source``, or of every source)."""
    orphan = ~sa.exists().where(_i.source == _a.source, _i.ukey == _a.ukey)
    conn.execute(sa.delete(articles).where(orphan, *([_a.source == source] if source is not None else [])))
