"""The command line: parse options, call one library function, report.

Errors a user can cause become one line on stderr and an exit status:
0 success (warnings allowed), 1 outputs not written (or --strict with
warnings, or --check with outdated files), 2 bad usage or config, 75 another
run is writing the same state database or output folder.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

from . import __version__
from .errors import Busy, ConfigError, FeedsError

# Each command imports what it needs when it runs: `feeds generate` with nothing changed
# answers from the quick check (feeds.unchanged) without loading the settings model, the
# store or the renderers; `feeds status` and `feeds serve` never load the feed writers.
if TYPE_CHECKING:
    from .config import Config
    from .posts import PostScan
    from .sources.decide import SourceOutcome

F = TypeVar("F", bound=Callable[..., Any])
#: Another run holds the lock (EX_TEMPFAIL: try again later).
EXIT_BUSY = 75
log = logging.getLogger("feeds")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"error: {message}"
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return message


class _JSONFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }, ensure_ascii=False)


class _DaemonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{when} {record.levelname.lower():<7} {record.getMessage()}"


def _setup_logging(verbosity: int, style: str = "plain") -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = {"plain": _Formatter, "json": _JSONFormatter, "daemon": _DaemonFormatter}[style]
    handler.setFormatter(formatter())
    root = logging.getLogger("feeds")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG)


def config_option(f: F) -> F:
    return click.option(
        "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
        default=Path("config.yaml"), show_default=True, help="The configuration file.",
    )(f)


def verbosity_options(f: F) -> F:
    f = click.option("-q", "--quiet", is_flag=True, help="Only print warnings and errors.")(f)
    return click.option("-v", "--verbose", is_flag=True, help="Print details of every step.")(f)


def _load(config_path: Path) -> Config:
    from .config import load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(2)


class _ProgressLine:
    """A one-line progress display on a terminal; nothing at all in cron or CI."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, step: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if done >= total:  # a finished step leaves no trace, so log lines start clean
            self.clear()
            return
        sys.stderr.write(f"\r{step}: {done}/{total}\x1b[K")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


class Summed(Protocol):
    """What the summary line tells of a run's report (``pipeline.Report``, or the last one
    replayed by the quick check)."""

    @property
    def sources(self) -> Sequence[SourceOutcome]: ...
    @property
    def posts(self) -> int: ...
    @property
    def parsed(self) -> int: ...
    @property
    def drafts(self) -> int: ...
    @property
    def entries(self) -> int: ...
    @property
    def feeds(self) -> int: ...
    @property
    def written(self) -> Sequence[str]: ...
    @property
    def unchanged(self) -> int: ...
    @property
    def removed(self) -> Sequence[str]: ...
    @property
    def warnings(self) -> Sequence[str]: ...


def _summary(report: Summed, seconds: float) -> str:
    failed = sum(1 for o in report.sources if o.error)
    parts = [
        f"{len(report.sources)} sources fetched ({failed} failed)" if report.sources else "",
        f"{report.posts} posts ({report.parsed} parsed, {report.drafts} drafts)",
        f"{report.entries} entries",
        f"{report.feeds} feed files ({len(report.written)} written, {report.unchanged} unchanged, "
        f"{len(report.removed)} removed)",
        f"{len(report.warnings)} warning{'s' if len(report.warnings) != 1 else ''}",
    ]
    bucket = getattr(report, "bucket", None)  # a replayed run has none: it never publishes to one
    if bucket is not None:
        parts.insert(-1, f"{len(bucket.written)} objects written to the bucket ({len(bucket.deleted)} deleted)")
    return "generate: " + ", ".join(p for p in parts if p) + f" in {seconds:.1f}s"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="feeds")
def cli() -> None:
    """Aggregate feeds and local posts into per-tag Atom and RSS feeds."""


@cli.command("generate")
@config_option
@click.option("--offline", is_flag=True, help="Do not fetch remote sources; use what the store has.")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 if any output file is missing, different or stale.")
@click.option("--strict", is_flag=True, help="Exit 1 when there was any warning.")
@click.option("--wait", type=click.FloatRange(0), default=0, show_default=True, metavar="SECONDS",
              help="Wait this long for another run writing the same state or output folder "
                   f"(then exit {EXIT_BUSY}).")
