"""config/simpleyaml against PyYAML: a differential property test.

``simpleyaml.load`` promises to read a document exactly as PyYAML's safe loader
does, or to decline (return None) so that PyYAML reads it. The documents drawn
here look like front matter: ``key: value`` lines with scalars of every kind
(ints in every base, floats, bools, nulls, dates and times, sexagesimal numbers,
quoted and unquoted strings), flow and block lists, nested maps, comments, blank
lines and odd indentation. For each, either simpleyaml declines, or PyYAML reads
the same mapping (same types, same values, same key order).

Both typers are checked: PyYAML's own ``SafeLoader`` against ``yaml.safe_load``,
and the posts stage's loader (impossible dates stay strings) against itself.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

# Stage entry points, in one place (they move as the stages are split).
from feeds.config import simpleyaml
from feeds.posts.formats import _YAMLLoader

LOADERS = {"safe": yaml.SafeLoader, "posts": _YAMLLoader}

# -- scalars ----------------------------------------------------------------------------

INTS = st.one_of(
    st.integers(-10**20, 10**20).map(str),
    st.sampled_from(["0", "-0", "+7", "007", "0x1F", "0X1f", "-0x10", "0o17", "0b101", "0B11", "1_000", "1__0",
                     "0_7", "190:20:30", "-1:30", "1:60", "1:5", "08", "09", "0o8", "0x", "+", "-", "12e3"]),
)
FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1.5", "-1.5", "+.5", ".5", "1.", "1e3", "1.0e3", "1.0e+3", "6.02E23", "1_0.5", ".inf", "-.Inf",
                     "+.INF", ".nan", ".NaN", ".NAN", "1.2.3", "1e", "e3", "0.1_", "190:20:30.15", "1.0E-3"]),
)
BOOLS = st.sampled_from(["true", "True", "TRUE", "false", "False", "FALSE", "yes", "Yes", "YES", "no", "No", "NO",
                         "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N", "tRue", "yES"])
NULLS = st.sampled_from(["null", "Null", "NULL", "~", "", "nULL", "none", "None"])
DATES = st.one_of(
    st.dates(min_value=date(1, 1, 1)).map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}"),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(lambda d: d.isoformat()),
    st.sampled_from(["2021-09-03", "2021-9-3", "2021-09-03T13:37:42.888Z", "2021-09-03 13:37:42 +08:00",
                     "2021-09-03t13:37:42Z", "2021-09-03 13:37:42.5 -5", "2021-09-03T13:37:42+0800",
                     "2021-09-03  13:37:42", "2021-13-45", "2021-02-30", "2021-09-03T25:00:00Z", "2021-09-03T1:2:3",
                     "2021-09-03 13:37", "20210903", "2021/09/03", "2021-09-03T13:37:42.1234567Z"]),
)
WORDS = st.sampled_from(["a", "Hello world", "联合早报", "café", "x-y_z", "https://e.example/a?b=c&d#f", "a:b",
                         "a#b", "C++", "50%", "@home", "`tick`", "it's", 'say "hi"', "a, b", "key = value",
                         "Mr. T.", "!", "?", "a ?b", "-x", "- x", ":x", "x:", "[x]", "{x: y}", "&a", "*a", "|", ">",
                         "%YAML", "= ", "<<", "...", "---", "a ... b", "\u00a0nbsp", "emoji \U0001f600", "a\\nb",
                         "tab\there", "1 2", "true story", "null island", "2021-09-03 is a date", "0x1G", "1e3e"])
PLAIN = st.one_of(INTS, FLOATS, BOOLS, NULLS, DATES, WORDS, st.text(st.characters(codec="utf-8"), max_size=12))


@st.composite
def single_quoted(draw: st.DrawFn) -> str:
    inner = draw(st.one_of(PLAIN, st.sampled_from(["", "'", "''", "a''b", "a'b", " lead", "trail ", "# c"])))
    return "'" + (inner.replace("'", "''") if draw(st.booleans()) else inner) + "'"


@st.composite
def double_quoted(draw: st.DrawFn) -> str:
    inner = draw(st.one_of(PLAIN, st.sampled_from(["", '\\"', "\\\\", "\\n", "\\t", "\\u00e9", "\\x41", "\\/",
                                                    "\\U0001F600", "\\0", "\\ ", '"', "\\", "a\\", "\\e", "\\_",
                                                    "\\uD83D\\uDE00", "\\ud800", "\\uDFFF", "\\\\ud800",
                                                    "\\uE000", "\\u2028", "\\uFEFF"])))
    return '"' + inner + '"'


SCALAR = st.one_of(PLAIN, PLAIN, single_quoted(), double_quoted())
SPACES = st.sampled_from(["", "", " ", "  ", "\t"])


@st.composite
def flow_list(draw: st.DrawFn) -> str:
    items = draw(st.lists(SCALAR, max_size=4))
    sep = draw(st.sampled_from([", ", ",", " , "]))
    tail = draw(st.sampled_from(["", "", ",", ", "]))
    inner = sep.join(items) + (tail if items else "")
    pad = draw(st.sampled_from(["", " "]))
    return "[" + pad + inner + pad + "]"


KEY = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,10}", fullmatch=True),
                st.sampled_from(["title", "date", "tags", "categories", "author", "true", "no", "null", "on", "y",
                                 "1", "1x", "-k", "a b", "'q'", '"q"', "k:", "k#", "2021-09-03", "~"]))


@st.composite
def entry(draw: st.DrawFn, depth: int = 0) -> str:
    """One top-level ``key: value`` (the value maybe a block list or a nested map below it)."""
    key = draw(KEY)
    colon = draw(st.sampled_from([": ", ":  ", ":", " : ", ":\t"]))
    kind = draw(st.sampled_from(["scalar", "scalar", "scalar", "flow", "block", "map", "empty", "comment"]))
    if kind == "scalar":
        return key + colon + draw(SCALAR) + draw(st.sampled_from(["", "", " ", "  ", " # note", "#x"]))
    if kind == "flow":
        return key + colon + draw(flow_list())
    if kind == "empty":
        return key + ":" + draw(SPACES)
    if kind == "comment":
        return key + ": # " + draw(WORDS)
    indent = draw(st.sampled_from(["", "  ", "    ", " "]))
    if kind == "block":
        items = draw(st.lists(st.one_of(SCALAR, flow_list(), st.just("")), max_size=4))
        lines = []
        for value in items:
            own = indent if draw(st.integers(0, 9)) else draw(st.sampled_from(["", " ", "   "]))
            lines.append(own + "-" + ("" if value == "" and draw(st.booleans()) else " ") + value)
        return key + ":" + "".join("\n" + line for line in lines)
    sub = draw(st.lists(st.tuples(KEY, SCALAR), min_size=1, max_size=3))
    return key + ":" + "".join(f"\n{indent or '  '}{k}: {v}" for k, v in sub)


FILLER = st.sampled_from(["", "   ", "# a comment", "  # indented comment", "#", "---", "...", " key: indented",
                          "  continued text", "- stray item", "? complex", "k: |", "k: >-\n  folded", "k: &a x",
                          "j: *a", "k: !!str 1", "<<: {a: 1}"])
DOCUMENT = st.lists(st.one_of(entry(), entry(), entry(), FILLER), max_size=8).map("\n".join)


@st.composite
def plainish(draw: st.DrawFn) -> str:
    """A document most of whose lines are in the plain subset, so that agreement is tested on
    many accepted documents, not only on declined ones."""
    value = st.one_of(INTS, FLOATS, BOOLS, NULLS, DATES, WORDS, single_quoted(), double_quoted(), flow_list())
    lines = []
    for _ in range(draw(st.integers(1, 7))):
        key = draw(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True))
        shape = draw(st.sampled_from(["value", "value", "value", "list", "blank", "comment"]))
        if shape == "value":
            lines.append(f"{key}: {draw(value)}")
        elif shape == "list":
            indent = draw(st.sampled_from(["", "  ", "    "]))
            items = draw(st.lists(value, max_size=3))
            lines.append(f"{key}:" + "".join(f"\n{indent}- {v}" for v in items))
        elif shape == "blank":
            lines.append(draw(st.sampled_from(["", "  "])))
        else:
            lines.append(draw(st.sampled_from(["# note", "  # indented note", "#"])))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


# -- comparing ----------------------------------------------------------------------------

def same(a: Any, b: Any) -> bool:
    """Equal values of the same types (NaN equals NaN; True is not 1; a date is not a datetime)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return type(a) is type(b) and a == b


