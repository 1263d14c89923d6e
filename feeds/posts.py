"""Find and read local post files, and split their front matter.

This module reads post files and does nothing else: no rendering, no
database. ``read_post`` returns the parsed front matter and the raw body;
turning those into the entry model is ``normalize``'s job.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import frontmatter
import yaml
from frontmatter.default_handlers import BaseHandler, JSONHandler, YAMLHandler

from . import simpleyaml
from .errors import PostError

POST_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".html", ".htm")


class _TOMLHandler(BaseHandler):
    """``+++`` TOML front matter, read with the standard library."""

    FM_BOUNDARY = re.compile(r"^\+{3,}\s*$", re.MULTILINE)
    START_DELIMITER = END_DELIMITER = "+++"

    def load(self, fm: str, **kwargs: object) -> Any:
        return tomllib.loads(fm)


class _YAMLLoader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """The safe loader, except that an impossible timestamp (2021-13-45) stays a string.

    PyYAML raises a bare ValueError there, with no line; as a string it reaches
    the date parser, which reports it with the key's line.
    """

    def timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_YAMLLoader.add_constructor("tag:yaml.org,2002:timestamp", _YAMLLoader.timestamp)


class _YAMLHandler(YAMLHandler):
    """YAML front matter: plain documents through the fast path, the rest through PyYAML."""

    def __init__(self) -> None:
        super().__init__()
        self._typer = _YAMLLoader("")  # types scalars for the fast path

    def load(self, fm: str, **kwargs: object) -> Any:
        fast = simpleyaml.load(fm, self._typer)
        if fast is not None:
            return fast
        return yaml.load(fm, Loader=_YAMLLoader)  # a safe loader


_HANDLERS = [_YAMLHandler(), _TOMLHandler(), JSONHandler()]


class PostFile(NamedTuple):
    """A post file found on disk; (mtime_ns, size) tell whether it changed."""

    path: str
    #: Path relative to the config folder, POSIX form: the post's name in messages and the store.
    name: str
    mtime_ns: int
    size: int


@dataclass(frozen=True, slots=True)
class RawPost:
    """A post's front matter and body, as written."""

    name: str
    digest: str
    meta: dict[str, Any]
    #: The front matter as text, to find the line of a key.
    front: str
    body: str
    #: 1-based line where the front matter's text starts, and where the body starts.
    front_line: int
    body_line: int


def _walk(folder: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path, stat) of post files under ``folder``, in name order, skipping hidden entries."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                yield from _walk(entry.path)
            elif entry.name.endswith(POST_SUFFIXES) and entry.is_file():
                yield entry.path, entry.stat()
        except OSError:
            continue


def _globbed(pattern: str) -> Iterator[tuple[str, os.stat_result]]:
    for path in sorted(glob.glob(pattern, recursive=True)):
        try:
            st = os.stat(path)
        except OSError:
            continue
        if os.path.isfile(path):
            yield path, st


def find_posts(pattern: str, root: Path) -> list[PostFile]:
    """Post files under a folder (recursively) or matching a glob, sorted by name."""
    base = Path(pattern).expanduser()
    base = base if base.is_absolute() else root / base
    found = _walk(str(base)) if base.is_dir() else _globbed(str(base))
    prefix = str(root.absolute()) + os.sep
    out = []
    for path, st in found:
        absolute = os.path.abspath(path)
        name = absolute[len(prefix):] if absolute.startswith(prefix) else absolute
        out.append(PostFile(path=path, name=name.replace(os.sep, "/"), mtime_ns=st.st_mtime_ns,
                            size=st.st_size))
    return out


def _decode(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PostError(f"invalid UTF-8 (byte {data[exc.start]:#04x}); save the file as UTF-8",
                        where=name, line=line) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def split_post(text: str, name: str, digest: str) -> RawPost:
    """Split a post's text into parsed front matter and body."""
    handler = frontmatter.detect_format(text, _HANDLERS)
    if handler is None:
        raise PostError("no front matter (the file must start with '---', '+++' or '{')", where=name, line=1)
    try:
        front, body = handler.split(text)
    except ValueError:
        raise PostError("front matter is not closed", where=name, line=1) from None
    front_line = 1 if isinstance(handler, JSONHandler) else 1 + (0 if front.startswith("\n") else 1)
    body_line = text.count("\n", 0, len(text) - len(body)) + 1
    try:
        meta = handler.load(front)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        line = front_line + mark.line if mark is not None else front_line
        raise PostError(f"broken YAML front matter: {problem}", where=name, line=line) from None
    except tomllib.TOMLDecodeError as exc:
        raise PostError(f"broken TOML front matter: {exc}", where=name, line=front_line) from None
    except json.JSONDecodeError as exc:
        raise PostError(f"broken JSON front matter: {exc.msg}", where=name,
                        line=front_line + exc.lineno - 1) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise PostError(f"front matter cannot be read: {exc}", where=name, line=front_line) from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise PostError("front matter is not a mapping of keys", where=name, line=front_line)
    return RawPost(name=name, digest=digest, meta=meta, front=front, body=body,
                   front_line=front_line, body_line=body_line)


def _read(post: PostFile) -> bytes:
    try:
        with open(post.path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise PostError(f"cannot read: {exc.strerror}", where=post.name) from None


def read_body(post: PostFile) -> tuple[str, str]:
    """The digest and the body (after the front matter) of a post, without parsing the front matter."""
    data = _read(post)
    text = _decode(data, post.name)
    handler = frontmatter.detect_format(text, _HANDLERS)
    if handler is None:
        raise PostError("no front matter (the file must start with '---', '+++' or '{')", where=post.name, line=1)
    try:
        _front, body = handler.split(text)
    except ValueError:
        raise PostError("front matter is not closed", where=post.name, line=1) from None
    return hashlib.sha1(data).hexdigest(), body


def read_post(post: PostFile) -> RawPost:
    """Read and split one post file; :class:`PostError` says what is wrong and where."""
    data = _read(post)
    digest = hashlib.sha1(data).hexdigest()
    return split_post(_decode(data, post.name), post.name, digest)
