"""Decide what one fetch of a source means: the pure half of updating sources.

Touches no file, network, database or clock: the fetch result, the parsed feed, what is
known of the source (its state, its stored items, the id ledger) and ``now`` are handed
in, and records come out; ``update`` does the I/O around it. Two steps:

- :meth:`Decider.read` (on worker processes): the parsed feed against the source's stored
  items gives a :class:`FeedReading`: which items are new or changed and their entries,
  within the source's caps; the key of every item listed; a note for each cap hit.
- :meth:`Decider.decide` (in the parent, one source after another): the fetch result and
  that reading against the source's state and the ledger give a :class:`SourceDecision`:
  the source's next state (and so when it is due), the items to store with their final
  ids, the keys listed, what the ledger learns, and the outcome to report.

Ids are final only in the second step: a story new in this run may reach two sources,
and the first one decided names it for both (``identity.item_id``). That step reads an
item's key, id, link and first sighting, never its entry: so the updater's workers can
hand entries over already encoded as the store keeps them (:meth:`FeedReading.encoded`),
and encoding tens of thousands of them is work for every core, not the parent's alone.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo

from ..build.keys import items_key
from ..config import Config, Limits, Source
from ..errors import FeedsError
from ..identity import IdMode, Ledger, LedgerKey, id_mode, item_id, item_key, natural_item_id
from ..models import Entry
from ..normalize.items import allowed_feed_tags, content_capped, entry_from_item, tags_capped
from .fulltext import item_digest
from .parse import ParsedFeed, ParsedItem
from .results import FetchFailure, FetchResult
from .schedule import SourceState, SourceStatus, after_fetch


class KnownItem(Protocol):
    """What is stored of an item (the store's ``Known``), as far as a new fetch of it goes."""

    @property
    def entry_id(self) -> str: ...

    @property
    def digest(self) -> str: ...

    @property
    def first_seen(self) -> float: ...


E = TypeVar("E")
F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class ItemToStore(Generic[E]):
    """An item new or changed in this fetch: what the store keeps of it."""

    #: What tells it apart within its source (``identity.item_key``).
    key: str
    #: The id it is stored under: when read, its stored id or else its natural one; final
    #: once :meth:`Decider.decide` has settled it (the entry keeps the id it was read with).
    entry_id: str
    #: Its canonical link, what the ledger knows a story by across sources.
    link: str | None
    #: When it was first seen (POSIX seconds): ``now`` for an item new in this fetch.
    first_seen: float
    #: Changes whenever the item, or a setting that shapes its entry, does.
    digest: str
    #: Its :class:`Entry`, or that entry as the store encodes it (:meth:`FeedReading.encoded`).
    entry: E


@dataclass(frozen=True, slots=True)
class FeedReading(Generic[E]):
    """A feed's items against what is known of them (the worker's part of a decision)."""

    #: The feed's RSS ``ttl``, in minutes.
    ttl: int | None
    #: What was wrong with a feed read anyway (malformed XML...).
    problem: str | None
    mode: IdMode
    #: Items new or changed, in document order.
    items: tuple[ItemToStore[E], ...]
    new: int
    changed: int
    #: The key of every item the feed lists, in document order.
    listed: tuple[str, ...]
    #: Caps hit and items left out, one line each.
    notes: tuple[str, ...] = ()
    #: The hash of the body read (so the body itself need not travel on with the reading).
    body_hash: str | None = None

    def encoded(self, encode: Callable[[ItemToStore[E]], F]) -> FeedReading[F]:
        """The same reading, each item's entry replaced by ``encode`` of the item."""
        items = tuple(ItemToStore(i.key, i.entry_id, i.link, i.first_seen, i.digest, encode(i)) for i in self.items)
        return FeedReading(self.ttl, self.problem, self.mode, items, self.new, self.changed, self.listed, self.notes,
                           self.body_hash)


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """What happened to one source in this run, for the summary and the exit status."""

    name: str
    status: SourceStatus
    new: int = 0
    changed: int = 0
    entries: int = 0
    error: str | None = None
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    #: When the source is due again.
    next_due: datetime | None = None

    def line(self) -> str:
        text = f"{self.name}: {self.status}"
        if self.status in ("ok", "unchanged", "not modified"):
            text += f", {self.entries} items ({self.new} new, {self.changed} changed)"
        if self.error:
            text += f": {self.error}"
        return text


@dataclass(frozen=True, slots=True)
class SourceDecision(Generic[E]):
    """What to store and report about one fetch of one source."""

    #: The source's next state (its status, validators, failures, when it is due...).
    state: SourceState
    outcome: SourceOutcome
    #: Items new or changed, with their final ids.
    items: tuple[ItemToStore[E], ...] = ()
    #: The key of every item the feed lists; None when no feed was read (a failure, a 304,
    #: the same bytes as last time): then only the state is stored.
    listed: tuple[str, ...] | None = None
    #: Ids the ledger learns (links of items, under their ids).
    learnt: Mapping[LedgerKey, str] = field(default_factory=dict)
    #: Items the store keeps of the source at most (``limits.stored_items``).
    keep_at_most: int | None = None

    def stored(self, dropped: int) -> SourceOutcome:
        """The outcome once stored, ``dropped`` of its oldest items having gone to the cap."""
        if not dropped:
            return self.outcome
        note = f"dropped the {dropped} oldest stored items, keeping {self.keep_at_most} (limits.stored_items)"
        return replace(self.outcome, notes=(*self.outcome.notes, note))


def failure_text(exc: BaseException) -> str:
    """One line for an exception nobody expected while handling a source."""
    if isinstance(exc, FeedsError):
        return exc.message
    if isinstance(exc, RecursionError):
        return "the feed is nested too deeply to read"
    detail = " ".join(str(exc).split())[:200]
    return f"could not be handled ({type(exc).__name__}{': ' + detail if detail else ''})"


def must_read(state: SourceState, result: FetchResult) -> bool:
    """Whether the fetch brought a body to read: not a failure, a 304, nor the same bytes."""
    return result.body is not None and _body_hash(result.body) != state.body_hash


def _body_hash(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


@dataclass(frozen=True, slots=True)
class Decider:
    """Decides about one source in one run, from its settings (see the module's docstring)."""

    source: Source
    #: The caps that apply to it (``fetch.limits`` with its own ``limits`` on top).
    limits: Limits
    now: datetime
    #: ``site.timezone``: what dates without a zone are read in, unless the source has its own.
    site_zone: str
    summary_length: int
    #: ``fetch.max_backoff``: the longest a failing source waits.
    max_backoff: float
    #: Changes whenever a setting that shapes the entries of items does, so they are rebuilt.
    fingerprint: str

    @classmethod
    def of(cls, config: Config, source: Source, *, now: datetime) -> Decider:
        """The decider for ``source``, with what ``config`` says of every source."""
        return cls(source, config.fetch.limits_of(source), now, config.site.timezone,
                   config.output.summary_length, config.fetch.max_backoff, items_key(config, source))

    # -- the worker's part ------------------------------------------------------

    def read(self, result: FetchResult, feed: ParsedFeed, known: Mapping[str, KnownItem]) -> FeedReading[Entry]:
        """The feed's items against the source's stored ones (``known``, by item key).

        An item unchanged since it was stored is only listed; one nobody can read is left
        out (a note says how many); the others get their entries, within the caps."""
        source, limits = self.source, self.limits
        notes: list[str] = []
        if feed.dropped:
            notes.append(f"the feed lists {len(feed.items) + feed.dropped} items; read the first "
                         f"{len(feed.items)} (limits.items_per_fetch)")
        many_tags = sum(tags_capped(i, limits) for i in feed.items)
        allowed, distinct = allowed_feed_tags(feed.items, limits.tags_per_entry, limits.tags_per_source)
        items: Sequence[ParsedItem] = feed.items
        if allowed is not None:
            items = [replace(i, tags=tuple(t for t in i.tags[:limits.tags_per_entry] if t.casefold() in allowed))
                     for i in feed.items]
            notes.append(f"the feed has {distinct} distinct tags; kept the first {limits.tags_per_source} "
                         "(limits.tags_per_source)")
        mode = id_mode(items)
        zone = ZoneInfo(source.timezone or self.site_zone)
        now = self.now
        stamp = now.timestamp()
        kept: list[ItemToStore[Entry]] = []
        keys: list[str] = []
        listed: set[str] = set()
        new = changed = too_big = 0
        unreadable: list[str] = []
        for item in items:
            try:
                key = item_key(item, mode, feed.link)
                if key in listed:
                    continue  # the same item twice in one feed
                digest = hashlib.sha1(f"{self.fingerprint}\0{item!r}\0{feed.title}\0{feed.link}".encode()).hexdigest()
                old = known.get(key)
                if old is not None and item_digest(old.digest) == digest:  # an article's part aside
                    listed.add(key)
                    keys.append(key)
                    continue
                # Not final: decide() gives a new story the id its link already has.
                entry_id = old.entry_id if old is not None else natural_item_id(item, mode, feed.link, scope=source.url)
                first_seen = old.first_seen if old is not None else stamp
                entry = entry_from_item(
                    item, feed, entry_id=entry_id, source=source.name, feed_url=result.final_url, zone=zone,
                    now=now, first_seen=datetime.fromtimestamp(first_seen, now.tzinfo), extra_tags=source.tags,
                    remove=source.clean.remove, summary_only=source.summary_only,
                    summary_length=self.summary_length, limits=limits)
            except Exception as exc:  # one item nobody could read: skip it, keep the others
                unreadable.append(failure_text(exc))
                continue
            listed.add(key)
            keys.append(key)
            too_big += not source.summary_only and content_capped(item, entry)
            kept.append(ItemToStore(key, entry_id, entry.link, first_seen, digest, entry))
            if old is None:
                new += 1
            else:
                changed += 1
        if unreadable:
            notes.append(f"{len(unreadable)} items could not be read and were left out (first: {unreadable[0]})")
        if many_tags:
            notes.append(f"{many_tags} items have more than {limits.tags_per_entry} tags; kept the first "
                         f"{limits.tags_per_entry} of each (limits.tags_per_entry)")
        if too_big:
            notes.append(f"{too_big} items have content over {limits.content_bytes} bytes; they keep their "
                         "summary and link (limits.content_bytes)")
        return FeedReading(feed.ttl, feed.problem, mode, tuple(kept), new, changed, tuple(keys), tuple(notes),
                           _body_hash(result.body) if result.body is not None else None)

    # -- in order, source after source ---------------------------------------------

    @staticmethod
    def ledger_keys(reading: FeedReading[E]) -> list[LedgerKey]:
        """The ledger keys :meth:`decide` looks up for ``reading``: the links of its new and
        changed items. A ledger that knows what the store keeps of these answers the
        decision as the whole ledger would."""
        return [LedgerKey("link", item.link) for item in reading.items if item.link is not None]

    def decide(self, state: SourceState, result: FetchResult, reading: FeedReading[E] | FetchFailure | None,
               ledger: Ledger, rng: random.Random) -> SourceDecision[E]:
        """What ``result`` means for the source, given how its body was read.

        ``reading`` is None when there was no body to read (:func:`must_read`), and a
        failure when reading it failed: the source then fails as if its fetch had.
        ``ledger`` is only read: what it should learn is in the decision."""
        source, now = self.source, self.now
        if isinstance(reading, FetchFailure):
            result = replace(result, body=None, failure=reading)
            reading = None
        state, moves = after_fetch(state, result, every=source.every, now=now, max_backoff=self.max_backoff,
                                   ttl_minutes=reading.ttl if reading else None, rng=rng)
        notes = list(moves)
        if result.failure is not None:
            return SourceDecision(state, SourceOutcome(
                source.name, state.status, entries=state.entries, error=result.failure.message, notes=tuple(notes),
                seconds=result.seconds, next_due=state.next_due))
        if reading is None:  # 304, or the same bytes as last time
            status = state.status if result.not_modified else "unchanged"
            state = replace(state, status=status)
            return SourceDecision(state, SourceOutcome(
                source.name, status, entries=state.entries, notes=tuple(notes), seconds=result.seconds,
                next_due=state.next_due))
        if reading.problem:
            notes.append(f"malformed feed, read what could be read: {reading.problem}")
        notes.extend(reading.notes)
        if reading.mode != "guid" and reading.mode != state.id_mode and reading.listed:
            notes.append("items have missing or repeated guids; telling them apart by "
                         + ("link" if reading.mode == "link" else "content"))
        draft = ledger.draft()
        stamp = now.timestamp()
        items = []
        for item in reading.items:
            entry_id = item_id(item.entry_id, item.link, draft, new=item.first_seen == stamp)
            items.append(item if entry_id == item.entry_id else replace(item, entry_id=entry_id))
        body_hash = reading.body_hash
        if body_hash is None:
            assert result.body is not None
            body_hash = _body_hash(result.body)
        state = replace(state, body_hash=body_hash, id_mode=reading.mode, entries=len(reading.listed))
        outcome = SourceOutcome(source.name, "ok", new=reading.new, changed=reading.changed,
                                entries=len(reading.listed), notes=tuple(notes), seconds=result.seconds,
                                next_due=state.next_due)
        return SourceDecision(state, outcome, tuple(items), reading.listed, draft.added(),
                              keep_at_most=self.limits.stored_items)
