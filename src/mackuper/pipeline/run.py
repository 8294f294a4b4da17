"""One backup, top to bottom.

Open a writer at every destination, wrap them in meter, compressor and archive
writer, feed the source's entries, then commit each destination and write the
manifest beside each archive. Any error aborts every writer still open, so no
partial archive is ever published.

An encrypted job adds an age stage after the compressor; its manifest keeps a
public header and seals the file list and source (see pipeline/encrypt.py for why).

tar and tar.zst archives can be read from any member: the manifest gives each
entry's `offset` in the tar stream and, for tar.zst, the `index` of its
independent zstd frames (pipeline/seekable.py), so a restore of a few files
fetches only their frames with ranged reads.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mackuper import __version__
from mackuper.core.filehash import FILE_HASH
from mackuper.core.naming import archive_key, manifest_key
from mackuper.destinations.base import ArtifactWriter, Destination, DestinationError
from mackuper.pipeline.age import Recipient
from mackuper.pipeline.archive import ArchiveWriter, TarWriter
from mackuper.pipeline.document import write_document
from mackuper.pipeline.encrypt import AgeEncryptStage, SealedPart, seal_manifest
from mackuper.pipeline.errors import ArchiveNameTaken, PipelineError
from mackuper.pipeline.filelist import IN_MEMORY, FileList
from mackuper.pipeline.incremental import ChainPlan, Incremental, RemoteIncremental
from mackuper.pipeline.seekable import PLAIN_TAR_SCHEME, SeekableZstdStage
from mackuper.pipeline.streams import (
    DEFAULT_LEVELS,
    BackgroundStage,
    FanOut,
    Meter,
    Sink,
    compress_stage,
)
from mackuper.pipeline.zipwriter import ZipWriter
from mackuper.sources.base import Entry, EntryType, Source

MANIFEST_VERSION = 1


class RunHooks(Protocol):
    """What the pipeline tells the outside world (the worker records it)."""

    def log(self, level: str, message: str) -> None: ...

    def progress(
        self, *, bytes_read: int, bytes_written: int, files_done: int, current: str
    ) -> None:
        """Called often; implementations throttle, and raise Cancelled/Interrupted to stop."""
        ...

    def artifact_opened(self, destination_id: int, key: str) -> int:
        """Record an archive about to be written; raises ArchiveNameTaken when another
        run holds `key` at that destination."""
        ...

    def artifact_upload_started(self, artifact_id: int, upload_id: str) -> None: ...

    def artifact_stored(
        self, artifact_id: int, size: int, archive_hash: tuple[str, str]
    ) -> None: ...

    def artifact_discarded(self, artifact_id: int) -> None: ...


@dataclass
class BackupPlan:
    job_id: int
    job_slug: str
    job_name: str
    run_id: int
    archive_format: str
    compression_level: int | None
    source: Source
    destinations: dict[int, Destination]
    started_at: datetime
    encryption: list[Recipient] | None = None
    """age recipients; the archive is encrypted (and named `.age`) when set."""
    chain: ChainPlan | None = None
    """Set for a job making incremental chains (this run being their full or not)."""


@dataclass
class BackupResult:
    archive_name: str
    size: int
    archive_hash: tuple[str, str]
    """(algorithm, hexadecimal digest) of the stored bytes: core/filehash.py's ARCHIVE_HASH."""
    files: int
    bytes_read: int
    problems: list[str] = field(default_factory=list)
    failed_destinations: dict[int, str] = field(default_factory=dict)
    entries: FileList = field(default_factory=FileList)
    """The manifest's entries (path, type, size, a file's hash: FILE_HASH); of a chain's
    point, every path present, an entry held by an earlier archive naming it. A spool:
    the caller closes it."""
    chain: dict[str, Any] | None = None
    """The manifest's `chain` object (pipeline/incremental.py), or None."""
    snapshot: bytes | None = None
    """Of a chain made by the remote GNU tar: its rewritten snapshot (core/snar.py),
    None when the next run cannot build on this point."""


