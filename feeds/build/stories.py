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

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any, NamedTuple

from ..identity import Ledger, post_id
from ..models import EPOCH, PostMeta
from ..store.records import ItemHead
from .group import Candidate, FeedPlan
from .taxonomy import Term, Vocabulary, term_key

#: The date of an item whose stored date is out of range (a damaged row): the end of every feed.
DAMAGED_DATE = EPOCH


class FoundPost(NamedTuple):
    """A post's front matter and the posts input (its index in ``config.posts``) it was found in."""

    folder: int
    meta: PostMeta


_POSTS = frozenset({"posts"})


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
        if not self.items:
            return _POSTS if self.post is not None else frozenset()
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
    """Every story by id (in id order), the terms they use, and what was found on the way.

    Taken from the last run's :class:`Grouping`, ``by_id`` is a :class:`StoryIndex`: the
    stories some feed shows, read when asked for; ``plans`` are then the feeds already."""

    by_id: Mapping[str, Story]
    terms: Terms
    merges: tuple[Merge, ...]
    #: Slug collisions, one line each ("tag slug collision: ...").
    problems: tuple[str, ...]
    #: How many stories there are (``by_id`` may hold only those some feed shows).
    count: int = -1
    plans: tuple[FeedPlan, ...] | None = None

    @property
    def entries(self) -> int:
        return len(self.by_id) if self.count < 0 else self.count


def unique_terms(names: Iterable[str], keys: dict[str, str]) -> dict[str, str]:
    """Term key -> the first spelling of that term, in order. ``keys``: each spelling's
    term key as found so far (kept across calls, so that a spelling's key is made once)."""
    seen: dict[str, str] = {}
    for name in names:
        key = keys.get(name)
        if key is None:
            key = keys[name] = term_key(name)
        seen.setdefault(key, name)
    return seen


class _Canonical:
    """A vocabulary's canonical spellings, each found once per merge: a few hundred terms
    spelled in tens of thousands of posts give a few hundred strings, not one per use."""

    def __init__(self, vocab: Vocabulary) -> None:
        self._vocab = vocab
        self._found: dict[str, str] = {}

    def __call__(self, raw: str) -> str:
        name = self._found.get(raw)
        if name is None:
            name = self._found[raw] = self._vocab.canonical(raw)
        return name


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
    tag_of, category_of = _Canonical(tag_vocab), _Canonical(category_vocab)
    keys: dict[str, str] = {}
    # Equal tuples of terms (most stories share theirs with many others) are one object.
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}
    one = shared.setdefault
    none: list[Any] = []

    def terms_of(metas: Sequence[PostMeta], heads: Sequence[ItemHead]) -> tuple[tuple[str, ...], ...]:
        """Tag names, category names, tag keys and category keys of posts and items (one story's)."""
        tags = unique_terms((tag_of(t) for t in chain(
            (t for m in metas for t in m.tags),
            (t for h in heads for t in h.tags if isinstance(t, str) and t.strip()))), keys)  # rows may be damaged
        categories = unique_terms((category_of(c) for m in metas for c in m.categories), keys)
        made = tuple(tags.values()), tuple(categories.values()), tuple(tags), tuple(categories)
        return tuple(one(t, t) for t in made)

    alone: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[tuple[str, ...], ...]] = {}
    for entry_id in sorted(by_id.keys() | remote.keys()):
        # (Most stories are one post: nothing to sort.)
        group = by_id.get(entry_id, none)
        if len(group) > 1:
            group = sorted(group, key=lambda f: (-f.meta.updated.timestamp(), f.meta.path))
        heads = remote.get(entry_id, none)
        if len(heads) > 1:
            heads = sorted(heads, key=lambda i: (-i.updated, i.source, i.ukey))
        primary = group[0].meta if group else None
        merged = tuple(f.meta for f in group[1:])
        if merged and primary is not None:
            merges.append(Merge(primary.path, tuple(m.path for m in merged), entry_id))
        if primary is not None and not merged and not heads:
            # One post alone: its terms as every other post spelling them the same way has them.
            made = alone.get((primary.tags, primary.categories))
            if made is None:
                made = alone[(primary.tags, primary.categories)] = terms_of([primary], ())
            tag_names, category_names, tag_keys, category_keys = made
        else:
            tag_names, category_names, tag_keys, category_keys = terms_of([f.meta for f in group], heads)
        published = primary.published if primary is not None else stored_date(heads[0].published)
        stories[entry_id] = Story(entry_id, published, primary, group[0].folder if group else None, merged,
                                  tuple(heads), tag_names, category_names, tag_keys, category_keys)
    tag_terms, tag_problems = _resolve(tag_vocab, (s.tags for s in stories.values()))
    category_terms, category_problems = _resolve(category_vocab, (s.categories for s in stories.values()))
    problems = [f"tag slug collision: {p}" for p in tag_problems] + \
               [f"category slug collision: {p}" for p in category_problems]
    return Stories(stories, Terms(tag_terms, category_terms), tuple(merges), tuple(problems))


