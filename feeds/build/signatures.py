"""Signatures: a hash of everything a feed file is made from, and of a run's inputs.

A feed file whose signature matches the one recorded when it was written (and
whose size and mtime are as recorded) is not rendered again. The run snapshot
hashes every input's name, size and mtime, so a run that finds it unchanged
(and every output as left) does nothing.

Pure: keys, heads, plans and stories in, hex digests out. Touches no file,
network, database or clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

from ..layout import FileFormat
from ..render.feed import FeedHead
from ..store.records import ItemHead
from .group import FeedPlan
from .stories import Stories, Story, StoryIndex, Terms


def feed_signature(key: str, fmt: FileFormat, head: FeedHead, plan: FeedPlan, stories: Mapping[str, Story],
                   terms: Terms) -> str:
    """What the feed file of ``plan`` in ``fmt`` is made from: the settings (``key``), its
    head, and each entry's id, post digest, item digests and published terms."""
    return signature_of_parts(key, fmt, head, (story_part(stories[i], terms) for i in plan.entry_ids))


def parts_of(stories: Stories) -> Callable[[str], bytes]:
    """Each entry's :func:`entry_part` by id (each made once): from the story, or for a
    :class:`StoryIndex` from its shape and its post's current digest, reading no front matter."""
    by_id, terms = stories.by_id, stories.terms
    made: dict[str, bytes] = {}
    if not isinstance(by_id, StoryIndex):
        def part_of_story(entry_id: str) -> bytes:
            found = made.get(entry_id)
            if found is None:
                found = made[entry_id] = story_part(by_id[entry_id], terms)
            return found

        return part_of_story
    shapes, digests, tags, categories = by_id.shapes, by_id.digests, terms.tags, terms.categories

    def part(entry_id: str) -> bytes:
        found = made.get(entry_id)
        if found is None:
            s = shapes[entry_id]
            names = str([*(tags[k].name for k in s.tag_keys), "\0", *(categories[k].name for k in s.category_keys)])
            post = (s.post, digests[s.post]) if s.post is not None else None
            found = made[entry_id] = _part(entry_id, post, names, s.items)
        return found

    return part


def signature_of_parts(key: str, fmt: FileFormat, head: FeedHead, parts: Iterable[bytes]) -> str:
    """:func:`feed_signature` of a feed whose entries' parts (:func:`entry_part`) are ``parts``."""
    h = hashlib.sha1(f"{key}\0{fmt}\0{head!r}".encode())
    for part in parts:
        h.update(part)
    return h.hexdigest()


def story_part(story: Story, terms: Terms) -> bytes:
    post = story.post
    return entry_part(story.id, (post.path, post.digest) if post is not None else None,
                      [*terms.tag_names(story), "\0", *terms.category_names(story)], story.items)


def entry_part(entry_id: str, post: tuple[str, str] | None, names: list[str], items: Iterable[ItemHead]) -> bytes:
    """What one entry adds to the signature of each feed showing it: its id, its post's
    path and digest, its published terms (``names``) and its items' digests."""
    return _part(entry_id, post, str(names), items)


def _part(entry_id: str, post: tuple[str, str] | None, names: str, items: Iterable[ItemHead]) -> bytes:
    """:func:`entry_part` with the names already written as text (``str`` of the list)."""
    text = f"\0{entry_id}\0{post[1]}\0{post[0]}\0{names}" if post is not None else f"\0{entry_id}\0{names}"
    if items == ():
        return text.encode()
    return (text + "".join(f"\0{item.source}\0{item.ukey}\0{item.digest}" for item in items)).encode()


def page_key(key: str, templates: Iterable[tuple[str, int, int]]) -> str:
    """The settings part of a page's signature: a page is rendered through the templates,
    so editing one makes every page again."""
    h = hashlib.sha1(f"{key}\0pages".encode())
    for name, size, mtime_ns in templates:
        h.update(f"template\0{name}\0{mtime_ns}\0{size}\n".encode())
    return h.hexdigest()


def run_snapshot(key: str, items_version: str | None, files: str,
                 templates: Iterable[tuple[str, int, int]]) -> str:
    """A hash of the settings (``key``), the stored items' version, the post files (``files``:
    a digest of every one's posts input, name, size and mtime) and every template's (name,
    size, mtime)."""
    h = hashlib.sha1(key.encode())
    h.update(f"items:{items_version}\nfiles:{files}\n".encode())
    for name, size, mtime_ns in templates:
        h.update(f"template\0{name}\0{mtime_ns}\0{size}\n".encode())
    return h.hexdigest()
