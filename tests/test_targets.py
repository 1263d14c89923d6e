"""Targets (each folder of the output resolved once) against safe_target, which it stands
for in passes over the recorded files: the same path for every name, the same refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.errors import PublishError
from feeds.output.publish import Targets, safe_target

_PARTS = st.sampled_from(["a", "b", "tags", "..", ".", "", "out", "link", "loop", "x.atom.xml", "all.rss.xml"])


def _outcome(fn: object, relative: str) -> tuple[str, str]:
    try:
        return "path", str(fn(relative))  # type: ignore[operator]
    except PublishError as exc:
        return "refused", str(exc)
    except RuntimeError as exc:  # Path.resolve on a symlink loop, in both
        return "loop", str(exc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.lists(_PARTS, min_size=1, max_size=4).map("/".join), min_size=1, max_size=8))
def test_targets_are_safe_targets(tmp_path_factory: pytest.TempPathFactory, names: list[str]) -> None:
    base = tmp_path_factory.mktemp("targets")
    out = base / "out"
    (out / "tags" / "a").mkdir(parents=True)
    (base / "elsewhere").mkdir()
    (out / "link").symlink_to(base / "elsewhere")  # a folder leading outside: refused
    (out / "tags" / "b").symlink_to("a")  # one leading inside: followed
    (out / "loop").symlink_to("loop")
    targets = Targets(out)
    for relative in names + names:  # each name twice: the second from what the first resolved
        assert _outcome(targets, relative) == _outcome(lambda r: safe_target(out, r), relative), relative


def test_a_relative_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "out" / "tags").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    targets = Targets(Path("out"))
    for relative in ("all.atom.xml", "tags/x.rss.xml", "tags/y.rss.xml", "../x", "tags/../../x"):
        assert _outcome(targets, relative) == _outcome(lambda r: safe_target(Path("out"), r), relative)
