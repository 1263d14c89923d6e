"""Publish the output folder to an S3-compatible bucket (``output.s3``): the only module
that speaks to one.

After a writing run has left the folder as it should be, :func:`sync` makes the bucket
hold the same bytes under ``prefix``: each object with its Content-Type (the same as
``feeds serve`` sends) and the configured Cache-Control; only objects whose bytes
changed are written, and objects this program wrote for files that are gone are
deleted. An object it did not write is never overwritten or deleted.

What was published is kept in the bucket itself, in ``<prefix>.feeds/publication.json``
(the manifest): the publisher's term, and each object's SHA-256 and ETag. Every write
is conditional, so two publishers can never both win:

- the manifest is first rewritten (``If-Match`` on the ETag read) with this publisher's
  term and the objects it is about to write: a publisher whose term is older than the
  manifest's writes nothing (:class:`StaleTerm`), and of two racing at the same moment
  only one claim succeeds;
- each object is written ``If-Match`` the ETag the manifest recorded for it (or
  ``If-None-Match: *`` for a new one); an object that changed meanwhile is looked at:
  one a newer term wrote stops this publication, one another program wrote is left
  alone (a warning);
- before each write the fence is asked whether this publisher still holds its term
  (a leader whose lease ran out stops at once), and the manifest's final version is
  again written ``If-Match`` its claim.

Each sync also lists the prefix, so an object that is not what the manifest records
(deleted or replaced by hand, or left by a publication stopped halfway) is looked at
again even when no file changed.

Objects carry ``x-amz-meta-feeds-sha256`` and ``x-amz-meta-feeds-term``: that is how an
object left by a publication that was killed halfway is known to be this program's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PublishError
from ..layout import INDEX_NAME, is_feed_file, media_type
from .publish import read_bytes, safe_target

if TYPE_CHECKING:
    from ..config import Bucket

log = logging.getLogger("feeds")

#: Where the manifest is, under the prefix.
MANIFEST = ".feeds/publication.json"
#: The manifest's format; a manifest of another is refused, not overwritten.
FORMAT = 1
MANIFEST_TYPE = "application/json"
SHA_KEY = "feeds-sha256"
TERM_KEY = "feeds-term"


class StaleTerm(PublishError):
    """A publisher with a newer term has published (or this one lost its term): nothing more is written."""


def _always() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Fence:
    """Who publishes: the term of its leadership (0 for a single ``feeds generate``), and a
    check, asked before every write, that it still holds it."""

    term: int = 0
    holds: Callable[[], bool] = _always


@dataclass
class Synced:
    """What a sync did: objects written, deleted, left as they were, and the warnings."""

    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    term: int = -1
    #: name -> {"sha256": ..., "etag": ...}
    objects: dict[str, dict[str, str]] = field(default_factory=dict)
    #: names a publication was writing when it stopped: name -> sha256
    pending: dict[str, str] = field(default_factory=dict)
    etag: str | None = None

    def encode(self) -> bytes:
        return json.dumps({"format": FORMAT, "term": self.term, "objects": self.objects,
                           "pending": self.pending}, sort_keys=True, indent=0).encode()


def location(settings: Bucket, name: str = "") -> str:
    """``s3://bucket/prefix/name``, for messages."""
    return f"s3://{settings.bucket}/{settings.prefix}{name}"


def make_client(settings: Bucket) -> Any:
    """A boto3 S3 client for ``settings`` (boto3 is needed only when a bucket is configured)."""
    try:
        import boto3
        from botocore.config import Config as BotoConfig
        from botocore.exceptions import BotoCoreError
    except ImportError:
        raise PublishError("output.s3 needs boto3: pip install 'feeds[s3]'", where=location(settings)) from None
    # A server that takes the connection and never answers fails each request after
    # attempts x timeout, never holding a run for longer.
    options: dict[str, Any] = {"connect_timeout": settings.timeout, "read_timeout": settings.timeout,
                               "retries": {"total_max_attempts": settings.attempts, "mode": "standard"}}
    if settings.endpoint_url:
        options["s3"] = {"addressing_style": "path"}
    try:
        session = boto3.session.Session(profile_name=settings.profile, region_name=settings.region)
        return session.client("s3", endpoint_url=settings.endpoint_url, config=BotoConfig(**options))
    except BotoCoreError as exc:
        raise PublishError(f"cannot use the bucket: {exc}", where=location(settings)) from None


#: Where boto3 would ask for credentials over the network (an instance's metadata service,
#: a container's credentials address): ``feeds check`` asks neither.
NETWORK_PROVIDERS = ("iam-role", "container-role")
CONTAINER_VARIABLES = ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def settings_problem(settings: Bucket) -> str | None:
    """What would keep publishing to the bucket from starting, found without asking it (or
    anything else on the network): boto3 missing, an unknown profile, no credentials in
    the environment, the AWS files or a container's settings."""
    try:
        import botocore.session
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return f"{location(settings)}: output.s3 needs boto3: pip install 'feeds[s3]'"
    if any(os.environ.get(name) for name in CONTAINER_VARIABLES):
        return None  # a container's role: fetched when publishing
    try:
        session = botocore.session.Session(profile=settings.profile)
        resolver = session.get_component("credential_provider")
        for name in NETWORK_PROVIDERS:
            resolver.remove(name)
        credentials = session.get_credentials()
    except BotoCoreError as exc:
        return f"{location(settings)}: {exc}"
    if credentials is None:
        return (f"{location(settings)}: no credentials found (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "~/.aws/credentials or output.s3.profile; an instance role is not asked by feeds check)")
    return None


