from __future__ import annotations

from collections import Counter

import pytest

from feeds.build.taxonomy import Vocabulary, make_slug, term_key


@pytest.mark.parametrize(("name", "slug"), [
    ("联合早报", "联合早报"), ("C++", "c++"), ("Node.js", "node-js"), ("New York", "new-york"),
    ("中美 贸易战", "中美-贸易战"), ("COVID-19", "covid-19"),
])
def test_slugs_keep_scripts(name: str, slug: str) -> None:
    assert make_slug(name) == slug


@pytest.mark.parametrize("name", ["..", "../../etc/passwd", "/", "a/../../b", "\x00", "CON", "nul", ".hidden", "  "])
def test_slug_never_escapes(name: str) -> None:
    slug = make_slug(name)
    assert slug and "/" not in slug and "\\" not in slug and "\x00" not in slug
    assert not slug.startswith(".")
    assert slug.casefold() not in {"con", "nul", "..", "."}


def test_case_variants_are_one_term_and_most_used_spelling_wins() -> None:
    terms, problems = Vocabulary({}, {}).resolve(Counter({"Python": 3, "python": 1, "PYTHON": 1}))
    assert list(terms) == ["python"]
    assert terms["python"].name == "Python"
    assert problems == []


def test_alias_and_explicit_slug() -> None:
    vocab = Vocabulary({"Zaobao": "联合早报"}, {"联合早报": "zaobao"})
    assert vocab.canonical("zaobao") == "联合早报"
    terms, _ = vocab.resolve(Counter({"联合早报": 2}))
    assert terms[term_key("联合早报")].slug == "zaobao"


def test_collisions_are_reported_not_merged() -> None:
    terms, problems = Vocabulary({}, {}).resolve(Counter({"Node.js": 2, "Node JS": 1, "node-js": 1}))
    assert len(terms) == 3
    slugs = {t.slug for t in terms.values()}
    assert len(slugs) == 3
    assert "node-js" in slugs
    assert terms["node-js"].slug == "node-js"  # the name that matches the slug keeps it
    assert len(problems) == 2 and all("node-js" in p for p in problems)