def _resolve(vocab: Vocabulary, names: Iterable[tuple[str, ...]]) -> tuple[dict[str, Term], list[str]]:
    counts: Counter[str] = Counter(n for group in names for n in group)
    return vocab.resolve(counts)


# -- the grouping, kept for the next run ------------------------------------------


class StoryShape(NamedTuple):
    """A story without its front matter: its posts by path, its items and terms."""

    post: str | None
    folder: int | None
    merged: tuple[str, ...]
    items: tuple[ItemHead, ...]
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    tag_keys: tuple[str, ...]
    category_keys: tuple[str, ...]

    @classmethod
    def of(cls, story: Story) -> StoryShape:
        return cls(story.post.path if story.post else None, story.folder, tuple(m.path for m in story.merged),
                   story.items, story.tags, story.categories, story.tag_keys, story.category_keys)


class PlanShape(NamedTuple):
    """A feed of the grouping without its policy (which the config gives)."""

    kind: str
    term: str | None
    stem: str
    entry_ids: tuple[str, ...]
    total: int

    @classmethod
    def of(cls, plan: FeedPlan) -> PlanShape:
        return cls(plan.kind, plan.term.key if plan.term else None, plan.stem, plan.entry_ids, plan.total)


@dataclass(frozen=True, slots=True)
class Grouping:
    """What merging and planning made of a run's posts and items, for a later run whose
    inputs to them (:func:`grouping_key`) are the same: the stories some feed shows."""

    key: str
    count: int
    terms: Terms
    merges: tuple[Merge, ...]
    problems: tuple[str, ...]
    plans: tuple[PlanShape, ...]
    stories: Mapping[str, StoryShape]

    @classmethod
    def of(cls, key: str, stories: Stories, plans: Sequence[FeedPlan]) -> Grouping:
        shown = {i for p in plans for i in p.entry_ids}
        return cls(key, stories.entries, stories.terms, stories.merges, stories.problems,
                   tuple(PlanShape.of(p) for p in plans),
                   {i: StoryShape.of(stories.by_id[i]) for i in sorted(shown)})


def items_digest(items: Sequence[ItemHead]) -> str:
    """A hash of the items' heads (all that merging reads of them)."""
    return hashlib.sha1(repr(items).encode()).hexdigest()


def grouping_key(settings: str, items: str, ledger_size: int, folders: Sequence[int],
                 paths: Sequence[str], groups: Sequence[str]) -> str:
    """A hash of everything merging and planning read: the settings, the items
    (:func:`items_digest`), the id ledger's size (it only grows) and each post's input, path and
    grouping digest (``codecs.group_digest``), in order (the three sequences are one per post)."""
    if not len(folders) == len(paths) == len(groups):
        raise ValueError("one input, path and grouping digest per post")
    h = hashlib.sha1(f"{settings}\0{items}\0{ledger_size}\0{len(paths)}\n".encode())
    h.update(json.dumps(list(folders)).encode())
    h.update("\n".join(paths).encode())
    h.update("\n".join(groups).encode())
    return h.hexdigest()


