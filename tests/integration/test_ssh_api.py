"""SSH jobs through the API: Test connection and trust, write-only secrets, a real run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mackuper.models import Job, RunLog
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import finished_run, local_destination, ok, run_log
from tests.integration.ssh_support import prove_logins_are_logged, sshd_log_since, sshd_log_size
from tests.servers.sshd import SSHServer
from tests.trees import file_hashes

pytestmark = pytest.mark.integration


def _source(server: SSHServer, role: str, paths: list[str], **extra: Any) -> dict[str, Any]:
    user = server.users[role]
    source: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "username": user.username,
        "auth": "password" if role == "password" else "key",
        "paths": paths,
        "excludes": [],
    }
    if role == "password":
        source["password"] = user.password
    else:
        source["private_key"] = user.private_key
        source["passphrase"] = user.passphrase or ""
    source.update(extra)
    return source


def _secret_markers(server: SSHServer) -> list[str]:
    """Strings that would only appear if a password, passphrase or private key leaked."""
    markers = []
    for user in server.users.values():
        markers += [value for value in (user.password, user.passphrase) if value]
        if user.private_key:
            body = [line for line in user.private_key.splitlines() if "PRIVATE KEY" not in line]
            markers += body[1:3]
    return markers


def test_connection_test_shows_fingerprint_and_sends_nothing_until_trusted(
    api: ApiClient, sshd: SSHServer
) -> None:
    tree = sshd.make_remote_tree(sshd.users["password"].username, {"a.txt": "a"})
    prove_logins_are_logged(sshd, "password")  # so their absence below means something
    log_start = sshd_log_size(sshd)
    source = _source(sshd, "password", [str(tree), "/no/such/path"])

    first = ok(api, "POST", "/api/ssh/test", {"source": source})

    assert first["status"] == "untrusted"
    assert first["fingerprint"] == sshd.host_key_fingerprint
    assert first["key_type"] == "ssh-ed25519"
    server_log = sshd_log_since(sshd, log_start)
    assert "password for" not in server_log
    assert "Accepted" not in server_log

    trusted = ok(
        api, "POST", "/api/ssh/test", {"source": {**source, "host_key": first["host_key"]}}
    )

    assert trusted["status"] == "failed"  # one of the two paths is missing
    assert [item["ok"] for item in trusted["paths"]] == [True, False]
    assert trusted["paths"][1]["message"] == "does not exist"
    assert trusted["transfer"].startswith("tar")


def test_connection_test_reports_a_changed_key_with_both_fingerprints(
    api: ApiClient, sshd: SSHServer, tmp_path: Path
) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    other = (tmp_path / "k.pub").read_text()
    source = _source(sshd, "key", ["/tmp"], host_key=other)  # noqa: S108 - never read

    result = ok(api, "POST", "/api/ssh/test", {"source": source})

    assert result["status"] == "mismatch"
    assert sshd.host_key_fingerprint in result["message"]
    other_fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert other_fingerprint in result["message"]


def test_job_without_a_trusted_host_key_is_refused(api: ApiClient, sshd: SSHServer) -> None:
    response = api.call(
        "POST",
        "/api/jobs",
        {
            "name": "No key",
            "source_kind": "ssh",
            "source": _source(sshd, "password", ["/srv"]),
            "archive_format": "tar",
            "destination_ids": [],
        },
    )

    assert response.status_code == 422
    assert "host_key" in response.get_json()["fields"]


@pytest.mark.parametrize("role", ["password", "key_passphrase"])
def test_ssh_job_backs_up_and_secrets_never_leave_in_clear(
    api: ApiClient, runtime: Runtime, sshd: SSHServer, tmp_path: Path, role: str
) -> None:
    username = sshd.users[role].username
    tree = sshd.make_remote_tree(username, {"docs/a.txt": "alpha\n", "b.bin": b"\x00\x01" * 5000})
    destination = local_destination(api, tmp_path / "store")
    source = _source(sshd, role, [str(tree)], host_key=sshd.host_public_key)
    body = {
        "name": f"Remote {role}",
        "source_kind": "ssh",
        "source": source,
        "archive_format": "tar",
        "schedule": "",
        "destination_ids": [destination["id"]],
    }
    created = api.call("POST", "/api/jobs", body)
    assert created.status_code == 201, created.get_data(as_text=True)
    job = created.get_json()["job"]
    # Saving again with the secret fields blank keeps the stored secrets.
    blank = {**source, "password": "", "private_key": "", "passphrase": ""}
    updated = api.call("PUT", f"/api/jobs/{job['id']}", {**body, "source": blank})
    assert updated.status_code == 200, updated.get_data(as_text=True)

    run = finished_run(api, runtime, ok(api, "POST", f"/api/jobs/{job['id']}/run")["run"])

    assert run["status"] == "success", run["error"]
    (archive,) = (tmp_path / "store").rglob("*.tar")
    subprocess.run(["tar", "-xf", str(archive), "-C", str(tmp_path)], check=True)
    assert file_hashes(tmp_path / str(tree).lstrip("/")) == file_hashes(tree)
    answers = [
        created.get_data(as_text=True),
        updated.get_data(as_text=True),
        api.call("GET", f"/api/jobs/{job['id']}").get_data(as_text=True),
        api.call("GET", "/api/jobs").get_data(as_text=True),
    ]
    shown = api.call("GET", f"/api/jobs/{job['id']}").get_json()["job"]["source"]["secrets"]
    assert "set" in shown.values()
    with runtime.sessions() as session:
        logs = "\n".join(session.scalars(select(RunLog.message)))
        stored = session.get_one(Job, job["id"])
        assert stored.source_secrets_encrypted
    database = b"".join(path.read_bytes() for path in Path(runtime.settings.data_dir).glob("*.db*"))
    assert len(database) > 10_000
    log_files = "\n".join(run_log(api, run["id"]))
    for marker in _secret_markers(sshd):
        for text in [*answers, logs, log_files]:
            assert marker not in text
        assert marker.encode() not in database
