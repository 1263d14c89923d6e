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
from typing import Any

import frontmatter
import yaml
from frontmatter.default_handlers import BaseHandler, JSONHandler, YAMLHandler

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
    def load(self, fm: str, **kwargs: object) -> Any:
        return yaml.load(fm, Loader=_YAMLLoader)


_HANDLERS = [_YAMLHandler(), _TOMLHandler(), JSONHandler()]


@dataclass(frozen=True, slots=True)
class PostFile:
    """A post file found on disk; (mtime_ns, size) tell whether it changed."""

    path: Path
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


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.endswith(POST_SUFFIXES) and not filename.startswith("."):
                yield Path(dirpath, filename)


def find_posts(pattern: str, root: Path) -> list[PostFile]:
    """Post files under a folder (recursively) or matching a glob, sorted by name."""
    base = Path(pattern).expanduser()
    base = base if base.is_absolute() else root / base
    if base.is_dir():
        paths: Iterator[Path] = _walk(base)
    else:
        paths = (Path(p) for p in sorted(glob.glob(str(base), recursive=True)) if os.path.isfile(p))
    found = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        try:
            name = path.relative_to(root).as_posix()
        except ValueError:
            name = path.as_posix()
        found.append(PostFile(path=path, name=name, mtime_ns=st.st_mtime_ns, size=st.st_size))
    return found


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


def read_post(post: PostFile) -> RawPost:
    """Read and split one post file; :class:`PostError` says what is wrong and where."""
    try:
        data = post.path.read_bytes()
    except OSError as exc:
        raise PostError(f"cannot read: {exc.strerror}", where=post.name) from None
    digest = hashlib.sha1(data).hexdigest()
    return split_post(_decode(data, post.name), post.name, digest)
