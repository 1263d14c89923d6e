"""The operator's health feed: one entry per source problem.

Pure: source states in, entries and a JSON summary out. Problems are sources
failing, throttled or gone, moving to a new address, sources whose items
cannot be told apart by their guids, and ``full_text`` sources whose latest
article pages all failed. An entry's id is stable for one episode
of a problem, so a reader shows each new episode once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from html import escape

from ..config import Config
from ..identity import ID_NAMESPACE, is_web_url
from ..models import EPOCH, Entry
from ..sources.schedule import SourceState


def problems(config: Config, states: dict[str, SourceState],
             full_text_failing: Collection[str] = ()) -> list[dict[str, str]]:
    """Every current problem, as plain data: source, url, problem, detail, key.
    ``full_text_failing`` names the ``full_text`` sources whose latest article pages all
    failed (a page failing alone is not a problem of its source).

    Only what changes when the problem does is included (not failure counts or
    retry times, which change on every fetch): the health files stay byte-stable
    while nothing new goes wrong. ``feeds status`` shows the rest.
    """
    out: list[dict[str, str]] = []
    for source in config.sources:
        st = states.get(source.name)
        if st is None or not source.enabled:
            continue
        found: list[tuple[str, str]] = []
        if st.status in ("error", "throttled"):
            found.append(("failing" if st.status == "error" else "throttled", st.error or "fetch failed"))
        elif st.status == "gone":
            found.append(("gone", st.error or "the source answered 410 Gone"))
        if st.moved_to:
            found.append(("moved", f"permanently redirected to {st.moved_to}"))
        if source.name in full_text_failing and source.full_text is not None:
            found.append(("full text failing", "its latest article pages gave no article; their entries keep "
                          "the feed's summaries (feeds status shows the latest failure)"))
        if st.id_mode in ("link", "hash"):
            found.append(("guid downgrade", "its items have missing or repeated guids; they are told apart by "
                          + ("link" if st.id_mode == "link" else "content")))
        for kind, text in found:
            out.append({"source": source.name, "url": source.url, "problem": kind, "detail": text,
                        "key": f"{source.name}\0{kind}\0{text}"})
    return out


def status_entries(items: Sequence[dict[str, str]], since: dict[str, str], status_url: str) -> list[Entry]:
    """Feed entries for the problems; ``since`` maps a problem's key to when it was first seen."""
    entries = []
    for p in items:
        first = since.get(p["key"], EPOCH.isoformat())
        when = datetime.fromisoformat(first)
        url = p["url"]
        entries.append(Entry(
            id="urn:uuid:" + str(uuid.uuid5(ID_NAMESPACE, f"status:{p['key']}:{first}")),
            title=f"{p['source']}: {p['problem']}",
            link=url if is_web_url(url) else status_url,
            published=when, updated=when,
            summary=p["detail"],
            content=f"<p>{escape(p['detail'])}</p><p>Source: {escape(url)}</p>",
        ))
    entries.sort(key=lambda e: (-e.updated.timestamp(), e.id))
    return entries


def status_json(items: Sequence[dict[str, str]], since: dict[str, str]) -> bytes:
    rows: list[dict[str, str | None]] = [
        {**{k: v for k, v in p.items() if k != "key"}, "since": since.get(p["key"])} for p in items]
    return (json.dumps({"problems": rows}, ensure_ascii=False, indent=2) + "\n").encode()

