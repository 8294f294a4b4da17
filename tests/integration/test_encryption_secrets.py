"""Passphrases and private keys never show in API responses, logs, manifests or the database,
while the worker still makes backups that the standard tools open with them."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from mackuper.pipeline.encrypt import open_decrypting_reader
from mackuper.runs.lifecycle import execute_run
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration

PASSPHRASE = "tangerine-submarine-42"


def job_payload(source: Path, destination_id: int, name: str, encryption: object) -> object:
    return {
        "name": name,
        "source_kind": "local",
        "source": {"paths": [str(source)], "excludes": []},
        "archive_format": "tar.gz",
        "schedule": "",
        "destination_ids": [destination_id],
        "encryption": encryption,
    }


def ok(api: ApiClient, method: str, path: str, body: object = None) -> tuple[dict, str]:  # type: ignore[type-arg]
    response = api.call(method, path, body)
    text = response.get_data(as_text=True)
    assert response.status_code < 300, text
    return json.loads(text), text


def database_text(runtime: Runtime, data_dir: Path) -> str:
    """Every row of every table, and the raw SQLite files."""
    metadata = MetaData()
    metadata.reflect(runtime.engine)
    parts: list[str] = []
    with runtime.engine.connect() as connection:
        for table in metadata.sorted_tables:
            parts.extend(repr(tuple(row)) for row in connection.execute(select(table)))
    for path in data_dir.glob("mackuper.db*"):
        parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def untar(archive_bytes: bytes, target: Path) -> None:
    target.mkdir()
    subprocess.run(["tar", "-xz", "-C", str(target)], input=archive_bytes, check=True)


def test_secrets_stay_out_of_responses_logs_manifests_and_the_database(
    api: ApiClient,
    runtime: Runtime,
    data_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    source = make_small_tree(tmp_path / "source")
    backups = tmp_path / "backups"
    destination, _ = ok(
        api, "POST", "/api/destinations", {"name": "Disk", "kind": "local", "path": str(backups)}
    )
    generated = api.call("POST", "/api/encryption/identity")
    assert generated.headers["Cache-Control"] == "no-store"
    identity, recipient = generated.json["identity"], generated.json["recipient"]  # type: ignore[index]
    assert identity.startswith("AGE-SECRET-KEY-1") and recipient.startswith("age1")

    key_job, key_text = ok(
        api,
        "POST",
        "/api/jobs",
        job_payload(
            source,
            destination["destination"]["id"],
            "Key job",
            {"mode": "recipients", "recipients": "", "store_identity": True, "identity": identity},
        ),
    )
    pass_job, pass_text = ok(
        api,
        "POST",
        "/api/jobs",
        job_payload(
            source,
            destination["destination"]["id"],
            "Passphrase job",
            {"mode": "passphrase", "passphrase": PASSPHRASE},
        ),
    )
    assert key_job["job"]["encryption"] == {
        "mode": "recipients",
        "recipients": [recipient],
        "recipient_types": ["X25519"],
        "passphrase": "not set",
        "identity": "stored",
    }
    assert pass_job["job"]["encryption"]["passphrase"] == "set"
    # Saving the form again with the secret fields blank keeps the stored secrets.
    edited, edit_text = ok(
        api,
        "PUT",
        f"/api/jobs/{pass_job['job']['id']}",
        job_payload(
            source, destination["destination"]["id"], "Passphrase job", {"mode": "passphrase"}
        ),
    )
    assert edited["job"]["encryption"]["passphrase"] == "set"

    texts = [key_text, pass_text, edit_text]
    keys: dict[str, str] = {}
    for job in (key_job["job"], pass_job["job"]):
        run, run_text = ok(api, "POST", f"/api/jobs/{job['id']}/run")
        outcome = execute_run(runtime, run["run"]["id"], threading.Event())
        assert outcome.status.value == "success", outcome.error
        finished, finished_text = ok(api, "GET", f"/api/runs/{run['run']['id']}")
        _, log_text = ok(api, "GET", f"/api/runs/{run['run']['id']}/log")
        texts += [run_text, finished_text, log_text]
        (artifact,) = finished["run"]["artifacts"]
        keys[job["name"]] = artifact["key"]
        assert artifact["key"].endswith(".tar.gz.age")
    _, jobs_text = ok(api, "GET", "/api/jobs")
    texts.append(jobs_text)
    manifests = [path.read_text() for path in backups.rglob("*.manifest.json")]
    assert len(manifests) == 2

    everything = "\n".join([*texts, *manifests, caplog.text, database_text(runtime, data_dir)])
    assert PASSPHRASE not in everything
    assert identity not in everything and identity.lower() not in everything

    (tmp_path / "key.txt").write_text(identity + "\n")
    with subprocess.Popen(
        ["age", "-d", "-i", str(tmp_path / "key.txt"), str(backups / keys["Key job"])],
        stdout=subprocess.PIPE,
    ) as age:
        subprocess.run(["tar", "-xz", "-C", str(tmp_path)], stdin=age.stdout, check=True)
    assert age.returncode == 0
    assert file_hashes(tmp_path / str(source).lstrip("/")) == file_hashes(source)
    with (backups / keys["Passphrase job"]).open("rb") as handle:
        plain = open_decrypting_reader(handle, passphrase=PASSPHRASE).readall()
    untar(plain, tmp_path / "from-passphrase")
    restored = tmp_path / "from-passphrase" / str(source).lstrip("/")
    assert file_hashes(restored) == file_hashes(source)


@pytest.mark.parametrize(
    ("encryption", "field", "message"),
    [
        ({"mode": "passphrase", "passphrase": "short"}, "encryption.passphrase", "at least 10"),
        ({"mode": "recipients", "recipients": "age1nope"}, "encryption.recipients", "Line 1"),
        ({"mode": "recipients", "recipients": ""}, "encryption.recipients", "at least one"),
        (
            {"mode": "recipients", "store_identity": True, "identity": "not a key"},
            "encryption.identity",
            "AGE-SECRET-KEY-1",
        ),
        ({"mode": "rot13"}, "encryption.mode", "Choose none"),
    ],
)
def test_bad_encryption_settings_get_one_clear_message(
    api: ApiClient,
    tmp_path: Path,
    encryption: dict,
    field: str,
    message: str,  # type: ignore[type-arg]
) -> None:
    destination, _ = ok(
        api, "POST", "/api/destinations", {"name": "Disk", "kind": "local", "path": str(tmp_path)}
    )
    response = api.call(
        "POST",
        "/api/jobs",
        job_payload(tmp_path, destination["destination"]["id"], "Bad", encryption),
    )

    assert response.status_code == 422
    errors = response.json["fields"]  # type: ignore[index]
    assert message in errors[field]
    assert str(encryption.get("passphrase", "@none@")) not in response.get_data(as_text=True)