def encode_grouping(g: Grouping) -> str:
    def terms(m: Mapping[str, Term]) -> list[list[str]]:
        return [[t.key, t.name, t.slug] for t in m.values()]

    return json.dumps({
        "key": g.key, "count": g.count, "tags": terms(g.terms.tags), "categories": terms(g.terms.categories),
        "merges": [list(m) for m in g.merges], "problems": list(g.problems), "plans": [list(p) for p in g.plans],
        "stories": {i: [s.post, s.folder, s.merged, [list(h) for h in s.items], s.tags, s.categories, s.tag_keys,
                        s.category_keys] for i, s in g.stories.items()},
    }, ensure_ascii=False, separators=(",", ":"))


def decode_grouping(text: str) -> Grouping:
    """The grouping stored as ``text``; ValueError (or TypeError...) when it cannot be read."""
    d = json.loads(text)

    def terms(rows: list[list[str]]) -> dict[str, Term]:
        return {k: Term(k, str(n), str(s)) for k, n, s in rows}

    def strs(v: list[str]) -> tuple[str, ...]:
        if not all(isinstance(x, str) for x in v):
            raise TypeError("not a list of text")
        return tuple(v)

    stories = {}
    for i, (post, folder, merged, items, tags, categories, tag_keys, category_keys) in d["stories"].items():
        stories[str(i)] = StoryShape(
            post if post is None else str(post), folder if folder is None else int(folder), strs(merged),
            tuple(ItemHead(str(a), str(b), str(c), e if e is None else str(e), float(f), float(g), strs(t), str(x))
                  for a, b, c, e, f, g, t, x in items),
            strs(tags), strs(categories), strs(tag_keys), strs(category_keys))
    return Grouping(
        str(d["key"]), int(d["count"]), Terms(terms(d["tags"]), terms(d["categories"])),
        tuple(Merge(str(a), strs(b), str(c)) for a, b, c in d["merges"]), strs(d["problems"]),
        tuple(PlanShape(str(k), t if t is None else str(t), str(s), strs(ids), int(n))
              for k, t, s, ids, n in d["plans"]),
        stories)


class StoryIndex(Mapping[str, Story]):
    """The stories of a :class:`Grouping`, each made when first asked for from its shape
    and its posts' front matter (``metas`` reads them, many at once by :meth:`prefetch`).
    ``digests`` are the posts' current digests, by path."""

    def __init__(self, shapes: Mapping[str, StoryShape], digests: Mapping[str, str],
                 metas: Callable[[Collection[str]], Mapping[str, PostMeta]]) -> None:
        self.shapes = shapes
        self.digests = digests
        self._metas = metas
        self._made: dict[str, Story] = {}

    def __getitem__(self, entry_id: str) -> Story:
        story = self._made.get(entry_id)
        if story is None:
            self.prefetch([entry_id])
            story = self._made[entry_id]
        return story

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self.shapes

    def prefetch(self, entry_ids: Iterable[str]) -> None:
        """Make the stories of ``entry_ids`` (ids of this index) now, their front matter read at once."""
        wanted = [i for i in dict.fromkeys(entry_ids) if i not in self._made]
        if not wanted:
            return
        shapes = [(i, self.shapes[i]) for i in wanted]
        metas = self._metas({p for _, s in shapes for p in (*([s.post] if s.post else []), *s.merged)})
        for entry_id, s in shapes:
            primary = metas[s.post] if s.post is not None else None
            published = primary.published if primary is not None else stored_date(s.items[0].published)
            self._made[entry_id] = Story(entry_id, published, primary, s.folder, tuple(metas[p] for p in s.merged),
                                         s.items, s.tags, s.categories, s.tag_keys, s.category_keys)
