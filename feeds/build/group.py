"""Choose which entries go into which feed.

Pure functions. Every feed lists its newest entries first, ties broken by id,
so the same inputs always give the same feeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..config import Policy
from ..layout import FeedKind, feed_stem
from .filters import Facts, rule_set
from .taxonomy import Term


@dataclass(frozen=True, slots=True)
class Candidate:
    """What grouping needs to know of an entry."""

    id: str
    published: datetime
    #: Term keys (see ``taxonomy.term_key``).
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    #: Names of the sources it came from ("posts" for local posts).
    sources: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One feed to write: which entries, in which order."""

    kind: FeedKind
    #: The tag or category, or None for the all-entries feed.
    term: Term | None
    #: Output path without the format suffix: "all", "tags/<slug>", "categories/<slug>".
    stem: str
    entry_ids: tuple[str, ...]
    policy: Policy
    #: Entries the feed has in all (it shows the newest ``policy.max_entries``).
    total: int = 0
    #: With ``output.archive``: every entry the feed has, newest first (see ``archive``).
    history: tuple[str, ...] = ()
    #: Its archive pages, oldest first, each listing its entries newest first; the first
    #: ``frozen`` were recorded by an earlier run (their files are never rewritten).
    pages: tuple[tuple[str, ...], ...] = ()
    frozen: int = 0


def order_key(c: Candidate) -> tuple[float, str]:
    return (-c.published.timestamp(), c.id)


def _newest(items: Sequence[Candidate], n: int) -> tuple[str, ...]:
    """The ids of the first ``n`` of ``items``, which are in feed order."""
    return tuple(c.id for c in items[:n])


def _history(items: Sequence[Candidate], archive: bool) -> tuple[str, ...]:
    return tuple(c.id for c in items) if archive else ()


def _admitted(items: Iterable[Candidate], policy: Policy, facts: Mapping[str, Facts]) -> list[Candidate]:
    """The candidates a feed with ``policy`` takes: from its sources, and passing its rules
    (an entry whose facts are not known passes no rule)."""
    include = set(policy.include_sources) if policy.include_sources is not None else None
    exclude = set(policy.exclude_sources or ())
    admitted = [c for c in items
                if (include is None or c.sources & include) and not (exclude and c.sources <= exclude)]
    rules = rule_set(policy.include, policy.exclude)
    if rules:
        admitted = [c for c in admitted if c.id in facts and rules.admits(facts[c.id])]
    return admitted


def needs_facts(policies: Iterable[Policy]) -> bool:
    """Whether any of ``policies`` has rules, so that planning needs each entry's :class:`Facts`."""
    return any(p.include or p.exclude for p in policies)


def plan_feeds(
    candidates: Iterable[Candidate],
    tags: Mapping[str, Term],
    categories: Mapping[str, Term],
    policy_of: Callable[[FeedKind, Term | None], Policy],
    queries: Sequence[Term] = (),
    facts: Mapping[str, Facts] | None = None,
    archive: bool = False,
) -> list[FeedPlan]:
    """The all-entries feed, then one feed per tag, per category and per query (sorted by
    path), each as its policy says: which sources, which rules, how many entries, whether it
    exists at all (a query's feed always does). ``facts`` are what the rules look at, by id;
    with ``archive`` each plan has its whole history too."""
    known = facts or {}
    # Sorted once, newest first: each feed's members, taken in this order, are in feed order too.
    everything = sorted(candidates, key=order_key)
    by_tag: dict[str, list[Candidate]] = {}
    by_category: dict[str, list[Candidate]] = {}
    for c in everything:
        for key in c.tags:
            by_tag.setdefault(key, []).append(c)
        for key in c.categories:
            by_category.setdefault(key, []).append(c)
    policy = policy_of("all", None)
    admitted = _admitted(everything, policy, known)
    plans = [FeedPlan("all", None, feed_stem("all"), _newest(admitted, policy.max_entries or 50), policy,
                      len(admitted), _history(admitted, archive))]
    for kind, members, terms in (("tag", by_tag, tags), ("category", by_category, categories)):
        for key, items in sorted(members.items(), key=lambda kv: terms[kv[0]].slug):
            term = terms[key]
            policy = policy_of(kind, term)  # type: ignore[arg-type]
            admitted = _admitted(items, policy, known)
            if not admitted or len(admitted) < (policy.min_entries or 1):
                continue
            plans.append(FeedPlan(kind, term, feed_stem(kind, term.slug),  # type: ignore[arg-type]
                                  _newest(admitted, policy.max_entries or 50), policy, len(admitted),
                                  _history(admitted, archive)))
    for term in sorted(queries, key=lambda t: t.slug):
        policy = policy_of("query", term)
        admitted = _admitted(everything, policy, known)
        plans.append(FeedPlan("query", term, feed_stem("query", term.slug),
                              _newest(admitted, policy.max_entries or 50), policy, len(admitted),
                              _history(admitted, archive)))
    return plans
