"""Deployment settings: HTTPS_ENABLED behind a TLS proxy, gunicorn options, log
format and rotation across processes, and .env.example covering every variable."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask import request as flask_request
from werkzeug.wrappers import Response

from mackuper.config import ConfigError, load_settings
from mackuper.gunicorn_conf import options, web_concurrency
from mackuper.logs import SharedRotatingFileHandler, configure_logging
from mackuper.runtime import open_runtime
from mackuper.web import create_app

ROOT = Path(__file__).resolve().parents[2]
PROXY_HEADERS = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Host": "backup.example.com",
}


@pytest.fixture(params=[False, True], ids=["https-off", "https-on"])
def https_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[bool, Flask]]:
    enabled: bool = request.param
    settings = load_settings(
        {"MACKUPER_DATA_DIR": str(tmp_path), "HTTPS_ENABLED": "true" if enabled else "false"}
    )
    runtime = open_runtime(settings)
    app = create_app(runtime, {"TESTING": True})
    seen: dict[str, str] = {}

    def record(response: Response) -> Response:
        seen.update(
            scheme=flask_request.scheme,
            remote=flask_request.remote_addr or "",
            host=flask_request.host or "",
        )
        return response

    app.after_request(record)
    app.extensions["seen"] = seen
    yield enabled, app
    runtime.engine.dispose()


def test_forwarded_headers_are_trusted_only_when_https_is_enabled(
    https_app: tuple[bool, Flask],
) -> None:
    enabled, app = https_app
    response = app.test_client().get("/health", headers=PROXY_HEADERS)
    seen = app.extensions["seen"]

    assert response.status_code == 200
    if enabled:
        assert seen == {"scheme": "https", "remote": "203.0.113.9", "host": "backup.example.com"}
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    else:
        assert seen == {"scheme": "http", "remote": "127.0.0.1", "host": "localhost"}
        assert "Strict-Transport-Security" not in response.headers


def test_session_cookie_is_secure_only_when_https_is_enabled(
    https_app: tuple[bool, Flask],
) -> None:
    enabled, app = https_app
    client = app.test_client()
    page = client.get("/setup", headers=PROXY_HEADERS).get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token is not None
    response = client.post(
        "/api/setup/admin",
        json={"username": "admin", "password": "Correct-Horse-9"},
        headers={**PROXY_HEADERS, "X-CSRF-Token": token.group(1)},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    cookies = [value for key, value in response.headers.items() if key == "Set-Cookie"]
    session = next(cookie for cookie in cookies if cookie.startswith("mackuper_session="))

    assert "HttpOnly" in session and "SameSite=Lax" in session
    assert ("Secure" in session) is enabled


def test_gunicorn_trusts_forwarded_headers_only_when_https_is_enabled(tmp_path: Path) -> None:
    plain = load_settings({"MACKUPER_DATA_DIR": str(tmp_path)})
    behind_tls = load_settings({"MACKUPER_DATA_DIR": str(tmp_path), "HTTPS_ENABLED": "true"})

    assert options(plain, "127.0.0.1", workers=1)["forwarded_allow_ips"] == ""
    assert options(behind_tls, "0.0.0.0", workers=1)["forwarded_allow_ips"] == "*"  # noqa: S104
    assert options(plain, "0.0.0.0", workers=3)["bind"] == "0.0.0.0:5000"  # noqa: S104
    # Shorter than Docker's default 10 s stop timeout.
    assert options(plain, "127.0.0.1", workers=1)["graceful_timeout"] < 10


def test_web_concurrency_is_validated_with_a_one_line_error() -> None:
    assert web_concurrency({}) == 2
    assert web_concurrency({"WEB_CONCURRENCY": "4"}) == 4
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY='many' must be a whole number"):
        web_concurrency({"WEB_CONCURRENCY": "many"})


def test_log_lines_use_the_original_format_in_the_data_directory(tmp_path: Path) -> None:
    settings = load_settings({"MACKUPER_DATA_DIR": str(tmp_path)})
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        configure_logging(settings, "web")
        logging.getLogger("mackuper.example").warning("disk %s is full", "/data")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    line = (tmp_path / "logs" / "mackuper.log").read_text().splitlines()[-1]
    pattern = (
        r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] WARNING "
        r"\[mackuper\.example\.test_log_lines_use_the_original_format_in_the_data_directory:\d+\]"
        r" web: disk /data is full"
    )
    assert re.fullmatch(pattern, line), line


def test_two_processes_sharing_a_log_file_rotate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "mackuper.log"
    first = SharedRotatingFileHandler(path, maxBytes=1000, backupCount=3, encoding="utf-8")
    second = SharedRotatingFileHandler(path, maxBytes=1000, backupCount=3, encoding="utf-8")
    for handler in (first, second):
        handler.setFormatter(logging.Formatter("%(message)s"))

    def emit(handler: SharedRotatingFileHandler, text: str) -> None:
        handler.emit(logging.LogRecord("t", logging.INFO, __file__, 1, text, None, None))

    try:
        for index in range(9):
            emit(first, f"first {index} " + "x" * 100)
        emit(second, "second fills " + "y" * 200)  # over 1000 bytes: rotates
        emit(first, "first after the rotation")  # must follow, not rotate again
        emit(second, "second after the rotation")
    finally:
        first.close()
        second.close()

    current = path.read_text().splitlines()
    # Without the shared rotation, `first` (its old file is past 1000 bytes) would
    # rotate a second time and push "second fills" into mackuper.log.2.
    assert current == [
        "second fills " + "y" * 200,
        "first after the rotation",
        "second after the rotation",
    ]
    assert sorted(p.name for p in tmp_path.glob("mackuper.log*")) == [
        "mackuper.log",
        "mackuper.log.1",
        "mackuper.log.lock",
    ]


def test_env_example_documents_every_variable_mackuper_reads() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    read = set()
    for name in ("config.py", "cli/__init__.py", "gunicorn_conf.py", "installation.py"):
        source = (ROOT / "src" / "mackuper" / name).read_text()
        read |= set(re.findall(r'(?:env|environ)\b[^"\n]{0,12}"([A-Z][A-Z0-9_]+)"', source))

    assert {"DATABASE_URL", "MACKUPER_MASTER_KEY", "WEB_CONCURRENCY", "MACKUPER_HOST"} <= read
    assert read - documented == set()