class _Reporter:
    def __init__(self, hooks: RunHooks) -> None:
        self.hooks = hooks
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        self.problems.append(message)
        self.hooks.log("warning", message)

    def note(self, message: str) -> None:
        self.hooks.log("info", message)


class _Progress:
    def __init__(self, hooks: RunHooks) -> None:
        self.hooks = hooks
        self.bytes_read = 0
        self.bytes_written = 0
        self.files_done = 0
        self.current = ""

    def read(self, count: int) -> None:
        self.bytes_read += count
        self.report()

    def written(self, count: int) -> None:
        self.bytes_written += count

    def report(self) -> None:
        self.hooks.progress(
            bytes_read=self.bytes_read,
            bytes_written=self.bytes_written,
            files_done=self.files_done,
            current=self.current,
        )


@functools.cache
def _mode_text(mode: int) -> str:
    """Each mode's manifest text, made once (sources keep 12 mode bits): a run's file list
    holds a few distinct ones, and a new string per file cost 53 bytes of its ~600."""
    return f"{mode:04o}"


def _manifest_entry(entry: Entry) -> dict[str, Any]:
    """A written entry's manifest entry; a file's hash (FILE_HASH) is set by the archive
    writer."""
    item: dict[str, Any] = {
        "path": entry.name,
        "type": entry.type.value,
        "size": entry.size,
        "mode": _mode_text(entry.mode),
        "mtime": entry.mtime,
    }
    if entry.link_target:
        item["link"] = entry.link_target
    if entry.type is EntryType.FILE:
        item[FILE_HASH] = None  # keeps the key's place; the writer fills it in
    return item


MAX_SEQUENCE = 1000
"""Archives of one job in one second before a run gives up looking for a free name."""


@dataclass
class _Opened:
    writers: dict[int, ArtifactWriter] = field(default_factory=dict)
    artifact_ids: dict[int, int] = field(default_factory=dict)
    keys: dict[int, str] = field(default_factory=dict)
    errors: dict[int, DestinationError] = field(default_factory=dict)

    def release(self, hooks: RunHooks, plan: BackupPlan) -> None:
        for destination_id, writer in self.writers.items():
            _discard(hooks, self.artifact_ids[destination_id], writer, plan, destination_id)


def _discard(
    hooks: RunHooks,
    artifact_id: int,
    writer: ArtifactWriter,
    plan: BackupPlan,
    destination_id: int,
) -> None:
    """Abort `writer` and forget its artifact.

    When the destination cannot be reached to abort (an outage that outlasted the
    retries), the artifact stays pending with its upload id, and the worker's
    recovery aborts the upload once the run has ended and the destination answers.
    """
    if writer.abort():
        hooks.artifact_discarded(artifact_id)
        return
    hooks.log(
        "warning",
        f"the unfinished upload at {plan.destinations[destination_id].describe()} could not"
        " be removed now; the worker removes it when the destination answers again",
    )


def _open_writers(plan: BackupPlan, hooks: RunHooks) -> _Opened:
    """Open a writer at every destination, under the first archive name free everywhere.

    A name is free when no other run holds it in the database (checked atomically
    by `artifact_opened`) and no destination stores an archive or a manifest under
    it. The writers refuse to replace an object at commit too, for anything that
    appears meanwhile. One name for all destinations keeps a run's copies alike.
    """
    for sequence in range(1, MAX_SEQUENCE + 1):
        opened = _open_named(plan, hooks, sequence)
        if opened is not None:
            return opened
    raise PipelineError(
        f"no free archive name: {MAX_SEQUENCE} archives of this job already start in this second"
    )


