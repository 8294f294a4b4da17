"""Issue 17, Done-when 3: an incremental point's manifest lists only what changed.

An unchanged day stores a small archive and a small manifest, whatever the size of the
tree; the whole file list of a point is folded from its chain's manifests for restores,
the Restore page, the next backup's change detection and verification. Chains written
before (every incremental manifest listing every path) still import, browse, restore
and verify.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import finished_run, local_destination, ok, restore
from tests.integration.test_incremental_chain import (
    backed_up_point,
    chain_job,
    plain_tar_restore,
    snapshot,
    write,
)

pytestmark = pytest.mark.integration

FOLDERS = 30
FILES_PER_FOLDER = 100
FIXTURE = Path(__file__).resolve().parents[1] / "data" / "chain-v1"
FIXTURE_SOURCE = "tmp/mackuper-chain-v1/source"


def stored_bytes(storage: Path) -> dict[str, int]:
    """Every file written at the destination (archives, manifests, anything else)."""
    return {
        str(path.relative_to(storage)): path.stat().st_size
        for path in storage.rglob("*")
        if path.is_file()
    }


def manifest_of(storage: Path, key: str) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((storage / f"{key}.manifest.json").read_text())
    return manifest


def test_an_unchanged_point_of_a_large_tree_stores_a_few_kib(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    """3,000 files in 30 folders: the unchanged second point writes its directories
    (archive) and lists them (manifest), nothing per file; before, its manifest listed
    all 3,031 paths (about 900 KiB)."""
    source = tmp_path / "source"
    for index in range(FOLDERS * FILES_PER_FOLDER):
        folder = f"folder-{index % FOLDERS:02d}"
        write(source / folder / f"note-{index:05d}.txt", f"note {index}\n" * (1 + index % 7), 0)
    storage = tmp_path / "storage"
    destination = local_destination(api, storage)
    job = chain_job(api, source, destination["id"])
    full = backed_up_point(api, runtime, job["id"])
    before = stored_bytes(storage)
    full_manifest = (storage / f"{full['backup']['key']}.manifest.json").stat().st_size
    assert full_manifest > 600_000  # every path, each with its SHA-256 and stat fields

    second = backed_up_point(api, runtime, job["id"])
    after = stored_bytes(storage)
    added = {name: size for name, size in after.items() if before.get(name) != size}
    key = second["backup"]["key"]
    assert set(added) == {key, f"{key}.manifest.json"}
    assert sum(added.values()) < 32 * 1024, added
    assert sum(added.values()) < full_manifest / 50
    manifest = manifest_of(storage, key)
    assert manifest["chain"]["listing"] == "changes" and manifest["removed"] == []
    assert len(manifest["files"]) == FOLDERS + 1  # the directories, with their lists
    assert second["run"]["bytes_read"] == 0

    # The point is still whole: GNU tar over the chain, and Mackuper, restore the tree,
    # and the Restore page lists every path of it.
    expected = snapshot(source)
    inside = str(source).lstrip("/")
    by_tar = tmp_path / "by-tar"
    plain_tar_restore([storage / full["backup"]["key"], storage / key], None, by_tar)
    assert snapshot(by_tar / inside) == expected
    by_mackuper = tmp_path / "by-mackuper"
    run = restore(api, runtime, second["backup"]["id"], {"kind": "local", "path": str(by_mackuper)})
    assert run["status"] == "success", run["error"]
    assert snapshot(by_mackuper / inside) == expected
    summary = ok(api, "GET", f"/api/backups/{second['backup']['id']}")["manifest"]
    assert summary["entries"] == FOLDERS * FILES_PER_FOLDER + FOLDERS + 1
    folder = ok(api, "GET", f"/api/backups/{second['backup']['id']}/tree?path={inside}/folder-07")
    assert len(folder["entries"]) == FILES_PER_FOLDER

    # Its whole list needs the full's manifest: without it, verification says the chain
    # is broken and a restore refuses, naming the full.
    full_name = full["backup"]["name"]
    (storage / f"{full['backup']['key']}.manifest.json").unlink()
    verify = {"artifact_id": second["backup"]["id"], "deep": False}
    verified = finished_run(api, runtime, ok(api, "POST", "/api/verify", verify)["run"])
    assert verified["status"] == "failed"
    assert f"chain broken: {full_name}, which this point builds on" in verified["error"]
    refused = restore(
        api, runtime, second["backup"]["id"], {"kind": "local", "path": str(tmp_path / "no")}
    )
    assert refused["status"] == "failed"
    assert f"{full_name}, which this point builds on" in refused["error"]
    assert not (tmp_path / "no").exists()


def test_a_chain_written_with_whole_lists_imports_browses_restores_and_verifies(
    tmp_path: Path, api: ApiClient, runtime: Runtime
) -> None:
    """tests/data/chain-v1: three points written before manifests listed changes only."""
    storage = tmp_path / "storage"
    shutil.copytree(FIXTURE / "documents", storage / "documents")
    expected = json.loads((FIXTURE / "expected.json").read_text())
    archives = sorted(storage.rglob("*.tar.zst"))
    assert len(archives) == len(expected) == 3
    for level in range(3):
        by_tar = tmp_path / f"tar-{level}"
        plain_tar_restore(archives[: level + 1], None, by_tar)
        assert json.loads(json.dumps(snapshot(by_tar / FIXTURE_SOURCE))) == expected[level]

    destination = local_destination(api, storage)
    report = ok(api, "POST", "/api/import", {"destination_id": destination["id"]})["report"]
    assert (report["imported"], report["chain_points"], report["broken_chains"]) == (3, 3, [])
    backups = sorted(ok(api, "GET", "/api/backups")["backups"], key=lambda item: item["key"])
    assert [item["key"] for item in backups] == [
        str(path.relative_to(storage)) for path in archives
    ]
    for level, backup in enumerate(backups):
        target = tmp_path / f"mackuper-{level}"
        run = restore(api, runtime, backup["id"], {"kind": "local", "path": str(target)})
        assert run["status"] == "success", run["error"]
        assert json.loads(json.dumps(snapshot(target / FIXTURE_SOURCE))) == expected[level]

    newest = backups[-1]["id"]
    tree = ok(api, "GET", f"/api/backups/{newest}/tree?path={FIXTURE_SOURCE}")
    names = sorted(entry["name"] for entry in tree["entries"])
    assert names == sorted(name for name in expected[2] if "/" not in name)
    # One file of the newest point, held by the full.
    single = api.call("GET", f"/api/backups/{newest}/extract?path={FIXTURE_SOURCE}/big.bin")
    assert single.status_code == 200
    assert single.get_data() == bytes(range(256)) * 400
    verify = {"artifact_id": newest, "deep": True}
    verified = finished_run(api, runtime, ok(api, "POST", "/api/verify", verify)["run"])
    assert verified["status"] == "success", verified["error"]
