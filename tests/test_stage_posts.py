"""Golden pairs for the posts stage: a post file beside the metadata, id and clean
content it gives (``tests/data/stages/posts/<file>.expected.json``).

Markdown and HTML posts with YAML, TOML and JSON front matter, the real sample
post, Jekyll/Hugo/Pelican spellings of keys, dates from the front matter, the file
name or a leading comment, and a post whose error message is the expectation.
See ``stage_golden`` for how to regenerate the expectations.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

# Stage entry points, in one place (they move as the stages are split).
from feeds.errors import PostError
from feeds.identity import Ledger, post_id
from feeds.normalize.posts import entry_from_post, meta_from_post, post_content
from feeds.posts import POST_SUFFIXES, PostFile, read_post

from .stage_golden import STAGES, check_json

FOLDER = STAGES / "posts"
SAMPLE = Path("/work/shared/samples/_posts/2021-09-03-xie-zhenhua-kerry-talks.md")
ZONE = ZoneInfo("Asia/Singapore")
BASE_URL = "https://example.org/feeds/"
HOME_URL = "https://example.org/"
REMOVE = ("section#imu", "[id^=dfp-ad]")
POSTS = sorted(p.name for p in FOLDER.iterdir() if p.name.endswith(POST_SUFFIXES))


def stage(name: str) -> dict[str, Any]:
    """What the posts stage makes of one file, read from a copy named ``posts/<name>``."""
    path = FOLDER / name
    st = path.stat()
    try:
        raw = read_post(PostFile(str(path), f"posts/{name}", st.st_mtime_ns, st.st_size))
        meta = meta_from_post(raw, zone=ZONE, base_url=BASE_URL, home_url=HOME_URL, extra_tags=("From-folder",))
    except PostError as exc:
        return {"error": str(exc)}
    content, summary = post_content(raw.body, path=meta.path, title=meta.title,
                                    base_url=meta.link or meta.permalink or BASE_URL, summary=meta.summary,
                                    remove=REMOVE)
    entry_id = post_id(meta.explicit_id, meta.link, meta.title, meta.published.isoformat(), meta.path, Ledger())
    entry = entry_from_post(meta, entry_id=entry_id, content=content, summary=summary, tags=meta.tags,
                            categories=meta.categories, source="posts:posts")
    return {"front_matter": raw.meta, "meta": meta, "entry": entry}


def test_there_are_posts_of_every_kind() -> None:
    assert len(POSTS) >= 8
    assert {Path(n).suffix for n in POSTS} >= {".md", ".html", ".markdown"}
    fronts = {(FOLDER / n).read_text(encoding="utf-8")[:1] for n in POSTS}
    assert fronts == {"-", "+", "{"}  # YAML, TOML and JSON front matter


@pytest.mark.skipif(not SAMPLE.exists(), reason="the shared sample is not on this machine")
def test_the_real_sample_is_copied_as_it_is() -> None:
    assert (FOLDER / SAMPLE.name).read_bytes() == SAMPLE.read_bytes()


@pytest.mark.parametrize("name", POSTS)
def test_post_gives_its_golden_metadata(name: str) -> None:
    check_json(FOLDER / f"{name}.expected.json", stage(name))


def test_every_expectation_has_its_post() -> None:
    stray = {p.name for p in FOLDER.iterdir()} - set(POSTS) - {f"{n}.expected.json" for n in POSTS}
    assert stray == set()


# What the goldens hold that matters most, said once more in words.

def test_the_sample_post() -> None:
    got = stage(SAMPLE.name)
    meta, entry = got["meta"], got["entry"]
    assert meta.title == "解振华应约与克里举行会谈"
    assert meta.published.isoformat() == "2021-09-03T13:37:42.888000+00:00"
    assert meta.link == entry.id == entry.link == "https://www.zaobao.com/realtime/china/story20210903-1190070"
    assert meta.tags == ("联合早报", "From-folder") and meta.categories == ("联合早报",)
    assert [a.name for a in meta.authors] == ["联合早报"]
    assert 'id="imu"' not in (entry.content or "") and "dfp-ad" not in (entry.content or "")


def test_front_matter_spellings() -> None:
    jekyll = stage("2024-01-15-yaml-jekyll.md")["meta"]
    assert jekyll.title == "Jekyll & <Friends>: a *YAML* post"
    assert jekyll.published.isoformat() == "2024-01-15T01:30:00+00:00"
    assert jekyll.updated.isoformat() == "2024-02-01T10:00:00+00:00"
    assert jekyll.permalink == "https://example.org/2024/01/15/yaml-jekyll.html"
    assert jekyll.image == "https://example.org/img/cover.png"  # an absolute path, on the site
    assert jekyll.summary == "A short excerpt & more"
    hugo = stage("hugo-toml.md")["meta"]
    assert hugo.link == "https://blog.example/hugo-toml?ref=feed" and hugo.permalink is None
    assert hugo.explicit_id == "tag:blog.example,2023:hugo-toml"
    assert [a.name for a in hugo.authors] == ["Ann", "Bo"]
    assert hugo.categories == ("Tools", "Static sites")
    json_post = stage("json-front.md")["meta"]
    assert json_post.link == "https://json.example/posts/front" and json_post.tags == ("single-tag", "From-folder")


def test_dates_from_the_file_name_the_comment_and_the_zone() -> None:
    assert stage("2020-05-04-html-page.html")["meta"].published.isoformat() == "2020-05-03T16:00:00+00:00"
    assert stage("epoch-comment.md")["meta"].published.isoformat() == "2021-09-03T17:54:00+00:00"
    naive = stage("naive-date.markdown")
    assert naive["meta"].published.isoformat() == "2019-03-10T00:00:00+00:00"
    # An id given in the front matter that is not a URI is named by a URN, and kept upstream.
    assert naive["meta"].explicit_id == "my-own-id" and naive["entry"].id.startswith("urn:uuid:")
    assert [p.upstream_id for p in naive["entry"].provenance] == ["my-own-id"]


def test_an_html_post_is_cleaned_not_rendered() -> None:
    content = stage("2020-05-04-html-page.html")["entry"].content or ""
    assert "<em>HTML</em>" in content and "onclick" not in content and "<iframe" not in content


def test_a_broken_date_names_its_line() -> None:
    got = stage("broken-date.md")
    assert list(got) == ["error"] and got["error"].startswith("posts/broken-date.md:4: invalid date: ")


def test_a_copied_post_gives_the_same_metadata(tmp_path: Path) -> None:
    # The expectation does not depend on where the file lies, only on its name and bytes.
    name = "2024-01-15-yaml-jekyll.md"
    shutil.copy(FOLDER / name, tmp_path / name)
    os.utime(tmp_path / name, (1_600_000_000, 1_600_000_000))
    st = (tmp_path / name).stat()
    raw = read_post(PostFile(str(tmp_path / name), f"posts/{name}", st.st_mtime_ns, st.st_size))
    meta = meta_from_post(raw, zone=ZONE, base_url=BASE_URL, home_url=HOME_URL, extra_tags=("From-folder",))
    assert meta == stage(name)["meta"]
