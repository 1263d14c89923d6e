"""Per-source HTTP settings end to end: headers, User-Agent, basic authentication with the
password from the environment (and nowhere else), and TLS verification, against real
loopback servers."""

from __future__ import annotations

import base64
import contextlib
import http.server
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeds.check import check
from feeds.config import ConfigError, parse_config

from .conftest import Site
from .httpserver import FeedServer, Response, feed_response, item, rss, running
from .test_sources import T0, entries, run

PASSWORD = "s3cret-Pa55word-7f1c"
WRONG = Response(401, b"who are you?", {"WWW-Authenticate": 'Basic realm="feeds"', "Content-Type": "text/plain"})


def _expected(user: str = "reader", password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _guarded(body: Response) -> object:
    def route(headers: dict[str, str]) -> Response:
        return body if headers.get("authorization") == _expected() else WRONG
    return route


def _config(site: Site, source: str, extra: str = "") -> None:
    text = (site.root / "config.yaml").read_text().split("sources:")[0]
    site.write_config(text + "sources:\n" + source + "fetch: {host_gap: 0, read_timeout: 2, total_timeout: 4}\n"
                      + extra)


def _auth_source(server: FeedServer, path: str = "/private.xml", more: str = "") -> str:
    return (f"  - name: private\n    url: '{server.url(path)}'\n    every: 60\n"
            "    auth: {username: reader, password_env: FEEDS_TEST_PASSWORD}\n" + more)


def _all_bytes(folder: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


def test_basic_auth_reaches_the_server_and_the_password_is_written_nowhere(site: Site, server: FeedServer) -> None:
    server.routes["/private.xml"] = _guarded(feed_response(rss([item(1), item(2)], title="Members only")))
    _config(site, _auth_source(server))
    env = {**os.environ, "FEEDS_TEST_PASSWORD": PASSWORD}
    cmd = [sys.executable, "-m", "feeds", "generate", "-v", "--config", str(site.root / "config.yaml")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert [e.title for e in entries(site)] == ["Story 2", "Story 1"]
    assert server.hits("/private.xml")[0].headers["authorization"] == _expected()
    status = subprocess.run([sys.executable, "-m", "feeds", "status", "--config", str(site.root / "config.yaml")],
                            capture_output=True, text=True, env=env)
    checked = subprocess.run([sys.executable, "-m", "feeds", "check", "--config", str(site.root / "config.yaml")],
                             capture_output=True, text=True, env=env)
    assert "source private" not in checked.stderr and "0 posts, 2 feed files" in checked.stderr
    secrets = [PASSWORD.encode(), _expected().split()[1].encode(), PASSWORD.encode("utf-16-le")]
    written = list(_all_bytes(site.root))  # the config, the state database (and its journal), the outputs
    assert any(p.suffix == ".db" for p, _ in written) and any(p.name == "all.atom.xml" for p, _ in written)
    for path, data in written:
        for secret in secrets:
            assert secret not in data, path
    for stream in (result.stdout, result.stderr, status.stdout, status.stderr, checked.stdout, checked.stderr):
        assert PASSWORD not in stream and _expected().split()[1] not in stream
    assert PASSWORD not in repr(site.config())


def test_a_wrong_password_is_an_http_error_that_does_not_echo_it(site: Site, server: FeedServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server.routes["/private.xml"] = _guarded(feed_response(rss([item(1)])))
    _config(site, _auth_source(server))
    monkeypatch.setenv("FEEDS_TEST_PASSWORD", "not-the-one")
    [outcome] = run(site).sources
    assert outcome.error == "HTTP 401 Unauthorized"


def test_a_missing_password_variable_is_one_error_naming_source_and_variable(site: Site, server: FeedServer,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    server.routes["/private.xml"] = _guarded(feed_response(rss([item(1)])))
    server.routes["/open.xml"] = feed_response(rss([item(5)]))
    _config(site, _auth_source(server) + f"  - {{name: open, url: '{server.url('/open.xml')}', every: 60}}\n")
    monkeypatch.delenv("FEEDS_TEST_PASSWORD", raising=False)
    report = run(site)
    private, other = report.sources
    assert other.status == "ok"
    assert private.status == "error" and "FEEDS_TEST_PASSWORD" in (private.error or "")
    assert private.line().startswith("private: error: the environment variable FEEDS_TEST_PASSWORD")
    assert not server.hits("/private.xml"), "asked without the password"
    problems = check(site.config()).problems
    assert any(p.startswith("source private:") and "FEEDS_TEST_PASSWORD" in p for p in problems)


def test_headers_and_user_agent_go_to_the_source_and_credentials_never_leave_its_host(
        site: Site, server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDS_TEST_PASSWORD", PASSWORD)
    with running() as elsewhere:
        elsewhere.routes["/moved.xml"] = feed_response(rss([item(3)]))
        server.routes["/private.xml"] = Response(302, b"", {"Location": elsewhere.url("/moved.xml")})
        _config(site, _auth_source(server, more="    user_agent: 'Reader/2.0 (+mailto:ops@example.org)'\n"
                                                "    headers: {X-Api-Key: abc123, Accept-Language: zh}\n"))
        [outcome] = run(site).sources
        assert outcome.status == "ok", outcome.error
        first = server.hits("/private.xml")[0].headers
        assert first["authorization"] == _expected()
        assert first["x-api-key"] == "abc123" and first["accept-language"] == "zh"
        assert first["user-agent"] == "Reader/2.0 (+mailto:ops@example.org)"
        moved = elsewhere.hits("/moved.xml")[0].headers
        assert "authorization" not in moved and "x-api-key" not in moved
        assert moved["user-agent"] == "Reader/2.0 (+mailto:ops@example.org)"


@pytest.mark.parametrize(("key", "fragment"), [
    ("headers: {Host: x}", "set by the fetcher"),
    ("headers: {Authorization: 'Bearer x'}", "auth key"),
    ("headers: {'Bad Name': x}", "not a valid header name"),
    ("headers: {X-A: \"a\\r\\nX-B: b\"}", "control character"),
    ("auth: {username: 'a:b', password_env: P}", "no ':'"),
    ("auth: {username: a, password_env: 'not a name'}", "not an environment variable name"),
    ("auth: {username: a, password: hunter2}", "password_env"),
    ("tls_verify: ''", "tls_verify"),
])
def test_bad_http_settings_are_config_errors_naming_the_key(key: str, fragment: str) -> None:
    text = ("site: {base_url: 'https://example.org/'}\nsources:\n"
            f"  - name: s\n    url: https://example.net/f.xml\n    {key}\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert fragment in str(caught.value) and "sources[0]" in str(caught.value)
    assert ":5:" in str(caught.value) or ":6:" in str(caught.value)
    assert "hunter2" not in str(caught.value)


# -- TLS ----------------------------------------------------------------------------


def _certificate(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@contextlib.contextmanager
def _https(cert: Path, key: Path, body: bytes) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the handshake a client refuses

    httpd = Server(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/feed.xml"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_tls_verify_with_a_ca_bundle_off_and_on(site: Site, tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    shutil.copy(cert, site.root / "ca.pem")
    with _https(cert, key, rss([item(1)]).encode()) as url:
        _config(site, f"  - {{name: bundle, url: '{url}', every: 60, tls_verify: ca.pem}}\n"
                      f"  - {{name: unchecked, url: '{url}?b', every: 60, tls_verify: false}}\n"
                      f"  - {{name: default, url: '{url}?c', every: 60}}\n"
                      f"  - {{name: missing, url: '{url}?d', every: 60, tls_verify: nowhere.pem}}\n")
        bundle, unchecked, default, missing = run(site, T0).sources
    assert bundle.status == "ok", bundle.error
    assert unchecked.status == "ok", unchecked.error
    assert default.status == "error" and "TLS" in (default.error or "")
    assert missing.status == "error" and "nowhere.pem" in (missing.error or "")
    problems = check(site.config()).problems
    assert [p.split(":")[0] for p in problems if p.startswith("source ")] == ["source missing"]
