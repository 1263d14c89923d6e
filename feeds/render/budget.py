"""Keep every written file within a byte budget.

Pure: given a way to render a list of items, choose what to leave out. Readers
and the W3C validator refuse files over a few megabytes, so no feed or page may
grow past ``output.max_bytes``. For feeds, an entry whose content alone is over
``output.max_entry_bytes`` shows its summary and link instead; when the feed is
still too big, the oldest entries lose their content first, and only then are
the oldest entries left out. The choice depends on the items alone, so the same
input always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import NamedTuple, TypeVar

from ..errors import InputError
from ..models import Entry
from ..normalize.content import shorten

E = TypeVar("E", bound=Entry)


class Fitted(NamedTuple):
    """What was rendered, and the one line to report when something had to give."""

    data: bytes
    note: str | None = None


def _smallest(lo: int, hi: int, fits: Callable[[int], bool], guess: int | None = None) -> int | None:
    """The smallest ``n`` in ``lo..hi`` for which ``fits(n)``, assuming that more is never
    worse; None if not even ``hi`` fits. A ``guess`` near the answer saves renders."""
    if lo > hi or not fits(hi):
        return None
    if guess is not None and lo < guess < hi:
        if fits(guess):
            hi = guess
        else:
            lo = guess + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


class _Renders:
    """Renders by the number of items changed, each made once."""

    def __init__(self, render: Callable[[int], bytes]) -> None:
        self.render = render
        self.done: dict[int, bytes] = {}

    def __call__(self, n: int) -> bytes:
        if n not in self.done:
            self.done[n] = self.render(n)
        return self.done[n]


def _bytes(n: int) -> str:
    return f"{n:,}"


def fit_entries(entries: Sequence[E], render: Callable[[list[E]], bytes], *,
                max_bytes: int | None, max_entry_bytes: int | None) -> Fitted:
    """``render`` of ``entries`` (newest first) within the budget; InputError if not even
    a feed without entries fits."""
    items = list(entries)
    capped = cut = 0
    if max_entry_bytes:
        for i, e in enumerate(items):
            # A character is at most four bytes: most contents need no encoding to tell.
            if e.content and len(e.content) * 4 > max_entry_bytes and len(e.content.encode()) > max_entry_bytes:
                items[i] = e = replace(e, content=None)
                capped += 1
            if len(e.summary) * 4 > max_entry_bytes and len(e.summary.encode()) > max_entry_bytes:
                # What stands in for the content may not be as big as the content it replaces.
                items[i] = replace(e, summary=shorten(e.summary, max_entry_bytes // 4))
                cut += 1
    data = render(items)
    stripped = dropped = 0
    if max_bytes and len(data) > max_bytes:
        found = _strip_oldest(items, render, max_bytes, data)
        if found is None:
            # Even without any content it is too big: leave the oldest out, then give the
            # entries that remain as much of their content as fits.
            bare = [replace(e, content=None) if e.content else e for e in items]
            dropping = _Renders(lambda m: render(bare[:len(bare) - m]))
            m = _smallest(1, len(bare), lambda m: len(dropping(m)) <= max_bytes)
            if m is None:
                raise InputError(f"over its {_bytes(max_bytes)}-byte budget even without entries")
            dropped = m
            found = _strip_oldest(items[:len(items) - m], render, max_bytes) or \
                (sum(1 for e in items[:len(items) - m] if e.content), dropping(m))
        stripped, data = found
    parts = []
    if capped:
        parts.append(f"{capped} {'entry' if capped == 1 else 'entries'} with content over "
                     f"{_bytes(max_entry_bytes or 0)} bytes published as summary and link")
    if cut:
        parts.append(f"{cut} {'summary' if cut == 1 else 'summaries'} over {_bytes(max_entry_bytes or 0)} bytes "
                     "shortened")
    if stripped or dropped:
        what = [f"{stripped} older {'entry' if stripped == 1 else 'entries'} without content"] if stripped else []
        if dropped:
            what.append(f"{dropped} oldest left out")
        parts.append(f"over the {_bytes(max_bytes or 0)}-byte budget: " + ", ".join(what))
    return Fitted(data, "; ".join(parts) or None)


def _strip_oldest(items: list[E], render: Callable[[list[E]], bytes], max_bytes: int,
                  whole: bytes | None = None) -> tuple[int, bytes] | None:
    """The fewest oldest entries to publish without content so that the feed fits, and
    the feed so; None if it does not fit even with none of them. ``whole`` is
    ``render(items)`` when already known."""
    whole = render(items) if whole is None else whole
    if len(whole) <= max_bytes:
        return 0, whole
    with_content = [i for i, e in enumerate(items) if e.content]

    def strip(k: int) -> list[E]:
        oldest = set(with_content[len(with_content) - k:])
        return [replace(e, content=None) if i in oldest else e for i, e in enumerate(items)]

    stripping = _Renders(lambda k: render(strip(k)))
    k = _smallest(1, len(with_content), lambda k: len(stripping(k)) <= max_bytes)
    return None if k is None else (k, stripping(k))


def fit_count(total: int, render: Callable[[int], bytes], max_bytes: int | None) -> tuple[bytes, int]:
    """``render(n)`` for the largest ``n <= total`` within the budget (``render(n)`` shows
    the first ``n`` items), and that ``n``. With nothing fitting, ``render(0)``."""
    renders = _Renders(lambda left_out: render(total - left_out))
    if not max_bytes or len(renders(0)) <= max_bytes:
        return renders(0), total
    # Sizes grow about linearly with the items shown: start near the proportional cut.
    whole = len(renders(0))
    guess = total - (total * max_bytes) // whole + 1
    left_out = _smallest(1, total, lambda m: len(renders(m)) <= max_bytes, guess)
    if left_out is None:
        return renders(total), 0
    return renders(left_out), total - left_out
