"""A fast path for the plain YAML front matter most posts have.

Scraped archives hold tens of thousands of posts whose front matter is a flat
list of ``key: value`` lines. PyYAML spends most of its time on machinery such
documents never use, so this module reads that plain subset directly and
returns ``None`` for anything else, which then goes to PyYAML. Whatever it
accepts it reads exactly as PyYAML's safe loader would: structure is recognised
here, and every unquoted scalar is typed by PyYAML's own resolver and
constructors. Pure functions; no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)[ ]*:(?:[ ]+(.*))?$")
_ITEM = re.compile(r"([ ]*)-(?:[ ]+(.*))?$")
# A plain scalar may not start with an indicator, nor hold ": " or " #" inside.
_PLAIN_START = set("-?:,[]{}#&*!|>'\"%@`")
# Inside a flow list, characters that may make an item something other than a plain scalar
# ("?" starts a key there, even after a space inside an item: "[a ?b]" is an error to YAML).
_FLOW_UNSURE = re.compile(r"[\[\]{}\"'#&*!|>%@`?]")
_JSON_ESCAPES = re.compile(r'\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4})')
# JSON joins an escaped surrogate pair (\ud83d\ude00) into one character, YAML keeps two: leave them to PyYAML.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Characters YAML refuses (not printable) or reads as line breaks (CR, NEL, LS, PS), and
# the byte-order mark, which it allows only at the start: a document holding any goes to PyYAML.
_UNUSUAL = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")


class _Unsure(Exception):
    """The text uses YAML beyond the plain subset; let PyYAML read it."""


# Plain scalars repeat (authors, tags, layouts); their values are immutable, so cache them,
# per loader class: two loaders may type the same text differently (an impossible date).
_CACHES: dict[type, dict[str, Any]] = {}
# Whether a key is a string to YAML (not true, no, null...), per loader class.
_KEYS: dict[type, dict[str, bool]] = {}
_CACHE_SIZE = 8192
# Whole ``key: value`` lines read before, per loader class: the key and its value (a list is
# copied for each document; its items, like every scalar's value, are immutable). Lines of
# one-off values (quoted titles, URLs) are not kept; the cache starts again when full.
_LINES: dict[type, dict[str, tuple[str, Any]]] = {}


def _plain(text: str, loader: yaml.BaseLoader, cache: dict[str, Any]) -> Any:
    if not text:
        return None
    try:
        return cache[text]
    except KeyError:
        pass
    if text[0] in _PLAIN_START or ": " in text or " #" in text or text.endswith(":") or "\t" in text:
        raise _Unsure
    tag = loader.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    if tag == "tag:yaml.org,2002:str":
        value: Any = text
    else:
        node = yaml.ScalarNode(tag, text)
        try:
            value = loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError):
            raise _Unsure from None  # PyYAML says what is wrong, with the line
        finally:
            # The loader remembers every node it built until its next document: this one has none.
            loader.constructed_objects.pop(node, None)
    if len(cache) < _CACHE_SIZE:
        cache[text] = value
    return value


def _scalar(text: str, loader: yaml.BaseLoader, cache: dict[str, Any]) -> Any:
    text = text.rstrip(" ")
    if not text:
        return None
    first = text[0]
    if first == '"':
        if len(text) < 2 or text[-1] != '"' or (text.endswith('\\"') and not text.endswith('\\\\"')):
            raise _Unsure
        inner = text[1:-1]
        if "\\" in inner and (_JSON_ESCAPES.sub("", inner.replace("\\\\", "")).count("\\")
                             or _SURROGATE_ESCAPE.search(inner)):
            raise _Unsure
        try:
            value = json.loads(text)
        except ValueError:
            raise _Unsure from None
        if not isinstance(value, str):
            raise _Unsure
        return value
    if first == "'":
        if len(text) < 2 or text[-1] != "'":
            raise _Unsure
        inner = text[1:-1]
        if inner.replace("''", "").count("'"):
            raise _Unsure
        return inner.replace("''", "'")
    if first == "[":
        if text[-1] != "]":
            raise _Unsure
        inner = text[1:-1]
        if _FLOW_UNSURE.search(inner):
            raise _Unsure
        if not inner.strip():
            return []
        items = [part.strip(" ") for part in inner.split(",")]
        if items and items[-1] == "":
            items.pop()  # YAML allows a trailing comma
        if any(not item for item in items):
            raise _Unsure
        return [_plain(item, loader, cache) for item in items]
    return _plain(text, loader, cache)


def load(text: str, loader: yaml.BaseLoader) -> dict[str, Any] | None:
    """The mapping ``text`` holds, or None when it is not in the plain subset.

    ``loader`` is a PyYAML safe loader instance, used only to type scalars.
    """
    if _UNUSUAL.search(text):
        return None
    cache = _CACHES.setdefault(type(loader), {})
    keys = _KEYS.setdefault(type(loader), {})
    lines = _LINES.setdefault(type(loader), {})
    result: dict[str, Any] = {}
    pending: str | None = None  # a key whose value is a block list below it
    items: list[Any] = []
    indent: int | None = None
    try:
        for line in text.split("\n"):
            known = lines.get(line)
            if known is not None:  # a key line as read before (never one with a block list below)
                if pending is not None:
                    result[pending] = items if items else None
                    pending, items, indent = None, [], None
                key, value = known
                result[key] = list(value) if isinstance(value, list) else value
                continue
            if not line.strip(" ") or line.lstrip(" ").startswith("#"):
                continue
            if "\t" in line or line.rstrip(" ") in ("---", "..."):
                return None
            m = _ITEM.match(line) if line[0] in " -" else None
            if m:
                if pending is None or (indent is not None and len(m[1]) != indent):
                    return None
                indent = len(m[1])
                items.append(_scalar(m[2] or "", loader, cache))
                continue
            if line[0] == " ":
                return None  # a continuation line or nested mapping
            if pending is not None:
                result[pending] = items if items else None
                pending, items, indent = None, [], None
            m = _KEY.match(line)
            if not m:
                return None
            key, value = m[1], m[2]
            plain_key = keys.get(key)
            if plain_key is None:
                tag = loader.resolve(yaml.ScalarNode, key, (True, False))  # type: ignore[no-untyped-call]
                plain_key = tag == "tag:yaml.org,2002:str"
                if len(keys) < _CACHE_SIZE:
                    keys[key] = plain_key
            if not plain_key:
                return None  # a key such as true, no or null is not a string to YAML
            if value is None or not value.strip(" "):
                pending = key
            else:
                result[key] = found = _scalar(value, loader, cache)
                if value[0] not in "\"'" and "://" not in value:
                    if len(lines) >= _CACHE_SIZE:
                        lines.clear()
                    lines[line] = (key, list(found) if isinstance(found, list) else found)
        if pending is not None:
            result[pending] = items if items else None
    except _Unsure:
        return None
    return result
