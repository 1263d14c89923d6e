"""Tags and categories: merging spellings, and safe, stable file-name slugs.

Pure functions. Case, width and composition variants are one term; the alias map merges other
spellings. A term's slug keeps its script (``联合早报``) and can never name a
path outside its folder. Slugs are capped in UTF-8 bytes, not characters, so that
the longest file made from one (with its suffix and a temporary name's prefix
and suffix) stays far below the 255 bytes file systems allow. Two terms whose slugs collide are both kept: the one
whose name matches the slug best keeps it, the other gets a hashed suffix, and
the collision is reported.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from slugify import slugify

# Names Windows reserves, whatever the extension: a file named so cannot be opened there.
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])$", re.IGNORECASE)
# Characters, then bytes: "<slug>.feed.json" and a temporary ".<name>.<8 random>.tmp"
# next to it add at most 24 bytes, and a collision suffix 7, to at most 151.
_MAX_SLUG = 80
MAX_SLUG_BYTES = 120
_HASH_CHARS = 8


@dataclass(frozen=True, slots=True)
class Term:
    """One tag or category as it is published."""

    #: Case-folded identity: all spellings of one term share it.
    key: str
    #: The spelling shown to readers.
    name: str
    #: File-name stem; unique within its folder.
    slug: str


@lru_cache(maxsize=65536)
def term_key(name: str) -> str:
    """The identity of a term: spacing, case and Unicode's compatibility forms do not matter
    (full-width "CASE" is "case", "e" with a combining accent is "é", the "fi" ligature is "fi")."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def make_slug(name: str) -> str:
    """A file-name-safe slug that keeps non-Latin scripts."""
    slug = slugify(name, allow_unicode=True, regex_pattern=r"[^\w+]+|_")
    return fit_slug(slug.strip(".-"), name)


def fit_slug(slug: str, name: str) -> str:
    """``slug`` made safe as a file name: no separators, controls or leading dot, not a
    reserved name, and at most ``_MAX_SLUG`` characters and ``MAX_SLUG_BYTES`` bytes. A
    slug cut short ends in a hash of the whole, so two long names that share a beginning
    keep apart, and the same name always gives the same slug."""
    slug = "".join(c for c in slug if c.isprintable() and c not in '/\\:*?"<>|' and not c.isspace())
    slug = slug.strip(".-")
    if not slug:
        return "t-" + hashlib.sha1(term_key(name).encode()).hexdigest()[:_HASH_CHARS]
    if len(slug) > _MAX_SLUG or len(slug.encode()) > MAX_SLUG_BYTES:
        digest = hashlib.sha1(slug.encode()).hexdigest()[:_HASH_CHARS]
        room = 1 + _HASH_CHARS
        slug = _cut(slug, _MAX_SLUG - room, MAX_SLUG_BYTES - room).rstrip(".-") + "-" + digest
    if _RESERVED.match(slug):
        slug += "-"
    return slug


def _cut(text: str, chars: int, limit: int) -> str:
    """The longest start of ``text`` within ``chars`` characters and ``limit`` UTF-8 bytes
    that does not split a character from the combining marks after it."""
    size = 0
    end = 0
    for i, c in enumerate(text[:chars]):
        size += len(c.encode())
        if size > limit:
            break
        end = i + 1
    while 0 < end < len(text) and unicodedata.combining(text[end]):
        end -= 1
    return text[:end]


def alias_chains(aliases: Mapping[str, str]) -> dict[str, str]:
    """The alias map by term key, each spelling mapped to the end of its chain ("早报" -> "Zaobao"
    -> "联合早报" is "早报" -> "联合早报"). ValueError naming a chain that comes back to its start."""
    direct = {term_key(k): v for k, v in aliases.items()}
    out: dict[str, str] = {}
    for key, target in direct.items():
        path = [key]
        while (next_key := term_key(target)) in direct and next_key != path[-1]:
            if next_key in path:
                names = [_spelled(aliases, k) for k in path[path.index(next_key):]]
                raise ValueError("the aliases go round in a circle: " + " -> ".join(
                    repr(n) for n in [*names, names[0]]))
            path.append(next_key)
            target = direct[next_key]
        out[key] = target
    return out


def _spelled(aliases: Mapping[str, str], key: str) -> str:
    return next(k for k in aliases if term_key(k) == key)


class Vocabulary:
    """Resolves raw tag spellings to published terms for one taxonomy."""

    def __init__(self, aliases: Mapping[str, str], slugs: Mapping[str, str]) -> None:
        self._alias = alias_chains(aliases)
        self._slugs = {term_key(self.canonical(k)): v for k, v in slugs.items()}

    def canonical(self, raw: str) -> str:
        """The spelling ``raw`` maps to (through the alias map), not yet case-folded."""
        if not self._alias:
            return raw if " " not in raw else " ".join(raw.split())
        name = " ".join(raw.split())
        return self._alias.get(term_key(name), name)

    def resolve(self, counts: Counter[str]) -> tuple[dict[str, Term], list[str]]:
        """Terms for every spelling counted, keyed by term key; and collision reports.

        ``counts`` maps canonical spellings to how often they occur: the most
        used spelling of a term is shown (ties broken by code point order).
        """
        spellings: dict[str, list[tuple[int, str]]] = {}
        for name, n in counts.items():
            spellings.setdefault(term_key(name), []).append((-n, name))
        terms: dict[str, Term] = {}
        for key, options in spellings.items():
            name = min(options)[1]
            chosen = self._slugs.get(key)
            slug = fit_slug(chosen, name) if chosen else make_slug(name)
            terms[key] = Term(key=key, name=name, slug=slug)
        return _separate(terms)


def _separate(terms: dict[str, Term]) -> tuple[dict[str, Term], list[str]]:
    by_slug: dict[str, list[Term]] = {}
    for term in terms.values():
        # Case-insensitive file systems (macOS, Windows) treat these as one file.
        by_slug.setdefault(term.slug.casefold(), []).append(term)
    # A renamed slug must not be one that another term has, or that an earlier rename took:
    # every term's own slug is taken first, so a name that is its slug always keeps it.
    taken = set(by_slug)
    problems: list[str] = []
    for folded in sorted(by_slug):  # in slug order, so that the result is that of the terms alone
        group = by_slug[folded]
        if len(group) < 2:
            continue
        group.sort(key=lambda t: (t.slug.casefold() != t.name.casefold(), t.key))
        keeper, *others = group
        for other in others:
            new = Term(key=other.key, name=other.name, slug=_free_slug(other, taken))
            taken.add(new.slug.casefold())
            terms[other.key] = new
            problems.append(
                f"{other.name!r} and {keeper.name!r} both make the slug {keeper.slug!r}; "
                f"{other.name!r} is written as {new.slug!r} (set a slug in the config to choose)"
            )
    return terms, problems


def _free_slug(term: Term, taken: set[str]) -> str:
    """``term``'s slug with a short hash of its key that no slug in ``taken`` has (case aside)."""
    seed = term.key
    while True:
        slug = f"{term.slug}-{hashlib.sha1(seed.encode()).hexdigest()[:6]}"
        if slug.casefold() not in taken:
            return slug
        seed += "\x00"
