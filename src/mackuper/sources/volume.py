"""Named volumes of a container engine, read through its archive endpoint.

Mackuper need not mount the volumes it backs up. For each volume it creates a
container that mounts it read-only at /volume, never starts it, and asks the engine
for `/volume` as a tar stream (`GET /containers/{id}/archive`, what `docker cp` uses;
Docker and podman serve it from a created container). Any local image will do, since
nothing in it runs: the configured helper image, else the image of a container that
uses the volume, else the first local image. The throwaway container is removed
afterwards.

Container paths (`container:/path`) are read the same way from the named container
itself, running or not, with no helper: a folder or file in its own file system (or
in whatever it mounts there), stored under `containers/<container>/<path>`.

The engine's tar stream is parsed by the same forward-only reader as an SSH source's
remote tar (sources/tar_stream.py), so its files become ordinary entries with their
sizes, modes, owners and times: `volumes/<name>/...` in any archive format, and GNU
tar extracts them as they were in the volume.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from mackuper.sources import engine
from mackuper.sources.base import Entry, EntryType, Reporter, SourceError
from mackuper.sources.tar_stream import (
    DIRECTORY,
    HARDLINK,
    SYMLINK,
    Member,
    TarStreamError,
    TarStreamReader,
)

FOLDER = "volumes"
MOUNT = "/volume"
HELPER_LABEL = "mackuper.helper"
VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""What Docker accepts as a volume's (and a container's) name."""
CONTAINERS_FOLDER = "containers"


def split_container_path(text: str) -> tuple[str, str]:
    """`container:/path` as (container, normalized absolute path); ValueError saying
    what is wrong."""
    container, separator, path = text.partition(":")
    container = container.strip()
    if not separator or not VOLUME_NAME.match(container) or len(container) > 255:
        raise ValueError(
            f"{text[:60]!r} is not container:/path (a container's name, a colon, an absolute path)"
        )
    if not path.startswith("/") or "\x00" in path:
        raise ValueError(f"{text[:60]!r}: the path in the container must be absolute")
    if ".." in path.split("/"):
        raise ValueError(f"{text[:60]!r}: the path must not contain '..'")
    return container, posixpath.normpath(path)


class _MemberReader:
    """The current member's bytes, read straight from the engine's stream."""

    def __init__(self, reader: TarStreamReader) -> None:
        self.reader = reader

    def readinto(self, buffer: memoryview) -> int:
        try:
            return self.reader.readinto(buffer)
        except (TarStreamError, OSError) as error:
            raise SourceError(f"the engine's archive stream broke: {error}") from error

    def read(self, size: int = -1) -> bytes:
        buffer = bytearray(size if size >= 0 else 1 << 20)
        count = self.readinto(memoryview(buffer))
        return bytes(buffer[:count])

    def __enter__(self) -> _MemberReader:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


