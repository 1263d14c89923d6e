"""build/group: which entries go into which feed (``plan_feeds``), a pure function."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

# Stage entry points, in one place (they move as the stages are split).
from feeds.build.group import Candidate, FeedKind, FeedPlan, order_key, plan_feeds
from feeds.build.taxonomy import Term
from feeds.config import Policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = {"python": Term("python", "Python", "python"), "go": Term("go", "Go", "go"),
        "zeta": Term("zeta", "Zeta", "a-first")}  # the slug, not the key, orders the feeds
CATEGORIES = {"notes": Term("notes", "Notes", "notes")}


def candidate(n: int, *, tags: tuple[str, ...] = (), categories: tuple[str, ...] = (), hours: int | None = None,
              sources: frozenset[str] = frozenset({"posts"})) -> Candidate:
    return Candidate(f"id-{n:02d}", T0 + timedelta(hours=n if hours is None else hours), tags, categories, sources)


def same_policy(policy: Policy) -> Callable[[FeedKind, Term | None], Policy]:
    def policy_of(kind: FeedKind, term: Term | None) -> Policy:
        return policy
    return policy_of


def test_all_then_tags_then_categories_each_by_slug() -> None:
    entries = [candidate(1, tags=("python", "zeta")), candidate(2, tags=("go",), categories=("notes",))]
    plans = plan_feeds(entries, TAGS, CATEGORIES, same_policy(Policy()))
    assert [(p.kind, p.stem) for p in plans] == [("all", "all"), ("tag", "tags/a-first"), ("tag", "tags/go"),
                                                 ("tag", "tags/python"), ("category", "categories/notes")]
    assert plans[0].term is None and plans[2].term == TAGS["go"]
    assert [p.entry_ids for p in plans] == [("id-02", "id-01"), ("id-01",), ("id-02",), ("id-01",), ("id-02",)]


def test_newest_first_ties_broken_by_id() -> None:
    entries = [candidate(3, hours=5), candidate(1, hours=5), candidate(2, hours=9), candidate(4, hours=1)]
    (plan,) = plan_feeds(entries, {}, {}, same_policy(Policy()))
    assert plan.entry_ids == ("id-02", "id-01", "id-03", "id-04")


def test_max_entries_keeps_the_newest_and_total_counts_them_all() -> None:
    entries = [candidate(n, tags=("python",)) for n in range(10)]
    plans = plan_feeds(entries, TAGS, {}, same_policy(Policy(max_entries=3)))
    assert [(p.entry_ids, p.total) for p in plans] == [(("id-09", "id-08", "id-07"), 10)] * 2


def test_fifty_entries_when_the_policy_says_nothing() -> None:
    entries = [candidate(n) for n in range(60)]
    (plan,) = plan_feeds(entries, {}, {}, same_policy(Policy()))
    assert len(plan.entry_ids) == 50 and plan.total == 60 and plan.entry_ids[0] == "id-59"


def test_min_entries_drops_small_term_feeds_but_never_the_all_feed() -> None:
    entries = [candidate(1, tags=("python",)), candidate(2, tags=("python",)), candidate(3, tags=("go",))]
    plans = plan_feeds(entries, TAGS, {}, same_policy(Policy(min_entries=2)))
    assert [p.stem for p in plans] == ["all", "tags/python"]
    alone = plan_feeds([candidate(1)], {}, {}, same_policy(Policy(min_entries=5)))
    assert [p.stem for p in alone] == ["all"]
    assert plan_feeds([], {}, {}, same_policy(Policy()))[0].entry_ids == ()


def test_policy_per_feed_and_sources_admitted() -> None:
    entries = [candidate(1, tags=("python",), sources=frozenset({"posts"})),
               candidate(2, tags=("python",), sources=frozenset({"wire"})),
               candidate(3, tags=("python",), sources=frozenset({"wire", "posts"})),
               candidate(4, tags=("go",), sources=frozenset({"wire"}))]
    asked: list[tuple[str, str | None]] = []

    def policy_of(kind: FeedKind, term: Term | None) -> Policy:
        asked.append((kind, term.key if term else None))
        if kind == "all":
            return Policy(exclude_sources=["wire"])  # an entry only from excluded sources is left out
        if term is not None and term.key == "python":
            return Policy(include_sources=["wire"], max_entries=1)
        return Policy(include_sources=["posts"])  # nothing of "go" is from posts: no feed

    plans = plan_feeds(entries, TAGS, CATEGORIES, policy_of)
    assert asked == [("all", None), ("tag", "go"), ("tag", "python")]
    assert [(p.stem, p.entry_ids, p.total) for p in plans] == [
        ("all", ("id-03", "id-01"), 2), ("tags/python", ("id-03",), 2)]
    assert plans[1].policy.max_entries == 1


@settings(deadline=None, max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 20), st.frozensets(st.sampled_from(sorted(TAGS)))), max_size=30),
       st.integers(1, 8))
def test_every_plan_is_the_newest_of_its_members(rows: list[tuple[int, frozenset[str]]], cap: int) -> None:
    entries = [Candidate(f"e{i}", T0 + timedelta(hours=h), tuple(sorted(tags)), ()) for i, (h, tags) in enumerate(rows)]
    plans: list[FeedPlan] = plan_feeds(entries, TAGS, {}, same_policy(Policy(max_entries=cap)))
    for plan in plans:
        members = [c for c in entries if plan.term is None or plan.term.key in c.tags]
        assert plan.entry_ids == tuple(c.id for c in sorted(members, key=order_key)[:cap])
        assert plan.total == len(members) > 0 or plan.kind == "all"
    assert {p.term.key for p in plans if p.term} == {t for _, tags in rows for t in tags}
