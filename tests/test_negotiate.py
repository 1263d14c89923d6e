"""The pure rules of `feeds serve`: any request text gets an answer, never an exception or a way out."""

from __future__ import annotations

import calendar
from email.utils import formatdate

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.output.negotiate import accepts_gzip, etag_matches, http_date, is_fresh, request_target

SETTINGS = settings(deadline=None, max_examples=150)
NOW = 1_800_000_000.0
ETAG = '"0123456789abcdef"'
PIECES = st.sampled_from(["/", "..", ".", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", "%00", "%", "%c0%ae", "a",
                          "tags", "联合早报", "%E8%81%94", "?", "#", ";", "//", "~", ".tmp", "%ff", "\x00", "\n"])


@SETTINGS
@given(st.lists(PIECES, max_size=12).map("".join) | st.text(max_size=200))
def test_a_request_target_never_names_anything_outside_or_hidden(raw: str) -> None:
    target = request_target(raw)
    if target is None:
        return
    assert not target.relative.startswith("/")
    for segment in target.relative.split("/") if target.relative else []:
        assert segment and not segment.startswith(".")
        assert not any(c in segment for c in "\\/\x00\n")


def test_request_targets() -> None:
    assert request_target("/tags/%E8%81%94.atom.xml?x=1#y") == ("tags/联.atom.xml", False)
    assert request_target("/") == ("", True)
    assert request_target("//all.atom.xml") == ("all.atom.xml", False)
    assert request_target("http://example.org/tags/") == ("tags", True)
    for refused in ("/..", "/a/../b", "/%2e%2e/x", "/a%2fb", "/a%5cb", "/.x", "/a%00", "*", "a.xml", "/%ff"):
        assert request_target(refused) is None, refused


@SETTINGS
@given(st.text(max_size=120) | st.lists(st.sampled_from(
    ["gzip", "x-gzip", "identity", "*", "br", ";q=0", ";q=1", ";q=0.5", ";q=", ";q=abc", ";Q=0.001", ",", " ",
     ";q=1.0001", ";q=nan", ";q=-1"]), max_size=10).map("".join))
def test_accept_encoding_never_raises(header: str) -> None:
    got = accepts_gzip(header)
    assert type(got) is bool
    if "gzip" not in header.lower() and "*" not in header:
        assert got is False, header  # nothing names gzip: never sent


@SETTINGS
@given(st.sampled_from(["gzip;q=0", "gzip; q=0.0", "GZIP;Q=0.000", "*;q=0", "identity"]),
       st.sampled_from(["", ", br", ", identity", ", deflate;q=1"]))
def test_gzip_refused_is_never_sent(refusal: str, rest: str) -> None:
    assert not accepts_gzip(refusal + rest)


@SETTINGS
@given(st.text(max_size=150))
def test_http_dates_and_freshness_never_raise(text: str) -> None:
    when = http_date(text)
    assert when is None or isinstance(when, float)
    # If-Modified-Since alone: fresh only for a readable date, not in the future, not before the file.
    assert is_fresh(None, text, ETAG, NOW - 10, NOW) is (when is not None and NOW - 10 <= when <= NOW), text
    # If-None-Match wins over If-Modified-Since, whatever that says.
    assert is_fresh(text, "Sun, 06 Nov 1994 08:49:37 GMT", ETAG, NOW - 10, NOW) is etag_matches(text, ETAG)
    if text.strip() != "*" and ETAG not in text:
        assert etag_matches(text, ETAG) is False, text


@SETTINGS
@given(st.integers(min_value=0, max_value=253402300799))  # up to the year 9999
def test_a_date_in_the_future_is_ignored(seconds: int) -> None:
    text = formatdate(seconds, usegmt=True)
    assert http_date(text) == float(seconds)
    fresh = is_fresh(None, text, ETAG, NOW - 10, NOW)
    assert fresh == (NOW - 10 <= seconds <= NOW)


def test_the_three_date_forms() -> None:
    expected = float(calendar.timegm((1994, 11, 6, 8, 49, 37)))
    for text in ("Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"):
        assert http_date(text) == expected, text


def test_if_none_match_forms() -> None:
    assert etag_matches("*", ETAG) and etag_matches(f"W/{ETAG}", ETAG) and etag_matches(f'"a",{ETAG}', ETAG)
    assert not etag_matches('"0123456789abcdef-gz"', ETAG) and not etag_matches("", ETAG)
    assert not etag_matches("0123456789abcdef", ETAG)  # unquoted is not an entity tag
