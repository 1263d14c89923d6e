"""The templates of the pages: where they are, what they are, and the XSL view's bytes.

The one module of rendering that reads files: the package's templates, and those in
the folder named in ``output.templates``, which win. It makes the Jinja2 environment
``pages`` renders with, reads the stylesheet (copied into the output as it is), and
lists every template's name, size and mtime so that editing one counts as a change.
It writes nothing, and touches no network, database or clock.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..layout import XSL_NAME

if TYPE_CHECKING:  # the template stats are also read by the quick check, before the engine is loaded
    import jinja2


def environment(templates: Path | None) -> jinja2.Environment:
    """The Jinja2 environment of the pages: the config's template folder first, then the package's."""
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.PackageLoader("feeds", "templates"))
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=False, lstrip_blocks=False)


def stylesheet(templates: Path | None) -> bytes:
    """The XSL view of feeds: the config's template folder's, else the package's."""
    if templates is not None and (templates / XSL_NAME).is_file():
        return (templates / XSL_NAME).read_bytes()
    return resources.files("feeds").joinpath("templates", XSL_NAME).read_bytes()


def template_stats(templates: Path | None) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of every template file that can be used: the package's and
    those in the config's folder, so that editing one counts as a change."""
    found = []
    folders = [Path(str(resources.files("feeds").joinpath("templates")))]
    if templates is not None:
        folders.append(templates)
    for index, folder in enumerate(folders):
        for parts in _template_files(folder):
            try:
                st = folder.joinpath(*parts).stat()
            except OSError:
                continue
            found.append((f"{index}:{'/'.join(parts)}", st.st_size, st.st_mtime_ns))
    return found


def _template_files(folder: Path) -> list[tuple[str, ...]]:
    """The files under ``folder`` (as path parts, sorted), symlinked folders followed as the
    template loader follows them, each real folder once (a symlink loop ends there)."""
    files: list[tuple[str, ...]] = []
    seen: set[tuple[int, int]] = set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        try:
            st = os.stat(top)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        base = Path(top).relative_to(folder).parts
        files += [(*base, name) for name in names if os.path.isfile(os.path.join(top, name))]
    return sorted(files)
