"""``feeds check``: find every problem in the posts, the sources' settings, the feed
policies and the written feeds, not just the first.

Reads post files, output files, the sources' CA bundles and credentials' environment
variables (only whether they are set), whether the bucket's credentials can be found, and
(to know which output files are this program's) the state database's record of what it
published; writes nothing, fetches nothing.
Each problem is one line naming the file (and line) it is about.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import feedparser
from lxml import etree

from .config import Config, Policy
from .errors import FeedsError, PostError
from .layout import FEED_FOLDERS, XML_FORMATS, feed_url, is_archive_folder, is_feed_file, listing_order
from .normalize.posts import is_draft, meta_from_post
from .output.bucket import settings_problem
from .output.run import load_records
from .posts import read_post, scan_posts
from .sources.fetch import tls_problem
from .sources.update import source_http
from .store import Store

ATOM = "{http://www.w3.org/2005/Atom}"
FEED_HISTORY = "{http://purl.org/syndication/history/1.0}"


@dataclass
class CheckReport:
    """What ``feeds check`` found: one line per problem, and how many posts and feeds it read."""

    problems: list[str] = field(default_factory=list)
    posts: int = 0
    feeds: int = 0


def check_posts(config: Config, report: CheckReport) -> None:
    zone = ZoneInfo(config.site.timezone)
    seen: set[str] = set()
    for folder in config.posts:
        scan = scan_posts(folder.path, config.root)
        files = scan.files
        if scan.problem is not None:
            report.problems.append(f"{folder.path}: {scan.problem}")
        elif not files:
            report.problems.append(f"{folder.path}: no post files found")
        report.problems.extend(scan.refused)
        report.problems.extend(f"{folder.path}: cannot read {name}" for name in scan.unreadable)
        for f in files:
            if f.name in seen:
                continue
            seen.add(f.name)
            report.posts += 1
            try:
                raw = read_post(f)
                if not is_draft(raw.meta):
                    meta_from_post(raw, zone=zone, base_url=config.site.base_url, extra_tags=folder.tags)
            except PostError as exc:
                report.problems.append(str(exc))


def check_sources(config: Config, report: CheckReport) -> None:
    """What would keep an enabled source from being fetched as configured: a password's
    environment variable that is not set, a CA bundle that cannot be used."""
    for source in config.sources:
        if not source.enabled:
            continue
        http = source_http(source, config.root)
        if http is None:
            continue
        if http.password_env is not None and not os.environ.get(http.password_env):
            report.problems.append(f"source {source.name}: the environment variable {http.password_env} "
                                   "(auth.password_env) is not set")
        problem = tls_problem(http.tls_verify)
        if problem is not None:
            report.problems.append(f"source {source.name}: {problem}")


def check_bucket(config: Config, report: CheckReport) -> None:
    """What would keep the folder from being published to ``output.s3`` (no request is made)."""
    if config.output.s3 is not None:
        problem = settings_problem(config.output.s3)
        if problem is not None:
            report.problems.append(problem)


def check_feed_policies(config: Config, report: CheckReport) -> None:
    """A feed policy or query that names a source there is not (``include_sources``,
    ``exclude_sources``): its feed would silently hold nothing from it."""
    known = {s.name for s in config.sources} | {"posts"}
    p = config.feeds
    named: list[tuple[str, Policy]] = [("feeds.defaults", p.defaults), ("feeds.all", p.all), ("feeds.tags", p.tags),
                                       ("feeds.categories", p.categories), ("feeds.queries", p.queries)]
    named += [(f"feeds.tag.{k}", v) for k, v in p.tag.items()] + [(f"feeds.category.{k}", v)
                                                                    for k, v in p.category.items()]
    named += [(f"queries[{i}]", q) for i, q in enumerate(config.queries)]
    for key, policy in named:
        for key_name in ("include_sources", "exclude_sources"):
            for name in getattr(policy, key_name) or ():
                if name not in known:
                    report.problems.append(f"{key}.{key_name}: no source is named {name!r} "
                                           "(write a source's name, or posts for local posts)")


def _published_feeds(config: Config) -> list[str] | None:
    """The XML feeds this program recorded publishing (relative paths, in listing order), or
    None when there is no record to go by: no state database, an unreadable one, one that
    has never recorded an output, or one whose record is of another output folder."""
    target = config.state_target
    if isinstance(target, Path) and not target.is_file():
        return None  # opening a store would create one: ``feeds check`` writes nothing
    try:
        store = Store(target)
    except FeedsError:
        return None
    try:
        recorded = load_records(config, store)  # of another output folder: nothing
    except FeedsError:
        return None
    finally:
        store.close()
    if not recorded:
        return None
    return sorted((p for p in recorded if (p.rpartition("/")[0] in FEED_FOLDERS or
                                           is_archive_folder(p.rpartition("/")[0])) and is_feed_file(p, XML_FORMATS)),
                  key=listing_order)


def _feed_files_by_name(output: Path) -> list[str]:
    """Without a record: every file named like an XML feed in the folders feeds are written to."""
    found = []
    for folder in FEED_FOLDERS:
        directory = output / folder
        if directory.is_dir():
            found += sorted(p.relative_to(output).as_posix() for p in directory.iterdir()
                            if is_feed_file(p.name, XML_FORMATS))
    return found


def check_outputs(config: Config, report: CheckReport) -> None:
    output = config.output_dir
    if not output.is_dir():
        report.problems.append(f"{output}: no output yet (run feeds generate)")
        return
    published = _published_feeds(config)
    for relative in _feed_files_by_name(output) if published is None else published:
        path = output / relative
        if published is not None and not path.is_file():
            continue  # removed since (by hand): nothing to check, and the next run writes it again
        report.feeds += 1
        data = path.read_bytes()
        try:
            root = etree.fromstring(data)
        except etree.XMLSyntaxError as exc:
            report.problems.append(f"{relative}:{exc.lineno}: not well-formed XML: {exc.msg}")
            continue
        parsed = feedparser.parse(data, response_headers={"content-type": "application/xml; charset=utf-8"})
        if parsed.get("bozo"):
            report.problems.append(f"{relative}: feed readers would flag it: {parsed.get('bozo_exception')}")
        expected = feed_url(config.site.base_url, relative)
        selfs = [e.get("href") for e in root.iter(f"{ATOM}link") if e.get("rel") == "self"]
        if expected not in selfs:
            report.problems.append(f"{relative}: its rel=self link is not {expected}")
        if is_archive_folder(relative.rpartition("/")[0]):
            _check_archive_page(relative, root, report)
        for entry in parsed.entries:
            for key in ("id", "link"):
                value = entry.get(key) or ""
                if value and (not value.isascii() or " " in value):
                    report.problems.append(f"{relative}: entry {entry.get('title')!r} has a {key} that is not "
                                           f"a percent-encoded URI: {value}")
            if not entry.get("title"):
                report.problems.append(f"{relative}: an entry has no title ({entry.get('id')})")


def _check_archive_page(relative: str, root: etree._Element, report: CheckReport) -> None:
    """An RFC 5005 archive page says it is one and links its current feed."""
    if root.find(f".//{FEED_HISTORY}archive") is None:
        report.problems.append(f"{relative}: an archive page without <fh:archive/>")
    if not any(e.get("rel") == "current" for e in root.iter(f"{ATOM}link")):
        report.problems.append(f"{relative}: an archive page without a rel=current link")


def check(config: Config) -> CheckReport:
    report = CheckReport()
    check_posts(config, report)
    check_sources(config, report)
    check_bucket(config, report)
    check_feed_policies(config, report)
    check_outputs(config, report)
    return report
