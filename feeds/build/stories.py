"""Merge local posts and items of source feeds into stories: one per entry id.

A story is one entry: a primary post with the duplicates merged into it, the
items of source feeds that carry the same story, or both. Tags and categories
go through the vocabularies here, and the published terms (with any slug
collisions) are returned beside the stories, not logged.

Pure: posts, items and the id ledger in, stories out. Touches no file, network,
database or clock (``post_id`` records new ids in the in-memory ledger; the
caller loads and saves it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import NamedTuple

from ..identity import Ledger, post_id
from ..models import EPOCH, PostMeta
from ..store.records import ItemHead
from .group import Candidate
from .taxonomy import Term, Vocabulary, term_key

#: The date of an item whose stored date is out of range (a damaged row): the end of every feed.
DAMAGED_DATE = EPOCH


class FoundPost(NamedTuple):
    """A post's front matter and the posts input (its index in ``config.posts``) it was found in."""

    folder: int
    meta: PostMeta


@dataclass(frozen=True, slots=True)
class Story:
    """One entry: from local posts (a primary post and duplicates merged in), from
    source feeds (the same story as one or more sources carry it), or both."""

    id: str
    published: datetime
    post: PostMeta | None
    folder: int | None
    merged: tuple[PostMeta, ...]
    #: Items of source feeds, the most recently updated first.
    items: tuple[ItemHead, ...]
    #: Tag and category spellings (after the alias map), one per term, and their term keys.
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    tag_keys: tuple[str, ...]
    category_keys: tuple[str, ...]

    @property
    def sources(self) -> frozenset[str]:
        """Names of the sources it came from ("posts" for local posts)."""
        names = {item.source for item in self.items}
        if self.post is not None:
            names.add("posts")
        return frozenset(names)

    def candidate(self) -> Candidate:
        return Candidate(self.id, self.published, self.tag_keys, self.category_keys, self.sources)


class Merge(NamedTuple):
    """Posts that turned out to be one entry: the primary's path, the others', the id."""

    primary: str
    others: tuple[str, ...]
    entry_id: str


@dataclass(frozen=True, slots=True)
class Terms:
    """The published tags and categories, keyed by term key."""

    tags: Mapping[str, Term]
    categories: Mapping[str, Term]

    def tag_names(self, story: Story) -> list[str]:
        return [self.tags[k].name for k in story.tag_keys]

    def category_names(self, story: Story) -> list[str]:
        return [self.categories[k].name for k in story.category_keys]


@dataclass(frozen=True, slots=True)
class Stories:
    """Every story by id (in id order), the terms they use, and what was found on the way."""

    by_id: Mapping[str, Story]
    terms: Terms
    merges: tuple[Merge, ...]
    #: Slug collisions, one line each ("tag slug collision: ...").
    problems: tuple[str, ...]


def unique_terms(names: Iterable[str]) -> dict[str, str]:
    """Term key -> the first spelling of that term, in order."""
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(term_key(name), name)
    return seen


def stored_date(value: float) -> datetime:
    """A stored time as a date; one out of range (a damaged row) as 1970."""
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return DAMAGED_DATE


def merge_stories(posts: Sequence[FoundPost], items: Sequence[ItemHead], ledger: Ledger,
                  tag_vocab: Vocabulary, category_vocab: Vocabulary) -> Stories:
    """Stories of ``posts`` and ``items``: posts with one id are duplicates (the most
    recently updated wins, its tags joined by the others'); an item joins the post with
    its id or its link, else the items with its id."""
    by_id: dict[str, list[FoundPost]] = {}
    for found in posts:
        meta = found.meta
        entry_id = post_id(meta.explicit_id, meta.link, meta.title, meta.published.isoformat(), meta.path, ledger)
        by_id.setdefault(entry_id, []).append(found)

    post_links = {f.meta.link: entry_id for entry_id, group in by_id.items() for f in group if f.meta.link}
    remote: dict[str, list[ItemHead]] = {}
    for item in items:
        target = item.entry_id if item.entry_id in by_id else post_links.get(item.link or "", item.entry_id)
        remote.setdefault(target, []).append(item)

    stories: dict[str, Story] = {}
    merges: list[Merge] = []
    for entry_id in sorted(by_id.keys() | remote.keys()):
        group = sorted(by_id.get(entry_id, []), key=lambda f: (-f.meta.updated.timestamp(), f.meta.path))
        heads = sorted(remote.get(entry_id, []), key=lambda i: (-i.updated, i.source, i.ukey))
        primary = group[0].meta if group else None
        merged = tuple(f.meta for f in group[1:])
        if merged and primary is not None:
            merges.append(Merge(primary.path, tuple(m.path for m in merged), entry_id))
        metas = [f.meta for f in group]
        tags = unique_terms(tag_vocab.canonical(t) for t in chain(
            (t for m in metas for t in m.tags),
            (t for h in heads for t in h.tags if isinstance(t, str) and t.strip())))  # stored rows may be damaged
        categories = unique_terms(category_vocab.canonical(c) for m in metas for c in m.categories)
        published = primary.published if primary is not None else stored_date(heads[0].published)
        stories[entry_id] = Story(entry_id, published, primary, group[0].folder if group else None, merged,
                                  tuple(heads), tuple(tags.values()), tuple(categories.values()), tuple(tags),
                                  tuple(categories))
    tag_terms, tag_problems = _resolve(tag_vocab, (s.tags for s in stories.values()))
    category_terms, category_problems = _resolve(category_vocab, (s.categories for s in stories.values()))
    problems = [f"tag slug collision: {p}" for p in tag_problems] + \
               [f"category slug collision: {p}" for p in category_problems]
    return Stories(stories, Terms(tag_terms, category_terms), tuple(merges), tuple(problems))


def _resolve(vocab: Vocabulary, names: Iterable[tuple[str, ...]]) -> tuple[dict[str, Term], list[str]]:
    counts: Counter[str] = Counter(n for group in names for n in group)
    return vocab.resolve(counts)
