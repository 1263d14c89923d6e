from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from feeds.config import parse_config
from feeds.errors import ConfigError

GOOD = """\
site:
  title: T
  base_url: https://example.org/feeds
posts:
  - path: posts
"""


def test_valid_config_gets_defaults() -> None:
    config = parse_config(GOOD)
    assert config.site.base_url == "https://example.org/feeds/"
    assert config.output.max_entries == 50
    assert config.output.formats == ["atom", "rss"]
    assert config.posts[0].clean.remove == []


@pytest.mark.parametrize(("text", "line", "words"), [
    (GOOD + "colour: blue\n", 6, "colour: unknown key"),
    (GOOD.replace("  - path: posts", "  - path: posts\n    sumary_only: true"), 6, "posts[0].sumary_only: unknown key"),
    (GOOD + "output:\n  max_entries: lots\n", 7, "output.max_entries"),
    (GOOD + "output:\n  formats: [atom, pdf]\n", 7, "output.formats[1]"),
    (GOOD.replace("https://example.org/feeds", "example.org"), 3, "site.base_url: must be an absolute"),
    ("site:\n  title: T\n", 1, "site.base_url: required key is missing"),
    (GOOD.replace("https://example.org/feeds", "https://example.org/f/?q=1"), 3, "site.base_url: must be a folder"),
    (GOOD.replace("https://example.org/feeds", "https://example.org/feeds/#top"), 3, "site.base_url: must be a folder"),
    (GOOD.replace("https://example.org/feeds", "https://example.org/feeds?"), 3, "site.base_url: must be a folder"),
    (GOOD + "    clean: {remove: ['div[']}\n", 6, "posts[0].clean.remove: invalid CSS selector 'div['"),
    (GOOD + "posts: []\n", 6, "posts: key appears twice"),
    (GOOD.replace("title: T", "title: T\n  timezone: Mars/Olympus"), 3, "unknown time zone"),
    ("site: [unclosed\n", 2, "invalid YAML"),
])
def test_bad_config_names_key_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, name="config.yaml")
    message = str(info.value)
    assert message.startswith(f"config.yaml:{line}: "), message
    assert words in message


def test_cli_exits_2_on_bad_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(GOOD + "colour: blue\n")
    result = subprocess.run([sys.executable, "-m", "feeds", "generate", "--config",
                             str(tmp_path / "config.yaml")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'config.yaml'}:6: colour: unknown key"]


def test_cli_exits_2_on_missing_config(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "feeds", "generate", "--config",
                             str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "config file not found" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("key", "shown"), [
    ("ＰＹＴＨＯＮ", "python"), ("python", "ＰＹＴＨＯＮ"), ("New  York", "new york"), ("Straße", "STRASSE"),
    ("e\u0301cole", "école"), ("Zaobao", "联合早报"), ("zaobao", "联合早报"),
])
def test_a_feed_policy_is_found_by_any_spelling_of_its_tag(key: str, shown: str) -> None:
    # Spellings that are one tag (width, spacing, composition, an alias) missed the policy
    # whenever the spelling shown (the most used) was not the config's, case aside.
    config = parse_config(GOOD + "tags:\n  aliases: {Zaobao: 联合早报}\n"
                          f"feeds:\n  tag:\n    {key!r}: {{max_entries: 7}}\n"
                          f"  category:\n    {key!r}: {{max_entries: 5}}\n"
                          "categories:\n  aliases: {Zaobao: 联合早报}\n")
    assert config.policy("tag", shown).max_entries == 7
    assert config.policy("category", shown).max_entries == 5
    assert config.policy("tag", "other").max_entries == 50


def test_aliases_that_go_round_in_a_circle_are_a_config_error_naming_them() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD + "tags:\n  aliases: {a: b, B: c, c: A, Python: python}\n", name="config.yaml")
    assert str(info.value).startswith("config.yaml:7: tags.aliases: ") and "'a' -> 'B' -> 'c' -> 'a'" in str(info.value)
    assert parse_config(GOOD + "tags:\n  aliases: {Python: python, py: Python}\n").tags.aliases
