"""Mackuper's restore reads what the `age` CLI writes; a wrong key is refused before
anything is queued and a tampered archive fails the restore with one clear sentence."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mackuper.encryption import generate_identity
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import backed_up, local_destination, restore
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration


def test_restore_reads_age_cli_output_and_refuses_wrong_keys_and_tampering(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    source = make_small_tree(tmp_path / "source")
    inside = str(source).lstrip("/")
    identity, recipient = generate_identity()
    (tmp_path / "key.txt").write_text(identity + "\n")
    backup = backed_up(
        api,
        runtime,
        source,
        local_destination(api, tmp_path / "storage")["id"],
        "tar.gz",
        "Age CLI job",
        encryption={"mode": "recipients", "recipients": [recipient]},
    )
    stored = tmp_path / "storage" / backup["key"]
    # Replace Mackuper's ciphertext with the age CLI's encryption of the same tar.gz.
    plain = subprocess.run(
        ["age", "-d", "-i", str(tmp_path / "key.txt"), str(stored)],
        capture_output=True,
        check=True,
    ).stdout
    from_cli = subprocess.run(
        ["age", "-r", recipient], input=plain, capture_output=True, check=True
    ).stdout
    stored.write_bytes(from_cli)

    run = restore(
        api,
        runtime,
        backup["id"],
        {"kind": "local", "path": str(tmp_path / "a")},
        decryption={"identity": identity},
    )
    assert run["status"] == "success", run["error"]
    assert file_hashes(tmp_path / "a" / inside) == file_hashes(source)

    # A wrong key is refused before anything is queued (the age header is read first).
    other_identity, _ = generate_identity()
    runs_before = len(api.call("GET", "/api/runs").json["runs"])
    refused = api.call(
        "POST",
        "/api/restore",
        {
            "artifact_id": backup["id"],
            "target": {"kind": "local", "path": str(tmp_path / "b")},
            "decryption": {"identity": other_identity},
        },
    )
    assert refused.status_code == 422, refused.json
    assert refused.json["fields"]["decryption"] == (
        "This key or passphrase does not open this backup."
    )
    assert len(api.call("GET", "/api/runs").json["runs"]) == runs_before
    assert not (tmp_path / "b").exists()

    damaged = bytearray(from_cli)
    damaged[len(damaged) // 2] ^= 0x40
    stored.write_bytes(bytes(damaged))
    tampered = restore(
        api,
        runtime,
        backup["id"],
        {"kind": "local", "path": str(tmp_path / "c")},
        decryption={"identity": identity},
    )
    assert tampered["status"] == "failed"
    assert "modified or damaged" in tampered["error"]
