"""``/metrics`` of ``feeds run --serve``: what it counts, read back with prometheus-client's own parser,
from the counters alone, from the server, and from a real daemon fetching loopback sources."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from feeds.metrics import CONTENT_TYPE, Metrics, fetch_result
from feeds.output.serve import BackgroundServer
from feeds.sources.decide import SourceOutcome
from feeds.sources.results import FetchFailure, FetchResult

from .conftest import Site
from .httpserver import FeedServer, Response, feed_response, item, rss
from .test_daemon import Running, daemon_config, wait_for


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def result(**fields: object) -> FetchResult:
    return FetchResult(source="s", url="https://a.example/f", final_url="https://a.example/f", **fields)  # type: ignore[arg-type]


def test_fetch_results_are_labelled_by_what_happened() -> None:
    assert fetch_result(result(status=200, body=b"x")) == "ok"
    assert fetch_result(result(status=304, not_modified=True)) == "not_modified"
    assert fetch_result(result(status=429, retry_after=60.0, failure=FetchFailure("http", "HTTP 429"))) == "throttled"
    assert fetch_result(result(failure=FetchFailure("too large", "over 10 MB"))) == "too_large"
    assert fetch_result(result(failure=FetchFailure("timeout", "timed out"))) == "timeout"


def test_counters_add_up_and_parse() -> None:
    m = Metrics()
    m.scheduled(["a", "b", "c"])
    m.fetched([result(status=200, body=b"x", seconds=0.2), result(status=304, not_modified=True, seconds=0.01),
               result(failure=FetchFailure("timeout", "timed out"), seconds=5.0)])
    m.updated([SourceOutcome("a", "ok", new=3, changed=1), SourceOutcome("b", "not modified"),
               SourceOutcome("c", "error", error="timed out")])
    m.generated(seconds=1.5, entries=40, feeds=12, written=5, removed=1, finished_at=1_700_000_000.0)
    m.generation_ended("failed", 0.2)
    text = m.exposition().decode()
    assert value(text, "feeds_fetches_total", result="ok") == 1
    assert value(text, "feeds_fetches_total", result="not_modified") == 1
    assert value(text, "feeds_fetches_total", result="timeout") == 1
    assert value(text, "feeds_fetch_duration_seconds_count") == 3
    assert abs(value(text, "feeds_fetch_duration_seconds_sum") - 5.21) < 1e-9
    assert value(text, "feeds_fetch_duration_seconds_bucket", le="0.25") == 2
    assert value(text, "feeds_items_total", change="new") == 3
    assert value(text, "feeds_items_total", change="changed") == 1
    assert value(text, "feeds_sources") == 3
    assert value(text, "feeds_sources_failing") == 1
    assert value(text, "feeds_generations_total", result="ok") == 1
    assert value(text, "feeds_generations_total", result="failed") == 1
    assert value(text, "feeds_generations_total", result="cancelled") == 0
    assert value(text, "feeds_generation_duration_seconds_count") == 2
    assert value(text, "feeds_files_written_total") == 5
    assert value(text, "feeds_files_removed_total") == 1
    assert value(text, "feeds_entries") == 40
    assert value(text, "feeds_feed_files") == 12
    assert value(text, "feeds_last_generation_timestamp_seconds") == 1_700_000_000.0


def test_a_source_recovers_or_leaves_and_stops_failing() -> None:
    m = Metrics()
    m.scheduled(["a", "b"])
    m.updated([SourceOutcome("a", "error"), SourceOutcome("b", "gone")])
    assert value(m.exposition().decode(), "feeds_sources_failing") == 2
    m.updated([SourceOutcome("a", "ok")])
    assert value(m.exposition().decode(), "feeds_sources_failing") == 1
    m.scheduled(["a"])  # b taken out of the config
    text = m.exposition().decode()
    assert value(text, "feeds_sources_failing") == 0
    assert value(text, "feeds_sources") == 1


def test_two_daemons_never_share_counts() -> None:
    one, two = Metrics(), Metrics()
    one.fetched([result(status=200, body=b"x")])
    assert value(two.exposition().decode(), "feeds_fetches_total", result="ok") == 0


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_the_server_answers_metrics_fresh_and_never_from_a_file(tmp_path: Path) -> None:
    root = tmp_path / "output"
    root.mkdir()
    (root / "metrics").write_text("a file someone put here\n")
    m = Metrics()
    server = BackgroundServer(root, "127.0.0.1", 0, endpoints={"metrics": lambda: (m.exposition(), CONTENT_TYPE)})
    try:
        status, headers, body = get(server.port, "/metrics")
        assert status == 200
        assert headers["Content-Type"] == CONTENT_TYPE
        assert headers["Cache-Control"] == "no-store"
        assert value(body.decode(), "feeds_fetches_total", result="ok") == 0
        m.fetched([result(status=200, body=b"x")])
        _, _, body = get(server.port, "/metrics?x=1")
        assert value(body.decode(), "feeds_fetches_total", result="ok") == 1
        status, headers, body = get(server.port, "/metrics", "HEAD")
        assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
        assert get(server.port, "/metrics", "POST")[0] == 405
    finally:
        server.stop()


def test_a_failing_endpoint_is_a_500_and_the_files_are_still_served(tmp_path: Path) -> None:
    root = tmp_path / "output"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>x</title>\n")

    def broken() -> tuple[bytes, str]:
        raise RuntimeError("boom")

    server = BackgroundServer(root, "127.0.0.1", 0, endpoints={"metrics": broken})
    try:
        assert get(server.port, "/metrics")[0] == 500
        assert get(server.port, "/")[0] == 200
    finally:
        server.stop()


def test_a_running_daemon_counts_its_fetches_items_failures_and_generations(site: Site, server: FeedServer) -> None:
    server.routes["/wire.xml"] = feed_response(rss([item(1), item(2), item(3)]), etag='"1"')
    server.routes["/broken.xml"] = Response(500, b"down")
    daemon_config(site, server)
    text = (site.root / "config.yaml").read_text()
    site.write_config(text.replace("fetch:", f"""  - {{name: broken, url: '{server.url("/broken.xml")}', every: 1s}}
fetch:""", 1))
    run = Running(site)

    def metrics() -> str:
        body = run.get("/metrics")
        return body.decode() if body else ""

    try:
        wait_for(lambda: value(metrics(), "feeds_generations_total", result="ok") >= 1
                 and value(metrics(), "feeds_fetches_total", result="not_modified") >= 1
                 and value(metrics(), "feeds_fetches_total", result="http") >= 1, 30, "fetches and a generation")
        text = metrics()
    finally:
        assert run.stop() == 0
    hits = len(server.hits("/wire.xml")) + len(server.hits("/broken.xml"))
    fetches = sum(v for (name, _), v in samples(text).items() if name == "feeds_fetches_total")
    assert 3 <= fetches <= hits
    assert value(text, "feeds_fetch_duration_seconds_count") == fetches
    assert value(text, "feeds_items_total", change="new") == 3
    assert value(text, "feeds_sources") == 2
    assert value(text, "feeds_sources_failing") == 1
    assert value(text, "feeds_files_written_total") >= 1
    assert value(text, "feeds_entries") >= 3
    assert value(text, "feeds_last_generation_timestamp_seconds") > 1_700_000_000
