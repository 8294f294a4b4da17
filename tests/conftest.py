"""Shared fixtures: real servers (tests.servers) and an in-process Mackuper app."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mackuper.config import load_settings
from mackuper.runtime import Runtime, open_runtime
from mackuper.web import create_app
from tests.servers.fixtures import *  # noqa: F403
from tests.servers.podman import podman_engine, postgres_image  # noqa: F401 - session fixtures

ADMIN_PASSWORD = "Correct-Horse-9"


def _stop_like_ctrl_c(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (`timeout`, a CI runner giving up) stops the session like Ctrl-C does,
    so fixtures tear down and stop their servers instead of leaving them running."""
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def runtime(data_dir: Path) -> Iterator[Runtime]:
    """Settings, a migrated SQLite database and the secret box in a fresh data dir."""
    settings = load_settings({"MACKUPER_DATA_DIR": str(data_dir)})
    runtime = open_runtime(settings)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def app(runtime: Runtime) -> Flask:
    return create_app(runtime, {"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class ApiClient:
    """A Flask test client that sends the CSRF token like the pages do."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.csrf = ""

    def refresh_csrf(self, path: str = "/login") -> None:
        text = self.client.get(path).get_data(as_text=True)
        marker = 'name="csrf-token" content="'
        if marker in text:
            self.csrf = text.split(marker, 1)[1].split('"', 1)[0]

    def call(self, method: str, path: str, body: object = None):  # type: ignore[no-untyped-def]
        headers = {"X-CSRF-Token": self.csrf} if method != "GET" else {}
        return self.client.open(path, method=method, json=body, headers=headers)


@pytest.fixture
def api(client: FlaskClient) -> ApiClient:
    """An API client logged in as the administrator of a finished setup."""
    helper = ApiClient(client)
    helper.refresh_csrf("/setup")
    response = helper.call(
        "POST", "/api/setup/admin", {"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert helper.call("POST", "/api/setup/finish").status_code == 200
    return helper
