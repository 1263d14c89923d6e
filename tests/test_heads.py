"""Feed heads, signatures, entries and listings (build/): pure, so made from in-memory configs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from feeds.build.entries import build_entry, stored_entries
from feeds.build.group import FeedPlan
from feeds.build.heads import HEALTHY_SINCE, feed_head, feed_titles, status_head
from feeds.build.keys import content_key, feed_key, post_key, snapshot_key
from feeds.build.pages import front_door, listing
from feeds.build.signatures import feed_signature, parts_of, run_snapshot, story_part
from feeds.build.stories import (
    FoundPost,
    Grouping,
    Stories,
    StoryIndex,
    decode_grouping,
    encode_grouping,
    merge_stories,
)
from feeds.build.taxonomy import Term, Vocabulary
from feeds.config import Config
from feeds.identity import Ledger
from feeds.models import Entry, PostMeta
from feeds.posts import PostFile
from feeds.posts.inputs import FoundFile
from feeds.store import ItemHead
from feeds.unchanged import files_digest

DAY = datetime(2022, 5, 1, 8, 0, tzinfo=UTC)


def config(**more: Any) -> Config:
    data: dict[str, Any] = {"site": {"title": "Site", "base_url": "https://example.org/f/"}, "posts": [{"path": "p"}]}
    for key, value in more.items():
        data.setdefault(key, {}).update(value) if isinstance(value, dict) else data.__setitem__(key, value)
    return Config.model_validate(data)


def plan(c: Config, kind: str = "tag", name: str = "Café", ids: tuple[str, ...] = ()) -> FeedPlan:
    term = None if kind == "all" else Term(key=name.casefold(), name=name, slug=name.casefold())
    stem = "all" if term is None else f"{'tags' if kind == 'tag' else 'categories'}/{term.slug}"
    return FeedPlan(kind, term, stem, ids, c.policy(kind, name if term else None), len(ids))  # type: ignore[arg-type]


def test_default_titles_per_kind() -> None:
    c = config(site={"description": None})
    assert feed_titles(c, plan(c, "all")) == ("Site", "All entries of Site")
    assert feed_titles(c, plan(c, "tag")) == ("Café — Site", "Entries tagged Café")
    assert feed_titles(c, plan(c, "category")) == ("Café — Site", "Entries in the category Café")


def test_policy_patterns_replace_the_titles() -> None:
    c = config(feeds={"tags": {"title": "{name} on {site}", "description": "All about {name}"}})
    assert feed_titles(c, plan(c, "tag")) == ("Café on Site", "All about Café")
    assert feed_titles(c, plan(c, "category")) == ("Café — Site", "Entries in the category Café")


def test_a_head_links_its_own_url_the_stylesheet_and_the_hub() -> None:
    c = config(websub={"hub": "https://hub.example/"}, feeds={"tags": {"content": "summary"}})
    head = feed_head(c, plan(c), "tags/café.atom.xml")
    assert head.self_url == "https://example.org/f/tags/caf%C3%A9.atom.xml"
    assert head.stylesheet == "../feed.xsl" and head.hub == "https://hub.example/"
    assert head.home_url == "https://example.org/f/" and head.author == "Site" and not head.full_content
    bare = feed_head(config(output={"stylesheet": False}), plan(c, "all"), "all.rss.xml")
    assert bare.stylesheet is None and bare.hub is None and bare.full_content


def test_the_status_head_has_a_fixed_date() -> None:
    head = status_head(config(site={"link": "https://example.org/"}))
    assert head.empty_updated == HEALTHY_SINCE and head.self_url == "https://example.org/f/status.atom"
    assert head.home_url == "https://example.org/"


def _meta(path: str, digest: str = "d1", tags: tuple[str, ...] = ("T",)) -> PostMeta:
    return PostMeta(path=path, digest=digest, title="Title", published=DAY, updated=DAY, explicit_id="id-1",
                    link="https://example.org/a", permalink=None, authors=(), tags=tags, categories=(),
                    summary=None, language=None, image=None, body_line=3)


def test_a_signature_changes_with_what_the_feed_is_made_of() -> None:
    c = config()
    stories = merge_stories([FoundPost(0, _meta("p/a.md"))], [], Ledger(), Vocabulary({}, {}), Vocabulary({}, {}))
    p = plan(c, "all", ids=tuple(stories.by_id))
    head = feed_head(c, p, "all.atom.xml")
    key = feed_key(c)
    base = feed_signature(key, "atom", head, p, stories.by_id, stories.terms)
    assert base == feed_signature(key, "atom", head, p, stories.by_id, stories.terms)
    assert base != feed_signature(key, "rss", head, p, stories.by_id, stories.terms)
    assert base != feed_signature(feed_key(config(site={"title": "Other"})), "atom", head, p, stories.by_id,
                                  stories.terms)
    edited = merge_stories([FoundPost(0, _meta("p/a.md", digest="d2"))], [], Ledger(), Vocabulary({}, {}),
                           Vocabulary({}, {}))
    assert base != feed_signature(key, "atom", head, p, edited.by_id, edited.terms)
    renamed = merge_stories([FoundPost(0, _meta("p/a.md"))], [], Ledger(), Vocabulary({"T": "U"}, {}),
                            Vocabulary({}, {}))
    assert base != feed_signature(key, "atom", head, p, renamed.by_id, renamed.terms)


def test_keys_cover_only_what_their_stage_reads() -> None:
    c = config()
    folder = c.posts[0]
    unrelated = config(schedule={"debounce": 30}, fetch={"concurrency": 2})
    assert (post_key(c, folder), content_key(c, folder), feed_key(c), snapshot_key(c)) == \
           (post_key(unrelated, unrelated.posts[0]), content_key(unrelated, unrelated.posts[0]), feed_key(unrelated),
            snapshot_key(unrelated))
    length = config(output={"summary_length": 50})
    assert post_key(length, length.posts[0]) == post_key(c, folder)
    assert content_key(length, length.posts[0]) != content_key(c, folder)
    zone = config(site={"timezone": "Asia/Tokyo"})
    assert post_key(zone, zone.posts[0]) != post_key(c, folder)
    every = config(sources=[{"name": "s", "url": "s.xml", "every": 60}])
    assert snapshot_key(every) == snapshot_key(config(sources=[{"name": "s", "url": "s.xml", "every": 600}]))
    assert snapshot_key(every) != snapshot_key(config(sources=[{"name": "s", "url": "s.xml", "enabled": False}]))


def test_run_snapshot_moves_with_any_input() -> None:
    files = files_digest([FoundFile(0, PostFile("posts/p/a.md", "p/a.md", 1, 2))])
    base = run_snapshot("k", "v1", files, [("index.html", 10, 20)])
    assert base == run_snapshot("k", "v1", files, [("index.html", 10, 20)])
    assert base != run_snapshot("k2", "v1", files, [("index.html", 10, 20)])
    assert base != run_snapshot("k", "v2", files, [("index.html", 10, 20)])
    assert base != run_snapshot("k", None, files, [("index.html", 10, 20)])
    for changed in (PostFile("posts/p/a.md", "p/a.md", 1, 3), PostFile("posts/p/a.md", "p/a.md", 2, 2),
                    PostFile("posts/p/b.md", "p/b.md", 1, 2)):
        assert base != run_snapshot("k", "v1", files_digest([FoundFile(0, changed)]), [("index.html", 10, 20)])
    assert base != run_snapshot("k", "v1", files_digest([FoundFile(1, PostFile("posts/p/a.md", "p/a.md", 1, 2))]),
                                [("index.html", 10, 20)])
    assert base != run_snapshot("k", "v1", files, [("index.html", 10, 21)])
    assert base != run_snapshot("k", "v1", files, [("index.html", 11, 20)])


def test_an_entry_from_a_post_and_from_a_stored_item() -> None:
    c = config(posts=[{"path": "p", "summary_only": True}])
    item = ItemHead("wire", "k1", "urn:x", None, 1_600_000_000.0, 0.0, ("W",), "d")
    stories = merge_stories([FoundPost(0, _meta("p/a.md"))], [item], Ledger(), Vocabulary({}, {}),
                            Vocabulary({}, {}))
    (post_story,) = (s for s in stories.by_id.values() if s.post is not None)
    entry = build_entry(post_story, stories.terms, folder=c.posts[0], content="<p>x</p>", summary="x")
    assert entry is not None and entry.content is None and entry.summary == "x" and entry.tags == ("T",)
    assert entry.provenance[0].source == "posts:p"
    stored = Entry(id="upstream", title="Item", link=None, published=DAY, updated=DAY)
    remote, problems = stored_entries([item, item._replace(ukey="gone")], {("wire", "k1"): _entry_json(stored)})
    assert [e.title for e in remote] == ["Item"] and problems == ["wire: a stored item has gone; item 'gone' left out"]
    item_entry = build_entry(stories.by_id["urn:x"], stories.terms, folder=None, remote=remote)
    assert item_entry is not None and item_entry.id == "urn:x" and item_entry.tags == ("W",)
    assert build_entry(stories.by_id["urn:x"], stories.terms, folder=None, remote=[]) is None


def _entry_json(entry: Entry) -> str:
    import json
    return json.dumps({"id": entry.id, "title": entry.title, "published": entry.published.timestamp(),
                       "updated": entry.updated.timestamp()})


def test_listings_link_each_format_and_the_page() -> None:
    c = config(output={"formats": ["rss", "json"], "pages": True})
    stories = merge_stories([FoundPost(0, _meta("p/a.md"))], [], Ledger(), Vocabulary({}, {}), Vocabulary({}, {}))
    ids = tuple(stories.by_id)
    tag = plan(c, "tag", ids=ids)
    shown = listing(c, tag, stories.by_id)
    assert [link.href for link in shown.links] == ["tags/caf%C3%A9.rss.xml", "tags/caf%C3%A9.feed.json"]
    assert shown.xml == "https://example.org/f/tags/caf%C3%A9.rss.xml" and shown.page == "tags/caf%C3%A9.html"
    assert shown.newest == "2022-05-01" and shown.title == "Café — Site"
    absolute = listing(c, tag, stories.by_id, absolute=True)
    assert absolute.links[0].href == "https://example.org/f/tags/caf%C3%A9.rss.xml"
    main, groups = front_door(c, [plan(c, "all", ids=ids), tag], stories.by_id)
    assert main.name == "All entries" and [len(g.feeds) for g in groups] == [1, 0]


def test_a_kept_grouping_signs_each_entry_as_the_stories_it_was_made_of() -> None:
    """The parts of a feed's signature made from the last run's grouping (shapes and the
    posts' digests, no front matter) are the bytes the stories themselves give: else a run
    that keeps the grouping would write every feed again."""
    item = ItemHead("wire", "k1", "urn:x", None, 1_600_000_000.0, 0.0, ("W", "T"), "d")
    merged = ItemHead("wire", "k2", "https://example.org/a", None, 1_600_000_000.0, 0.0, (), "e")
    found = [FoundPost(0, _meta("p/a.md", tags=("T", "Ü", "t"))._replace(explicit_id=None)),
             FoundPost(0, _meta("p/b.md", tags=())._replace(explicit_id="id-2", link="https://example.org/b")),
             FoundPost(0, _meta("p/c.md", digest="d3")._replace(explicit_id="id-3", categories=("News",),
                                                                link="https://example.org/c"))]
    stories = merge_stories(found, [item, merged], Ledger(), Vocabulary({}, {}), Vocabulary({}, {}))
    plans = [plan(config(), "all", ids=tuple(stories.by_id))]
    kept = decode_grouping(encode_grouping(Grouping.of("k", stories, plans)))
    index = StoryIndex(kept.stories, {f.meta.path: f.meta.digest for f in found}, lambda paths: {})
    again = Stories(index, kept.terms, kept.merges, kept.problems, kept.count)
    fresh, from_index = parts_of(stories), parts_of(again)
    shapes = {(s.post is not None, bool(s.items), bool(s.category_keys)) for s in stories.by_id.values()}
    assert shapes == {(True, True, False), (True, False, False), (True, False, True), (False, True, False)}
    for i, story in stories.by_id.items():
        assert from_index(i) == fresh(i) == story_part(story, stories.terms)
