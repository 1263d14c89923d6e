#!/usr/bin/env python3
"""The floor to compare `feeds generate` with: parse every post's front matter with
python-frontmatter and write one Atom file per tag (newest 50) with feedgen. No cleaning,
no Markdown, no RSS, no validation, no state: only what any such tool must do.

    bare_baseline.py POSTS_DIR OUT_DIR
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import frontmatter
from feedgen.feed import FeedGenerator


def when(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace(" +", "+"))
    except ValueError:
        return dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def main() -> None:
    posts, out = Path(sys.argv[1]), Path(sys.argv[2])
    by_tag: dict[str, list[tuple[dt.datetime, str, str, str]]] = {}
    for name in sorted(os.listdir(posts)):
        try:
            meta = frontmatter.load(posts / name).metadata
        except Exception:
            continue
        tags = meta.get("tags") or []
        if isinstance(tags, str):
            tags = tags.split()
        item = (when(meta.get("date")), str(meta.get("title")), str(meta.get("from")), name)
        for tag in tags:
            by_tag.setdefault(str(tag), []).append(item)
    out.mkdir(parents=True, exist_ok=True)
    for i, (tag, items) in enumerate(sorted(by_tag.items())):
        fg = FeedGenerator()
        fg.id(f"urn:tag:{i}")
        fg.title(tag)
        fg.link(href="https://example.org/", rel="alternate")
        for date, title, link, _name in sorted(items, reverse=True)[:50]:
            fe = fg.add_entry(order="append")
            fe.id(link)
            fe.title(title)
            fe.link(href=link)
            fe.updated(date)
        fg.atom_file(str(out / f"{i}.atom.xml"))


if __name__ == "__main__":
    main()
