"""The layout of the package holds: pure modules import no I/O, and each kind of I/O has one owner.

Read from the source with ``ast`` (nothing is imported or run): which modules each module
imports, and which calls it makes. Every exception is listed here with its reason, so a new
one is a decision someone wrote down, not an accident.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "feeds"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}

#: Modules that decide and touch nothing: no file, network, database, process or clock.
PURE = [
    *sorted(name for name in MODULES
            if name.startswith(("feeds.build.", "feeds.normalize.", "feeds.render."))
            and name != "feeds.render.templates"),  # reads the template files: rendering's one reader
    "feeds.build", "feeds.normalize", "feeds.render",
    "feeds.errors", "feeds.models", "feeds.layout", "feeds.identity",
    "feeds.sources.decide", "feeds.sources.schedule", "feeds.sources.parse", "feeds.sources.results",
    "feeds.sources.addresses", "feeds.sources.decoding", "feeds.sources.discover", "feeds.sources.fulltext",
    "feeds.output.negotiate",
    "feeds.config.simpleyaml", "feeds.config.yamlload", "feeds.store.codecs", "feeds.store.records",
]

#: What a pure module may not import (the module or anything under it).
FORBIDDEN_IMPORTS = (
    "feeds.store", "feeds.output.publish", "feeds.output.run", "feeds.output.serve", "feeds.output.http1",
    "feeds.output.websub", "feeds.sources.fetch", "feeds.sources.update", "feeds.posts", "feeds.pipeline",
    "feeds.daemon", "feeds.lock", "feeds.workers", "feeds.check", "feeds.cli", "feeds.render.templates",
    "httpx", "httpcore", "httptools", "sqlalchemy", "sqlite3", "socket", "subprocess", "asyncio", "shutil",
    "tempfile", "urllib.request", "os", "time",
)

#: Imports a pure module may make although they fall under ``FORBIDDEN_IMPORTS``, and why.
ALLOWED_IMPORTS = {
    # Row types and the JSON codecs of stored entries: records and pure functions, no SQL.
    # Build reads the item heads the pipeline loaded, and decodes their stored entries.
    ("feeds.build.entries", "feeds.store.codecs"): "pure codec of the stored entry JSON",
    ("feeds.build.entries", "feeds.store.records"): "the ItemHead row type",
    ("feeds.build.stories", "feeds.store.records"): "the ItemHead row type",
    ("feeds.build.signatures", "feeds.store.records"): "the ItemHead row type",
    ("feeds.store.records", "feeds.store.codecs"): "records encode their entry with the pure codec",
}

#: Calls that read the clock or open a file, by the name called (``now()``, ``x.now()``...).
CLOCK_ATTRIBUTES = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns", "sleep"}
FILE_CALLS = {"open", "read_bytes", "read_text", "write_bytes", "write_text", "iterdir", "glob", "rglob",
              "scandir", "listdir", "mkdir", "unlink", "rename", "replace_file", "lstat"}


def _imports(name: str) -> set[str]:
    """Every module ``name`` imports, absolute (``from x import y`` is ``x.y`` when that is a module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module == "__future__":
                continue
            for alias in node.names:  # ``from ..store import records`` is an import of the submodule
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module)
    return found


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@dataclass(frozen=True)
class Call:
    line: int
    name: str


def _calls(name: str) -> list[Call]:
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    # ``time`` as a name is a clock only when it is the module or its function, not datetime.time.
    clock_names = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and node.module == "time" for alias in node.names}
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in CLOCK_ATTRIBUTES - {"time"} or func.attr in FILE_CALLS:
                out.append(Call(node.lineno, func.attr))
            elif func.attr == "time" and isinstance(func.value, ast.Name) and func.value.id == "time":
                out.append(Call(node.lineno, "time.time"))
        elif isinstance(func, ast.Name) and (func.id == "open" or func.id in clock_names):
            out.append(Call(node.lineno, func.id))
    return out


def test_the_pure_modules_exist() -> None:
    """A renamed module would silently leave the checks below."""
    missing = [name for name in PURE if name not in MODULES]
    assert not missing


@pytest.mark.parametrize("name", PURE)
def test_a_pure_module_imports_nothing_that_does_io(name: str) -> None:
    bad = sorted(module for module in _imports(name)
                 if any(_under(module, prefix) for prefix in FORBIDDEN_IMPORTS)
                 and (name, module) not in ALLOWED_IMPORTS)
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("name", PURE)
def test_a_pure_module_reads_no_clock_and_opens_no_file(name: str) -> None:
    calls = _calls(name)
    assert not calls, f"{name}: " + ", ".join(f"line {c.line}: {c.name}()" for c in calls)


def test_the_allowed_exceptions_are_still_needed() -> None:
    """An exception nobody needs any more is removed, so the list stays the truth."""
    unused = [key for key in ALLOWED_IMPORTS if key[1] not in _imports(key[0])]
    assert not unused


def _importers(prefix: str) -> set[str]:
    return {name for name in MODULES if any(_under(m, prefix) for m in _imports(name))}


#: Which modules may import each library or module that does one kind of I/O, and why.
OWNERS = {
    # The database: only the store speaks SQL.
    "sqlalchemy": {n for n in MODULES if _under(n, "feeds.store")},
    # The quick nothing-changed check reads two tables read-only before SQLAlchemy is loaded.
    "sqlite3": {"feeds.store.engine", "feeds.store.files", "feeds.unchanged"},
    # The HTTP client: only the fetcher (the WebSub POST goes through its post_form too).
    "httpx": {"feeds.sources.fetch"},
    "httpcore": {"feeds.sources.fetch"},
    # The HTTP server side: ``feeds serve`` speaks HTTP/1.1 through httptools, in one module.
    "httptools": {"feeds.output.http1"},
    # Sockets: the fetcher resolves names and guards connections; the server listens and answers.
    "socket": {"feeds.sources.fetch", "feeds.output.http1", "feeds.output.serve"},
    "subprocess": set(),
}


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_each_kind_of_io_has_its_owners(library: str) -> None:
    assert _importers(library) <= OWNERS[library]


def test_the_owners_do_use_what_they_own() -> None:
    """Each owner listed still imports what it owns (else the table says more than is true)."""
    for library, owners in OWNERS.items():
        if library != "sqlalchemy":
            assert owners <= _importers(library), library
    assert "feeds.store.engine" in _importers("sqlalchemy")


#: Calls that write, rename or remove files, by the attribute or function called.
WRITES = {"write_bytes", "write_text", "replace", "unlink", "remove", "rename", "rmdir", "mkdir", "makedirs",
          "rmtree"}
#: Names that are writes only as functions of ``os`` (``str.replace``, ``job.remove`` are not).
OS_ONLY = {"replace", "remove"}
#: Modules that may make such calls, and what they write: only ``publish`` writes into the output folder.
WRITERS = {
    "feeds.output.publish": "every file in the output folder: temporary file, fsync, rename; stale files",
    "feeds.store.files": "the state database's own file: its folder made, a damaged one renamed aside",
    "feeds.pipeline": "the folders of the state database and of the output made before they are locked",
}


def _write_calls(name: str) -> list[Call]:
    out = []
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in OS_ONLY and not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                                          and func.value.id == "os"):
                continue
            if called in WRITES:
                out.append(Call(node.lineno, called))
    return out


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_the_listed_modules_write_files(name: str) -> None:
    calls = _write_calls(name)
    assert not calls or name in WRITERS, f"{name}: " + ", ".join(f"line {c.line}: {c.name}()" for c in calls)


def test_the_listed_writers_do_write() -> None:
    assert all(_write_calls(name) for name in WRITERS)