class Pump:
    """Copies the engine's HTTP chunks into a pipe the tar reader reads with os.readv."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.chunks = chunks
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="volume-archive", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for chunk in self.chunks:
                view = memoryview(chunk)
                while view:
                    written = os.write(self.write_fd, view)
                    view = view[written:]
        except BrokenPipeError:
            pass  # the reader stopped early (cancelled, or it failed): nothing to say
        except Exception as error:  # noqa: BLE001 - reported by the reading side
            self.error = error
        finally:
            os.close(self.write_fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.read_fd)
        self.thread.join(timeout=30)


def _relative(name: str, prefixed: bool, top: str) -> str:
    """A member's path inside the folder asked for ("" for the folder itself).

    Docker names the members of `/volume` `volume`, `volume/a.txt`, ...; podman
    `""`, `/a.txt`, ... for a volume's mount point and like Docker elsewhere:
    `prefixed` says which, from the first member; `top` is the folder's own name.
    """
    name = name.removeprefix("./").strip("/")
    if prefixed:
        return "" if name == top else name.removeprefix(top + "/")
    return "" if name == "." else name


def _entry(
    base: str, top: str, member: Member, prefixed: bool, reader: TarStreamReader, reporter: Reporter
) -> Entry | None:
    """The archive entry, under `base`, of one member of the engine's stream of a folder
    (or file) whose own name is `top`."""
    relative = _relative(member.name, prefixed, top)
    target = f"{base}/{relative}" if relative else base
    kind, link, size = EntryType.DIRECTORY, "", 0
    opener = None
    if member.is_file:
        kind, size = EntryType.FILE, member.size
        opener = cast("Any", lambda: _MemberReader(reader))
    elif member.type == SYMLINK:
        kind, link = EntryType.SYMLINK, member.linkname
    elif member.type == HARDLINK:
        linked = _relative(member.linkname, prefixed, top)
        kind, link = EntryType.HARDLINK, f"{base}/{linked}" if linked else base
    elif member.type != DIRECTORY:
        reporter.note(f"skipped {target}: fifos and devices are not backed up")
        return None
    return Entry(
        name=target,
        type=kind,
        size=size,
        mode=member.mode,
        mtime=member.mtime,
        uid=member.uid,
        gid=member.gid,
        link_target=link,
        open=cast("Any", opener),
    )


def pick_image(client: Any, configured: str, volume: str) -> str:
    """The image of a helper container for `volume`: `configured`, else the image of a
    container using the volume, else the first local image; SourceError when there is
    none (nothing in it runs, so any will do)."""
    if configured:
        return configured
    for container in engine.list_containers(client):
        if volume in container.volumes and container.image:
            return container.image
    with engine.engine_call("listing images"):
        images = client.api.images()
    for image in images:
        tags = [tag for tag in image.get("RepoTags") or [] if "<none>" not in tag]
        return str(tags[0] if tags else image["Id"])
    raise SourceError(
        f"the engine has no image to mount volume {volume} with: pull any image"
        " (nothing in it is run)"
    )


@dataclass
class VolumeSource:
    address: str
    volumes: list[str]
    helper_image: str = ""
    client: Any = None
    helpers: list[str] = field(default_factory=list)
    """Throwaway containers still to remove."""
    pump: Pump | None = None
    container_paths: list[str] = field(default_factory=list)
    """Folders or files inside named containers, `container:/path`, read from the
    container itself (running or not), stored under `containers/<container>/<path>`."""

    def describe(self) -> str:
        parts = [f"volumes {', '.join(self.volumes)}"] if self.volumes else []
        if self.container_paths:
            parts.append(f"container paths {', '.join(self.container_paths)}")
        return f"{' and '.join(parts)} of the container engine at {self.address}"

    def _client(self) -> Any:
        if self.client is None:
            self.client = engine.connect(self.address)
        return self.client

    def _image(self, volume: str) -> str:
        return pick_image(self._client(), self.helper_image, volume)

    def iter_entries(self, reporter: Reporter) -> Iterator[Entry]:
        client = self._client()
        for volume in self.volumes:
            with engine.engine_call(f"volume {volume}"):
                client.api.inspect_volume(volume)
            helper = self._create_helper(volume)
            try:
                yield from self._entries(
                    helper, MOUNT, f"{FOLDER}/{volume}", f"volume {volume}", reporter
                )
            finally:
                self._remove_helper(helper)
        for item in self.container_paths:
            container, path = split_container_path(item)
            try:
                yield from self._entries(
                    container,
                    path,
                    f"{CONTAINERS_FOLDER}/{container}{path.rstrip('/')}",
                    f"{path} of container {container}",
                    reporter,
                )
            finally:
                self._close_pump()

    def _close_pump(self) -> None:
        if self.pump is not None:
            self.pump.close()
            self.pump = None

    def _create_helper(self, volume: str) -> str:
        client = self._client()
        image = self._image(volume)
        with engine.engine_call(f"creating a container to read volume {volume}"):
            created = client.api.create_container(
                image,
                command=["true"],
                name=f"mackuper-read-{volume[:40]}-{secrets.token_hex(4)}",
                labels={HELPER_LABEL: "volume-read"},
                network_disabled=True,
                host_config=client.api.create_host_config(
                    binds={volume: {"bind": MOUNT, "mode": "ro"}}
                ),
            )
        helper = str(created["Id"])
        self.helpers.append(helper)
        return helper

    def _remove_helper(self, helper: str) -> None:
        self._close_pump()
        try:
            with engine.engine_call("removing the reading container"):
                self._client().api.remove_container(helper, force=True)
        except SourceError:
            return  # left for `docker container prune`; it never ran and holds nothing
        if helper in self.helpers:
            self.helpers.remove(helper)

    def _entries(
        self, container: str, path: str, base: str, what: str, reporter: Reporter
    ) -> Iterator[Entry]:
        """The entries, under `base`, of `path` in `container` as the engine streams it."""
        top = posixpath.basename(path.rstrip("/")) or "/"
        with engine.engine_call(f"reading {what}"):
            chunks, _stat = self._client().api.get_archive(container, path, chunk_size=1 << 20)
        self.pump = Pump(chunks)
        reader = TarStreamReader(self.pump.read_fd)
        count = 0
        prefixed: bool | None = None
        while True:
            try:
                member = reader.next()
            except (TarStreamError, OSError) as error:
                why = self.pump.error
                raise SourceError(f"reading {what} failed: {why or error}") from (why or error)
            if member is None:
                break
            if prefixed is None:
                prefixed = member.name.strip("/") == top
            entry = _entry(base, top, member, prefixed, reader, reporter)
            if entry is not None:
                count += 1
                yield entry
        if self.pump.error is not None:
            raise SourceError(f"reading {what} failed: {self.pump.error}")
        reporter.note(f"{what}: {count} entries read through the engine's archive API")

    def close(self) -> None:
        for helper in list(self.helpers):
            self._remove_helper(helper)
        if self.client is not None:
            self.client.close()
            self.client = None
