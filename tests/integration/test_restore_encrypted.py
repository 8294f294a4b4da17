"""Encrypted (.age) backups restore with the job's stored passphrase, or with a key
pasted for one restore; without a key the run fails with one clear sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from mackuper.encryption import generate_identity
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import backed_up, local_destination, ok, restore
from tests.trees import file_hashes, make_small_tree

pytestmark = pytest.mark.integration


def test_encrypted_backups_restore_with_stored_passphrase_or_pasted_identity(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    source = make_small_tree(tmp_path / "source")
    inside = str(source).lstrip("/")
    destination = local_destination(api, tmp_path / "storage")

    sealed = backed_up(
        api,
        runtime,
        source,
        destination["id"],
        "zip",
        "Passphrase job",
        encryption={"mode": "passphrase", "passphrase": "correct horse battery"},
    )
    assert sealed["encrypted"] and sealed["key"].endswith(".zip.age")
    tree = ok(api, "GET", f"/api/backups/{sealed['id']}/tree?q=readme")["entries"]
    assert {entry["name"] for entry in tree} == {"readme.txt", "link-to-readme"}
    run = restore(api, runtime, sealed["id"], {"kind": "local", "path": str(tmp_path / "a")})
    assert run["status"] == "success", run["error"]
    assert file_hashes(tmp_path / "a" / inside) == file_hashes(source)

    identity, recipient = generate_identity()
    keyed = backed_up(
        api,
        runtime,
        source,
        destination["id"],
        "tar.gz",
        "Key job",
        encryption={"mode": "recipients", "recipients": [recipient]},
    )
    target = {"kind": "local", "path": str(tmp_path / "b")}
    # Without the key the form is refused before anything is queued (issue 15, item 8).
    runs_before = ok(api, "GET", "/api/runs")["total"]
    for decryption in ({}, {"identity": generate_identity()[0]}):
        refused = api.call(
            "POST",
            "/api/restore",
            {"artifact_id": keyed["id"], "target": target, "decryption": decryption},
        )
        assert refused.status_code == 422, refused.get_data(as_text=True)
        assert "key" in refused.get_json()["fields"]["decryption"]
    assert ok(api, "GET", "/api/runs")["total"] == runs_before
    assert not (tmp_path / "b").exists()

    run = restore(api, runtime, keyed["id"], target, decryption={"identity": identity})
    assert run["status"] == "success", run["error"]
    assert file_hashes(tmp_path / "b" / inside) == file_hashes(source)
    assert identity not in str(ok(api, "GET", f"/api/runs/{run['id']}"))
