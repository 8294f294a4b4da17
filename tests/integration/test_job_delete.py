"""Deleting a job keeps its stored backups unless the user asks to delete them too."""

from __future__ import annotations

from pathlib import Path

import pytest

from mackuper.models import Destination
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.integration.restore_support import backed_up, local_destination, ok
from tests.trees import make_small_tree

pytestmark = pytest.mark.integration


def _stored_files(root: Path) -> list[str]:
    return sorted(path.name for path in root.rglob("backup_*") if path.is_file())


def test_deleting_a_job_keeps_its_backups_by_default(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    destination = local_destination(api, store)
    backup = backed_up(api, runtime, make_small_tree(tmp_path / "src"), destination["id"])
    before = _stored_files(store)
    assert len(before) == 2  # the archive and its manifest

    deleted = ok(api, "DELETE", f"/api/jobs/{backup['job_id']}")

    assert deleted == {"ok": True, "backups_deleted": 0}
    assert _stored_files(store) == before


def test_deleting_a_job_with_its_backups_removes_them_everywhere(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    destination = local_destination(api, store)
    backup = backed_up(api, runtime, make_small_tree(tmp_path / "src"), destination["id"])

    deleted = ok(api, "DELETE", f"/api/jobs/{backup['job_id']}", {"delete_backups": True})

    assert deleted == {"ok": True, "backups_deleted": 1}
    assert _stored_files(store) == []
    assert ok(api, "GET", "/api/jobs")["jobs"] == []


def test_a_job_whose_backups_cannot_be_deleted_is_kept(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    destination = local_destination(api, store)
    backup = backed_up(api, runtime, make_small_tree(tmp_path / "src"), destination["id"])
    with runtime.sessions.begin() as session:
        # The destination has become unusable (a relative path is refused when built).
        row = session.get_one(Destination, destination["id"])
        row.config = {"path": "not/absolute"}

    response = api.call("DELETE", f"/api/jobs/{backup['job_id']}", {"delete_backups": True})

    assert response.status_code == 502
    assert "job was kept" in response.get_json()["error"]
    assert len(ok(api, "GET", "/api/jobs")["jobs"]) == 1
    assert len(_stored_files(store)) == 2
