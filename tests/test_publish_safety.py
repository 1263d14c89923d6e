"""What `feeds generate` may touch in the output folder, on real files and real processes:
only what it recorded writing; never a folder it must not own; every damaged or missing
output repaired by the next run; a full disk or a read-only folder loses nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeds.config import load_config
from feeds.errors import ConfigError
from feeds.output.publish import is_temp_name
from feeds.pipeline import generate

from .conftest import CONFIG, Site
from .httpserver import item, rss
from .safety import cli as safety_cli
from .safety import make_site


def run_cli(site: Site, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feeds", "generate", "--config", str(site.root / "config.yaml"),
                           *args], capture_output=True, text=True, env=env, timeout=120)


def gen(site: Site, *, check: bool = False) -> list[str]:
    """Run generate in this process (real files); with check, what is outdated."""
    report = generate(site.config(), check=check)
    return report.outdated


def post(tag: str, n: int = 1) -> str:
    return f"---\ntitle: Post {n}\ndate: 2020-01-0{n}\ntags: [{tag}]\n---\nBody {n}\n"


def full_site(site: Site, extra: str = "") -> None:
    """A site whose run writes every kind of output: feeds, pages, front door, status files."""
    (site.root / "wire.xml").write_text(rss([item(1), item(2)]), encoding="utf-8")
    site.write_config(CONFIG.replace("  max_entries: 50\n", "  max_entries: 50\n  pages: true\n"
                                     "  formats: [atom, rss, json]\n") +
                      "sources:\n  - {name: wire, url: wire.xml, tags: [Wire]}\n" + extra)
    site.add("2020-01-01-a.md", post("alpha", 1))
    site.add("2020-01-02-b.md", post("beta", 2))


FOREIGN = {"podcast.rss.xml": b"<rss>mine</rss>", "my.feed.json": b"{}", "tags/about.html": b"<p>about</p>",
           ".draft.tmp": b"draft", "tags/.x.atom.xml.abc123.tmp": b"x", "notes/readme.txt": b"hello",
           "categories/old.atom.xml": b"<feed/>"}


def test_only_recorded_files_are_removed(site: Site) -> None:
    post_file = site.add("2020-01-01-a.md", post("old"))
    gen(site)
    for rel, data in FOREIGN.items():
        (site.output / rel).parent.mkdir(parents=True, exist_ok=True)
        (site.output / rel).write_bytes(data)
    post_file.write_text(post("new"), encoding="utf-8")
    gen(site)
    for rel, data in FOREIGN.items():
        assert (site.output / rel).read_bytes() == data, rel
    assert not (site.output / "tags/old.atom.xml").exists()
    assert (site.output / "tags/new.atom.xml").exists()
    assert gen(site, check=True) == []


@pytest.mark.parametrize(("folder", "why"), [
    ("/", "root folder"), ("~", "home folder"), ("HOME/", "home folder"), ("posts", "posts folder"),
    ("posts/feeds", "posts folder"), (".", "state database"), ("state", "state database"),
    ("..", "state database"),
])
def test_unsafe_output_folders_are_refused(site: Site, folder: str, why: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    home = site.root / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    site.write_config(CONFIG.replace("  dir: output\n", f"  dir: '{folder.replace('HOME', str(home))}'\n"))
    with pytest.raises(ConfigError) as caught:
        site.config()
    message = str(caught.value)
    assert message.startswith(f"{site.root / 'config.yaml'}:7: output.dir:") and why in message, message
    assert "allow_any_dir" in message
    # The config can say it means it.
    site.write_config(CONFIG.replace("  dir: output\n", f"  dir: '{folder}'\n  allow_any_dir: true\n"))
    assert load_config(site.root / "config.yaml").output.allow_any_dir


def test_an_unsafe_output_folder_exits_2_and_touches_nothing(site: Site) -> None:
    site.add("2020-01-01-a.md", post("a"))
    site.write_config(CONFIG.replace("  dir: output\n", "  dir: posts\n"))
    before = sorted(site.root.rglob("*"))
    result = run_cli(site)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "config.yaml:7: output.dir: must not be a posts folder" in result.stderr
    assert sorted(site.root.rglob("*")) == before


def test_first_run_into_a_folder_with_foreign_files(site: Site) -> None:
    site.add("2020-01-01-a.md", post("a"))
    site.output.mkdir()
    (site.output / "vacation.jpg").write_bytes(b"JPEG")
    result = run_cli(site)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "output.dir" in line and "vacation.jpg" in line and "allow_foreign_files" in line
    assert sorted(p.name for p in site.output.iterdir()) == ["vacation.jpg"]
    site.write_config(CONFIG.replace("  dir: output\n", "  dir: output\n  allow_foreign_files: true\n"))
    gen(site)
    assert (site.output / "vacation.jpg").read_bytes() == b"JPEG"
    assert (site.output / "all.atom.xml").exists()


def test_a_fresh_state_database_adopts_only_what_it_would_write(site: Site) -> None:
    post_file = site.add("2020-01-01-a.md", post("old"))
    gen(site)
    post_file.write_text(post("mid"), encoding="utf-8")
    shutil.rmtree(site.root / "state")
    result = run_cli(site)
    assert result.returncode == 0, result.stderr
    # Not recorded and not written now: someone's, for all this run knows; left in place.
    assert (site.output / "tags/old.atom.xml").exists()
    post_file.write_text(post("new"), encoding="utf-8")
    gen(site)
    assert not (site.output / "tags/mid.atom.xml").exists()  # adopted when written again, so removed
    assert (site.output / "tags/old.atom.xml").exists()


def test_a_changed_output_folder_leaves_the_old_one_and_checks_the_new(site: Site) -> None:
    post_file = site.add("2020-01-01-a.md", post("old"))
    gen(site)
    other = site.root / "public"
    (other / "tags").mkdir(parents=True)
    (other / "tags/old.atom.xml").write_bytes(b"not ours")
    (other / "index.php").write_bytes(b"<?php")
    post_file.write_text(post("new"), encoding="utf-8")
    site.write_config(CONFIG.replace("  dir: output\n", "  dir: public\n"))
    result = run_cli(site)
    assert result.returncode == 2 and "index.php" in result.stderr
    site.write_config(CONFIG.replace("  dir: output\n", "  dir: public\n  allow_foreign_files: true\n"))
    gen(site)
    # What was recorded for the old folder says nothing about the new one.
    assert (other / "tags/old.atom.xml").read_bytes() == b"not ours"
    assert (other / "tags/new.atom.xml").exists() and (site.output / "tags/old.atom.xml").exists()


def test_a_stale_name_that_became_a_symlink_is_removed_not_followed(site: Site) -> None:
    post_file = site.add("2020-01-01-a.md", post("old"))
    gen(site)
    (site.output / "tags/old.atom.xml").unlink()
    (site.output / "tags/old.atom.xml").symlink_to("../index.html")
    post_file.write_text(post("old") + "edited\n", encoding="utf-8")  # same tag: its feed is rewritten
    gen(site)
    assert not (site.output / "tags/old.atom.xml").is_symlink()
    assert b"<feed" not in (site.output / "index.html").read_bytes()
    assert gen(site, check=True) == []
    post_file.write_text(post("new"), encoding="utf-8")
    (site.output / "tags/old.rss.xml").unlink()
    (site.output / "tags/old.rss.xml").symlink_to("../index.html")
    gen(site)
    assert not (site.output / "tags/old.rss.xml").exists() and not (site.output / "tags/old.rss.xml").is_symlink()
    assert b"<rss" not in (site.output / "index.html").read_bytes()
    assert gen(site, check=True) == []


def test_leftover_temps_are_removed_only_when_their_writer_is_gone(site: Site) -> None:
    site.add("2020-01-01-a.md", post("a"))
    gen(site)
    sleeper = subprocess.Popen(["sleep", "60"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        live = site.output / f".all.atom.xml.feeds-{sleeper.pid}-0123abcd.tmp"
        gone = site.output / f"tags/.a.atom.xml.feeds-{dead.pid}-0123abcd.tmp"
        strange = site.output / ".all.atom.xml.feeds-x-0123abcd.tmp"
        for path in (live, gone, strange):
            path.write_bytes(b"half")
        (site.posts / "2020-01-01-a.md").write_text(post("a") + "more\n", encoding="utf-8")
        gen(site)
        assert live.exists() and strange.exists() and not gone.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


KINDS = ["index.html", "feeds.opml", "feed.xsl", "status.atom", "status.json", "all.atom.xml", "all.feed.json",
         "tags/alpha.rss.xml", "tags/beta.html"]


def test_every_damaged_or_missing_output_is_repaired_and_check_sees_it(site: Site) -> None:
    full_site(site)
    gen(site)
    fresh = site.outputs()
    assert set(KINDS) <= fresh.keys()
    for damage in ("delete", "append", "same-size"):
        for rel in KINDS:
            target = site.output / rel
            if damage == "delete":
                target.unlink()
            elif damage == "append":
                with target.open("ab") as f:
                    f.write(b"<!-- x -->")
            else:
                st = target.stat()
                target.write_bytes(fresh[rel][::-1])
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        assert set(gen(site, check=True)) == set(KINDS), damage
        gen(site)
        assert site.outputs() == fresh, damage
        assert gen(site, check=True) == [], damage
    # The same through the command line.
    (site.output / "index.html").unlink()
    check = run_cli(site, "--check")
    assert check.returncode == 1 and "index.html: not up to date" in check.stderr
    assert run_cli(site, "--offline").returncode == 0
    assert site.outputs() == fresh


def test_check_sees_a_stale_file(site: Site) -> None:
    post_file = site.add("2020-01-01-a.md", post("old"))
    gen(site)
    post_file.write_text(post("new"), encoding="utf-8")
    assert {"tags/old.atom.xml", "tags/old.rss.xml", "tags/new.atom.xml"} <= set(gen(site, check=True))
    gen(site)
    assert gen(site, check=True) == []


def test_template_edits_apply_without_other_changes(site: Site) -> None:
    templates = site.root / "templates"
    templates.mkdir()
    (templates / "index.html").write_text("<p>one {{ site.title }}</p>\n", encoding="utf-8")
    site.write_config(CONFIG.replace("  max_entries: 50\n", "  max_entries: 50\n  templates: templates\n"))
    site.add("2020-01-01-a.md", post("a"))
    gen(site)
    assert (site.output / "index.html").read_text() == "<p>one Test archive</p>\n"
    (templates / "index.html").write_text("<p>two {{ site.title }}</p>\n", encoding="utf-8")
    assert gen(site, check=True)
    gen(site)
    assert (site.output / "index.html").read_text() == "<p>two Test archive</p>\n"
    # A template added to the folder counts too.
    (templates / "feed.xsl").write_text("<xsl/>\n", encoding="utf-8")
    gen(site)
    assert (site.output / "feed.xsl").read_text() == "<xsl/>\n"
    (templates / "feed.xsl").unlink()
    gen(site)
    assert (site.output / "feed.xsl").read_text() != "<xsl/>\n"
    assert gen(site, check=True) == []


# -- a full disk and a read-only folder --------------------------------------------------


def _can_mount() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux to mount a small tmpfs"
    if shutil.which("mount") is None:
        return "no mount command"
    return None


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _no_temps(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if is_temp_name(p.name)]


@pytest.mark.skipif(_can_mount() is not None, reason=str(_can_mount()))
def test_full_disk_keeps_what_is_published(site: Site) -> None:
    with tmpfs(site.output, "400k"):
        site.add("2020-01-01-a.md", post("a"))
        gen(site)
        before = site.outputs()
        # A post big enough that the new feeds cannot fit.
        site.add("2020-01-02-big.md", "---\ntitle: Big\ndate: 2020-01-02\ntags: [a]\n---\n" +
                 "".join(f"<p>paragraph {n} {'x' * 200}</p>\n" for n in range(1200)))
        result = run_cli(site)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "disk is full" in lines[0], result.stderr
        assert "Traceback" not in result.stderr
        # Each file is the old one or the complete new one (as a build with room writes it).
        roomy = Site(site.root.parent / "roomy")
        shutil.copytree(site.posts, roomy.posts, dirs_exist_ok=True)
        gen(roomy)
        new, after = roomy.outputs(), site.outputs()
        assert after.keys() == before.keys() and _no_temps(site.output)
        assert all(after[k] in (before[k], new[k]) for k in after)
        assert any(after[k] != new[k] for k in after)
        subprocess.run(["mount", "-o", "remount,size=8m", str(site.output)], check=True)
        gen(site)
        assert site.outputs() == new


@pytest.mark.skipif(_can_mount() is not None, reason=str(_can_mount()))
def test_read_only_output_folder_keeps_what_is_published(site: Site) -> None:
    with tmpfs(site.output, "4m"):
        post_file = site.add("2020-01-01-a.md", post("a"))
        gen(site)
        before = site.outputs()
        subprocess.run(["mount", "-o", "remount,ro", str(site.output)], check=True)
        post_file.write_text(post("a") + "edited\n", encoding="utf-8")
        result = run_cli(site)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "read-only" in lines[0], result.stderr
        assert site.outputs() == before and _no_temps(site.output)
        subprocess.run(["mount", "-o", "remount,rw", str(site.output)], check=True)
        gen(site)
        assert gen(site, check=True) == []


@pytest.mark.skipif(_can_mount() is not None, reason=str(_can_mount()))
def test_feeds_written_on_worker_processes_keep_what_is_published_on_a_read_only_folder(site: Site) -> None:
    # Enough feeds that they are rendered and written on worker processes.
    posts = [site.add(f"2020-01-0{n % 9 + 1}-p{n}.md", post(f"tag{n}", n % 9 + 1)) for n in range(30)]
    with tmpfs(site.output, "8m"):
        gen(site)
        before = site.outputs()
        assert len([k for k in before if k.startswith("tags/")]) >= 40
        subprocess.run(["mount", "-o", "remount,ro", str(site.output)], check=True)
        for path in posts:
            path.write_text(path.read_text(encoding="utf-8") + "edited\n", encoding="utf-8")
        result = run_cli(site)
        assert result.returncode == 1 and "read-only" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert site.outputs() == before and _no_temps(site.output)
        subprocess.run(["mount", "-o", "remount,rw", str(site.output)], check=True)
        gen(site)
        assert gen(site, check=True) == []
        assert site.outputs() != before


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes (the tmpfs test covers root)")
def test_unwritable_output_folder_keeps_what_is_published(site: Site) -> None:
    post_file = site.add("2020-01-01-a.md", post("a"))
    gen(site)
    before = site.outputs()
    for folder in (site.output, site.output / "tags"):
        folder.chmod(0o555)
    try:
        post_file.write_text(post("a") + "edited\n", encoding="utf-8")
        result = run_cli(site)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
        assert site.outputs() == before and _no_temps(site.output)
    finally:
        for folder in (site.output, site.output / "tags"):
            folder.chmod(0o755)


@pytest.mark.parametrize("key", ["source", "templates"])
def test_an_output_folder_holding_an_input_file_is_refused(tmp_path: Path, key: str) -> None:
    """A local source (or the templates folder) inside output.dir, even one named like an
    output (all.rss.xml), would be overwritten by the run: refused, and nothing is touched."""
    feeds_xml = rss([item(1)], title="Wire").encode()
    extra = ("sources:\n  - {name: wire, url: inbox/all.rss.xml}\n" if key == "source"
             else "sources: []\n")
    root = make_site(tmp_path / "site", 3, extra=extra)
    config = (root / "config.yaml").read_text().replace("  dir: output\n", "  dir: inbox\n")
    if key == "templates":
        config = config.replace("  dir: inbox\n", "  dir: inbox\n  templates: inbox/mine\n")
        (root / "inbox" / "mine").mkdir(parents=True)
        (root / "inbox" / "mine" / "index.html").write_text("<p>{{ site.title }}</p>")
    (root / "config.yaml").write_text(config)
    (root / "inbox").mkdir(exist_ok=True)
    (root / "inbox" / "all.rss.xml").write_bytes(feeds_xml)
    before = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    result = safety_cli(root, "generate")
    assert result.returncode == 2, result.stderr
    assert "output.dir: must not be or hold an input" in result.stderr and result.stderr.count("\n") == 1
    assert {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} == before


@pytest.mark.parametrize("loop", ["self", "pair"])
def test_an_output_folder_turned_into_a_symlink_loop_is_one_line(site: Site, loop: str) -> None:
    site.add("2020-01-01-a.md", post("old"))
    gen(site)
    shutil.rmtree(site.output / "tags")
    if loop == "self":
        (site.output / "tags").symlink_to("tags")
    else:
        (site.output / "tags").symlink_to("other")
        (site.output / "other").symlink_to("tags")
    for args in ((), ("--offline",), ("--check",)):
        result = run_cli(site, "-v", *args)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert "symlink loop" in result.stderr and "tags/" in result.stderr
    assert (site.output / "tags").is_symlink()  # what it did not write is left as it is
