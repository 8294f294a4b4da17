"""A volume backup written back into a named volume of the container engine.

The members of one volume (`volumes/<name>/...`, sources/volume.py) of a stored
archive, whole or the selected paths, become one tar stream made on the fly and sent
to the engine's archive endpoint (`PUT /containers/{id}/archive`, what `docker cp`
into a container uses) of a helper container that mounts the target volume read-write
at /volume. The helper is created from the image in Settings (else as a volume backup
picks one), never started, and removed afterwards even when the restore fails. The
engine unpacks the stream as root, so owners, modes, times, symbolic links, hard links
and empty folders come back as stored; nothing is staged on disk on the way.

The target is a new volume (made here, and removed again when the restore fails), or
an existing one that no running container uses (refused, naming those that run). An
existing volume that holds anything is written only when the request says to replace
its contents: then the backup's files, links and folders replace those at the same
paths, and anything else in the volume stays (the archive endpoint adds and
overwrites; it never deletes). A restore that fails part-way into an existing volume
leaves what it had written.

The volume's own top folder: podman gives it the stored mode and time (not the
owner), Docker keeps the one the volume was made with.
"""

from __future__ import annotations

import contextlib
import secrets
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mackuper.restore.errors import Refused, RestoreError
from mackuper.restore.formats import Member, MemberKind, Opener
from mackuper.restore.paths import is_selected, member_parts
from mackuper.sources import engine
from mackuper.sources.base import SourceError
from mackuper.sources.tar_stream import TarStreamError, TarStreamReader
from mackuper.sources.volume import FOLDER, HELPER_LABEL, MOUNT, VOLUME_NAME, Pump, pick_image

CHUNK = 1 << 20
BLOCK = 512
SHOWN_PRESENT = 50
"""At most this many of the backup's top-level names are looked up in the volume."""

Members = Iterator[tuple[Member, Opener | None]]


class VolumeBusy(RestoreError):
    """A running container uses the volume."""


class VolumeNotEmpty(RestoreError):
    """The volume holds files and the request did not say to replace them."""


def check_volume_name(name: str) -> str | None:
    """Why `name` cannot name a volume, or None."""
    if not name or len(name) > 255 or not VOLUME_NAME.match(name):
        return (
            f"{name[:40]!r} is not a volume name (letters, digits, _ . -; a letter or digit first)"
        )
    return None


def backed_up_volumes(paths: list[str]) -> list[str]:
    """The volumes a backup holds, from its manifest's paths (`volumes/<name>/...`)."""
    found: list[str] = []
    for path in paths:
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == FOLDER and parts[1] and parts[1] not in found:
            found.append(parts[1])
    return found


def top_names(paths: list[str], volume: str, selection: list[tuple[str, ...]]) -> list[str]:
    """The names directly in the volume that a restore of `selection` writes."""
    names: list[str] = []
    for path in paths:
        parts = tuple(part for part in path.strip("/").split("/") if part)
        if len(parts) < 3 or parts[:2] != (FOLDER, volume):
            continue
        if is_selected(parts, selection) and parts[2] not in names:
            names.append(parts[2])
    return names


@dataclass(frozen=True)
class VolumeState:
    """What is known of a target volume before anything is written to it."""

    exists: bool
    empty: bool = True
    users: list[tuple[str, str]] = field(default_factory=list)
    """(container, state) of every container that mounts it."""
    present: list[str] = field(default_factory=list)
    """Of the names asked about, those that are in the volume now."""

    @property
    def running(self) -> list[str]:
        return [name for name, status in self.users if status not in {"exited", "created", "dead"}]


