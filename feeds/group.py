"""Choose which entries go into which feed.

Pure functions. Every feed lists its newest entries first, ties broken by id,
so the same inputs always give the same feeds.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .taxonomy import Term

FeedKind = Literal["all", "tag", "category"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """What grouping needs to know of an entry."""

    id: str
    published: datetime
    #: Term keys (see ``taxonomy.term_key``).
    tags: tuple[str, ...]
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One feed to write: which entries, in which order."""

    kind: FeedKind
    #: The tag or category, or None for the all-entries feed.
    term: Term | None
    #: Output path without the format suffix: "all", "tags/<slug>", "categories/<slug>".
    stem: str
    entry_ids: tuple[str, ...]


def order_key(c: Candidate) -> tuple[float, str]:
    return (-c.published.timestamp(), c.id)


def _newest(items: Iterable[Candidate], n: int) -> tuple[str, ...]:
    return tuple(c.id for c in heapq.nsmallest(n, items, key=order_key))


def plan_feeds(
    candidates: Iterable[Candidate],
    tags: Mapping[str, Term],
    categories: Mapping[str, Term],
    max_entries: int,
) -> list[FeedPlan]:
    """The all-entries feed, then one feed per tag and per category, sorted by path."""
    everything = list(candidates)
    by_tag: dict[str, list[Candidate]] = {}
    by_category: dict[str, list[Candidate]] = {}
    for c in everything:
        for key in c.tags:
            by_tag.setdefault(key, []).append(c)
        for key in c.categories:
            by_category.setdefault(key, []).append(c)
    plans = [FeedPlan("all", None, "all", _newest(everything, max_entries))]
    for kind, folder, members, terms in (("tag", "tags", by_tag, tags),
                                          ("category", "categories", by_category, categories)):
        for key, items in sorted(members.items(), key=lambda kv: terms[kv[0]].slug):
            term = terms[key]
            plans.append(FeedPlan(kind, term, f"{folder}/{term.slug}",  # type: ignore[arg-type]
                                  _newest(items, max_entries)))
    return plans
