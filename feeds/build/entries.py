"""Entries: what a feed shows of a story, from its post's cleaned content and the
items of source feeds stored for it.

Pure: a story, its terms, its cleaned content and its stored items in, an
``Entry`` out. Touches no file, network, database or clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from ..config import Posts
from ..errors import StorageError
from ..models import Entry
from ..normalize.posts import entry_from_post
from ..store.codecs import entry_from_json
from ..store.records import ItemHead
from .filters import RuleSet, facts_of
from .stories import Story, Terms


def stored_entries(items: Iterable[ItemHead], data: Mapping[tuple[str, str], str]) -> tuple[list[Entry], list[str]]:
    """The stored entries of ``items`` (most recently updated first), and one line for each
    that cannot be read back (it is left out)."""
    entries: list[Entry] = []
    problems: list[str] = []
    for item in items:
        text = data.get((item.source, item.ukey))
        try:
            if text is None:
                raise StorageError("a stored item has gone")
            entries.append(entry_from_json(text))
        except StorageError as exc:
            problems.append(f"{item.source}: {exc.message}; item {item.ukey[:100]!r} left out")
    return entries, problems


def kept_items(items: Iterable[ItemHead], data: Mapping[tuple[str, str], str],
               rules: Mapping[str, RuleSet]) -> list[ItemHead]:
    """The ``items`` their source's rules admit (``data``: the stored entries of the items of
    the sources with rules). An item whose entry cannot be read is kept: building it says so."""
    kept = []
    for item in items:
        found = rules.get(item.source)
        if found:
            entries, _ = stored_entries([item], data)
            if entries and not found.admits(facts_of(entries[0])):
                continue
        kept.append(item)
    return kept


def build_entry(story: Story, terms: Terms, *, folder: Posts | None, content: str = "", summary: str = "",
                remote: Sequence[Entry] = ()) -> Entry | None:
    """The entry of ``story``: its post's (``folder`` is its posts input) with the items'
    provenance added, else its newest stored item's under the story's id and terms. None
    when it has neither a post nor a readable item."""
    tags = terms.tag_names(story)
    categories = terms.category_names(story)
    if not remote and story.post is None:
        return None
    provenance = tuple(p for e in remote for p in e.provenance)
    if story.post is not None:
        assert folder is not None
        entry = entry_from_post(story.post, entry_id=story.id, content=content, summary=summary, tags=tags,
                                categories=categories, source=f"posts:{folder.path}",
                                summary_only=folder.summary_only, merged=story.merged)
        return replace(entry, provenance=entry.provenance + provenance)
    return replace(remote[0], id=story.id, tags=tuple(tags), categories=tuple(categories), provenance=provenance)
