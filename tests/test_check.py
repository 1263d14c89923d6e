"""``feeds check`` checks the feeds this program published, as the state database records them."""

from __future__ import annotations

import shutil
import subprocess
import sys

from feeds.check import check

from .conftest import Site

STRAY = '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>not ours</title>'


def _site_with_feeds(site: Site) -> Site:
    site.add("2020-01-01-good.md", "---\ntitle: Good\ndate: 2020-01-01\ntags: [Python]\n---\nok\n")
    site.generate()
    return site


def test_published_feeds_are_checked_and_pass(site: Site) -> None:
    _site_with_feeds(site)
    report = check(site.config())
    assert report.problems == []
    # all and tags/python, in Atom and RSS (JSON Feeds are not XML and are not checked).
    assert report.feeds == 4


def test_a_stray_feed_shaped_file_is_not_checked_when_the_state_says_what_was_published(site: Site) -> None:
    _site_with_feeds(site)
    (site.output / "tags" / "x.atom.xml").write_text(STRAY)
    (site.output / "categories").mkdir()
    (site.output / "categories" / "y.rss.xml").write_text("<rss>")
    report = check(site.config())
    assert report.problems == []
    assert report.feeds == 4


def test_without_a_state_every_feed_shaped_file_is_checked(site: Site) -> None:
    _site_with_feeds(site)
    (site.output / "tags" / "x.atom.xml").write_text(STRAY)
    shutil.rmtree(site.root / "state")
    report = check(site.config())
    assert report.feeds == 5
    assert [p.split(":")[0] for p in report.problems] == ["tags/x.atom.xml"]
    assert "not well-formed XML" in report.problems[0]
    assert not (site.root / "state").exists(), "check created a state database"


def test_a_published_feed_damaged_since_is_reported_and_a_removed_one_skipped(site: Site) -> None:
    _site_with_feeds(site)
    (site.output / "all.rss.xml").write_text("<rss><channel>")
    (site.output / "tags" / "python.rss.xml").unlink()
    report = check(site.config())
    assert report.feeds == 3
    assert len(report.problems) == 1 and report.problems[0].startswith("all.rss.xml:1: not well-formed XML")


def test_a_record_of_another_output_folder_is_not_used(site: Site) -> None:
    _site_with_feeds(site)
    text = (site.root / "config.yaml").read_text()
    site.write_config(text.replace("dir: output", "dir: elsewhere"))
    shutil.copytree(site.output, site.root / "elsewhere")
    (site.root / "elsewhere" / "tags" / "x.atom.xml").write_text(STRAY)
    report = check(site.config())
    assert [p.split(":")[0] for p in report.problems] == ["tags/x.atom.xml"]


def test_the_command_counts_only_published_feeds(site: Site) -> None:
    _site_with_feeds(site)
    (site.output / "tags" / "x.atom.xml").write_text(STRAY)
    result = subprocess.run([sys.executable, "-m", "feeds", "check", "--config", str(site.root / "config.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "check: config ok, 1 posts, 4 feed files, 0 problems"


def test_a_policy_or_query_naming_no_source_is_reported(site: Site) -> None:
    _site_with_feeds(site)
    text = (site.root / "config.yaml").read_text()
    site.write_config(text + "feeds:\n  tag:\n    Python: {exclude_sources: [wirre]}\n"
                             "queries:\n  - {name: Mine, include_sources: [posts, nope], include: good}\n")
    site.generate()
    report = check(site.config())
    hint = "(write a source's name, or posts for local posts)"
    assert report.problems == [f"feeds.tag.Python.exclude_sources: no source is named 'wirre' {hint}",
                               f"queries[0].include_sources: no source is named 'nope' {hint}"]
    assert report.feeds == 6  # the topic feed is checked too