@click.option("--allow-shrink", is_flag=True,
              help="Take posts folders that are missing or lost most of their posts as they are now "
                   "(their missing posts are unpublished).")
@click.option("--rebuild-state", is_flag=True,
              help="Move the state database aside (renamed with a time suffix) and rebuild it.")
@verbosity_options
def generate_command(config_path: Path, offline: bool, check: bool, strict: bool, wait: float,
                     allow_shrink: bool, rebuild_state: bool, quiet: bool, verbose: bool) -> None:
    """Read posts and write every output feed once."""
    import gc

    # A run allocates tens of thousands of small acyclic objects from its first step (the
    # quick check's scan): the cyclic collector would only rescan them (a tenth of a run
    # that finds nothing changed). The full run keeps it off as well.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _generate_once(config_path, offline, check, strict, wait, allow_shrink, rebuild_state, quiet, verbose)
    finally:
        if collecting:
            gc.enable()


def _generate_once(config_path: Path, offline: bool, check: bool, strict: bool, wait: float,
                   allow_shrink: bool, rebuild_state: bool, quiet: bool, verbose: bool) -> None:
    import time

    from . import unchanged

    _setup_logging(-1 if quiet else 1 if verbose else 0)
    started = time.monotonic()
    scans: dict[tuple[str, str], PostScan] = {}  # what the quick check scanned, for the full run
    if not (check or allow_shrink or rebuild_state):
        try:
            replayed = unchanged.replay(config_path, wait=wait, offline=offline, scans=scans)
        except Busy as exc:
            log.error("%s", exc)
            sys.exit(EXIT_BUSY)
        if replayed is not None:
            for warning in replayed.warnings:
                log.warning("%s", warning)
            log.debug("nothing changed since the last run (quick check)")
            log.info("%s", _summary(replayed, time.monotonic() - started))
            if strict and replayed.warnings:
                log.error("%d warnings and --strict", len(replayed.warnings))
                sys.exit(1)
            return
    from .pipeline import generate

    config = _load(config_path)
    started = time.monotonic()
    progress = _ProgressLine() if not quiet else None
    try:
        report = generate(config, check=check, offline=offline, progress=progress, wait=wait,
                          allow_shrink=allow_shrink, rebuild_state=rebuild_state, scans=scans)
    except Busy as exc:
        log.error("%s", exc)
        sys.exit(EXIT_BUSY)
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(2)
    except FeedsError as exc:
        log.error("%s", exc)
        sys.exit(1)
    finally:
        if progress is not None:
            progress.clear()
    for relative in report.written:
        log.debug("wrote %s", relative)
    for relative in report.removed:
        log.info("removed %s (no entries have this tag any more)", relative)
    log.info("%s", _summary(report, time.monotonic() - started))
    if check and report.outdated:
        for relative in report.outdated:
            log.error("%s: not up to date", relative)
        sys.exit(1)
    if report.errors:
        log.error("%d input%s could not be read; %s kept as last published", len(report.errors),
                  "s" if len(report.errors) > 1 else "", "their entries are" if len(report.errors) > 1
                  else "its entries are")
        sys.exit(1)
    if strict and report.warnings:
        log.error("%d warnings and --strict", len(report.warnings))
        sys.exit(1)


@cli.command("check")
@config_option
def check_command(config_path: Path) -> None:
    """Check the config, every post and every written feed; report every problem found."""
    from .check import check

    _setup_logging(0)
    config = _load(config_path)  # a bad config exits 2 with its key and line
    report = check(config)
    for problem in report.problems:
        click.echo(problem, err=True)
    click.echo(f"check: config ok, {report.posts} posts, {report.feeds} feed files, "
               f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}", err=True)
    sys.exit(1 if report.problems else 0)


