"""build/taxonomy: term identity, the alias map, slugs within their byte cap, collisions."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# Stage entry points, in one place (they move as the stages are split).
from feeds.build.taxonomy import MAX_SLUG_BYTES, Term, Vocabulary, fit_slug, make_slug, term_key


@pytest.mark.parametrize(("a", "b"), [
    ("Python", "PYTHON"), ("ＣＡＳＥ", "case"), ("e\u0301", "é"), ("ﬁsh", "fish"), ("  New\t York ", "new york"),
    ("Straße", "STRASSE"),
])
def test_spellings_of_one_term_share_a_key(a: str, b: str) -> None:
    assert term_key(a) == term_key(b)


def test_different_terms_keep_apart() -> None:
    assert len({term_key(n) for n in ("C", "C++", "C#", "c-sharp", "Go", "Golang")}) == 6


def test_alias_map_is_read_whatever_the_spelling() -> None:
    vocab = Vocabulary({"JS": "JavaScript", "Zaobao": "联合早报"}, {})
    assert vocab.canonical("js") == vocab.canonical(" JS ") == "JavaScript"
    assert vocab.canonical("ZAOBAO") == "联合早报"
    assert vocab.canonical("Rust  lang") == "Rust lang"  # unknown: spacing tidied, spelling kept
    assert Vocabulary({}, {}).canonical("a \t b") == "a b" and Vocabulary({}, {}).canonical("Ab") == "Ab"


def test_the_most_used_spelling_is_shown_ties_by_code_point() -> None:
    terms, problems = Vocabulary({}, {}).resolve(Counter({"go": 2, "Go": 2, "GO": 1}))
    assert terms == {"go": Term("go", "Go", "go")} and problems == []  # "Go" < "go" by code point


def test_a_configured_slug_is_used_but_still_made_safe() -> None:
    terms, _ = Vocabulary({}, {"Python": "py", "Evil": "../../etc"}).resolve(Counter({"python": 1, "evil": 1}))
    assert terms["python"].slug == "py"
    assert "/" not in terms["evil"].slug and not terms["evil"].slug.startswith(".")


def test_case_insensitive_file_systems_see_no_collision_left() -> None:
    terms, problems = Vocabulary({}, {"A": "Same", "B": "same"}).resolve(Counter({"A": 1, "B": 1}))
    slugs = sorted(t.slug for t in terms.values())
    assert len({s.casefold() for s in slugs}) == 2
    loser = next(t for t in terms.values() if t.slug not in ("Same", "same"))
    assert loser.slug.endswith("-" + hashlib.sha1(loser.key.encode()).hexdigest()[:6])
    assert len(problems) == 1 and "set a slug in the config to choose" in problems[0]


def test_long_names_are_cut_to_their_bytes_with_a_hash() -> None:
    a, b = make_slug("词" * 200 + "甲"), make_slug("词" * 200 + "乙")
    assert a != b and len(a.encode()) <= MAX_SLUG_BYTES and len(b.encode()) <= MAX_SLUG_BYTES
    assert a.startswith("词") and a == make_slug("词" * 200 + "甲")
    assert make_slug("x" * 80) == "x" * 80 and make_slug("x" * 81) != "x" * 81


def test_a_cut_never_separates_a_letter_from_its_accent() -> None:
    slug = fit_slug("e\u0301" * 100, "name")
    body = slug.rsplit("-", 1)[0]
    assert body and not body.endswith("e")


@pytest.mark.parametrize(("slug", "expected"), [("con", "con-"), ("LPT1", "LPT1-"), ("aux", "aux-"),
                                                ("console", "console")])
def test_reserved_windows_names_are_changed(slug: str, expected: str) -> None:
    assert fit_slug(slug, slug) == expected


def test_a_name_with_nothing_left_gets_a_hashed_slug() -> None:
    assert make_slug("!!!") == "t-" + hashlib.sha1(term_key("!!!").encode()).hexdigest()[:8]
    assert make_slug("...") != make_slug("!!!")


@settings(deadline=None, max_examples=300)
@given(st.text(min_size=1, max_size=300))
def test_every_slug_is_a_safe_file_name(name: str) -> None:
    slug = make_slug(name)
    assert slug and len(slug.encode()) <= MAX_SLUG_BYTES and len(slug) <= 80
    assert not slug.startswith((".", "-")) and not any(c in slug for c in '/\\:*?"<>|\x00')
    assert all(c.isprintable() and not c.isspace() for c in slug)
    assert make_slug(name) == slug


def _suffixed(name: str, other: str) -> str:
    """The slug the collision rule gives ``other`` when ``name`` keeps ``make_slug(other)``."""
    return f"{make_slug(other)}-{hashlib.sha1(term_key(other).encode()).hexdigest()[:6]}"


def test_a_renamed_slug_never_lands_on_another_terms_slug() -> None:
    # "Foo!" loses "foo" to "foo" and would be written as foo-<hash>: the very slug of a third tag.
    third = _suffixed("foo", "Foo!")
    terms, problems = Vocabulary({}, {}).resolve(Counter({"foo": 1, "Foo!": 1, third: 1}))
    assert len({t.slug.casefold() for t in terms.values()}) == 3
    assert terms[term_key(third)].slug == third  # the name that is its slug keeps it
    assert len(problems) == 1 and repr(terms["foo!"].slug) in problems[0]


_names = st.text(st.sampled_from("aAbB!é\u0301 -."), min_size=1, max_size=4)


@settings(deadline=None, max_examples=300)
@given(st.lists(_names, min_size=1, max_size=8), st.data())
def test_published_slugs_are_unique_and_independent_of_order(names: list[str], data: st.DataObject) -> None:
    # Add the names the collision rule itself makes, so that renamed slugs meet real ones.
    extra = [_suffixed(a, b) for a in names for b in names if make_slug(a) == make_slug(b) and a != b]
    names = names + data.draw(st.lists(st.sampled_from(extra), max_size=3)) if extra else names
    counts = Counter(names)
    terms, _ = Vocabulary({}, {}).resolve(counts)
    slugs = [t.slug.casefold() for t in terms.values()]
    assert len(slugs) == len(set(slugs))
    assert all(len(t.slug.encode()) <= MAX_SLUG_BYTES + 14 for t in terms.values())
    shuffled = Counter(dict(data.draw(st.permutations(list(counts.items())))))
    assert Vocabulary({}, {}).resolve(shuffled)[0] == terms


def test_a_slug_chosen_for_an_alias_spelling_is_the_terms() -> None:
    # The slug map was read by its own spellings only: a slug given for "Zaobao" was lost.
    terms, _ = Vocabulary({"Zaobao": "联合早报"}, {"ZAOBAO": "zaobao"}).resolve(Counter({"联合早报": 2}))
    assert terms[term_key("联合早报")].slug == "zaobao"


def test_an_alias_of_an_alias_reaches_the_end_of_the_chain() -> None:
    # "早报" -> "Zaobao" -> "联合早报": posts tagged 早报 used to get a feed "Zaobao" of their own.
    vocab = Vocabulary({"早报": "Zaobao", "zaobao": "联合早报", "Python": "python"}, {})
    assert vocab.canonical("早报") == vocab.canonical("ZAOBAO") == "联合早报"
    assert vocab.canonical("PYTHON") == "python"  # an alias to its own term only chooses the spelling
