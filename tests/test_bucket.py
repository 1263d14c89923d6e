"""``output.s3``: the output folder published to an S3-compatible bucket, against a local
moto server on 127.0.0.1 (a versioned bucket, so every write the server took is counted)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import feedparser
import pytest
from moto.server import ThreadedMotoServer

from feeds.config import Bucket
from feeds.errors import PublishError
from feeds.layout import media_type
from feeds.output.bucket import MANIFEST, Fence, StaleTerm, sync

from .conftest import Site, posts, with_formats


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Credentials for the local server only; nothing may look further (no instance metadata).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)


class Remote:
    """A fresh versioned bucket on the moto server, and what it holds."""

    def __init__(self, url: str, prefix: str = "") -> None:
        self.url = url
        self.name = "b-" + uuid.uuid4().hex[:12]
        self.prefix = prefix
        self.client: Any = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        self.client.create_bucket(Bucket=self.name)
        self.client.put_bucket_versioning(Bucket=self.name, VersioningConfiguration={"Status": "Enabled"})

    def settings(self, **more: Any) -> Bucket:
        return Bucket(bucket=self.name, prefix=self.prefix, endpoint_url=self.url, region="us-east-1", **more)

    def config(self) -> str:
        return (f"  s3: {{bucket: {self.name}, prefix: '{self.prefix}', endpoint_url: '{self.url}', "
                "region: us-east-1}\n")

    def names(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def files(self) -> dict[str, bytes]:
        """What a visitor gets: every object under the prefix but the manifest, by its relative name."""
        found = {}
        for key in self.names():
            name = key[len(self.prefix):]
            if key.startswith(self.prefix) and name != MANIFEST:
                found[name] = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return found

    def writes(self) -> Counter[str]:
        """How many versions each key has had (puts and delete markers)."""
        counts: Counter[str] = Counter()
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.name):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                counts[v["Key"]] += 1
        return counts

    def head(self, name: str) -> dict[str, Any]:
        return dict(self.client.head_object(Bucket=self.name, Key=self.prefix + name))

    def manifest(self) -> dict[str, Any]:
        body = self.client.get_object(Bucket=self.name, Key=self.prefix + MANIFEST)["Body"].read()
        return dict(json.loads(body))


def bucket_site(site: Site, remote: Remote) -> None:
    posts(site)
    with_formats(site)
    text = (site.root / "config.yaml").read_text()
    site.write_config(text.replace("output:\n", "output:\n" + remote.config(), 1))


def feed_writes(remote: Remote) -> Counter[str]:
    return Counter({k: n for k, n in remote.writes().items() if not k.endswith(MANIFEST)})


def test_generate_publishes_the_folder_with_types_and_cache_control(site: Site, moto_url: str) -> None:
    remote = Remote(moto_url, "feeds/")
    bucket_site(site, remote)
    report = site.generate()
    assert not report.errors and report.bucket is not None
    local = site.outputs()
    assert remote.files() == local
    assert sorted(report.bucket.written) == sorted(local)
    for name in ("all.atom.xml", "all.rss.xml", "all.feed.json", "index.html", "feeds.opml"):
        head = remote.head(name)
        assert head["ContentType"] == media_type(name)
        assert head["CacheControl"] == "max-age=300"
        assert head["Metadata"]["feeds-sha256"] == hashlib.sha256(local[name]).hexdigest()
    assert feedparser.parse(remote.files()["all.atom.xml"]).entries
    assert not [k for k in remote.names() if not k.startswith("feeds/")]


def test_nothing_changed_writes_nothing_and_one_new_post_writes_only_what_changed(site: Site, moto_url: str) -> None:
    remote = Remote(moto_url)
    bucket_site(site, remote)
    site.generate()
    first = remote.writes()
    again = site.generate()
    assert again.bucket is not None and again.bucket.written == [] and again.bucket.deleted == []
    assert remote.writes() == first, "an unchanged run rewrote objects (or the manifest)"
    before = site.outputs()
    site.add("2021-01-04-d.md", "---\ntitle: D\ndate: 2021-01-04\ntags: [Python]\n---\nD.\n")
    report = site.generate()
    after = site.outputs()
    changed = {n for n in after if before.get(n) != after[n]}
    assert report.bucket is not None and set(report.bucket.written) == changed
    assert "tags/python.atom.xml" in changed and "tags/solo.atom.xml" not in changed
    writes = feed_writes(remote)
    assert {k for k, n in writes.items() if n > 1} == changed
    assert remote.files() == after


def test_a_feed_that_goes_away_is_deleted_and_foreign_objects_are_never_touched(site: Site, moto_url: str) -> None:
    remote = Remote(moto_url)
    remote.client.put_object(Bucket=remote.name, Key="keep.txt", Body=b"someone else's")
    # An object this program did not write, where it would write a feed:
    remote.client.put_object(Bucket=remote.name, Key="tags/python.rss.xml", Body=b"theirs")
    bucket_site(site, remote)
    report = site.generate()
    assert any("tags/python.rss.xml" in w and "did not write" in w for w in report.warnings)
    assert remote.files()["tags/python.rss.xml"] == b"theirs"
    assert remote.files()["keep.txt"] == b"someone else's"
    (site.posts / "2021-01-01-a.md").unlink()  # the only post tagged Solo
    report = site.generate()
    assert report.bucket is not None
    assert "tags/solo.atom.xml" in report.bucket.deleted
    assert "tags/solo.atom.xml" not in remote.files()
    assert remote.files()["keep.txt"] == b"someone else's"
    assert remote.files()["tags/python.rss.xml"] == b"theirs"


def test_a_stale_term_writes_nothing(site: Site, moto_url: str) -> None:
    remote = Remote(moto_url)
    posts(site)
    site.generate()
    names = list(site.outputs())
    sync(remote.settings(), site.output, names, fence=Fence(term=5))
    before = remote.writes()
    with pytest.raises(StaleTerm, match="term 5"):
        sync(remote.settings(), site.output, names, fence=Fence(term=4))
    assert remote.writes() == before
    assert remote.manifest()["term"] == 5


def test_a_publisher_that_loses_its_term_midway_stops_and_the_next_one_completes(site: Site, moto_url: str) -> None:
    remote = Remote(moto_url)
    posts(site)
    site.generate()
    names = list(site.outputs())
    asked = 0

    def holds() -> bool:
        nonlocal asked
        asked += 1
        return asked <= 4  # the claim and three objects, then the lease is gone

    with pytest.raises(StaleTerm, match="no longer held"):
        sync(remote.settings(), site.output, names, fence=Fence(term=1, holds=holds))
    written = remote.files()
    assert 0 < len(written) < len(names)
    assert remote.manifest()["pending"], "the claim names what it was about to write"
    done = sync(remote.settings(), site.output, names, fence=Fence(term=2))
    assert remote.files() == site.outputs()
    manifest = remote.manifest()
    assert manifest["term"] == 2 and not manifest["pending"]
    # What the stopped publication had already written with the same bytes is not written again.
    assert done.unchanged == 0 and len(done.written) == len(names)
    writes = feed_writes(remote)
    assert all(writes[n] <= 2 for n in names)


def test_two_terms_racing_leave_the_newer_one_published(site: Site, moto_url: str) -> None:
    remote = Remote(moto_url)
    posts(site)
    site.generate()
    names = list(site.outputs())
    errors: list[BaseException] = []

    def publish(term: int) -> None:
        try:
            sync(remote.settings(), site.output, names, fence=Fence(term=term))
        except StaleTerm as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(t,)) for t in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    manifest = remote.manifest()
    if manifest["term"] != 2:  # term 2 lost the race to claim: it publishes on its next turn
        sync(remote.settings(), site.output, names, fence=Fence(term=2))
        manifest = remote.manifest()
    assert manifest["term"] == 2
    assert remote.files() == site.outputs()
    with pytest.raises(StaleTerm):
        sync(remote.settings(), site.output, names, fence=Fence(term=1))


def test_an_unreachable_bucket_is_one_line_and_the_folder_is_published(site: Site, tmp_path: Path) -> None:
    remote_config = "  s3: {bucket: nowhere, endpoint_url: 'http://127.0.0.1:9', region: us-east-1}\n"
    posts(site)
    text = (site.root / "config.yaml").read_text()
    site.write_config(text.replace("output:\n", "output:\n" + remote_config, 1))
    result = subprocess.run([sys.executable, "-m", "feeds", "generate", "--config", str(site.root / "config.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "s3://nowhere/" in line]
    assert len(errors) == 1 and "cannot publish" in errors[0]
    assert (site.output / "all.atom.xml").is_file()


def test_a_missing_bucket_is_one_line(site: Site, moto_url: str) -> None:
    posts(site)
    text = (site.root / "config.yaml").read_text()
    site.write_config(text.replace("output:\n", f"output:\n  s3: {{bucket: no-such-bucket-here, endpoint_url: "
                                                f"'{moto_url}', region: us-east-1}}\n", 1))
    report = site.generate()
    assert len(report.errors) == 1
    assert report.errors[0].startswith("s3://no-such-bucket-here/") and "NoSuchBucket" in report.errors[0]


def test_a_failed_publication_is_retried_by_the_next_run(site: Site, moto_url: str) -> None:
    name = "later-" + uuid.uuid4().hex[:12]
    posts(site)
    text = (site.root / "config.yaml").read_text()
    site.write_config(text.replace("output:\n", f"output:\n  s3: {{bucket: {name}, endpoint_url: '{moto_url}', "
                                                "region: us-east-1}\n", 1))
    command = [sys.executable, "-m", "feeds", "generate", "--config", str(site.root / "config.yaml")]
    assert subprocess.run(command, capture_output=True, timeout=120).returncode == 1
    client: Any = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    # Nothing changed in the folder, but the bucket was never published to: the run does it.
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"])
    assert sorted([*site.outputs(), MANIFEST]) == keys


@pytest.mark.parametrize(("key", "value", "message"), [
    ("bucket", "Bad_Name", "bucket name"),
    ("prefix", "/abs", "relative folder"),
    ("prefix", "a/../b", "relative folder"),
    ("endpoint_url", "ftp://x", "http(s) URL"),
])
def test_bad_bucket_settings_are_config_errors_naming_the_line(site: Site, key: str, value: str,
                                                               message: str) -> None:
    settings = {"bucket": "good-bucket", key: value}
    line = "  s3: {" + ", ".join(f"{k}: '{v}'" for k, v in settings.items()) + "}\n"
    text = (site.root / "config.yaml").read_text()
    site.write_config(text.replace("output:\n", "output:\n" + line, 1))
    result = subprocess.run([sys.executable, "-m", "feeds", "check", "--config", str(site.root / "config.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and "config.yaml:" in result.stderr
    assert "Traceback" not in result.stderr


def test_prefix_is_a_folder() -> None:
    assert Bucket(bucket="abc", prefix="feeds").prefix == "feeds/"
    assert Bucket(bucket="abc", prefix="a/b/").prefix == "a/b/"
    assert Bucket(bucket="abc").prefix == ""
    with pytest.raises(ValueError):
        Bucket(bucket="abc", prefix="a//b")


def test_a_manifest_of_another_format_is_left_alone(site: Site, moto_url: str) -> None:
    remote = Remote(moto_url)
    remote.client.put_object(Bucket=remote.name, Key=MANIFEST, Body=b'{"format": 99}')
    posts(site)
    site.generate()
    with pytest.raises(PublishError, match="not one this version reads"):
        sync(remote.settings(), site.output, list(site.outputs()))
    assert remote.names() == [MANIFEST]


def test_check_reports_missing_credentials(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    posts(site)
    text = (site.root / "config.yaml").read_text()
    # No endpoint: this would be AWS, so nothing here may publish; check makes no request.
    site.write_config(text.replace("output:\n", "output:\n  s3: {bucket: some-bucket, region: us-east-1}\n", 1))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = subprocess.run([sys.executable, "-m", "feeds", "check", "--config", str(site.root / "config.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "s3://some-bucket/: no credentials found" in result.stderr
