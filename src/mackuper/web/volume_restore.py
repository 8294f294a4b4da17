"""Restoring a volume backup into a named volume: what the target holds (for the
Restore page's confirmation), and queuing the restore."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from mackuper.destinations.base import DestinationError
from mackuper.models import Artifact, ArtifactState, RunTrigger
from mackuper.restore.errors import RestoreError
from mackuper.restore.keys import KeyNeeded, KeyRefused, check_opens
from mackuper.restore.manifest import manifest_files, read_manifest, unsealed
from mackuper.restore.stored import stored_archive
from mackuper.restore.volume import backed_up_volumes, top_names
from mackuper.runs.volume_restore import (
    check_volume_restore,
    engine_target,
    queue_volume_restore,
    volume_selection,
)
from mackuper.schemas.answers import RunAnswer
from mackuper.schemas.api import DecryptionKeys
from mackuper.schemas.volumes import VolumeCheckBody, VolumeRestoreBody, VolumeStateAnswer
from mackuper.sources.base import SourceError
from mackuper.web.database import get_db, runtime
from mackuper.web.forms import fail, field_errors
from mackuper.web.operations import operation
from mackuper.web.security import login_required
from mackuper.web.serialize import run_json

blueprint = Blueprint("volume_restore", __name__, url_prefix="/api/restore/volume")


def _sentence(error: Exception | str) -> str:
    text = str(error).rstrip(".")
    return text[:1].upper() + text[1:] + "."


def _given(decryption: DecryptionKeys | None) -> dict[str, str]:
    """A key or passphrase sent with this request only: used for it, never stored or logged."""
    if decryption is None:
        return {}
    given = {"key_identity": decryption.identity, "key_passphrase": decryption.passphrase}
    return {name: value for name, value in given.items() if value}


def _artifact(artifact_id: int) -> Artifact:
    artifact = get_db().get(Artifact, artifact_id)
    if artifact is None or artifact.state != ArtifactState.STORED.value:
        fail("No such stored backup.", 404)
    return artifact


def _paths(artifact: Artifact, given: dict[str, str]) -> list[str]:
    """The backup's file list; a 422 on `decryption` when it is sealed without a key."""
    try:
        archive = stored_archive(runtime(), get_db(), artifact, given)
        check_opens(archive)
        manifest = unsealed(read_manifest(archive.destination, archive.key), archive.keys)
    except (KeyNeeded, KeyRefused) as error:
        field_errors({"decryption": _sentence(error)})
    except (RestoreError, DestinationError) as error:
        fail(_sentence(error), 409)
    return [str(item["path"]) for item in manifest_files(manifest)]


@blueprint.post("/check")
@login_required
@operation(
    "What a volume holds before a backup's volume is restored into it: whether it exists"
    " and is empty, the containers using it (and which run), and which of the names the"
    " restore writes it holds now",
    body=VolumeCheckBody,
    responses={200: VolumeStateAnswer},
)
def check_volume_target(body: VolumeCheckBody) -> Response:
    paths = _paths(_artifact(body.artifact_id), _given(body.decryption))
    volumes = backed_up_volumes(paths)
    if body.source not in volumes:
        held = f" (it holds {', '.join(volumes)})" if volumes else " (it holds no volume)"
        field_errors({"source": f"This backup holds no volume {body.source}{held}."})
    try:
        selection = volume_selection(body.source, body.paths)
    except (RestoreError, ValueError) as error:
        field_errors({"paths": _sentence(error)})
    writes = top_names(paths, body.source, selection)
    target = engine_target(get_db(), body.volume)
    try:
        state = target.state(writes)
    except SourceError as error:
        fail(_sentence(error), 409)
    finally:
        target.close()
    answer: dict[str, Any] = {
        "volume": body.volume,
        "exists": state.exists,
        "empty": state.empty,
        "containers": [{"name": name, "status": status} for name, status in state.users],
        "running": state.running,
        "writes": writes,
        "overwritten": state.present,
    }
    return jsonify(answer)


@blueprint.post("")
@login_required
@operation(
    "Queue a restore of a backup's volume (whole, or the selected paths) into a new volume,"
    " or an existing one no running container uses",
    body=VolumeRestoreBody,
    responses={202: RunAnswer},
)
def start_volume_restore(body: VolumeRestoreBody) -> tuple[Response, int]:
    """A new volume must not exist yet. An existing one that holds anything is written
    only with `replace` and its name typed again in `confirm`; its files at the paths the
    backup holds are replaced, and nothing else is removed. Checked against the engine
    now, before anything is queued, and again when the run starts."""
    target = body.target
    if target.replace and target.confirm != target.volume:
        field_errors(
            {
                "target.confirm": f"Type {target.volume} to confirm that the backup's files"
                " replace those at the same paths in this volume."
            }
        )
    artifact = _artifact(body.artifact_id)
    given = _given(body.decryption)
    details = {
        "paths": list(body.paths),
        "target": target.model_dump(mode="json", exclude={"confirm"}),
    }
    problem = check_volume_restore(runtime(), get_db(), artifact, details, given)
    if problem is not None:
        field, why = problem
        if field:
            field_errors({field: _sentence(why)})
        fail(_sentence(why), 409)
    run = queue_volume_restore(get_db(), runtime(), artifact, details, given, RunTrigger.MANUAL)
    return jsonify(run=run_json(run)), 202