@cli.command("status")
@config_option
def status_command(config_path: Path) -> None:
    """Show each source: last fetch, result, entries, last error, next due time; on a
    PostgreSQL state also every worker, its leases and the leader."""
    from .cluster import cluster_status, status_lines
    from .pipeline import source_status

    _setup_logging(0)
    config = _load(config_path)
    try:
        rows = source_status(config)
        view = cluster_status(config)
    except FeedsError as exc:
        log.error("%s", exc)
        sys.exit(1)
    if view is not None:
        for line in status_lines(view):
            click.echo(line)
    if not rows:
        click.echo("no sources configured")
        return
    for row in rows:
        click.echo(row.name + ("" if row.enabled else " (disabled)"))
        click.echo(f"  url:        {row.url}")
        if row.fetch_url != row.url:
            click.echo(f"  fetched at: {row.fetch_url}")
        click.echo(f"  last fetch: {_when(row.last_fetch)} ({row.status})")
        click.echo(f"  last ok:    {_when(row.last_success)}")
        click.echo(f"  entries:    {row.entries} in the feed, {row.stored} stored")
        if row.error:
            click.echo(f"  last error: {row.error}" + (f" ({row.failures} in a row)" if row.failures > 1 else ""))
        if row.moved_to:
            click.echo(f"  moving to:  {row.moved_to} (seen {row.moved_seen}x)")
        if row.articles or row.articles_failing:
            click.echo(f"  full text:  {row.articles} article{'' if row.articles == 1 else 's'}, "
                       f"{row.articles_failing} page{'' if row.articles_failing == 1 else 's'} failing")
        if row.article_failure:
            click.echo(f"  last page failing: {row.article_failure}")
        click.echo(f"  next due:   {_when(row.next_due) if row.enabled else '-'}")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "never"


def _listen_options(f: F) -> F:
    f = click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
                     help="Port to listen on.")(f)
    return click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")(f)


@cli.command("run")
@config_option
@click.option("--serve", "with_server", is_flag=True, help="Also serve the output folder over HTTP.")
@_listen_options
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per log line.")
@verbosity_options
def run_command(config_path: Path, with_server: bool, host: str, port: int, log_format: str,
                quiet: bool, verbose: bool) -> None:
    """Run as a daemon: fetch each source on its interval, regenerate after changes.

    SIGTERM/SIGINT stop it cleanly; SIGHUP reloads the config file."""
    from .daemon import run_daemon

    _setup_logging(-1 if quiet else 1 if verbose else 0, "json" if log_format == "json" else "daemon")
    config = _load(config_path)
    try:
        sys.exit(run_daemon(config_path, config, (host, port) if with_server else None))
    except FeedsError as exc:
        log.error("%s", exc)
        sys.exit(1)
    except OSError as exc:
        log.error("cannot start: %s", exc)
        sys.exit(1)


@cli.command("serve")
@config_option
@_listen_options
@click.option("--workers", type=click.IntRange(0, 64), default=0,
              help="Processes answering requests (default: one per CPU, at most 4).")
@verbosity_options
def serve_command(config_path: Path, host: str, port: int, workers: int, quiet: bool, verbose: bool) -> None:
    """Serve the output folder for feed readers (ETag, Last-Modified, 304, gzip); SIGTERM stops it."""
    from .output.serve import serve_forever

    _setup_logging(-1 if quiet else 1 if verbose else 0, "daemon")
    config = _load(config_path)
    try:
        sys.exit(serve_forever(config.output_dir, host, port, workers))
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        sys.exit(1)


def main() -> None:
    cli(prog_name="feeds")


def run_program() -> None:
    """The ``feeds`` command (and ``python -m feeds``): :func:`main`, then, when it succeeded,
    the process ends as soon as its work is done and said. What exiting must do still
    happens (each ``atexit`` function runs, the output streams are flushed); the
    interpreter's teardown, which frees every object one by one (a tenth of a second after
    a run over tens of thousands of posts), does not. A command that failed or was
    interrupted, or left another thread (a daemon one too) or a child process running,
    exits as usual (after them)."""
    import threading

    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    processes = sys.modules.get("multiprocessing")  # (not loaded: no child process of it)
    # Any other thread, a daemon one too, may be a job a pool would let finish (the scheduler's are daemons).
    if code not in (0, None) or threading.active_count() > 1 or \
            (processes is not None and processes.active_children()):
        sys.exit(code)  # type: ignore[arg-type]
    import atexit

    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is None:  # not CPython: exit as usual
        sys.exit(0)
    run_exit_functions()  # logging flushes and closes its handlers here, among others
    status = 0
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # (None: started with that descriptor closed)
                stream.flush()
        except (OSError, ValueError):  # a reader that went away (as Python exits then: 120)
            status = 120
    os._exit(status)
