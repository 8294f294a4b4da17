"""A PostgreSQL job made in the browser: Test connection, save, back up; restored with
pg_restore alone and from the Restore page into a new database; editing it in the
form later keeps what the form does not show."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from psycopg import sql

from mackuper.sources.postgres import member_name
from tests.e2e.browser import log_in, run_axe
from tests.harness import BrowserClient, running_mackuper
from tests.integration.test_postgres_source import fill_database, fingerprint, restore_with_tools
from tests.servers.postgres import PostgresServer, temporary_database

pytestmark = pytest.mark.e2e


def test_a_postgres_job_made_in_the_browser_backs_up_and_keeps_its_settings_when_edited(
    postgres_server: PostgresServer, ui: Any, tmp_path: Path
) -> None:
    server = postgres_server
    copy = f"mkp_ui_copy_{uuid.uuid4().hex[:12]}"
    with (
        temporary_database(server) as database,
        temporary_database(server) as restored,
        running_mackuper(tmp_path / "data") as mackuper,
    ):
        with server.connect(database) as connection:
            fill_database(connection, big_rows=2000)
            expected = fingerprint(connection)
        client = BrowserClient(mackuper.url)
        client.complete_setup({"name": "Disk", "kind": "local", "path": str(tmp_path / "store")})
        page, watch = ui(mackuper.url)
        page.set_default_timeout(60_000)  # logging in hashes a password: slow on a busy machine
        log_in(page, timeout=60_000)

        page.goto("/jobs?new=1")
        page.locator("#job-name").fill("Shop database")
        page.locator("#job-source-kind").select_option("postgresql")
        expect(page.locator("#job-paths")).to_be_hidden()
        expect(page.locator("#db-port")).to_have_value("5432")
        page.locator("#db-host").fill(server.host)
        page.locator("#db-port").fill(str(server.port))
        page.locator("#db-username").fill(server.user)
        page.locator("#db-databases").fill(database)
        page.locator("#job-format").select_option("tar.zst")
        page.get_by_role("button", name="Test connection").click()
        status = page.get_by_role("status").filter(has_text="Databases:")
        expect(status).to_contain_text(database, timeout=30_000)
        expect(status).to_contain_text("Server:")
        assert run_axe(page) == []
        page.get_by_role("button", name="Save job").click()
        expect(page.get_by_text("Job saved.")).to_be_visible()
        expect(
            page.get_by_text(f"PostgreSQL {database} on {server.host}:{server.port}")
        ).to_be_visible()

        (job,) = client.ok("GET", "/api/jobs")["jobs"]
        assert job["source_kind"] == "postgresql"
        assert job["source"]["databases"] == [database]
        assert job["source"]["include_globals"] is True
        # ssh_port is not on the form; exclude_tables is: both must survive an edit there.
        changed = {**job["source"], "exclude_tables": ["public.scratch*"], "ssh_port": 2222}
        client.ok("PUT", f"/api/jobs/{job['id']}", {**_body(job), "source": changed})
        page.goto("/jobs")
        page.get_by_role("button", name="Edit").click()
        expect(page.locator("#db-databases")).to_have_value(database)
        page.locator("#job-schedule").fill("30 3 * * *")
        page.get_by_role("button", name="Save job").click()
        expect(page.get_by_text("Job saved.")).to_be_visible()
        (edited,) = client.ok("GET", "/api/jobs")["jobs"]
        assert edited["schedule"] == "30 3 * * *"
        assert edited["source"]["exclude_tables"] == ["public.scratch*"]
        assert edited["source"]["ssh_port"] == 2222
        assert edited["source"]["databases"] == [database]
        watch.assert_clean()

        run = client.wait_run(client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"])
        assert run["status"] == "success", run
        (artifact,) = run["artifacts"]
        restore_with_tools(
            tmp_path / "store" / artifact["key"], member_name(database, "dump"), server, restored
        )
        with server.connect(restored) as connection:
            assert fingerprint(connection) == expected

        # The Restore page offers the dumped database and restores it into a new one.
        page.goto("/restore")
        page.get_by_role("button", name="Browse").click()
        form = page.get_by_role("form", name="Restore a database")
        expect(form.locator("#db-restore-source")).to_have_value(database)
        expect(form.locator("#db-restore-into")).to_have_value(f"{database}_restored")
        page.locator("#db-restore-into").fill(copy)
        page.get_by_role("button", name="Restore database").click()
        page.wait_for_url("**/runs/*")
        run_id = int(page.url.rsplit("/", 1)[-1])
        assert client.wait_run(run_id)["status"] == "success"
        with server.connect(copy) as connection:
            assert fingerprint(connection) == expected
        assert run_axe(page) == []
        watch.assert_clean()


@pytest.fixture(autouse=True)
def _drop_copies(postgres_server: PostgresServer) -> Any:
    yield
    with postgres_server.connect() as connection:
        for (name,) in connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'mkp_ui_copy_%'"
        ).fetchall():
            connection.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _body(job: dict[str, Any]) -> dict[str, Any]:
    """The job as the API takes it back."""
    names = ["name", "source_kind", "archive_format", "compression_level", "schedule"]
    names += ["timezone", "enabled", "retention", "destination_ids", "worker_label"]
    return {name: job[name] for name in names}
