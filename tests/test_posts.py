"""Reading local posts: every front-matter shape and every way a post can be broken."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.errors import PostError
from feeds.models import Author, PostMeta, RawPost
from feeds.normalize.dates import parse_datetime
from feeds.normalize.posts import is_draft, meta_from_post
from feeds.posts import split_post

SGT = ZoneInfo("Asia/Singapore")
BASE = "https://example.org/feeds/"


def meta(text: str, name: str = "posts/2020-01-02-x.md") -> PostMeta:
    raw = split_post(text, name, "d" * 40)
    return meta_from_post(raw, zone=SGT, base_url=BASE)


def error(text: str, name: str = "posts/x.md") -> str:
    with pytest.raises(PostError) as info:
        meta(text, name)
    return str(info.value)


def test_sample_front_matter() -> None:
    with open(__file__.replace("test_posts.py", "data/2021-09-03-xie-zhenhua-kerry-talks.md"),
              encoding="utf-8") as f:
        m = meta(f.read(), "posts/2021-09-03-xie-zhenhua-kerry-talks.md")
    assert m.title == "解振华应约与克里举行会谈"
    assert m.published == datetime(2021, 9, 3, 13, 37, 42, 888000, tzinfo=UTC)
    assert m.link == "https://www.zaobao.com/realtime/china/story20210903-1190070"
    assert m.authors == (Author("联合早报"),)
    assert m.tags == ("联合早报",)
    assert m.categories == ("联合早报",)
    assert m.body_line == 9


def test_toml_front_matter() -> None:
    m = meta('+++\ntitle = "T"\ndate = 2024-03-18T09:30:00+01:00\ntags = ["a", "b"]\n'
             'lastmod = 2024-03-19T00:00:00Z\n+++\nbody\n')
    assert m.title == "T"
    assert m.published == datetime(2024, 3, 18, 8, 30, tzinfo=UTC)
    assert m.updated == datetime(2024, 3, 19, tzinfo=UTC)
    assert m.tags == ("a", "b")


def test_json_front_matter() -> None:
    m = meta('{\n"title": "J", "date": "2024-02-02T08:00:00Z", "guid": "abc",\n'
             '"authors": [{"name": "A", "email": "a@example.com"}, "B"]\n}\nbody\n')
    assert m.title == "J"
    assert m.explicit_id == "abc"
    assert m.authors == (Author("A", "a@example.com"), Author("B"))


@pytest.mark.parametrize(("value", "expected"), [
    ("'2021-09-03T13:37:42.888Z'", datetime(2021, 9, 3, 13, 37, 42, 888000, tzinfo=UTC)),
    ("2019-05-01 12:00:00 +0800", datetime(2019, 5, 1, 4, 0, tzinfo=UTC)),  # Jekyll's string form
    ("2019-05-01 12:00:00 -05:00", datetime(2019, 5, 1, 17, 0, tzinfo=UTC)),
    ("2019-05-01 12:00:00", datetime(2019, 5, 1, 4, 0, tzinfo=UTC)),  # naive: site time zone
    ("2019-05-01", datetime(2019, 4, 30, 16, 0, tzinfo=UTC)),  # date only: local midnight
    ('"2019-05-01T12:00:00+08:00"', datetime(2019, 5, 1, 4, 0, tzinfo=UTC)),
    ("Wed, 01 May 2019 12:00:00 GMT", datetime(2019, 5, 1, 12, 0, tzinfo=UTC)),
])
def test_date_spellings(value: str, expected: datetime) -> None:
    assert meta(f"---\ntitle: t\ndate: {value}\n---\n").published == expected


def test_field_aliases() -> None:
    m = meta("---\ntitle: t\ndate: 2020-01-01\nlast_modified_at: 2020-02-01T00:00:00Z\n"
             "canonical_url: https://EXAMPLE.com/a?utm_source=x&id=3#frag\n"
             "excerpt: <p>Short <b>one</b></p>\nauthors: [X, Y]\n---\n")
    assert m.updated == datetime(2020, 2, 1, tzinfo=UTC)
    assert m.link == "https://example.com/a?id=3"
    assert m.summary == "Short one"
    assert [a.name for a in m.authors] == ["X", "Y"]
    for key in ("updated", "lastmod"):
        assert meta(f"---\ntitle: t\ndate: 2020-01-01\n{key}: 2020-03-01T00:00:00Z\n---\n").updated == \
            datetime(2020, 3, 1, tzinfo=UTC)
    for key in ("from", "link", "source_url"):
        assert meta(f"---\ntitle: t\ndate: 2020-01-01\n{key}: https://e.com/x\n---\n").link == "https://e.com/x"


@pytest.mark.parametrize(("value", "expected"), [
    ("[ 联合早报, AI ]", ("联合早报", "AI")),
    ("python jekyll", ("python", "jekyll")),
    ("New York, Supply Chain", ("New York", "Supply Chain")),
    ("\n  - a\n  - A\n  - b", ("a", "b")),
    ("[2021, x]", ("2021", "x")),
])
def test_tags_as_list_or_string(value: str, expected: tuple[str, ...]) -> None:
    assert meta(f"---\ntitle: t\ndate: 2020-01-01\ntags: {value}\n---\n").tags == expected


def test_drafts() -> None:
    assert is_draft(split_post("---\ntitle: t\ndraft: true\n---\n", "x.md", "d").meta)
    assert is_draft(split_post("---\ntitle: t\npublished: false\n---\n", "x.md", "d").meta)
    assert not is_draft(split_post("---\ntitle: t\npublished: true\n---\n", "x.md", "d").meta)


def test_date_from_file_name_then_epoch_comment() -> None:
    assert meta("---\ntitle: t\n---\nbody", "posts/2023-11-05-x.md").published == \
        datetime(2023, 11, 4, 16, 0, tzinfo=UTC)
    assert meta("---\ntitle: t\n---\n<!--1630691640000-->\nbody", "posts/x.md").published == \
        datetime(2021, 9, 3, 17, 54, tzinfo=UTC)


def test_permalink_for_posts_without_link() -> None:
    m = meta("---\ntitle: t\ndate: 2020-01-02T20:00:00Z\n---\n", "posts/2020-01-02-hello.md")
    assert m.link is None
    assert m.permalink == "https://example.org/feeds/2020/01/03/hello.html"  # the Singapore date


def test_xml_illegal_characters_removed_from_text_fields() -> None:
    m = meta('---\ntitle: "bad\\x01 title\\x0b"\ndate: 2020-01-01\ntags: ["a\\x00b"]\n---\n')
    assert m.title == "bad title"
    assert m.tags == ("ab",)


def test_broken_yaml_names_the_line() -> None:
    assert error("---\ntitle: t\ndate: 2020-01-01\ntags: [a, b\nauthor: x\n---\n").startswith("posts/x.md:5: ")


def test_invalid_date_names_the_line() -> None:
    message = error("---\ntitle: t\nauthor: x\ndate: 2021-13-45\n---\n")
    assert message.startswith("posts/x.md:4: invalid date"), message


def test_missing_title() -> None:
    assert error("---\ndate: 2020-01-01\n---\nbody\n") == "posts/x.md:1: the post has no title"
    assert error("---\ntitle: ''\ndate: 2020-01-01\n---\n").startswith("posts/x.md:2: the post has no title")


def test_no_front_matter_and_no_date() -> None:
    assert "no front matter" in error("just text\n")
    assert "has no date" in error("---\ntitle: t\n---\n")


def test_broken_toml_and_json() -> None:
    assert "broken TOML" in error('+++\ntitle = "t\n+++\n')
    assert error('{\n"title": "t",\n"date": oops\n}\n').startswith("posts/x.md:3: broken JSON")


def test_bad_link_is_an_error() -> None:
    assert "not a usable http(s) URL" in error("---\ntitle: t\ndate: 2020-01-01\nfrom: 'javascript:alert(1)'\n---\n")


def test_parse_datetime_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_datetime("soon", UTC)
    with pytest.raises(ValueError):
        parse_datetime(["2020"], UTC)


@pytest.mark.parametrize(("key", "value"), [
    ("title", "[a, b]"), ("title", "{a: 1}"), ("id", "[x]"), ("guid", "{a: 1}"), ("summary", "[one, two]"),
    ("lang", "[en, fr]"), ("link", "[https://e.com/a]"),
])
def test_a_text_field_that_is_a_list_or_mapping_is_an_error_naming_it(key: str, value: str) -> None:
    # It used to be published as Python's spelling of it: a title "['a', 'b']".
    title = "" if key == "title" else "title: t\n"
    message = error(f"---\ndate: 2020-01-01\n{key}: {value}\n{title}---\n")
    assert message.startswith(f"posts/x.md:3: {key}: expected text, got a "), message


def test_tags_given_as_a_mapping_make_no_tag_of_its_spelling() -> None:
    m = meta("---\ntitle: t\ndate: 2020-01-01\ntags: {a: 1}\ncategories: [x, {b: 2}, [c]]\n---\n")
    assert m.tags == () and m.categories == ("x",)


@pytest.mark.parametrize("value", ["2024", "20240105", "0", "86399"])
def test_a_number_that_is_no_time_since_1970_is_not_a_date(value: str) -> None:
    # date: 2024 was 1970-01-01T00:33:44Z, date: 20240105 was 1970-08-23.
    message = error(f"---\ntitle: t\ndate: {value}\n---\n")
    assert message.startswith("posts/x.md:3: invalid date: ") and value in message, message
    assert meta("---\ntitle: t\ndate: 1704448800\n---\n").published == datetime(2024, 1, 5, 10, tzinfo=UTC)
    assert meta("---\ntitle: t\ndate: 1704448800000\n---\n").published == datetime(2024, 1, 5, 10, tzinfo=UTC)


@pytest.mark.parametrize(("front", "draft"), [
    ("draft: 'true'", True), ("draft: 'yes'", True), ("draft: 'TRUE'", True), ("draft: 'false'", False),
    ("draft: 'no'", False), ("published: 'false'", True), ("published: 'no'", True), ("published: 'off'", True),
    ("published: 'true'", False), ("draft: 1", True), ("published: 0", True), ("draft: 0", False),
])
def test_a_draft_flag_written_as_text_or_a_number_is_read_as_meant(front: str, draft: bool) -> None:
    # draft: "true" (quoted) used to publish the draft.
    assert is_draft(split_post(f"---\ntitle: t\n{front}\n---\n", "x.md", "d").meta) is draft


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**15, 10**15) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)
_KEYS = ("title", "date", "updated", "lastmod", "link", "from", "id", "guid", "author", "authors", "tags",
         "categories", "summary", "image", "lang", "draft", "published")


@settings(deadline=None, max_examples=400)
@given(st.dictionaries(st.sampled_from(_KEYS), _values, max_size=8))
def test_any_front_matter_values_give_a_post_or_one_post_error(values: dict[str, Any]) -> None:
    raw = RawPost(name="posts/x.md", digest="d" * 40, meta={"title": "t", "date": "2020-01-01", **values},
                  front="", body="", front_line=1, body_line=2)
    try:
        m = meta_from_post(raw, zone=SGT, base_url=BASE)
    except PostError:
        return
    texts = [m.title, m.explicit_id or "", m.summary or "", m.language or "", *m.tags, *m.categories,
             *(a.name for a in m.authors)]
    for value in values.values():
        if isinstance(value, list | dict) and value:
            assert str(value) not in texts


def test_json_front_matter_on_one_line_is_told_how_to_write_it() -> None:
    # It said "the file must start with ... '{'", of a file that does.
    message = error('{"title": "t", "date": "2020-01-01"}\nbody\n')
    assert message == ("posts/x.md:1: JSON front matter opens with '{' alone on the first line and closes "
                       "with '}' alone on a line")
