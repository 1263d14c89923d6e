"""Dates as written in front matter and feeds, made aware UTC within readers' range.

Pure functions: no files, network, database or clock. This is the one place where a
naive or local time becomes aware UTC; a date outside :data:`EARLIEST`..:data:`LATEST`
is no date.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any

from ..models import EPOCH, LATEST

#: Dates before this are not dates: "0001-01-01" and "1900-01-01" are placeholders, and years
#: before 1000 cannot be written as RFC 822 or RFC 3339 dates that readers agree on.
EARLIEST = EPOCH

#: A number is seconds (or milliseconds) since 1970; one below a year's seconds is no time but a
#: year (``date: 2024``) or a date without its dashes (``date: 20240105``).
_FIRST_YEAR = 365 * 86400

_DATETIME = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt ]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(?:([Zz]|UTC|GMT)|([+-])(\d{2}):?(\d{2})?)?$"
)


def parse_datetime(value: Any, zone: tzinfo) -> datetime:
    """A date as written in front matter to aware UTC; naive times are in ``zone``.

    Raises ValueError when ``value`` is not a date, or one before 1970 (:data:`EARLIEST`) or
    after 2038-01-19 (:data:`LATEST`).
    """
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime.combine(value, time())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        if not seconds >= _FIRST_YEAR:  # NaN too
            raise ValueError(f"{value} is read as seconds since 1970, and that is {_spelled(seconds)}: "
                             "write the date as YYYY-MM-DD")
        try:
            when = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError) as exc:
            raise ValueError(f"not a time: {value}") from exc
    elif isinstance(value, str):
        when = _parse_date_string(value.strip())
    else:
        raise ValueError(f"expected a date, got {type(value).__name__}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    if when.year < EARLIEST.year:  # before converting: year 1 in a zone east of UTC overflows
        raise ValueError(f"year {when.year} is before {EARLIEST.year}")
    when = max(when.astimezone(UTC), EARLIEST)
    if when > LATEST:
        raise ValueError(f"{when:%Y-%m-%dT%H:%M:%SZ} is after {LATEST:%Y-%m-%dT%H:%M:%SZ}, more than readers can hold")
    return when


def _parse_date_string(text: str) -> datetime:
    m = _DATETIME.match(text)
    if m:
        y, mo, d, hh, mi, ss, frac, z, sign, oh, om = m.groups()
        micro = int((frac or "0")[:6].ljust(6, "0"))
        when = datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), micro)
        if z:
            return when.replace(tzinfo=UTC)
        if sign:
            offset = timedelta(hours=int(oh), minutes=int(om or 0))
            return when.replace(tzinfo=timezone(-offset if sign == "-" else offset))
        return when
    try:
        return parsedate_to_datetime(text)  # RFC 822 / 2822, as in RSS
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"not a date: {text!r}") from None



def _spelled(seconds: float) -> str:
    try:
        return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%SZ}"
    except (OverflowError, OSError, ValueError):
        return "no time"
