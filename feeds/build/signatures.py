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
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from ..layout import FileFormat
from ..render.feed import FeedHead
from .group import FeedPlan
from .stories import Story, Terms


class InputStat(NamedTuple):
    """One input file as a scan saw it: its posts input (index), name, mtime and size."""

    folder: int
    name: str
    mtime_ns: int
    size: int


def feed_signature(key: str, fmt: FileFormat, head: FeedHead, plan: FeedPlan, stories: Mapping[str, Story],
                   terms: Terms) -> str:
    """What the feed file of ``plan`` in ``fmt`` is made from: the settings (``key``), its
    head, and each entry's id, post digest, item digests and published terms."""
    h = hashlib.sha1(f"{key}\0{fmt}\0{head!r}".encode())
    for entry_id in plan.entry_ids:
        s = stories[entry_id]
        names = [*terms.tag_names(s), "\0", *terms.category_names(s)]
        if s.post is not None:
            h.update(f"\0{entry_id}\0{s.post.digest}\0{s.post.path}\0{names}".encode())
        else:
            h.update(f"\0{entry_id}\0{names}".encode())
        for item in s.items:
            h.update(f"\0{item.source}\0{item.ukey}\0{item.digest}".encode())
    return h.hexdigest()


def page_key(key: str, templates: Iterable[tuple[str, int, int]]) -> str:
    """The settings part of a page's signature: a page is rendered through the templates,
    so editing one makes every page again."""
    h = hashlib.sha1(f"{key}\0pages".encode())
    for name, size, mtime_ns in templates:
        h.update(f"template\0{name}\0{mtime_ns}\0{size}\n".encode())
    return h.hexdigest()


def run_snapshot(key: str, items_version: str | None, files: Iterable[InputStat],
                 templates: Iterable[tuple[str, int, int]]) -> str:
    """A hash of the settings (``key``), the stored items' version, every post file's name,
    size and mtime, and every template's (name, size, mtime)."""
    h = hashlib.sha1(key.encode())
    h.update(f"items:{items_version}\n".encode())
    for f in files:
        h.update(f"{f.folder}\0{f.name}\0{f.mtime_ns}\0{f.size}\n".encode())
    for name, size, mtime_ns in templates:
        h.update(f"template\0{name}\0{mtime_ns}\0{size}\n".encode())
    return h.hexdigest()