@dataclass
class VolumeTarget:
    """One named volume of the engine at `address`, and how to reach its files."""

    address: str
    volume: str
    helper_image: str = ""
    client: Any = None

    def describe(self) -> str:
        return f"volume {self.volume} of the container engine at {self.address}"

    def _client(self) -> Any:
        if self.client is None:
            self.client = engine.connect(self.address)
        return self.client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def state(self, names: list[str] | None = None) -> VolumeState:
        """Whether the volume exists, who uses it, whether it is empty, and which of
        `names` (at most SHOWN_PRESENT) it holds; EngineError when the engine fails."""
        client = self._client()
        with engine.engine_call("listing volumes"):
            found = client.api.volumes(filters={"name": self.volume}).get("Volumes") or []
        if not any(item.get("Name") == self.volume for item in found):
            return VolumeState(exists=False)
        users = [
            (container.name, container.status)
            for container in engine.list_containers(client)
            if self.volume in container.volumes
        ]
        with self.helper(writable=False) as helper:
            empty = self._is_empty(helper)
            asked = (names or [])[:SHOWN_PRESENT]
            present = [] if empty else [name for name in asked if self._has(helper, name)]
        return VolumeState(exists=True, empty=empty, users=users, present=present)

    def check(self, create: bool, replace: bool) -> VolumeState:
        """The volume's state when a restore may write into it; RestoreError saying why
        not (a new one exists, an existing one is missing, in use by a running
        container, or not empty without `replace`)."""
        try:
            state = self.state()
        except SourceError as error:
            raise RestoreError(str(error)) from error
        if create and state.exists:
            raise RestoreError(
                f"volume {self.volume} already exists: choose a new name, or restore into"
                " it as an existing volume"
            )
        if not create and not state.exists:
            raise RestoreError(f"there is no volume {self.volume} on the container engine")
        if state.running:
            raise VolumeBusy(
                f"volume {self.volume} is in use by running container(s)"
                f" {', '.join(state.running)}: stop them first"
            )
        if state.exists and not state.empty and not replace:
            raise VolumeNotEmpty(
                f"volume {self.volume} is not empty: confirm that the backup's files replace"
                " those at the same paths in it"
            )
        return state

    @contextlib.contextmanager
    def helper(self, writable: bool) -> Iterator[str]:
        """A created (never started) container mounting the volume at /volume; removed
        afterwards whatever happens."""
        client = self._client()
        image = pick_image(client, self.helper_image, self.volume)
        with engine.engine_call(f"creating a container to reach volume {self.volume}"):
            created = client.api.create_container(
                image,
                command=["true"],
                name=f"mackuper-restore-{self.volume[:40]}-{secrets.token_hex(4)}",
                labels={HELPER_LABEL: "volume-restore" if writable else "volume-read"},
                network_disabled=True,
                host_config=client.api.create_host_config(
                    binds={self.volume: {"bind": MOUNT, "mode": "rw" if writable else "ro"}}
                ),
            )
        helper = str(created["Id"])
        try:
            yield helper
        finally:
            # When this fails it is left for `docker container prune`; it never ran.
            with (
                contextlib.suppress(SourceError),
                engine.engine_call("removing the helper container"),
            ):
                client.api.remove_container(helper, force=True)

    def _is_empty(self, helper: str) -> bool:
        """Whether /volume holds nothing: its tar stream has no second member (only the
        first two headers are read)."""
        with engine.engine_call(f"reading volume {self.volume}"):
            chunks, _stat = self._client().api.get_archive(helper, MOUNT, chunk_size=1 << 16)
        pump = Pump(chunks)
        try:
            reader = TarStreamReader(pump.read_fd)
            first = reader.next()
            return first is None or reader.next() is None
        except (TarStreamError, OSError) as error:
            raise engine.EngineError(f"reading volume {self.volume} failed: {error}") from error
        finally:
            pump.close()

    def _has(self, helper: str, name: str) -> bool:
        client = self._client()
        url = client.api._url("/containers/{0}/archive", helper)  # noqa: SLF001 - HEAD has no SDK call
        with engine.engine_call(f"looking at {name} in volume {self.volume}"):
            answer = client.api.head(url, params={"path": f"{MOUNT}/{name}"})
        return bool(answer.status_code == 200)

    def create(self) -> None:
        with engine.engine_call(f"creating volume {self.volume}"):
            self._client().api.create_volume(self.volume)

    def remove(self) -> None:
        with engine.engine_call(f"removing volume {self.volume}"):
            self._client().api.remove_volume(self.volume)

    def put(self, helper: str, stream: Iterator[bytes]) -> None:
        with engine.engine_call(f"writing into volume {self.volume}"):
            self._client().api.put_archive(helper, MOUNT, stream)


@dataclass
class VolumeReport:
    files: int = 0
    links: int = 0
    directories: int = 0
    bytes: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "files": self.files,
            "links": self.links,
            "directories": self.directories,
            "bytes": self.bytes,
            "refused": self.refused,
        }