def _open_named(plan: BackupPlan, hooks: RunHooks, sequence: int) -> _Opened | None:
    """Writers under name number `sequence`, or None (all released) when it is taken."""
    opened = _Opened()
    metadata = {"mackuper-job": plan.job_slug, "mackuper-run": str(plan.run_id)}
    for destination_id, destination in plan.destinations.items():
        key = archive_key(
            destination.prefix,
            plan.job_slug,
            plan.started_at,
            plan.archive_format,
            encrypted=plan.encryption is not None,
            sequence=sequence,
        )
        try:
            artifact_id = hooks.artifact_opened(destination_id, key)
        except ArchiveNameTaken:
            opened.release(hooks, plan)
            return None

        def started(upload_id: str, artifact_id: int = artifact_id) -> None:
            hooks.artifact_upload_started(artifact_id, upload_id)

        try:
            if destination.stat(key) is not None or destination.stat(manifest_key(key)) is not None:
                hooks.artifact_discarded(artifact_id)
                opened.release(hooks, plan)
                hooks.log("info", f"{key} exists at {destination.describe()}: taking the next name")
                return None
            writer = destination.open_writer(key, metadata, started)
        except DestinationError as error:
            hooks.artifact_discarded(artifact_id)
            opened.errors[destination_id] = error
            hooks.log("error", f"{destination.describe()}: {error}")
            continue
        opened.writers[destination_id] = writer
        opened.artifact_ids[destination_id] = artifact_id
        opened.keys[destination_id] = key
    for destination_id, key in opened.keys.items():
        hooks.log("info", f"writing {key} to {plan.destinations[destination_id].describe()}")
    return opened


def run_backup(plan: BackupPlan, hooks: RunHooks) -> BackupResult:
    """Stream one archive to every destination of `plan`.

    Returns what was stored (close its `entries` when done with them); raises
    PipelineError (or Cancelled/Interrupted) after aborting every writer when nothing
    could be stored.
    """
    files = FileList()
    try:
        return _run_backup(plan, hooks, files)
    except BaseException:
        files.close()
        raise


