"""Reading back the archive pages already published, for a state database that has no
record of them (moved aside by ``--rebuild-state``, or lost): which entries each page
holds, so that the pages are not cut again differently from what subscribers have read.

Reads the output folder only (the page files, without following symlinks); writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from lxml import etree

from ..config import Config
from ..errors import PublishError
from ..layout import FeedFormat, archive_stem, feed_file
from ..store import OutputRecord
from .publish import read_bytes, safe_target
from .run import bytes_signature, stat

ATOM = "{http://www.w3.org/2005/Atom}"

#: The formats a page's entries are read from, in this order (each holds the same entries).
READ_ORDER: tuple[FeedFormat, ...] = ("atom", "rss", "json")


class ReadBack(NamedTuple):
    """The pages found: (feed stem, number, entry ids newest first), and the records of
    their files, signed by their bytes."""

    pages: list[tuple[str, int, tuple[str, ...]]]
    records: list[OutputRecord]


def entry_ids(data: bytes, fmt: FeedFormat) -> tuple[str, ...] | None:
    """The entry ids of a page in ``fmt``, in order; None if it is not one this program writes."""
    try:
        if fmt == "json":
            doc = json.loads(data)
            items = doc.get("items") if isinstance(doc, dict) else None
            if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("id"), str)
                                                      for i in items):
                return None
            return tuple(i["id"] for i in items)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        root = etree.fromstring(data, parser)
    except (ValueError, etree.XMLSyntaxError):
        return None
    if fmt == "atom":
        if root.tag != f"{ATOM}feed":
            return None
        found = [entry.findtext(f"{ATOM}id") for entry in root.iterfind(f"{ATOM}entry")]
    else:
        if root.tag != "rss":
            return None
        found = [item.findtext("guid") for item in root.iterfind("channel/item")]
    return tuple(i.strip() for i in found if i) if all(found) else None


def read_back(config: Config, feeds: Iterable[tuple[str, Sequence[FeedFormat], frozenset[str]]]) -> ReadBack:
    """For each feed (stem, formats, the ids of its whole history): its published pages
    from page 1 on, as long as they run on and each holds at least one of the feed's
    entries (a page of some other site's feed is not taken for this one's) and none
    that an earlier page holds. A page's
    files that disagree with the first one read are not taken: they are made again."""
    found = ReadBack([], [])
    for stem, formats, history in feeds:
        number, seen = 1, set[str]()
        while True:
            ids, records = _page(config, archive_stem(stem, number), formats)
            if ids is None or history.isdisjoint(ids) or len(set(ids)) != len(ids) or not seen.isdisjoint(ids):
                break  # not a page of this feed's, or one holding an entry twice
            seen.update(ids)
            found.pages.append((stem, number, ids))
            found.records.extend(records)
            number += 1
    return found


def _page(config: Config, stem: str, formats: Sequence[FeedFormat]) -> tuple[tuple[str, ...] | None,
                                                                               list[OutputRecord]]:
    ids: tuple[str, ...] | None = None
    records = []
    for fmt in sorted(formats, key=READ_ORDER.index):
        relative = feed_file(stem, fmt)
        try:
            target = safe_target(config.output_dir, relative)
            before = stat(target)
            data = read_bytes(target)
        except PublishError:
            continue
        if data is None or before is None or stat(target) != before:
            continue
        these = entry_ids(data, fmt)
        if these is None or (ids is not None and these != ids):
            continue
        ids = these
        records.append(OutputRecord(relative, bytes_signature(data), *before))
    return ids, records
