"""Filters: ``include``/``exclude`` rules on an entry's title, content, author, tags and link.

A rule is one string, ``[field:]pattern``:

- ``field`` is ``title``, ``content`` (the content's text and the summary), ``author``
  (names and e-mail addresses), ``tags`` (tags and categories) or ``link``; without one
  (or with ``any:``) the rule looks at every field.
- ``pattern`` is a word or phrase, found as whole words whatever their case (compared
  case-folded, so "strasse" finds "Straße"; in scripts
  written without spaces, such as Chinese or Japanese, anywhere); spaces in it match any
  run of white space. Or ``/regular expression/`` (Python's syntax), case-insensitive, and
  ``/regular expression/c`` to match case-sensitively. A regular expression gets at most
  :data:`MATCH_TIMEOUT` seconds on one field (the ``regex`` library's own limit): one that
  takes longer (catastrophic backtracking, such as ``(a+)+$``) is given up for the rest of
  the process, matches nothing from then on, and :func:`given_up` names it for a warning.

An entry passes a rule set when it matches at least one ``include`` rule (if there are
any) and no ``exclude`` rule. Parsing (``parse_rule``, what the config validates with) and
matching are pure: strings and :class:`Facts` in, answers out; no file, network, database
or clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from ..models import Entry

Field = Literal["title", "content", "author", "tags", "link"]
#: The fields a rule can name, in the order an ``any`` rule looks at them.
FIELDS: tuple[Field, ...] = ("title", "content", "author", "tags", "link")
_ANY = "any"
_REGEX = re.compile(r"^/(?P<body>.+)/(?P<flags>c?)$", re.DOTALL)
#: Characters of scripts written without spaces between words start at the CJK radicals.
_UNSPACED = 0x2E80
#: Seconds a user's regular expression may take on one field before it is given up.
MATCH_TIMEOUT = 0.2
# The texts of the rules given up since :func:`given_up` was last asked.
_given_up: list[str] = []


def given_up() -> list[str]:
    """The rules given up (too slow) since the last call, each named once: for the caller to warn."""
    found = list(dict.fromkeys(_given_up))
    _given_up.clear()
    return found


@dataclass(frozen=True, slots=True)
class Facts:
    """What rules look at of one entry: each field as plain text (several values one per line)."""

    title: str = ""
    content: str = ""
    author: str = ""
    tags: str = ""
    link: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed rule: the fields it looks at and the compiled pattern."""

    text: str
    fields: tuple[Field, ...]
    #: The words' pattern (``re``, written by :func:`word_pattern`), or the user's own
    #: regular expression (``regex``, which can be stopped).
    pattern: Any
    #: Whether the pattern is of case-folded text, to be matched against case-folded text
    #: (words: "Straße" finds "STRASSE").
    folded: bool = False
    #: Set once the user's expression took longer than MATCH_TIMEOUT: it matches nothing more.
    _stopped: list[bool] = field(default_factory=list, compare=False, repr=False)

    def matches(self, facts: Facts) -> bool:
        if self.folded:
            return any(self.pattern.search(getattr(facts, f).casefold()) for f in self.fields)
        if self._stopped:
            return False
        try:
            return any(self.pattern.search(getattr(facts, f), timeout=MATCH_TIMEOUT) for f in self.fields)
        except TimeoutError:
            self._stopped.append(True)
            _given_up.append(self.text)
            return False


def _edge(c: str) -> bool:
    """Whether a word ending in ``c`` must end there (a letter or digit of a spaced script)."""
    return c.isalnum() and ord(c) < _UNSPACED


def word_pattern(word: str) -> str:
    """The regular expression finding ``word`` (a word or phrase) as whole words."""
    parts = word.split()
    body = r"\s+".join(re.escape(p) for p in parts)
    start = r"(?<!\w)" if _edge(parts[0][0]) else ""
    end = r"(?!\w)" if _edge(parts[-1][-1]) else ""
    return start + body + end


def parse_rule(text: str) -> Rule:
    """The rule written as ``text``; ValueError saying what is wrong with it."""
    if not isinstance(text, str):
        raise ValueError("a rule is a string")
    fields: tuple[Field, ...] = FIELDS
    pattern = text
    name, colon, rest = text.partition(":")
    if colon and name.strip().lower() in (*FIELDS, _ANY):
        folded = name.strip().lower()
        fields = FIELDS if folded == _ANY else (folded,)  # type: ignore[assignment]
        pattern = rest.strip()
    else:
        pattern = text.strip()
    if not pattern:
        raise ValueError(f"the rule {text!r} has nothing to match")
    found = _REGEX.match(pattern)
    if found is not None:
        import regex  # only for a rule written as a regular expression (it takes 20 ms to load)

        flags = regex.V0 if found["flags"] == "c" else regex.V0 | regex.IGNORECASE
        try:
            compiled = regex.compile(found["body"], flags)
        except (regex.error, re.error, OverflowError, RecursionError, ValueError) as exc:
            raise ValueError(f"the rule {text!r} is not a valid regular expression: {exc}") from None
        return Rule(text, fields, compiled)
    return Rule(text, fields, re.compile(word_pattern(pattern.casefold())), folded=True)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The ``include`` and ``exclude`` rules of one source or feed."""

    include: tuple[Rule, ...] = ()
    exclude: tuple[Rule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def admits(self, facts: Facts) -> bool:
        if self.include and not any(r.matches(facts) for r in self.include):
            return False
        return not any(r.matches(facts) for r in self.exclude)


@lru_cache(maxsize=1024)
def _rule_set(include: tuple[str, ...], exclude: tuple[str, ...]) -> RuleSet:
    return RuleSet(tuple(parse_rule(t) for t in include), tuple(parse_rule(t) for t in exclude))


def rule_set(include: Sequence[str] | None, exclude: Sequence[str] | None) -> RuleSet:
    """The compiled rules (made once per distinct pair of lists; the config has validated them)."""
    return _rule_set(tuple(include or ()), tuple(exclude or ()))


def facts_of(entry: Entry) -> Facts:
    """What rules look at of ``entry``: its title, content text and summary, authors, tags
    and categories, and link."""
    from ..normalize.content import html_to_text  # not loaded by a config without rules

    content = html_to_text(entry.content or "")
    if entry.summary and entry.summary not in content:
        content = f"{content}\n{entry.summary}" if content else entry.summary
    authors = "\n".join(x for a in entry.authors for x in (a.name, a.email) if x)
    return Facts(entry.title, content, authors, "\n".join((*entry.tags, *entry.categories)), entry.link or "")
