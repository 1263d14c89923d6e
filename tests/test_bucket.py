"""``output.s3``: the output folder published to an S3-compatible bucket, against a local
moto server on 127.0.0.1 (a versioned bucket, so every write the server took is counted)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
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


def test_a_bucket_server_that_never_answers_fails_the_run_after_its_timeouts(site: Site) -> None:
    """A server that takes connections and never answers: each request gives up after
    ``timeout`` and ``attempts``; the run ends with one line, the folder published."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def take() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])  # and never a byte back

    threading.Thread(target=take, daemon=True).start()
    port = listener.getsockname()[1]
    try:
        posts(site)
        text = (site.root / "config.yaml").read_text()
        bucket = (f"  s3: {{bucket: silent, endpoint_url: 'http://127.0.0.1:{port}', region: us-east-1, "
                  "timeout: 1s, attempts: 2}\n")
        site.write_config(text.replace("output:\n", "output:\n" + bucket, 1))
        result = subprocess.run([sys.executable, "-m", "feeds", "generate", "--config", str(site.root / "config.yaml")],
                                capture_output=True, text=True, timeout=300)
    finally:
        listener.close()
        for conn in held:
            conn.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "s3://silent/" in line]
    assert len(errors) == 1 and "cannot publish" in errors[0]
    assert held  # it was asked
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


# -- what an operator (or a crash) does to the bucket and the folder between runs -----------------


def folder(root: Path, files: dict[str, bytes]) -> list[str]:
    """A folder holding exactly ``files``; their names."""
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return list(files)


def test_names_and_a_prefix_beyond_ascii_are_published_as_they_are(tmp_path: Path, moto_url: str) -> None:
    remote = Remote(moto_url, "新闻 feeds/")
    files = {"tags/中文 标签.atom.xml": b"<feed/>", "tags/café.html": "<p>é</p>".encode(), "index.html": b"<p/>"}
    names = folder(tmp_path, files)
    sync(remote.settings(), tmp_path, names)
    assert remote.files() == files
    assert remote.head("tags/中文 标签.atom.xml")["ContentType"] == media_type("x.atom.xml")
    before = remote.writes()
    assert sync(remote.settings(), tmp_path, names).written == []
    assert remote.writes() == before


def test_an_object_deleted_by_hand_is_written_again_by_the_next_run(tmp_path: Path, moto_url: str) -> None:
    remote = Remote(moto_url)
    names = folder(tmp_path, {"all.atom.xml": b"<feed>1</feed>", "index.html": b"<p>1</p>"})
    sync(remote.settings(), tmp_path, names)
    remote.client.delete_object(Bucket=remote.name, Key="all.atom.xml")
    # Nothing changed in the folder: the run still finds the hole and fills it.
    done = sync(remote.settings(), tmp_path, names)
    assert done.written == ["all.atom.xml"]
    assert remote.files() == {"all.atom.xml": b"<feed>1</feed>", "index.html": b"<p>1</p>"}


def test_an_object_deleted_by_hand_whose_file_then_changes_is_written(tmp_path: Path, moto_url: str) -> None:
    remote = Remote(moto_url)
    names = folder(tmp_path, {"all.atom.xml": b"<feed>1</feed>"})
    sync(remote.settings(), tmp_path, names)
    remote.client.delete_object(Bucket=remote.name, Key="all.atom.xml")
    folder(tmp_path, {"all.atom.xml": b"<feed>2</feed>"})
    # S3 answers a write If-Match an object that is not there with 404, not 412.
    done = sync(remote.settings(), tmp_path, names, client=remote.client)
    assert done.written == ["all.atom.xml"]
    assert remote.files() == {"all.atom.xml": b"<feed>2</feed>"}


def test_an_object_replaced_by_hand_is_left_alone_with_a_warning_each_run(tmp_path: Path, moto_url: str) -> None:
    remote = Remote(moto_url)
    names = folder(tmp_path, {"all.atom.xml": b"<feed>1</feed>"})
    sync(remote.settings(), tmp_path, names)
    remote.client.put_object(Bucket=remote.name, Key="all.atom.xml", Body=b"by hand")
    done = sync(remote.settings(), tmp_path, names)
    assert done.written == [] and any("did not write" in w for w in done.warnings)
    assert remote.files() == {"all.atom.xml": b"by hand"}


def test_a_killed_publication_then_a_file_changed_back_leaves_the_bucket_as_the_folder(
        tmp_path: Path, moto_url: str) -> None:
    remote = Remote(moto_url)
    old = {f"tags/t{i}.atom.xml": f"<feed>{i}</feed>".encode() for i in range(4)}
    names = folder(tmp_path, old)
    sync(remote.settings(), tmp_path, names)
    folder(tmp_path, {n: d + b" edited" for n, d in old.items()})
    asked = 0

    def holds() -> bool:
        nonlocal asked
        asked += 1
        return asked <= 3  # the claim and two objects

    with pytest.raises(StaleTerm):
        sync(remote.settings(), tmp_path, names, fence=Fence(term=1, holds=holds))
    assert remote.files() != old
    folder(tmp_path, old)  # the edit undone before the next run
    sync(remote.settings(), tmp_path, names, fence=Fence(term=1))
    assert remote.files() == old
    assert remote.manifest()["pending"] == {}


