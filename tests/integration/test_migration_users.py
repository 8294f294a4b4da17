"""An installation from before users and roles (0006) keeps its administrator and tokens."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from mackuper import db
from mackuper.config import load_settings
from mackuper.passwords import hash_password
from mackuper.runtime import open_runtime
from mackuper.web import create_app
from tests.conftest import ApiClient

pytestmark = pytest.mark.integration

OLD_PASSWORD = "Old-Admin-Pass-4"
OLD_TOKEN = "mkp_" + "t" * 43


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mackuper.db'}"
    url: str = request.getfixturevalue("empty_postgres_url")
    return url


def test_the_administrator_and_the_tokens_of_an_older_installation_keep_working(
    tmp_path: Path, database_url: str
) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            config = db._alembic_config(database_url)
            config.attributes["connection"] = connection
            command.upgrade(config, "0006_worker_labels")
            # Plain SQL: the models describe the newest schema, not this old one.
            connection.execute(
                text(
                    "INSERT INTO users (id, username, password_hash, created_at)"
                    " VALUES (7, 'boss', :hash, CURRENT_TIMESTAMP)"
                ),
                {"hash": hash_password(OLD_PASSWORD)},
            )
            connection.execute(
                text("INSERT INTO settings (key, value) VALUES ('setup_complete', '1')")
            )
            connection.execute(
                text(
                    "INSERT INTO api_tokens (id, name, token_hash, created_at)"
                    " VALUES (3, 'nightly', :hash, CURRENT_TIMESTAMP)"
                ),
                {"hash": hashlib.sha256(OLD_TOKEN.encode()).hexdigest()},
            )
    finally:
        engine.dispose()

    settings = load_settings(
        {"MACKUPER_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url}
    )
    runtime = open_runtime(settings)  # migrates to the head
    try:
        app = create_app(runtime, {"TESTING": True})
        script = app.test_client(use_cookies=False)
        by_token = script.get("/api/users", headers={"Authorization": f"Bearer {OLD_TOKEN}"})
        assert by_token.status_code == 200, by_token.get_data(as_text=True)
        [user] = by_token.get_json()["users"]
        assert (user["id"], user["username"], user["role"]) == (7, "boss", "administrator")
        assert (user["disabled"], user["can_download"], user["restore_targets"]) == (
            False,
            False,
            [],
        )

        browser = ApiClient(app.test_client())
        browser.refresh_csrf("/login")
        login = browser.call("POST", "/api/login", {"username": "boss", "password": OLD_PASSWORD})
        assert login.status_code == 200, login.get_data(as_text=True)
        [token] = browser.call("GET", "/api/tokens").get_json()["tokens"]
        assert (token["name"], token["user"], token["role"]) == (
            "nightly",
            "boss",
            "administrator",
        )
        assert browser.call("GET", "/api/settings/master-key").status_code == 200
    finally:
        runtime.engine.dispose()