def pyyaml(text: str, loader: type[yaml.SafeLoader]) -> tuple[bool, Any]:
    """(True, what PyYAML reads) or (False, why it refuses)."""
    try:
        return True, yaml.load(text, Loader=loader)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        return False, exc


def check(text: str, loader: type[yaml.SafeLoader]) -> bool:
    """Assert simpleyaml agrees with PyYAML on ``text``; whether it accepted it."""
    fast = simpleyaml.load(text, loader(""))
    if fast is None:
        return False
    ok, slow = pyyaml(text, loader)
    assert ok, f"simpleyaml read what PyYAML refuses ({slow!r}): {text!r} -> {fast!r}"
    assert same(fast, {} if slow is None else slow), f"{text!r}: simpleyaml {fast!r}, PyYAML {slow!r}"
    return True


@pytest.mark.parametrize("loader", sorted(LOADERS))
@settings(deadline=None, max_examples=700, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(DOCUMENT, plainish()))
@example(text="title: Hello\ndate: 2021-09-03T13:37:42.888Z\ntags: [a, b]\n")
@example(text="n: 0o17\nm: 0b101\nt: 1:30\nf: 1_000.5")
@example(text="k: 2021-13-45")
@example(text="k: '#'\nj: a#b\nl: a #b")
@example(text="k:\n  - a\n  -b\n  - c")
@example(text="k:\n- a\nk: b")
@example(text='k: "\\x41"')
@example(text="k: [a, b,]\nj: [ ]\nl: [,]")
@example(text="k: .NaN\nj: -.inf")
@example(text="on: 1")
@example(text="_: [a ?b]")  # "?" starts a key inside a flow list, even mid-item
@example(text='k: "\\uD83D\\uDE00"')  # an escaped surrogate pair: two characters to YAML, one to JSON
def test_simpleyaml_reads_what_pyyaml_reads_or_declines(loader: str, text: str) -> None:
    check(text, LOADERS[loader])


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_plain_front_matter_takes_the_fast_path(loader: str) -> None:
    # The differential test above passes trivially if simpleyaml declines everything: it must not.
    documents = [
        "layout: post\ntitle: \"解振华应约与克里举行会谈\"\ndate: 2021-09-03T13:37:42.888Z\nauthor: 联合早报\n"
        "from: https://www.zaobao.com/realtime/china/story20210903-1190070\ntags: [ 联合早报 ]\n"
        "categories: [ 联合早报 ]\n",
        "title: 'It''s here'\ndraft: false\nweight: 10\nratio: 0.5\nnothing: ~\n# a comment\n\ntags:\n  - a\n  - 2\n",
        "title: Plain\ndate: 2024-01-15\nupdated: 2024-01-15 09:30:00 +08:00\nlist: []\nempty:\n",
    ]
    for text in documents:
        assert check(text, LOADERS[loader]), text