def test_a_wanted_file_unreadable_after_a_killed_publication_keeps_its_object(tmp_path: Path, moto_url: str) -> None:
    remote = Remote(moto_url)
    names = folder(tmp_path, {"a.atom.xml": b"1", "b.atom.xml": b"1"})
    sync(remote.settings(), tmp_path, names)
    folder(tmp_path, {"a.atom.xml": b"2", "b.atom.xml": b"2"})
    allowed = iter([True, True])  # the claim and a.atom.xml

    with pytest.raises(StaleTerm):
        sync(remote.settings(), tmp_path, names, fence=Fence(term=1, holds=lambda: next(allowed, False)))
    (tmp_path / "b.atom.xml").unlink()  # gone from the folder by hand; the program still wants it
    sync(remote.settings(), tmp_path, names, fence=Fence(term=1))
    assert remote.files() == {"a.atom.xml": b"2", "b.atom.xml": b"1"}
    assert "b.atom.xml" in remote.manifest()["objects"]


@pytest.mark.parametrize("body", [
    b'{"format": 1, "term": 0, "objects": {', b"[1, 2]", b'"text"', b"\xff\xfe",
    b'{"format": 1, "term": 0, "objects": {"a.atom.xml": 1}}',
    b'{"format": 1, "term": 0, "objects": {"a.atom.xml": {"sha256": "x"}}}',
    b'{"format": 1, "term": 0, "objects": [["a.atom.xml", {"sha256": "x", "etag": "y"}]]}',
    b'{"format": 1, "term": "zero", "objects": {}}',
    b'{"format": 1, "term": true, "objects": {}}',
    b'{"format": 1, "term": 0, "objects": {}, "pending": ["a"]}',
], ids=["truncated", "a-list", "a-string", "not-utf8", "object-not-a-table", "no-etag", "objects-a-list",
        "term-text", "term-bool", "pending-a-list"])
def test_a_damaged_manifest_is_one_error_and_nothing_is_written(tmp_path: Path, moto_url: str, body: bytes) -> None:
    remote = Remote(moto_url)
    remote.client.put_object(Bucket=remote.name, Key=MANIFEST, Body=body)
    names = folder(tmp_path, {"a.atom.xml": b"new"})
    with pytest.raises(PublishError, match="not one this version reads") as caught:
        sync(remote.settings(), tmp_path, names)
    assert caught.value.where == f"s3://{remote.name}/{MANIFEST}"
    assert remote.names() == [MANIFEST]


def test_many_files_are_published_and_an_unchanged_run_writes_nothing(tmp_path: Path, moto_url: str) -> None:
    """More objects than one listing page holds."""
    remote = Remote(moto_url)
    remote.client.put_bucket_versioning(Bucket=remote.name, VersioningConfiguration={"Status": "Suspended"})
    files = {f"tags/t{i:04d}.atom.xml": f"<feed>{i}</feed>".encode() for i in range(1001)}
    names = folder(tmp_path, files)
    assert len(sync(remote.settings(), tmp_path, names).written) == len(files)
    manifest = remote.head(MANIFEST)["ETag"]
    again = sync(remote.settings(), tmp_path, names)
    assert again.unchanged == len(files) and again.written == []
    assert remote.head(MANIFEST)["ETag"] == manifest
    assert remote.names() == sorted([*files, MANIFEST])

def test_check_asks_no_instance_or_container_role(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without credentials in the environment or files boto3 would ask the instance metadata
    service, and a container's credentials address: ``feeds check`` makes no request at all."""
    posts(site)
    text = (site.root / "config.yaml").read_text()
    site.write_config(text.replace("output:\n", "output:\n  s3: {bucket: some-bucket, region: us-east-1}\n", 1))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{port}/")
        monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "1")
        monkeypatch.setenv("AWS_METADATA_SERVICE_TIMEOUT", "1")
        result = subprocess.run([sys.executable, "-m", "feeds", "check", "--config", str(site.root / "config.yaml")],
                                capture_output=True, text=True, timeout=60)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()[0].close()
    assert result.returncode == 1
    assert "s3://some-bucket/: no credentials found" in result.stderr


def test_an_endpoint_with_a_password_in_it_is_refused(site: Site) -> None:
    text = (site.root / "config.yaml").read_text()
    line = "  s3: {bucket: good-bucket, endpoint_url: 'https://key:secret@minio.example:9000'}\n"
    site.write_config(text.replace("output:\n", "output:\n" + line, 1))
    result = subprocess.run([sys.executable, "-m", "feeds", "check", "--config", str(site.root / "config.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "config.yaml:" in result.stderr and "credentials" in result.stderr
    assert "secret" not in result.stderr


def test_every_kind_of_file_gets_its_content_type(tmp_path: Path, moto_url: str) -> None:
    remote = Remote(moto_url)
    kinds = {"all.atom.xml": "application/atom+xml", "all.rss.xml": "application/rss+xml",
             "all.feed.json": "application/feed+json", "index.html": "text/html", "tags/x.html": "text/html",
             "feeds.opml": "text/x-opml", "feed.xsl": "text/xsl", "status.atom": "application/atom+xml",
             "status.json": "application/json"}
    names = folder(tmp_path, {name: b"x" for name in kinds})
    sync(remote.settings(), tmp_path, names)
    assert {n: remote.head(n)["ContentType"] for n in kinds} == {n: f"{k}; charset=utf-8" for n, k in kinds.items()}
