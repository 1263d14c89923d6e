"""Story merging (build/stories.py): pure, so posts and items are made in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feeds.build.stories import DAMAGED_DATE, FoundPost, merge_stories
from feeds.build.taxonomy import Vocabulary
from feeds.identity import Ledger
from feeds.models import PostMeta
from feeds.store import ItemHead

DAY = datetime(2022, 5, 1, 8, 0, tzinfo=UTC)


def meta(path: str, *, title: str = "A title", explicit_id: str | None = None, link: str | None = None,
         tags: tuple[str, ...] = (), categories: tuple[str, ...] = (), updated: datetime = DAY,
         published: datetime = DAY) -> PostMeta:
    return PostMeta(path=path, digest=f"digest-{path}", title=title, published=published, updated=updated,
                    explicit_id=explicit_id, link=link, permalink=None, authors=(), tags=tags,
                    categories=categories, summary=None, language=None, image=None, body_line=4)


def head(source: str, ukey: str, entry_id: str, *, link: str | None = None, updated: float = 0.0,
         published: float = 1_600_000_000.0, tags: tuple[str, ...] = ()) -> ItemHead:
    return ItemHead(source, ukey, entry_id, link, published, updated, tags, f"d-{ukey}")


def plain() -> Vocabulary:
    return Vocabulary({}, {})


def test_duplicates_merge_into_the_most_recently_updated_post_with_every_tag() -> None:
    old = meta("posts/a.md", explicit_id="same", tags=("Old",), updated=DAY)
    new = meta("posts/b.md", explicit_id="same", tags=("New",), categories=("Cat",), updated=DAY + timedelta(1))
    stories = merge_stories([FoundPost(0, old), FoundPost(1, new)], [], Ledger(), plain(), plain())
    (story,) = stories.by_id.values()
    assert story.post == new and story.merged == (old,) and story.folder == 1
    assert story.tags == ("New", "Old") and story.categories == ("Cat",)
    assert [(m.primary, m.others) for m in stories.merges] == [("posts/b.md", ("posts/a.md",))]


def test_an_item_joins_the_post_with_its_link_and_brings_its_tags() -> None:
    post = meta("posts/a.md", link="https://site.example/a", tags=("Local",))
    item = head("wire", "k1", "urn:other", link="https://site.example/a", tags=("Wire",))
    stories = merge_stories([FoundPost(0, post)], [item], Ledger(), plain(), plain())
    assert list(stories.by_id) == ["https://site.example/a"]
    story = stories.by_id["https://site.example/a"]
    assert story.items == (item,) and story.tags == ("Local", "Wire")
    assert story.sources == frozenset({"posts", "wire"})


def test_items_of_one_story_from_two_sources_are_one_story_newest_update_first() -> None:
    first = head("a", "k1", "urn:x", updated=10.0, published=1_600_000_100.0)
    second = head("b", "k2", "urn:x", updated=20.0, published=1_600_000_200.0)
    lone = head("a", "k3", "urn:y")
    stories = merge_stories([], [first, lone, second], Ledger(), plain(), plain())
    assert list(stories.by_id) == ["urn:x", "urn:y"]
    story = stories.by_id["urn:x"]
    assert story.items == (second, first) and story.post is None and story.folder is None
    assert story.published == datetime.fromtimestamp(1_600_000_200.0, UTC)


def test_tags_go_through_the_aliases_and_one_spelling_per_term() -> None:
    post = meta("posts/a.md", tags=("Py", "python", "PYTHON", "Other"))
    stories = merge_stories([FoundPost(0, post)], [], Ledger(), Vocabulary({"Py": "Python"}, {}), plain())
    (story,) = stories.by_id.values()
    assert story.tags == ("Python", "Other") and story.tag_keys == ("python", "other")
    assert stories.terms.tag_names(story) == ["Python", "Other"]
    assert stories.problems == ()


def test_slug_collisions_are_returned_not_logged() -> None:
    post = meta("posts/a.md", tags=("a.b", "a b"), categories=("X/Y", "X Y"))
    stories = merge_stories([FoundPost(0, post)], [], Ledger(), plain(), plain())
    assert len(stories.problems) == 2
    assert stories.problems[0].startswith("tag slug collision: ")
    assert stories.problems[1].startswith("category slug collision: ")
    slugs = {t.slug for t in stories.terms.tags.values()}
    assert len(slugs) == 2


def test_a_damaged_item_row_keeps_its_story() -> None:
    item = head("wire", "k1", "urn:x", published=1e300, tags=("Good", "", 5))  # type: ignore[arg-type]
    stories = merge_stories([], [item], Ledger(), plain(), plain())
    story = stories.by_id["urn:x"]
    assert story.published == DAMAGED_DATE and story.tags == ("Good",)


def test_a_post_keeps_its_id_when_its_title_is_fixed() -> None:
    ledger = Ledger()
    first = merge_stories([FoundPost(0, meta("posts/a.md", title="Tpyo"))], [], ledger, plain(), plain())
    fixed = merge_stories([FoundPost(0, meta("posts/a.md", title="Typo"))], [], ledger, plain(), plain())
    assert list(first.by_id) == list(fixed.by_id)
    other = merge_stories([FoundPost(0, meta("posts/b.md", title="Typo"))], [], Ledger(), plain(), plain())
    assert list(other.by_id) != list(first.by_id)


def test_candidates_carry_keys_and_sources() -> None:
    post = meta("posts/a.md", tags=("T",), categories=("C",))
    (story,) = merge_stories([FoundPost(0, post)], [], Ledger(), plain(), plain()).by_id.values()
    candidate = story.candidate()
    assert (candidate.tags, candidate.categories, candidate.sources) == (("t",), ("c",), frozenset({"posts"}))