def order(name: str) -> tuple[int, str]:
    """Feeds first, then pages and the rest, the front door last: a reader that follows a
    link from a new file finds what it links to."""
    if is_feed_file(name):
        return 0, name
    if name == INDEX_NAME or "/" not in name:
        return 2, name
    return 1, name


class _Bucket:
    """One sync's conversation with the bucket: every call's failure is one line."""

    def __init__(self, settings: Bucket, client: Any) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self.settings = settings
        self.client = client
        self.ClientError = ClientError
        self.failures = (BotoCoreError, ClientError)

    def key(self, name: str) -> str:
        return self.settings.prefix + name

    def fail(self, exc: Exception, name: str = "") -> PublishError:
        if isinstance(exc, self.ClientError):
            error = exc.response.get("Error", {})
            code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            text = f"{code}: {error.get('Message') or 'refused'}"
        else:
            text = str(exc)
        return PublishError(f"cannot publish: {text}", where=location(self.settings, name))

    def status(self, exc: Exception) -> int | None:
        if isinstance(exc, self.ClientError):
            return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) or None
        return None

    def read_manifest(self) -> Manifest:
        try:
            answer = self.client.get_object(Bucket=self.settings.bucket, Key=self.key(MANIFEST))
            body = answer["Body"].read()
        except self.failures as exc:
            if self.status(exc) == 404 and _code(exc) == "NoSuchKey":
                return Manifest()
            raise self.fail(exc, MANIFEST) from None
        try:
            return parse_manifest(body, str(answer["ETag"]))
        except ValueError as exc:
            raise PublishError(f"the manifest is not one this version reads ({exc}); it is left as it is",
                               where=location(self.settings, MANIFEST)) from None

    def listing(self) -> dict[str, str]:
        """Every object under the prefix (but the manifest) and its ETag: what is really there,
        one request per thousand objects."""
        found: dict[str, str] = {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket,
                                                                          Prefix=self.settings.prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    name = str(item["Key"])[len(self.settings.prefix):]
                    if name != MANIFEST:
                        found[name] = str(item["ETag"])
        except self.failures as exc:
            raise self.fail(exc) from None
        return found

    def write_manifest(self, manifest: Manifest) -> str:
        """Replace the manifest, only if it is still the one read; its new ETag."""
        condition = {"IfMatch": manifest.etag} if manifest.etag else {"IfNoneMatch": "*"}
        try:
            answer = self.client.put_object(Bucket=self.settings.bucket, Key=self.key(MANIFEST),
                                            Body=manifest.encode(), ContentType=MANIFEST_TYPE,
                                            CacheControl="no-store", **condition)
        except self.failures as exc:
            if self.status(exc) in (409, 412):
                raise StaleTerm("another publisher changed the bucket meanwhile; this one stops",
                                where=location(self.settings, MANIFEST)) from None
            raise self.fail(exc, MANIFEST) from None
        return str(answer["ETag"])

    def head(self, name: str) -> tuple[str, dict[str, str]] | None:
        """The ETag and metadata of the object there, or None."""
        try:
            answer = self.client.head_object(Bucket=self.settings.bucket, Key=self.key(name))
        except self.failures as exc:
            if self.status(exc) == 404:
                return None
            raise self.fail(exc, name) from None
        return str(answer["ETag"]), dict(answer.get("Metadata") or {})

    def put(self, name: str, data: bytes, sha: str, term: int, condition: Mapping[str, str]) -> str | None:
        """Write one object under ``condition``; its ETag, or None when the condition failed."""
        try:
            answer = self.client.put_object(
                Bucket=self.settings.bucket, Key=self.key(name), Body=data, ContentType=media_type(name),
                CacheControl=self.settings.cache_control, Metadata={SHA_KEY: sha, TERM_KEY: str(term)},
                **condition)
        except self.failures as exc:
            # 404: If-Match an object that is not there (deleted by hand, say).
            if self.status(exc) in (404, 409, 412):
                return None
            raise self.fail(exc, name) from None
        return str(answer["ETag"])

    def delete(self, name: str, etag: str) -> bool:
        """Delete one object if it is still the one written; False when it changed."""
        try:
            self.client.delete_object(Bucket=self.settings.bucket, Key=self.key(name), IfMatch=etag)
        except self.failures as exc:
            if self.status(exc) == 404:
                return True
            if self.status(exc) in (409, 412):
                return False
            raise self.fail(exc, name) from None
        return True


def parse_manifest(body: bytes, etag: str) -> Manifest:
    """The manifest in ``body``; ValueError naming what is wrong with it."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}")
    term, objects, pending = data.get("term"), data.get("objects"), data.get("pending") or {}
    if not isinstance(term, int) or isinstance(term, bool):
        raise ValueError(f"term {term!r}")
    if not isinstance(objects, dict) or not all(
            isinstance(o, dict) and isinstance(o.get("sha256"), str) and isinstance(o.get("etag"), str)
            for o in objects.values()):
        raise ValueError("objects: each needs its sha256 and etag")
    if not isinstance(pending, dict) or not all(isinstance(v, str) for v in pending.values()):
        raise ValueError("pending: not a table of hashes")
    return Manifest(term, {str(n): {"sha256": o["sha256"], "etag": o["etag"]} for n, o in objects.items()},
                    {str(n): v for n, v in pending.items()}, etag)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def sync(settings: Bucket, output_dir: Path, names: Iterable[str], *, fence: Fence = Fence(),
         client: Any = None) -> Synced:
    """Make the bucket hold the files ``names`` of ``output_dir`` (the ones this program
    wrote there), writing only what changed; see the module's description."""
    bucket = _Bucket(settings, client if client is not None else make_client(settings))
    done = Synced()
    manifest = bucket.read_manifest()
    if manifest.term > fence.term:
        raise StaleTerm(f"term {manifest.term} has published here; this publisher (term {fence.term}) "
                        "writes nothing", where=location(settings))
    wanted = set(names)
    local: dict[str, tuple[bytes, str]] = {}
    for name in sorted(wanted, key=order):
        data = read_bytes(safe_target(output_dir, name))
        if data is not None:
            local[name] = (data, hashlib.sha256(data).hexdigest())
    there = bucket.listing()
    # Changed bytes, and objects that are not what was recorded (deleted or replaced by hand,
    # or left by a publication stopped halfway): a run in which nothing changed finds them too.
    changed = [n for n, (_, sha) in local.items()
               if manifest.objects.get(n, {}).get("sha256") != sha
               or there.get(n) != manifest.objects[n]["etag"]]
    # A wanted file that cannot be read now keeps its object: only what is no longer wanted goes.
    gone = sorted(n for n in manifest.objects if n not in wanted)
    done.unchanged = len(local) - len(changed)
    if not changed and not gone and manifest.term == fence.term and not manifest.pending:
        return done
    _check(fence, settings)
    # The claim: this term, and what it is about to write.
    claim = Manifest(fence.term, dict(manifest.objects),
                     {**manifest.pending, **{n: local[n][1] for n in changed}}, manifest.etag)
    claim.etag = bucket.write_manifest(claim)
    for name in changed:
        data, sha = local[name]
        _check(fence, settings)
        etag = _put(bucket, name, data, sha, fence.term, manifest, done)
        if etag is not None:
            claim.objects[name] = {"sha256": sha, "etag": etag}
            done.written.append(name)
        claim.pending.pop(name, None)
    for name in gone:
        _check(fence, settings)
        if name not in there or bucket.delete(name, claim.objects[name]["etag"]):
            done.deleted.append(name)
        elif name not in claim.pending:  # a stopped publication's version is deleted below
            done.warnings.append(f"{location(settings, name)}: changed by someone else since it was written; "
                                 "left in place")
        del claim.objects[name]
    for name in list(claim.pending):
        # A stopped publication's object no longer wanted is deleted; one still wanted is
        # now what the manifest records (or, its file unreadable, written once it is readable).
        if name not in wanted and name in there:
            found = bucket.head(name)
            if (found is not None and SHA_KEY in found[1] and bucket.delete(name, found[0])
                    and name not in done.deleted):
                done.deleted.append(name)
        del claim.pending[name]
    _check(fence, settings)
    bucket.write_manifest(claim)
    return done


def _check(fence: Fence, settings: Bucket) -> None:
    if not fence.holds():
        raise StaleTerm(f"term {fence.term} is no longer held; publishing stopped", where=location(settings))


def _put(bucket: _Bucket, name: str, data: bytes, sha: str, term: int, manifest: Manifest,
         done: Synced) -> str | None:
    """Write one object: over the version this program recorded, over one a stopped
    publication left, or where there is none; never over another program's object."""
    recorded = manifest.objects.get(name)
    condition = {"IfMatch": recorded["etag"]} if recorded else {"IfNoneMatch": "*"}
    etag = bucket.put(name, data, sha, term, condition)
    if etag is not None:
        return etag
    there = bucket.head(name)
    if there is None:  # deleted meanwhile: write it where there is none
        return bucket.put(name, data, sha, term, {"IfNoneMatch": "*"})
    current, meta = there
    if SHA_KEY not in meta:
        done.warnings.append(f"{location(bucket.settings, name)}: an object feeds did not write is there; "
                             "left alone")
        return None
    try:
        written_by = int(meta.get(TERM_KEY, "0"))
    except ValueError:
        written_by = 0
    if written_by > term:
        raise StaleTerm(f"term {written_by} wrote this object; this publisher (term {term}) stops",
                        where=location(bucket.settings, name))
    if meta.get(SHA_KEY) == sha:
        return current
    return bucket.put(name, data, sha, term, {"IfMatch": current})
