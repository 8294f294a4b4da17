"""Restoring a volume backup into a named volume: a restore run whose target is a volume.

It shares the restore kind's lane and slot, and is told apart by
`details["target"]["kind"] == "volume"`. `Run.details` holds the backup's volume
(`source`), the target volume, whether it is made new (`create`) or its contents are
replaced (`replace`), and the selected paths; a decryption key given for one restore
is kept encrypted with the master key. The engine is the one in Settings.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from mackuper import installation
from mackuper.destinations.base import DestinationError
from mackuper.models import Artifact, Job, Run, RunStatus, RunTrigger
from mackuper.pipeline.age import SCRYPT_MAX_WORK_FACTOR
from mackuper.restore.archives import ByteCount, StoredArchive, open_members
from mackuper.restore.chain import Part, is_chain_point, open_parts, plan_parts
from mackuper.restore.errors import Refused, RestoreError
from mackuper.restore.keys import KeyNeeded, KeyRefused, check_opens
from mackuper.restore.manifest import manifest_files, read_manifest, unsealed
from mackuper.restore.paths import is_selected, member_parts, normalize_selection
from mackuper.restore.request import RestoreRequest
from mackuper.restore.seekable import open_selected
from mackuper.restore.stored import stored_archive
from mackuper.restore.volume import (
    Members,
    VolumeBusy,
    VolumeNotEmpty,
    VolumeReport,
    VolumeStream,
    VolumeTarget,
    backed_up_volumes,
    restore_volume,
)
from mackuper.runs import enqueue
from mackuper.runs.outcome import Outcome
from mackuper.runs.task import Finished, RunContext
from mackuper.runtime import Runtime
from mackuper.sources import engine
from mackuper.sources.base import SourceError
from mackuper.sources.volume import FOLDER

TARGET_KIND = "volume"


def is_volume_restore(details: dict[str, Any]) -> bool:
    target = details.get("target")
    return isinstance(target, dict) and target.get("kind") == TARGET_KIND


def engine_target(session: Session, volume: str) -> VolumeTarget:
    """The volume `volume` of the engine in Settings, reached with its helper image."""
    return VolumeTarget(
        engine.address(installation.container_engine(session)),
        volume,
        installation.container_helper_image(session),
    )


@dataclass
class VolumeRestoreWork:
    archive: StoredArchive
    manifest: dict[str, Any] | None
    parts: list[Part] | None
    target: VolumeTarget
    source: str
    create: bool
    selection: list[tuple[str, ...]]


def _selected(selection: list[tuple[str, ...]]) -> Callable[[str], bool]:
    def selected(name: str) -> bool:
        try:
            return is_selected(member_parts(name), selection)
        except Refused:
            return False

    return selected


def volume_selection(source: str, paths: list[str]) -> list[tuple[str, ...]]:
    """The selected paths (all inside the backup's volume `source`), or the whole volume;
    RestoreError for a path elsewhere."""
    whole: list[tuple[str, ...]] = [(FOLDER, source)]
    selection = normalize_selection(paths) if paths else whole
    for chosen in selection:
        if chosen[:2] != (FOLDER, source):
            raise RestoreError(f"{'/'.join(chosen)} is not in volume {source} of this backup")
    return selection


class VolumeRestoreTask:
    """The work of a volume restore run (runs/restore.py hands it over)."""

    def prepare(
        self, context: RunContext, session: Session, run: Run, job: Job | None
    ) -> VolumeRestoreWork:
        """The archive, the volume in it and the target, checked again now; RestoreError."""
        details = dict(run.details)
        artifact = session.get(Artifact, details.get("artifact_id"))
        if artifact is None:
            raise RestoreError("the backup to restore is no longer in the catalog")
        secrets = context.runtime.secrets.decrypt(details.get("secrets_encrypted"))
        archive = stored_archive(context.runtime, session, artifact, secrets)
        manifest = unsealed(
            read_manifest(archive.destination, archive.key), archive.keys, SCRYPT_MAX_WORK_FACTOR
        )
        target_details = dict(details["target"])
        source = str(target_details["source"])
        selection = volume_selection(source, list(details.get("paths") or []))
        parts = None
        if is_chain_point(manifest):
            parts = plan_parts(archive, manifest, _selected(selection))
        target = engine_target(session, str(target_details["volume"]))
        create = bool(target_details.get("create"))
        try:
            target.check(create, bool(target_details.get("replace")))
        finally:
            target.close()
        return VolumeRestoreWork(archive, manifest, parts, target, source, create, selection)

    def execute(self, context: RunContext, work: VolumeRestoreWork) -> Finished:
        recorder, target = context.recorder, work.target
        whole = work.selection == [(FOLDER, work.source)]
        what = f"volume {work.source}" if whole else f"{len(work.selection)} selected path(s)"
        how = "a new volume" if work.create else "an existing volume"
        recorder.log(
            "info", f"restoring {what} from {work.archive.key} into {target.describe()} ({how})"
        )
        read = ByteCount()

        def on_member(report: VolumeReport, name: str) -> None:
            recorder.progress(
                bytes_read=read.count,
                bytes_written=report.bytes,
                files_done=report.files + report.links,
                current=name,
            )

        try:
            with _open(work, read) as members:
                stream = VolumeStream(members, work.source, work.selection, recorder.log, on_member)
                report = restore_volume(target, work.create, stream)
        finally:
            target.close()
        recorder.log(
            "info",
            f"restored {report.files} file(s), {report.links} link(s), {report.directories}"
            f" folder(s), {report.bytes} bytes into volume {target.volume};"
            f" refused {report.refused}",
        )
        values: dict[str, object] = {
            "bytes_read": read.count,
            "bytes_written": report.bytes,
            "files_done": report.files + report.links,
        }
        outcome = Outcome(RunStatus.SUCCESS, None)
        if report.refused:
            outcome = Outcome(RunStatus.WARNING, f"{report.refused} entr(ies) refused; see the log")
        return Finished(outcome, values, report.as_dict())


def _open(work: VolumeRestoreWork, read: ByteCount) -> AbstractContextManager[Members]:
    """The members to read: from the chain's archives for an incremental point, by
    ranged reads for a selection when the archive has an index, else all in order."""
    if work.parts is not None:
        return open_parts(work.parts, read)
    if work.selection != [(FOLDER, work.source)]:
        return open_selected(work.archive, work.manifest, _selected(work.selection), read)
    return open_members(work.archive, read)


def queue_volume_restore(
    session: Session,
    runtime: Runtime,
    artifact: Artifact,
    details: dict[str, Any],
    secrets: dict[str, str],
    trigger: RunTrigger,
    wake: bool = True,
) -> Run:
    """Queue a volume restore of `artifact` (a key given for it encrypted) and commit,
    waking the workers unless told not to (the CLI runs it itself)."""
    target = details["target"]
    # `path` is what a restore's page shows as its target.
    target = {**target, "kind": TARGET_KIND, "path": f"volume {target['volume']}"}
    request = RestoreRequest({**details, "target": target}, secrets)
    return enqueue.queue_restore(session, runtime, artifact, request, trigger, wake)


def check_volume_restore(
    runtime: Runtime,
    session: Session,
    artifact: Artifact,
    details: dict[str, Any],
    given: dict[str, str],
) -> tuple[str, str] | None:
    """(field, why) the restore `details` describe cannot be queued (the backup holds
    no such volume or paths, the target cannot take it), or None."""
    target = details["target"]
    source = str(target["source"])
    try:
        archive = stored_archive(runtime, session, artifact, given)
        check_opens(archive)
        manifest = unsealed(
            read_manifest(archive.destination, archive.key), archive.keys, SCRYPT_MAX_WORK_FACTOR
        )
    except (KeyNeeded, KeyRefused) as error:
        return "decryption", str(error)
    except (RestoreError, DestinationError) as error:
        return "", str(error)
    volumes = backed_up_volumes([item["path"] for item in manifest_files(manifest)])
    if source not in volumes:
        held = f" (it holds {', '.join(volumes)})" if volumes else " (it holds no volume)"
        return "target.source", f"this backup holds no volume {source}{held}"
    try:
        volume_selection(source, list(details.get("paths") or []))
    except (RestoreError, ValueError) as error:
        return "paths", str(error)
    volume = engine_target(session, str(target["volume"]))
    try:
        volume.check(bool(target.get("create")), bool(target.get("replace")))
    except (VolumeBusy, VolumeNotEmpty) as error:
        return ("" if isinstance(error, VolumeBusy) else "target.replace"), str(error)
    except RestoreError as error:
        engine_down = isinstance(error.__cause__, SourceError)
        return ("" if engine_down else "target.volume"), str(error)
    finally:
        volume.close()
    return None
