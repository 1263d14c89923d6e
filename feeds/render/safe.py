"""What may be written out: every entry passes here before a feed or page shows it.

Pure: no files, network, database or clock. Whatever the store holds (data of an
older version, of a hostile upstream, a damaged row), the entry that comes out
has fields of the model's types, only http(s) URLs (ids: http(s), ``tag:`` or
``urn:``, else a stable ``urn:uuid`` made from the unsafe id), text that no
reader can take for markup (``content.display_text``), content sanitized again
(``content.safe_html``, also on what this run's ``clean_html`` returned: a second pass
is not always a no-op) and aware dates. An entry that cannot be made so is
refused with one line naming it; the others go on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import InputError
from ..identity import safe_id, web_url
from ..models import Author, Enclosure, Entry, Provenance
from ..normalize.content import display_text, plain_line, safe_html, xml_safe

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_MIME = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
UNTITLED = "(untitled)"


@dataclass(frozen=True, slots=True)
class SafeEntry(Entry):
    """An entry that :func:`safe_entry` made; renderers take it as it is."""


def text(value: object) -> str:
    """Displayed text (a title, a name, a term) on one line, whatever ``value`` was."""
    if value is None:
        return ""
    return display_text(plain_line(value if isinstance(value, str) else str(value)))


def _optional_text(value: object) -> str | None:
    return text(value) or None


def _when(value: object, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InputError(f"its {what} date is not a date ({type(value).__name__})")
    return value.replace(tzinfo=UTC) if value.tzinfo is None or value.utcoffset() is None else value


def _author(value: object) -> Author | None:
    if not isinstance(value, Author):
        return None
    email = value.email.strip() if isinstance(value.email, str) else None
    name = text(value.name) or (email or "")
    if not name:
        return None
    return Author(name, email if email and _EMAIL.fullmatch(email) else None, web_url(value.uri))


def _enclosure(value: object) -> Enclosure | None:
    if not isinstance(value, Enclosure):
        return None
    url = web_url(value.url)
    if url is None:
        return None
    kind = value.type.strip() if isinstance(value.type, str) else ""
    length = value.length if isinstance(value.length, int) and not isinstance(value.length, bool) else 0
    return Enclosure(url, kind if _MIME.fullmatch(kind) else "application/octet-stream",
                     length if 0 <= length < 2**63 else 0)


def _provenance(value: object) -> Provenance | None:
    if not isinstance(value, Provenance):
        return None
    feed_id = value.feed_id if isinstance(value.feed_id, str) and value.feed_id.strip() else None
    updated = value.feed_updated if isinstance(value.feed_updated, datetime) else None
    return Provenance(
        source=text(value.source), path=_optional_text(value.path), upstream_id=_optional_text(value.upstream_id),
        feed_title=_optional_text(value.feed_title), feed_link=web_url(value.feed_link),
        feed_id=safe_id(feed_id) if feed_id else None,
        feed_updated=_when(updated, "feed") if updated else None, feed_url=web_url(value.feed_url))


def _items(value: object) -> Iterable[object]:
    return value if isinstance(value, tuple | list) else ()


def _terms(value: object) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for t in (text(v) for v in _items(value)) if t))


def safe_entry(entry: Entry, safe_content: str | None = None) -> SafeEntry:
    """``entry`` as it may be written out; InputError (naming it) if it cannot be.
    ``safe_content``: ``safe_html(entry.content)``, when made already (on a worker)."""
    if isinstance(entry, SafeEntry):
        return entry
    try:
        published = _when(entry.published, "published")
        updated = _when(entry.updated, "updated")
        summary = xml_safe(display_text(entry.summary)) if isinstance(entry.summary, str) else ""
        content = None if not isinstance(entry.content, str) else \
            safe_content if safe_content is not None else safe_html(entry.content)
        title = text(entry.title) or text(summary[:80]) or UNTITLED
        language = entry.language.strip() if isinstance(entry.language, str) else None
        return SafeEntry(
            id=safe_id(entry.id), title=title, link=web_url(entry.link),
            published=published, updated=max(updated, published),
            authors=tuple(a for a in map(_author, _items(entry.authors)) if a is not None),
            tags=_terms(entry.tags), categories=_terms(entry.categories),
            summary=summary, content=content or None,
            language=language if language and _LANGUAGE.fullmatch(language) else None,
            image=web_url(entry.image),
            enclosures=tuple(e for e in map(_enclosure, _items(entry.enclosures)) if e is not None),
            provenance=tuple(p for p in map(_provenance, _items(entry.provenance)) if p is not None),
        )
    except InputError as exc:
        raise InputError(f"entry left out: {exc.message}", where=_name(entry)) from None
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise InputError(f"entry left out: {exc}", where=_name(entry)) from None


def _name(entry: object) -> str:
    value = getattr(entry, "id", None)
    return xml_safe(value)[:200] if isinstance(value, str) and value.strip() else "an entry without an id"


def safe_entries(entries: Mapping[str, Entry],
                 safe_contents: Mapping[str, str] | None = None) -> tuple[dict[str, SafeEntry], list[str]]:
    """Every entry that can be written out, by the same key; and one line per entry left out.
    ``safe_contents``: by key, ``safe_html`` of the entry's content where made already."""
    out: dict[str, SafeEntry] = {}
    problems: list[str] = []
    made = safe_contents or {}
    for key, entry in entries.items():
        try:
            out[key] = safe_entry(entry, made.get(key))
        except InputError as exc:
            problems.append(str(exc))
    return out, problems