def _run_backup(plan: BackupPlan, hooks: RunHooks, files: FileList) -> BackupResult:
    opened = _open_writers(plan, hooks)
    writers, artifact_ids, keys, open_errors = (
        opened.writers,
        opened.artifact_ids,
        opened.keys,
        opened.errors,
    )
    if not writers:
        raise PipelineError(
            "no destination could be opened: " + "; ".join(map(str, open_errors.values()))
        )
    fan_out = FanOut(writers)
    progress = _Progress(hooks)
    reporter = _Reporter(hooks)
    level = plan.compression_level
    stages = _build_stages(plan, fan_out, progress)
    archive, meter = stages.archive, stages.meter
    started = time.monotonic()
    hooks.log(
        "info",
        f"backing up {plan.source.describe()} as {plan.archive_format}"
        f" (level {level if level is not None else DEFAULT_LEVELS.get(plan.archive_format, '-')})",
    )
    incremental: Incremental | RemoteIncremental | None = None
    if plan.chain is not None:
        incremental = (RemoteIncremental if plan.chain.remote else Incremental)(plan.chain)
    if incremental is not None and plan.archive_format == "zip":
        raise PipelineError("incremental backups need a tar format; ZIP is full-only")
    try:
        for entry in plan.source.iter_entries(reporter):
            progress.current = entry.name
            if isinstance(incremental, RemoteIncremental):
                files.extend(incremental.carried_children(entry))
            if incremental is not None and not incremental.select(entry):
                carried = incremental.carried_item(entry)
                if carried is not None:
                    files.append(carried)
                continue
            item = _manifest_entry(entry)
            if archive.add(entry, reporter, item):
                if stages.indexed:
                    item["offset"] = archive.entry_offset  # type: ignore[attr-defined]
                if incremental is not None:
                    item = incremental.written_item(entry, item)
                files.append(item)
                progress.files_done += 1
                progress.report()
            elif incremental is not None and (carried := incremental.carried_item(entry)):
                files.append(carried)  # unreadable now: the earlier version stays the point's
        files.flush()
        archive.close()
        stored = _commit(plan, hooks, fan_out, artifact_ids, meter)
    except BaseException:
        stages.stop()
        for destination_id, writer in {**fan_out.dropped, **fan_out.writers}.items():
            _discard(hooks, artifact_ids[destination_id], writer, plan, destination_id)
        raise
    finally:
        plan.source.close()
    if isinstance(incremental, RemoteIncremental) and incremental.unknown:
        reporter.problem(
            f"{len(incremental.unknown)} path(s) the remote GNU tar kept from an earlier"
            f" point are not in that point's file list (/{incremental.unknown[0]}); the"
            " next backup of this job is a full"
        )
    failed = {**open_errors, **fan_out.errors}
    for destination_id, error in failed.items():
        if destination_id in fan_out.dropped and destination_id not in stored:
            writer = fan_out.dropped[destination_id]
            _discard(hooks, artifact_ids[destination_id], writer, plan, destination_id)
        hooks.log(
            "error", f"destination {plan.destinations[destination_id].describe()} failed: {error}"
        )
    if not stored:
        raise PipelineError("every destination failed: " + "; ".join(map(str, failed.values())))
    archive_name = next(iter(keys[destination_id] for destination_id in stored))
    own_name = archive_name.rsplit("/", 1)[-1]
    chain = plan.chain.chain(own_name) if plan.chain is not None else None
    algorithm, digest = meter.archive_hash
    listing: dict[str, Any] = {"files": files}
    try:
        if plan.chain is not None:
            listing = plan.chain.listed(files)
        manifest = {
            "mackuper_manifest": MANIFEST_VERSION,
            "mackuper_version": __version__,
            "job": {"id": plan.job_id, "slug": plan.job_slug, "name": plan.job_name},
            "run_id": plan.run_id,
            "started_at": plan.started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "format": plan.archive_format,
            "compression_level": level,
            "encryption": None,
            "archive": {"size": meter.size, algorithm: digest},
            "source": plan.source.describe(),
            **listing,
        }
        if chain is not None:
            manifest["chain"] = chain
        if stages.indexed:
            manifest["index"] = stages.index()
        # Database sources list each dump (database, member name, parts, size, tool).
        if databases := getattr(plan.source, "dumped", None):
            manifest["databases"] = databases
        _write_manifest(plan, manifest, {key: keys[key] for key in stored}, reporter)
    except (OSError, PipelineError) as error:  # a temporary directory that cannot take it
        reporter.problem(f"the manifest could not be written anywhere: {error}")
    finally:
        if listing["files"] is not files:
            listing["files"].close()  # an incremental's own list (ChainPlan.listed)
    hooks.log(
        "info",
        f"stored {meter.size} bytes ({algorithm} {digest}) from {progress.files_done} entries"
        f" in {time.monotonic() - started:.1f} s",
    )
    if chain is not None and chain["level"] > 0:
        hooks.log(
            "info",
            f"level {chain['level']} of the chain of {chain['full']}: {progress.files_done}"
            f" entries written, {len(files) - progress.files_done} unchanged ones left in"
            " earlier archives of the chain (never read)",
        )
    return BackupResult(
        archive_name=own_name,
        size=meter.size,
        archive_hash=meter.archive_hash,
        files=progress.files_done,
        bytes_read=progress.bytes_read,
        problems=reporter.problems,
        failed_destinations={key: str(value) for key, value in failed.items()},
        entries=files,
        chain=chain,
        snapshot=(
            getattr(plan.source, "new_snapshot", None)
            if isinstance(incremental, RemoteIncremental) and not incremental.unknown
            else None
        ),
    )


def _write_manifest(
    plan: BackupPlan, manifest: dict[str, Any], keys: dict[int, str], reporter: _Reporter
) -> None:
    """Write `manifest` beside the archive at each destination in `keys` (by id);
    raises OSError or PipelineError when it cannot be spooled.

    The document goes to a spool first (in memory while small, then an unlinked
    temporary file), its file list and sealed part copied in from theirs, and each
    destination reads it from there: no whole copy of a large manifest in memory.
    """
    with contextlib.ExitStack() as spools:
        if plan.encryption is not None:
            manifest = seal_manifest(manifest, plan.encryption)
            for value in manifest.values():
                if isinstance(value, SealedPart):
                    spools.callback(value.close)
        document = spools.enter_context(tempfile.SpooledTemporaryFile(max_size=IN_MEMORY))
        write_document(manifest, document)
        document.flush()  # a full disk says so here, not to a destination's read
        for destination_id, key in keys.items():
            destination = plan.destinations[destination_id]
            try:
                destination.put_file(manifest_key(key), document, "application/json")
            except DestinationError as error:
                reporter.problem(
                    f"manifest could not be written to {destination.describe()}: {error}"
                )


