"""Archive members out of a stored object, for all six formats.

Tar formats are read as one forward stream (`tarfile` in stream mode over our own
decompressor, so tar.zst works like the others); headers that announce more
than MAX_HEADER_BYTES of extended data are skipped without being held in
memory, and the member they describe is marked refused. ZIP is read through a
seekable reader, so only its central directory and the chosen members are
fetched.
"""

from __future__ import annotations

import bz2
import enum
import gzip
import io
import lzma
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, BinaryIO, cast

import zstandard

from mackuper.core.naming import ARCHIVE_FORMATS
from mackuper.restore.errors import RestoreError

MAX_HEADER_BYTES = 1024 * 1024
MAX_LINK_BYTES = 4096
ENCRYPTED_SUFFIX = ".age"


class MemberKind(enum.StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    SPECIAL = "special"


@dataclass
class Member:
    name: str
    kind: MemberKind
    size: int
    mode: int
    mtime: float
    link: str = ""
    refused: str | None = None
    """Why the archive reader already refused this member (an oversized header)."""
    special: str = ""
    """What a SPECIAL member is (character device, block device, fifo)."""
    uid: int = 0
    gid: int = 0
    """Owner and group as stored (tar formats; ZIP stores none: root's)."""
    uname: str = ""
    gname: str = ""


Opener = Callable[[], IO[bytes]]


def format_of_key(key: str) -> tuple[str, bool]:
    """(archive format, encrypted) from an object key's extension."""
    name = key.rsplit("/", 1)[-1]
    encrypted = name.endswith(ENCRYPTED_SUFFIX)
    if encrypted:
        name = name[: -len(ENCRYPTED_SUFFIX)]
    for archive_format in sorted(ARCHIVE_FORMATS, key=len, reverse=True):
        if name.endswith("." + ARCHIVE_FORMATS[archive_format]):
            return archive_format, encrypted
    raise RestoreError(f"{key} is not an archive Mackuper can read")


def decompressed(raw: BinaryIO, archive_format: str) -> BinaryIO:
    """The tar stream inside a compressed stream (the same stream for plain tar)."""
    if archive_format == "tar.gz":
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    if archive_format == "tar.bz2":
        return cast(BinaryIO, bz2.BZ2File(raw))
    if archive_format == "tar.xz":
        return cast(BinaryIO, lzma.LZMAFile(raw))
    if archive_format == "tar.zst":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return cast(BinaryIO, reader)
    return raw


_HEADER_TYPES = {
    tarfile.XHDTYPE: "pax extended",
    tarfile.XGLTYPE: "pax global",
    tarfile.SOLARIS_XHDTYPE: "Solaris extended",
    tarfile.GNUTYPE_LONGNAME: "GNU long name",
    tarfile.GNUTYPE_LONGLINK: "GNU long link",
}


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses to load an oversized extended header into memory."""

    refused: str | None = None

    def _proc_member(self, tar: Any) -> Any:
        kind = _HEADER_TYPES.get(self.type)
        if kind is None or self.size <= MAX_HEADER_BYTES:
            return super()._proc_member(tar)  # type: ignore[misc]
        remaining = self._block(self.size)  # type: ignore[attr-defined]
        while remaining:
            chunk = tar.fileobj.read(min(remaining, 1 << 20))
            if not chunk:
                raise tarfile.ReadError("unexpected end of data")
            remaining -= len(chunk)
        follower = self.fromtarfile(tar)
        follower.refused = (
            f"its {kind} header is {self.size} bytes (more than {MAX_HEADER_BYTES} allowed)"
        )
        return follower


def _tar_member(info: tarfile.TarInfo) -> Member:
    if info.isreg():
        kind = MemberKind.FILE
    elif info.isdir():
        kind = MemberKind.DIRECTORY
    elif info.issym():
        kind = MemberKind.SYMLINK
    elif info.islnk():
        kind = MemberKind.HARDLINK
    else:
        kind = MemberKind.SPECIAL
    special = ""
    if info.ischr():
        special = "a character device"
    elif info.isblk():
        special = "a block device"
    elif info.isfifo():
        special = "a named pipe"
    elif kind is MemberKind.SPECIAL:
        special = f"an unsupported tar type ({info.type!r})"
    return Member(
        name=info.name,
        kind=kind,
        size=info.size if kind is MemberKind.FILE else 0,
        mode=info.mode,
        mtime=float(info.mtime),
        link=info.linkname,
        refused=getattr(info, "refused", None),
        special=special,
        uid=info.uid,
        gid=info.gid,
        uname=info.uname,
        gname=info.gname,
    )


class _Forward:
    """A forward-only stream that `tarfile` may treat as seekable: it seeks ahead by
    reading, and refuses to go back.

    Opened this way (mode "r:"), `tarfile` reads each header straight from the
    buffered stream, and a member's bytes are read in one call each (`_MemberData`);
    its stream mode ("r|") reads everything through a 10 KiB buffer that it joins
    and slices again for every read, which cost about a third of a restore's CPU
    in the bench corpus (bench/restore.py).
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.position += len(data)
        return data

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < self.position:
            raise tarfile.StreamError("a streamed archive cannot be read backwards")
        while self.position < offset:
            skipped = self.stream.read(min(offset - self.position, 1 << 20))
            if not skipped:
                break  # tarfile finds the end of the data on its next read
            self.position += len(skipped)
        return self.position


class _MemberData(io.RawIOBase):
    """The `size` bytes of one member, read from where its data starts."""

    def __init__(self, source: _Forward, name: str, size: int) -> None:
        super().__init__()
        self.source = source
        self.name = name
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0 or size > self.left:
            size = self.left
        if size <= 0:
            return b""
        data = self.source.read(size)
        if len(data) < size:
            raise RestoreError(f"the archive is truncated in the middle of {self.name!r}")
        self.left -= size
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def iter_tar_members(stream: BinaryIO) -> Iterator[tuple[Member, Opener | None]]:
    """Members in archive order; an opener is valid only until the next member."""
    source = _Forward(stream)
    try:
        with tarfile.open(
            fileobj=cast(IO[bytes], source),
            mode="r:",
            tarinfo=_BoundedTarInfo,
            errors="surrogateescape",
        ) as tar:
            while (info := tar.next()) is not None:
                tar.members.clear()  # type: ignore[attr-defined] # keep memory flat however many members there are
                member = _tar_member(info)
                opener: Opener | None = None
                if member.kind is MemberKind.FILE and member.refused is None:

                    def opener(info: tarfile.TarInfo = info) -> IO[bytes]:
                        if info.sparse is not None:
                            handle = tar.extractfile(info)
                            if handle is None:
                                raise RestoreError(f"{info.name} has no data")
                            return handle
                        source.seek(info.offset_data)
                        return cast(IO[bytes], _MemberData(source, info.name, info.size))

                yield member, opener
    except tarfile.TarError as error:
        raise RestoreError(f"the archive is damaged or not a tar archive ({error})") from None
    except (EOFError, OSError, lzma.LZMAError, zstandard.ZstdError) as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise
        raise RestoreError(f"the archive is damaged or truncated ({error})") from None


def _zip_member(info: zipfile.ZipInfo) -> Member:
    mode = info.external_attr >> 16
    kind = MemberKind.FILE
    special = ""
    if info.is_dir() or stat.S_ISDIR(mode):
        kind = MemberKind.DIRECTORY
    elif stat.S_ISLNK(mode):
        kind = MemberKind.SYMLINK
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        kind = MemberKind.SPECIAL
        special = "a device or pipe"
    try:
        mtime = datetime(*info.date_time, tzinfo=UTC).timestamp()
    except ValueError:
        mtime = 0.0
    refused = "it is encrypted with ZIP's own encryption" if info.flag_bits & 0x1 else None
    if kind is MemberKind.SYMLINK and info.file_size > MAX_LINK_BYTES:
        refused = "its link target is longer than 4096 bytes"
    return Member(
        name=info.filename,
        kind=kind,
        size=info.file_size if kind is MemberKind.FILE else 0,
        mode=stat.S_IMODE(mode) or (0o755 if kind is MemberKind.DIRECTORY else 0o644),
        mtime=mtime,
        refused=refused,
        special=special,
    )


def iter_zip_members(seekable: BinaryIO) -> Iterator[tuple[Member, Opener | None]]:
    """Members from the central directory; each opener seeks to its member."""
    try:
        archive = zipfile.ZipFile(seekable)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise RestoreError(f"the archive is damaged or not a zip archive ({error})") from None
    with archive:
        for info in archive.infolist():
            member = _zip_member(info)
            if member.kind is MemberKind.SYMLINK and member.refused is None:
                member.link = archive.read(info).decode("utf-8", "surrogateescape")
            opener: Opener | None = None
            if member.kind is MemberKind.FILE and member.refused is None:

                def opener(info: zipfile.ZipInfo = info) -> IO[bytes]:
                    try:
                        return archive.open(info)
                    except (zipfile.BadZipFile, NotImplementedError) as error:
                        raise RestoreError(f"{info.filename} cannot be read ({error})") from None

            yield member, opener
