"""Complete archives (RFC 5005): each feed's whole history cut into fixed-size pages.

A feed's history is every entry its policy admits, not only the newest ``max_entries``
it shows. Pages are cut from the oldest entries not yet on a page, ``page_size`` at a
time, and only whole: page 1 holds the oldest entries, page 2 the next, and so on. Once
cut, a page's entries are recorded (the store keeps them) and never change, so its file
is never rewritten. The entries on no page yet (fewer than ``page_size``, normally the
newest) are all in the current feed, which therefore shows its newest ``max_entries``
and, when an entry older than those arrives late, that entry too until it is cut into a
page.

Pure: plans and the recorded pages in, plans with their pages out. Touches no file,
network, database or clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from .group import FeedPlan


def recorded_pages(pages: Sequence[tuple[int, tuple[str, ...]]]) -> list[tuple[str, ...]]:
    """The recorded pages of one feed in order, as far as they run on from page 1 (a gap
    in the numbers, which only a damaged record can have, ends them)."""
    ordered = sorted(pages)
    kept: list[tuple[str, ...]] = []
    for number, ids in ordered:
        if number != len(kept) + 1:
            break
        kept.append(ids)
    return kept


def cut_pages(plan: FeedPlan, recorded: Sequence[tuple[str, ...]], page_size: int) -> FeedPlan:
    """``plan`` with its archive pages: the ``recorded`` ones (oldest first, each listing its
    entries newest first), then new ones cut from its history's oldest entries on no page,
    whole pages only; its entries are its newest ``max_entries`` and those on no page."""
    on_pages = {i for page in recorded for i in page}
    # History is newest first: the entries on no page, oldest last.
    rest = [i for i in plan.history if i not in on_pages]
    pages = list(recorded)
    while len(rest) >= page_size:
        pages.append(tuple(rest[-page_size:]))
        del rest[-page_size:]
    shown = set(plan.entry_ids) | set(rest)
    entry_ids = tuple(i for i in plan.history if i in shown)
    return replace(plan, entry_ids=entry_ids, pages=tuple(pages), frozen=len(recorded))


def archive_plans(plans: Sequence[FeedPlan], recorded: Mapping[str, Sequence[tuple[int, tuple[str, ...]]]],
                  page_size: int) -> list[FeedPlan]:
    """Every plan with its pages (see :func:`cut_pages`); a feed's page size is ``page_size``
    or its ``max_entries`` if smaller, so that what is on no page fits in the current feed."""
    return [cut_pages(p, recorded_pages(recorded.get(p.stem, ())), min(page_size, p.policy.max_entries or page_size))
            for p in plans]


def new_pages(plans: Sequence[FeedPlan]) -> list[tuple[str, int, tuple[str, ...]]]:
    """The pages cut in this run, to record: (feed stem, page number, entry ids)."""
    return [(p.stem, n, ids) for p in plans for n, ids in enumerate(p.pages, 1) if n > p.frozen]