@dataclass
class _Stages:
    archive: ArchiveWriter
    meter: Meter
    threads: list[BackgroundStage]
    frames: SeekableZstdStage | None = None
    indexed: bool = False
    """Tar formats that can be read from any member: plain tar, and tar.zst's frames."""

    def index(self) -> dict[str, object]:
        """The manifest's `index` (read by restore/seekable.py)."""
        if self.frames is not None:
            return self.frames.index()
        return {"scheme": PLAIN_TAR_SCHEME}

    def stop(self) -> None:
        """Stop every stage thread, upstream first; never raises."""
        for stage in self.threads:
            stage.stopped = True  # each drops what reaches it from now on
        for stage in self.threads:
            stage.stop()
        if self.frames is not None:
            self.frames.abort()  # its pool, when no stage thread stopped it


def _build_stages(plan: BackupPlan, fan_out: FanOut, progress: _Progress) -> _Stages:
    """The stage order, in one place:

        archive | compressor | age | meter -> destinations

    Each `|` is a `BackgroundStage`, a thread fed through a bounded queue of 1 MiB
    pieces. The archive writer (reading files, per-file BLAKE3) runs in the calling
    thread; the compressor and the age encryption, when the job has them, each run
    in their own; the archive's BLAKE3 and the destination writes share the last
    one. So on several cores the stages overlap instead of adding up
    (docs/benchmarks.md: tar.zst went from ~3.5 s to ~3.2 s on the 1 GiB corpus
    when the archive hash left the zstd thread). A further thread between the
    meter and the writes was measured too: it cost a copy of every byte and
    gained nothing. `threads` lists the boundaries upstream first.
    """
    level = plan.compression_level
    threads: list[BackgroundStage] = []

    def handoff(downstream: Sink) -> BackgroundStage:
        stage = BackgroundStage(downstream)
        threads.insert(0, stage)
        return stage

    meter = Meter(fan_out, progress.written)
    tail: Sink = handoff(meter)
    if plan.encryption is not None:
        tail = handoff(AgeEncryptStage(tail, plan.encryption))
    disk_bound = all(destination.kind == "local" for destination in plan.destinations.values())
    compressed = compress_stage(plan.archive_format, level, tail, disk_bound=disk_bound)
    if isinstance(compressed, SeekableZstdStage) and compressed.threads:
        # Its pool compresses; the tar writer fills the frames itself, reading files
        # straight into them: no thread between, and no copy of every byte into a
        # hand-off piece and out again (tar.zst through the service: see
        # docs/benchmarks.md, "zero-copy").
        tail = compressed
    elif compressed is not tail:
        tail = handoff(compressed)
    archive: ArchiveWriter
    if plan.archive_format == "zip":
        zip_level = DEFAULT_LEVELS["zip"] if level is None else level
        archive = ZipWriter(tail, progress.read, zip_level)
    else:
        archive = TarWriter(tail, progress.read)
    frames = compressed if isinstance(compressed, SeekableZstdStage) else None
    indexed = frames is not None or plan.archive_format == "tar"
    return _Stages(archive, meter, threads, frames, indexed)


def _commit(
    plan: BackupPlan,
    hooks: RunHooks,
    fan_out: FanOut,
    artifact_ids: dict[int, int],
    meter: Meter,
) -> list[int]:
    stored: list[int] = []
    for destination_id, writer in list(fan_out.writers.items()):
        try:
            result = writer.commit()
        except DestinationError as error:
            fan_out.dropped[destination_id] = fan_out.writers.pop(destination_id)
            fan_out.errors[destination_id] = error
            continue
        fan_out.writers.pop(destination_id)
        hooks.artifact_stored(artifact_ids[destination_id], result.size, meter.archive_hash)
        stored.append(destination_id)
    return stored
