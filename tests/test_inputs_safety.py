"""A posts folder or local source that is missing, unreadable, replaced or shrunk keeps
what is published; special files and symlink loops neither hang nor multiply posts.

Every case runs the real CLI on real files (chmod, rename, mkfifo, symlinks)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from .safety import (
    OLD_NS,
    cli,
    entry_ids,
    feeds,
    make_site,
    no_traceback,
    outputs,
    permissions_bind,
    post_text,
    write_config,
    write_posts,
)

WIRE = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title><link>https://wire.example/</link>
<item><title>Wire one</title><link>https://wire.example/1</link><guid>w1</guid>
<pubDate>Tue, 02 Mar 2021 10:00:00 GMT</pubDate><description>One</description></item>
</channel></rss>"""


def built(root: Path, n: int = 30, **kwargs: object) -> dict[str, bytes]:
    make_site(root, n, **kwargs)  # type: ignore[arg-type]
    result = cli(root)
    assert result.returncode == 0, result.stderr
    return outputs(root)


def one_error_line(result: object, *words: str) -> None:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    no_traceback(result)  # type: ignore[arg-type]
    errors = [line for line in stderr.splitlines() if all(w in line for w in words)]
    assert len(errors) == 1, stderr


@pytest.mark.parametrize("damage", ["removed", "replaced by a file", "typo in the config"])
def test_missing_posts_folder_keeps_everything_published(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "site"
    before = built(root)
    ids = entry_ids(root)
    if damage == "removed":
        shutil.move(root / "posts", tmp_path / "elsewhere")  # an unmounted disk
    elif damage == "replaced by a file":
        shutil.move(root / "posts", tmp_path / "elsewhere")
        (root / "posts").write_text("not a folder")
    else:
        write_config(root, posts="psots")
    result = cli(root)
    assert result.returncode == 1
    one_error_line(result, "posts" if damage != "typo in the config" else "psots", "stay published")
    if damage == "replaced by a file":  # it was called "a special file"
        one_error_line(result, "is a file without a post's suffix", "not a posts folder")
    assert outputs(root) == before
    assert entry_ids(root) == ids
    # Once the input is back, the run is as if nothing had happened.
    if damage == "typo in the config":
        write_config(root)
    else:
        if (root / "posts").is_file():
            (root / "posts").unlink()
        shutil.move(tmp_path / "elsewhere", root / "posts")
    result = cli(root)
    assert result.returncode == 0, result.stderr
    assert outputs(root) == before


def test_typo_on_a_new_site_is_an_error(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", 3, posts="psots")
    result = cli(root)
    assert result.returncode == 1
    one_error_line(result, "psots", "not found")


def test_optional_folder_missing_is_a_warning_and_keeps_its_posts(tmp_path: Path) -> None:
    root = tmp_path / "site"
    before = built(root, optional=True)
    shutil.rmtree(root / "posts")
    result = cli(root)
    assert result.returncode == 0, result.stderr
    assert "optional" in result.stderr and "stay published" in result.stderr
    assert outputs(root) == before


def test_glob_whose_folder_is_missing(tmp_path: Path) -> None:
    root = tmp_path / "site"
    before = built(root, posts='"posts/**/*.md"')
    shutil.move(root / "posts", tmp_path / "elsewhere")
    result = cli(root)
    assert result.returncode == 1
    one_error_line(result, "posts", "stay published")
    assert outputs(root) == before


def test_drastic_shrink_is_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "site"
    before = built(root, 60)
    posts = sorted((root / "posts").iterdir())
    for path in posts[3:]:
        path.unlink()  # 57 of 60 gone at once: a half-synced checkout, not an edit
    result = cli(root)
    assert result.returncode == 1
    one_error_line(result, "3 post files found where the last run read 60", "--allow-shrink")
    assert outputs(root) == before
    result = cli(root, "generate", "--offline", "--allow-shrink")
    assert result.returncode == 0, result.stderr
    assert len(entry_ids(root)) == 3
    # An ordinary deletion (a few posts) is just that.
    write_posts(root / "posts", 40, start=100)
    assert cli(root).returncode == 0
    for path in sorted((root / "posts").iterdir())[:5]:
        path.unlink()
    result = cli(root)
    assert result.returncode == 0, result.stderr
    assert len(entry_ids(root)) == 38


def test_a_folder_left_empty_is_an_empty_mount_point_not_a_purge(tmp_path: Path) -> None:
    root = tmp_path / "site"
    before = built(root, 5)
    for path in (root / "posts").iterdir():
        path.unlink()
    result = cli(root)
    assert result.returncode == 1
    one_error_line(result, "0 post files found where the last run read 5", "stay published")
    assert outputs(root) == before


def test_kept_post_whose_body_is_not_cached_keeps_its_feed_file(tmp_path: Path) -> None:
    root = tmp_path / "site"
    before = built(root, 6)
    db = sqlite3.connect(root / "state" / "feeds.db")
    db.execute("DELETE FROM post_content")
    db.commit()
    db.close()
    shutil.move(root / "posts", tmp_path / "elsewhere")
    # A second folder with a new post of tag t0: the t0 feeds must change, but the bodies of
    # the kept t0 posts are gone with their folder and not cached.
    write_posts(root / "more", 1, start=3000)
    (root / "more" / "2021-01-01-post-3000.md").write_text(
        "---\ntitle: New\ndate: 2022-01-01\ntags: [t0, fresh]\n---\nNew body\n")
    (root / "config.yaml").write_text((root / "config.yaml").read_text().replace(
        "  - path: posts\n", "  - path: posts\n  - path: more\n"))
    result = cli(root)
    assert result.returncode == 1, result.stderr
    after = outputs(root)
    for name in ("tags/t0.atom.xml", "tags/t0.rss.xml", "all.atom.xml"):
        assert after[name] == before[name]  # left as it was, not published without bodies
    assert "tags/fresh.atom.xml" in after  # the rest of the run went on


def test_local_source_missing_is_an_error_and_keeps_its_items(tmp_path: Path) -> None:
    root = tmp_path / "site"
    extra = "sources:\n  - name: wire\n    url: wire.xml\n    every: 1s\n"
    make_site(root, 4, extra=extra)
    (root / "wire.xml").write_text(WIRE)
    assert cli(root, "generate").returncode == 0
    before = outputs(root)
    (root / "wire.xml").unlink()
    time.sleep(1.1)  # the source is due again (every: 1s)
    result = cli(root, "generate")
    assert result.returncode == 1
    one_error_line(result, "wire", "cannot read")
    after = outputs(root)
    assert b"cannot read" in after.pop("status.json")  # the health feed says so
    after.pop("status.atom"), before.pop("status.json"), before.pop("status.atom")
    assert after == before
    write_config(root, extra=extra + "    optional: true\n")
    time.sleep(1.1)
    assert cli(root, "generate").returncode == 0


def test_local_source_fifo_does_not_hang(tmp_path: Path) -> None:
    root = tmp_path / "site"
    make_site(root, 2, extra="sources:\n  - name: pipe\n    url: pipe.xml\n")
    os.mkfifo(root / "pipe.xml")
    result = feeds(root, "generate", timeout=120)  # without the fix: blocks in open() for ever
    assert result.returncode == 1
    one_error_line(result, "pipe", "not a regular file")


def test_special_files_symlinks_and_loops_in_posts(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", 20, per_folder=5)
    posts = root / "posts"
    os.mkfifo(posts / "2021-02-02-pipe.md")
    (posts / "y0" / "back").symlink_to(posts, target_is_directory=True)  # a loop
    (posts / "y1" / "self").symlink_to("self")  # a loop of one link
    (posts / "2021-03-03-gone.md").symlink_to(tmp_path / "nothing.md")
    (posts / "folder.md").mkdir()
    (posts / "alias.md").symlink_to(posts / "y0" / "2021-01-01-post-0.md")  # one file, two names
    result = feeds(root, "generate", "--offline", "-v", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "20 posts" in result.stderr, result.stderr
    assert len(entry_ids(root)) == 20
    lines = result.stderr.splitlines()
    assert sum("2021-02-02-pipe.md" in line and "FIFO" in line for line in lines) == 1
    assert any("2021-03-03-gone.md" in line and "symlink to nothing" in line for line in lines)
    assert any("self" in line and "symlink loop" in line for line in lines)
    assert any("back" in line and "already searched" in line for line in lines)
    assert any("folder.md" in line and "folder named like a post" in line for line in lines)


def test_glob_through_a_symlink_loop_counts_each_post_once(tmp_path: Path) -> None:
    root = make_site(tmp_path / "site", 10, posts='"posts/**/*.md"')
    (root / "posts" / "loop").symlink_to(root / "posts", target_is_directory=True)
    result = cli(root)
    assert result.returncode == 0, result.stderr
    assert len(entry_ids(root)) == 10


@pytest.mark.skipif(permissions_bind() is not None, reason=str(permissions_bind()))
def test_unreadable_folder_subfolder_and_file(tmp_path: Path) -> None:
    root = tmp_path / "site"
    before = built(root, 30, per_folder=10)
    posts = root / "posts"
    try:
        posts.chmod(0)
        result = feeds(root, unprivileged=True)
        assert result.returncode == 1
        one_error_line(result, "posts", "Permission denied", "stay published")
        assert outputs(root) == before
        posts.chmod(0o755)

        (posts / "y1").chmod(0)
        result = feeds(root, unprivileged=True)
        assert result.returncode == 1
        one_error_line(result, "cannot read posts/y1", "10 other posts stay published")
        assert outputs(root) == before
        (posts / "y1").chmod(0o755)

        # One unreadable file whose cached row is not current: one line, its entry kept.
        victim = posts / "y2" / "2021-01-01-post-25.md"
        victim.write_text(victim.read_text().replace("Post 25", "Post 25"))
        os.utime(victim, ns=(10**18, 10**18))
        victim.chmod(0)
        result = feeds(root, unprivileged=True)
        assert result.returncode == 0, result.stderr
        one_error_line(result, "post-25.md", "Permission denied", "published as last read")
        assert outputs(root) == before
    finally:
        for path in [posts, *posts.rglob("*")]:
            path.chmod(0o755)


def test_a_post_over_the_size_limit_is_skipped_without_reading_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A huge file named .md (a log, a dump) is one line and is never read into memory;
    the size limit is lowered here so that the file stays small."""
    from feeds import posts

    monkeypatch.setattr(posts, "MAX_POST_BYTES", 4096)
    root = make_site(tmp_path / "site", 5)
    huge = root / "posts" / "2021-02-02-huge.md"
    huge.write_text("---\ntitle: Huge\ndate: 2021-02-02\n---\n" + "x" * 5000)
    result = cli(root)
    assert result.returncode == 0, result.stderr
    assert "posts/2021-02-02-huge.md: skipped:" in result.stderr and "over the post size limit" in result.stderr
    assert "Huge" not in entry_ids(root) and len(entry_ids(root)) == 5
    # Made small again, it is read (the refusal was not cached beyond its size).
    huge.write_text("---\ntitle: Huge\ndate: 2021-02-02\n---\nsmall now\n")
    assert cli(root).returncode == 0 and "Huge" in entry_ids(root)


def test_a_posts_folder_named_with_glob_characters_is_that_folder(tmp_path: Path) -> None:
    """``posts/[old]`` that exists is read as the folder, not as a glob matching
    ``posts/o``; and output.dir inside it is refused like any posts folder."""
    root = tmp_path / "site"
    root.mkdir()
    write_config(root, posts="'posts/[old]'")
    write_posts(root / "posts" / "[old]", 4)
    write_posts(root / "posts" / "o", 2, start=10)  # what the glob would match
    result = cli(root)
    assert result.returncode == 0, result.stderr
    assert sorted(entry_ids(root)) == [f"Post {i}" for i in range(4)]
    config = (root / "config.yaml").read_text()
    (root / "config.yaml").write_text(config.replace("  dir: output\n", "  dir: 'posts/[old]/out'\n"))
    result = cli(root)
    assert result.returncode == 2 and "must not be a posts folder" in result.stderr, result.stderr
    assert not (root / "posts" / "[old]" / "out").exists()


def test_check_sees_a_post_rewritten_with_its_old_size_and_mtime(tmp_path: Path) -> None:
    root = tmp_path / "site"
    before = built(root, 6)
    post = root / "posts" / "2021-01-01-post-3.md"
    st = post.stat()
    text = post.read_text(encoding="utf-8")
    changed = text.replace("Post 3", "Tsop 3")
    assert changed != text and len(changed.encode()) == len(text.encode())
    post.write_text(changed, encoding="utf-8")
    os.utime(post, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp -p`, rsync -t or a restore leave it
    # An ordinary run trusts size and mtime and sees nothing; --check reads every post.
    assert outputs(root) == before
    checked = cli(root, "generate", "--check")
    no_traceback(checked)
    assert checked.returncode == 1 and "all.atom.xml: not up to date" in checked.stderr
    assert outputs(root) == before, "--check wrote something"
    # What --check found, the next run publishes.
    result = cli(root)
    assert result.returncode == 0, result.stderr
    assert b"Tsop 3" in outputs(root)["all.atom.xml"]
    assert cli(root, "generate", "--check").returncode == 0


@pytest.mark.parametrize("when", [4_000_000_000, 0], ids=["2096", "1970"])
def test_a_post_dated_far_ahead_or_at_the_epoch_is_read_once_and_its_edits_seen(tmp_path: Path,
                                                                                when: int) -> None:
    from feeds.config import load_config
    from feeds.pipeline import generate

    root = tmp_path / "site"
    built(root, 6)
    post = root / "posts" / "2021-01-01-post-2.md"
    post.write_text(post.read_text(encoding="utf-8").replace("Body", "Strange clock"), encoding="utf-8")
    os.utime(post, (when, when))
    first = generate(load_config(root / "config.yaml"))
    assert first.parsed == 1 and b"Strange clock" in outputs(root)["all.atom.xml"]
    # Read once: the runs after it trust its mtime (a timestamp set on purpose is no racy save).
    assert generate(load_config(root / "config.yaml")).parsed == 0
    post.write_text(post.read_text(encoding="utf-8").replace("Strange clock", "Clock fixed"), encoding="utf-8")
    assert generate(load_config(root / "config.yaml")).parsed == 1
    assert b"Clock fixed" in outputs(root)["all.atom.xml"]


def test_local_source_rewritten_within_the_second_it_was_read_is_read_again(tmp_path: Path) -> None:
    from feeds.posts import FUTURE_MTIME_NS
    from feeds.sources.fetch import read_local
    from feeds.sources.results import FetchRequest

    wire = tmp_path / "wire.xml"
    wire.write_text(WIRE)
    second = (time.time_ns() // 10**9 + 1) * 10**9  # a whole second a little ahead, as a clock slightly fast
    os.utime(wire, ns=(second + 100_000_000, second + 100_000_000))
    assert FUTURE_MTIME_NS > 10 * 10**9
    first = read_local(FetchRequest("wire", str(wire)), 10**6)
    assert first.status == 200
    # Rewritten in the same second: Last-Modified (whole seconds) cannot tell the versions apart.
    wire.write_text(WIRE.replace("Wire one", "Wire two"))
    os.utime(wire, ns=(second + 600_000_000, second + 600_000_000))
    again = read_local(FetchRequest("wire", str(wire), last_modified=first.last_modified), 10**6)
    assert again.status == 200 and b"Wire two" in (again.body or b"")
    # Once it is settled, an unchanged file is answered "not modified" as before.
    os.utime(wire, ns=(10**18, 10**18))
    settled = read_local(FetchRequest("wire", str(wire)), 10**6)
    assert settled.last_modified
    assert read_local(FetchRequest("wire", str(wire), last_modified=settled.last_modified), 10**6).not_modified


def test_files_the_state_cannot_hold_are_skipped_and_the_rest_of_the_run_is_saved(tmp_path: Path) -> None:
    """A post named with bytes that are not UTF-8, and one stamped past 2262, cannot be
    kept as text or as a 64-bit time: each is one warning and skipped, while an edit made
    in the same run is published and cached (the next run reads nothing again)."""
    root = tmp_path / "site"
    built(root)
    posts = os.fsencode(root / "posts")
    with open(posts + b"/2021-01-02-dr\xe9.md", "w", encoding="utf-8") as f:
        f.write("---\ntitle: Draft\ndraft: true\n---\nx\n")
    far = root / "posts" / "2021-01-03-far.md"
    far.write_text(post_text(99), encoding="utf-8")
    try:
        os.utime(far, ns=(2**63 + 5, 2**63 + 5))
        far_stamped = os.stat(far).st_mtime_ns > 2**63 - 1
    except (OverflowError, OSError):
        far_stamped = False
    edited = root / "posts" / "2021-01-01-post-4.md"
    edited.write_text(post_text(4, body="Edited body."), encoding="utf-8")
    edited.write_text(edited.read_text(encoding="utf-8").replace("title: Post 4", "title: Post four"),
                      encoding="utf-8")
    os.utime(edited, ns=(OLD_NS + 10**12, OLD_NS + 10**12))
    result = cli(root)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    one_error_line(result, "2021-01-02-dr\\xe9.md", "not UTF-8")
    if far_stamped:
        one_error_line(result, "2021-01-03-far.md", "modification time")
    assert "Post four" in entry_ids(root)
    db = sqlite3.connect(root / "state" / "feeds.db")
    try:
        (meta,) = db.execute("select meta from post_cache where path = 'posts/2021-01-01-post-4.md'").fetchone()
    finally:
        db.close()
    assert "Post four" in meta
    again = cli(root, "generate", "--offline", "-v")
    assert again.returncode == 0 and "(0 parsed" in again.stderr, again.stderr