def _header(name: str, member: Member, kind: bytes, size: int = 0, link: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = member.mode & 0o7777
    info.mtime = int(member.mtime) if member.mtime == int(member.mtime) else member.mtime
    info.uid, info.gid = member.uid, member.gid
    info.uname, info.gname = member.uname, member.gname
    info.linkname = link
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class VolumeStream:
    """The tar stream of one volume's members of a stored archive, renamed to be
    relative to the volume, as an iterator of chunks for the engine's upload.

    An error while reading the archive (or a cancel) is kept in `error` and raised
    into the upload, so the engine sees a broken request, never a clean end.
    """

    def __init__(
        self,
        members: Members,
        source: str,
        selection: list[tuple[str, ...]],
        log: Callable[[str, str], None],
        on_member: Callable[[VolumeReport, str], None],
    ) -> None:
        self.members = members
        self.prefix = (FOLDER, source)
        self.selection = selection
        self.whole = selection in ([], [self.prefix])
        self.log = log
        self.on_member = on_member
        self.report = VolumeReport()
        self.error: BaseException | None = None
        self.written: set[tuple[str, ...]] = set()
        """Files written so far: a hard link may name only one of them."""
        self.links: set[tuple[str, ...]] = set()
        """Symbolic links written so far: nothing is written beneath one."""

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks()
        except BaseException as error:
            self.error = error
            raise

    def _refuse(self, name: str, why: str) -> None:
        self.report.refused += 1
        self.log("warning", f"not restored {name}: {why}")

    def _chunks(self) -> Iterator[bytes]:
        for member, opener in self.members:
            try:
                parts = member_parts(member.name)
            except Refused as error:
                self._refuse(member.name, str(error))
                continue
            if parts[:2] != self.prefix:
                continue
            inside = parts[2:]
            # The volume's own folder comes back (its mode and time) only when all of it does.
            if not is_selected(parts, self.selection) or (not inside and not self.whole):
                continue
            name = "/".join(inside) or "."
            if member.refused is not None:
                self._refuse(name, member.refused)
                continue
            if any(inside[:depth] in self.links for depth in range(1, len(inside))):
                self._refuse(name, "a folder on its path is a symbolic link")
                continue
            yield from self._member(name, inside, member, opener)
            self.on_member(self.report, name)
        yield b"\0" * (BLOCK * 2)

    def _member(
        self, name: str, inside: tuple[str, ...], member: Member, opener: Opener | None
    ) -> Iterator[bytes]:
        report = self.report
        if member.kind is MemberKind.DIRECTORY:
            report.directories += 1
            yield _header(name, member, tarfile.DIRTYPE)
        elif member.kind is MemberKind.SYMLINK:
            report.links += 1
            self.links.add(inside)
            yield _header(name, member, tarfile.SYMTYPE, link=member.link)
        elif member.kind is MemberKind.HARDLINK:
            try:
                target = member_parts(member.link)
            except Refused:
                target = ()
            if target[:2] != self.prefix or target[2:] not in self.written:
                self._refuse(name, f"it is a hard link to {member.link}, which is not restored")
                return
            report.links += 1
            yield _header(name, member, tarfile.LNKTYPE, link="/".join(target[2:]))
        elif member.kind is MemberKind.FILE and opener is not None:
            yield _header(name, member, tarfile.REGTYPE, size=member.size)
            left = member.size
            with opener() as data:
                while left:
                    chunk = data.read(min(CHUNK, left))
                    if not chunk:
                        raise RestoreError(f"the archive ended in the middle of {member.name}")
                    left -= len(chunk)
                    report.bytes += len(chunk)
                    yield chunk
            if member.size % BLOCK:
                yield b"\0" * (BLOCK - member.size % BLOCK)
            report.files += 1
            self.written.add(inside)
        else:
            self._refuse(name, f"it is {member.special or 'not a file, link or folder'}")


def restore_volume(
    target: VolumeTarget,
    create: bool,
    stream: VolumeStream,
) -> VolumeReport:
    """Write `stream` into the target volume (made first when `create`); its report.

    Raises RestoreError when the engine refuses or reading the archive fails (that
    error itself, or a cancel, as raised); a volume made here is removed again then.
    """
    if create:
        try:
            target.create()
        except SourceError as error:
            raise RestoreError(str(error)) from error
    try:
        with target.helper(writable=True) as helper:
            target.put(helper, iter(stream))
    except BaseException as error:
        if create:
            with contextlib.suppress(SourceError):
                target.remove()
        if stream.error is not None and stream.error is not error:
            raise stream.error from error
        if isinstance(error, SourceError):
            raise RestoreError(str(error)) from error
        raise
    return stream.report
