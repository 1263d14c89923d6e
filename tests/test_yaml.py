"""YAML in front matter and config: alias bombs are refused with a line, and the fast
path (simpleyaml) reads exactly what PyYAML's safe loader reads, or declines."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from feeds.config import parse_config, simpleyaml
from feeds.config.yamlload import EXPANSION_FLOOR, expanded_size, load_bounded
from feeds.errors import ConfigError, PostError
from feeds.posts import split_post
from feeds.posts.formats import _YAMLLoader

from .safety import cli, make_site, no_traceback

BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"] +
                 [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                  f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                  f"*{chr(97 + i)}, *{chr(97 + i)}]" for i in range(9)])


def test_alias_bomb_in_front_matter_is_that_posts_error() -> None:
    text = f"---\ntitle: Bomb\n{BOMB}\ntags: *j\n---\nbody\n"
    with pytest.raises(PostError) as caught:
        split_post(text, "posts/bomb.md", "d")
    assert str(caught.value).startswith("posts/bomb.md:2: broken YAML front matter: aliases expand")


def test_alias_bomb_post_is_skipped_and_the_run_goes_on(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", 3)
    (root / "posts" / "2021-05-05-bomb.md").write_text(f"---\ntitle: Bomb\n{BOMB}\ntags: *j\n---\nbody\n")
    result = cli(root)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "2021-05-05-bomb.md:2: broken YAML front matter: aliases expand" in result.stderr


def test_alias_bomb_in_config_exits_2_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="aliases expand"):
        parse_config(f"site: {{base_url: 'https://e.org/'}}\nx:\n{BOMB}\n", name="config.yaml")
    root = make_site(tmp_path / "site", 1)
    (root / "config.yaml").write_text((root / "config.yaml").read_text() + "\nbomb:\n" +
                                      "\n".join("  " + line for line in BOMB.splitlines()) + "\n")
    result = cli(root)
    no_traceback(result)
    assert result.returncode == 2
    assert "config.yaml" in result.stderr and "aliases expand" in result.stderr


def test_modest_aliases_are_fine() -> None:
    text = "base: &b {every: 1h, tags: [a, b]}\none: *b\ntwo: *b\nthree: [*b, *b]\n"
    node, data = load_bounded(text, yaml.SafeLoader)
    assert data["three"][1] == {"every": "1h", "tags": ["a", "b"]}
    assert expanded_size(node, 10**9) < EXPANSION_FLOOR


def test_a_recursive_alias_is_measured_without_looping() -> None:
    node = yaml.compose("a: &a [*a]\n", Loader=yaml.SafeLoader)
    assert expanded_size(node, 1000) < 1000


# -- the fast path against PyYAML ------------------------------------------------

_TYPER = _YAMLLoader("")
KEY = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)
# Scalars built from the characters YAML gives meaning to, so every rule gets tried.
PIECES = st.sampled_from(["a", "Z", "0", "1", "-", ".", ":", " ", "#", "'", '"', "\\", ",", "[", "]", "{", "}",
                          "&", "*", "!", "|", ">", "%", "@", "`", "?", "~", "e", "x", "_", "+", "T", "é", "null",
                          "true", "No", "0x1F", "1e3", ".inf", "2021-09-03", "12:30", "2021-09-03 13:37:42+08:00",
                          "\\u00e9", "\\n", "\\t", "''", "=", "<<", "0o7", "1_000", "-.5", "\t", "\x07", "\x85",
                          "\u2028", "\ufeff", "\x00", "\U0001f600", " - ", ": ", " #", "- ", "$", "^"])
SCALAR = st.lists(PIECES, min_size=0, max_size=6).map("".join)
LINE = st.one_of(
    st.tuples(KEY, SCALAR).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.tuples(KEY, SCALAR).map(lambda kv: f"{kv[0]}:{kv[1]}"),
    st.tuples(KEY, st.lists(SCALAR, max_size=3)).map(lambda kv: f"{kv[0]}: [{', '.join(kv[1])}]"),
    st.tuples(KEY, st.lists(SCALAR, min_size=0, max_size=3), st.sampled_from(["", " ", "  "])).map(
        lambda kv: f"{kv[0]}:" + "".join(f"\n{kv[2]}- {v}" for v in kv[1])),
    SCALAR.map(lambda v: f"# {v}"),
    st.tuples(KEY, SCALAR, SCALAR).map(lambda kv: f"{kv[0]}:\n  - {kv[1]}\n  -{kv[2]}"),
    st.tuples(SCALAR, SCALAR).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.sampled_from(["", "   ", "---", "...", "- x", "  nested: 1", "key : v", "k: 'it''s'", 'k: "a\\"b"',
                     "k: |", "k: >-", "  continued", "k: &a x", "j: *a", "k: !!str 1", "? k", "k: a\r"]),
)
DOCUMENT = st.lists(LINE, max_size=6).map("\n".join)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(deadline=None, max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENT)
@example("k: a #b")
@example("k: 'a' #c")
@example('k: "a" #c')
@example("k: [a, b] # c")
@example("k: x\nk: y")
@example("k: ~")
@example("k: -")
@example("k: a:b")
@example("k: 'a'b'")
@example("k: [a, , b]")
@example("k:\n- a\n- b\nj: c")
@example("k:\n  - a\n  - b")
@example("k: a\n  b")
@example("k: 0o7")
@example("k: [- a]")
@example("k: [?]")
@example("k: [a b, c]")
@example("k: [a: b]")
@example("k: - a")
@example("k: \"\\u00e9\\/\"")
@example("k: '''")
@example("A: [=]")  # a scalar PyYAML resolves but cannot build
@example("k: a\r")  # CR is a line break to YAML
@example("A: 0o7\ufeff")  # a byte-order mark inside: PyYAML refuses it
@example("# x\x85ZZ")  # NEL ends a comment
@example("A: a\x07")  # not printable
@example("true: \nno: 1")  # keys that are not strings
def test_fast_path_reads_what_pyyaml_reads(text: str) -> None:
    fast = simpleyaml.load(text, _TYPER)
    if fast is None:
        return  # declined: PyYAML reads it
    try:
        slow = yaml.load(text, Loader=_YAMLLoader)
    except yaml.YAMLError:
        pytest.fail(f"the fast path accepted what PyYAML refuses: {text!r} -> {fast!r}")
    assert _same(fast, slow if slow is not None else {}), (text, fast, slow)