def test_scalars_are_not_shared_between_loaders() -> None:
    # An impossible date is a string to the posts loader but an error to PyYAML's own.
    assert simpleyaml.load("k: 2021-13-45", _YAMLLoader("")) == {"k": "2021-13-45"}
    assert simpleyaml.load("k: 2021-13-45", yaml.SafeLoader("")) is None


def test_the_typer_does_not_keep_what_it_built() -> None:
    typer = _YAMLLoader("")
    for n in range(3 * simpleyaml._CACHE_SIZE // 2):
        assert simpleyaml.load(f"n: {n + 10**9}\nwhen: 2001-01-01 00:00:{n % 60:02d}.{n}", typer) is not None
    assert len(typer.constructed_objects) == 0


# -- the posts stage's front-matter path, end to end --------------------------------------
# What posts are read with: ``_YAMLHandler.load`` (the fast path, else PyYAML through
# ``load_bounded``) against PyYAML alone, on any text and on whole post files.

#: Characters that mean something to YAML, and some it treats specially (NEL, LS, NBSP, BOM).
YAML_CHARS = [*":-#[]{},'\" \n\t&*!|>%@`?~=\\/0123456789.+_eEnNoOyYtTfFxX",
              "\u0085", "\u2028", "\u00a0", "\ufeff", "é", "中", "\U0001f600", "\x7f", "\r"]
ANY_TEXT = st.one_of(st.text(st.sampled_from(YAML_CHARS), max_size=60), st.text(max_size=40))


def _posts_yaml(text: str) -> tuple[bool, Any]:
    from feeds.config.yamlload import load_bounded
    try:
        return True, load_bounded(text, _YAMLLoader)[1]
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        return False, exc


@settings(deadline=None, max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(ANY_TEXT, DOCUMENT, plainish(),
                      st.lists(st.one_of(ANY_TEXT, plainish()), min_size=2, max_size=4).map("\n".join)))
@example(text="k: v\u2028j: w")
@example(text="k: a\u0085b")
@example(text="k: \ufeffv")
@example(text="k: [a, b]c")
@example(text="k: 'a'b")
@example(text='k: "a" b')
@example(text="k: a\r\nj: b")
@example(text="k: 1\nk: 2")
def test_any_text_reads_as_pyyaml_reads_it_or_falls_back(text: str) -> None:
    """Never a value PyYAML would not give: on arbitrary text the fast path either declines
    or agrees with the safe loader the posts fall back to."""
    from feeds.posts.formats import _YAMLHandler
    fast = simpleyaml.load(text, _YAMLLoader(""))
    ok, slow = _posts_yaml(text)
    if fast is not None:
        assert ok, f"simpleyaml read what PyYAML refuses ({slow!r}): {text!r} -> {fast!r}"
        assert same(fast, {} if slow is None else slow), f"{text!r}: simpleyaml {fast!r}, PyYAML {slow!r}"
    # The handler posts go through gives what PyYAML gives (or fails as PyYAML does).
    try:
        handled = True, _YAMLHandler().load(text)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        handled = False, exc
    assert handled[0] == ok, (text, handled, slow)
    if ok:  # None (an empty document) is an empty front matter to the posts
        assert same({} if handled[1] is None else handled[1], {} if slow is None else slow), (text, handled, slow)


@settings(deadline=None, max_examples=300)
@given(docs=st.lists(plainish(), min_size=2, max_size=6))
def test_cached_scalars_give_the_same_values_in_any_order(docs: list[str]) -> None:
    """Scalars are cached across documents: reading documents in any order, and after a
    caller changed what an earlier read returned, gives what PyYAML gives."""
    typer = _YAMLLoader("")
    for text in [*docs, *reversed(docs)]:
        fast = simpleyaml.load(text, typer)
        if fast is None:
            continue
        ok, slow = _posts_yaml(text)
        assert ok and same(fast, {} if slow is None else slow), (text, fast, slow)
        for value in fast.values():  # the caller owns what it got: lists may be changed
            if isinstance(value, list):
                value.append("changed")


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(front=st.one_of(plainish(), DOCUMENT), body=st.text(max_size=30),
       newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
def test_whole_posts_split_as_with_pyyaml_alone(front: str, body: str, newline: str, bom: bool) -> None:
    """A post file's front matter reads the same through the fast path as through PyYAML
    alone, with the file's line endings and byte-order mark as they come."""
    from feeds import posts
    from feeds.errors import PostError
    data = (("\ufeff" if bom else "") + "---\n" + front + "\n---\n" + body).replace("\n", newline).encode()
    text = posts._decode(data, "p.md")

    def split() -> tuple[bool, Any]:
        try:
            raw = posts.split_post(text, "p.md", "d")
        except PostError as exc:
            return False, str(exc)
        return True, (raw.meta, raw.body, raw.front_line, raw.body_line)

    fast = split()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(simpleyaml, "load", lambda _text, _loader: None)
        slow = split()
    assert fast[0] == slow[0], (text, fast, slow)
    if fast[0]:
        assert same(fast[1][0], slow[1][0]) and fast[1][1:] == slow[1][1:], (text, fast, slow)
    else:
        assert fast[1] == slow[1]


def test_lines_read_before_give_the_same_values_each_time() -> None:
    """Key lines are kept between documents: a list read from the cache is a new list each
    time, and a document that goes to PyYAML still does, whatever lines it shares."""
    typer = _YAMLLoader("")
    doc = "layout: post\ndate: 2021-03-04\ntags: [a, b, 3]\ncount: 7\ntitle: \"One\"\n"
    first = simpleyaml.load(doc, typer)
    assert first is not None
    first["tags"].append("changed")
    for _ in range(3):
        assert simpleyaml.load(doc, typer) == yaml.load(doc, Loader=_YAMLLoader)
    assert simpleyaml.load("tags: [a, b, 3]\nnested:\n  key: 1\n", typer) is None
    # A cached key line after a block list closes the list first, as it would unread.
    after = "tags:\n- x\n- y\nlayout: post\n"
    assert simpleyaml.load(after, typer) == yaml.load(after, Loader=_YAMLLoader) == \
        {"tags": ["x", "y"], "layout": "post"}
