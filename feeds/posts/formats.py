"""The front matter formats a post may start with: YAML (``---``), TOML (``+++``) and JSON (``{``).

Apart from the scanner in the package, so that scanning the posts (the quick
nothing-changed check of ``feeds generate`` does only that) loads neither
python-frontmatter nor PyYAML. Parses text; reads no file.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import frontmatter
import yaml
from frontmatter.default_handlers import BaseHandler, JSONHandler, YAMLHandler

__all__ = ["JSONHandler", "detect_format"]


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
        # Imported here: the scanner above is used before the config package (pydantic) is
        # loaded, by the quick nothing-changed check of ``feeds generate``.
        from ..config import simpleyaml
        from ..config.yamlload import load_bounded

        fast = simpleyaml.load(fm, self._typer)
        if fast is not None:
            return fast
        return load_bounded(fm, _YAMLLoader)[1]  # a safe loader, with aliases bounded


_HANDLERS = [_YAMLHandler(), _TOMLHandler(), JSONHandler()]


def detect_format(text: str) -> BaseHandler | None:
    """The handler of the front matter ``text`` starts with, or None."""
    return frontmatter.detect_format(text, _HANDLERS)
