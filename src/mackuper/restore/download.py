"""Downloads: a whole archive, or one file or folder taken out of it, as streams.

A single file is streamed from the archive as it is read (tar: the stream is
read until the member is found; zip: only the central directory and the member
are fetched). A folder comes out as an uncompressed tar made on the fly.
Nothing is saved to disk first.
"""

from __future__ import annotations

import contextlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from mackuper.restore.archives import StoredArchive, open_members
from mackuper.restore.errors import Refused, RestoreError
from mackuper.restore.formats import Member, MemberKind, Opener
from mackuper.restore.paths import member_parts
from mackuper.restore.storage import object_size

CHUNK = 1 << 20


@dataclass
class Download:
    filename: str
    size: int | None
    body: Iterator[bytes]
    content_type: str


def download_filename(job_name: str, key: str) -> str:
    """'<job name> - backup_20261126_101500.tar.gz', safe for any file system."""
    cleaned = "".join(
        "_" if character in '/\\:*?"<>|' or ord(character) < 32 else character
        for character in job_name
    ).strip()
    return f"{cleaned} - {key.rsplit('/', 1)[-1]}" if cleaned else key.rsplit("/", 1)[-1]


def whole_archive(archive: StoredArchive, filename: str) -> Download:
    size = object_size(archive.destination, archive.key)
    return Download(
        filename,
        size,
        iter(archive.destination.iter_chunks(archive.key)),
        "application/octet-stream",
    )


def extract_path(archive: StoredArchive, path: str) -> Download:
    """One file (its bytes) or one folder (a tar) out of the archive; raises RestoreError."""
    try:
        wanted = member_parts(path.strip("/"))
    except Refused as error:
        raise RestoreError(f"{path!r} is not a valid path ({error})") from None
    stack = contextlib.ExitStack()
    try:
        members = stack.enter_context(open_members(archive))
        for member, opener in members:
            parts = _parts(member)
            if parts is None or parts[: len(wanted)] != wanted:
                continue
            if parts == wanted and member.kind is MemberKind.FILE and opener is not None:
                handle = stack.enter_context(opener())
                return Download(
                    wanted[-1], member.size, _stream(handle, stack), "application/octet-stream"
                )
            body = _folder_tar(wanted, member, opener, members, stack)
            return Download(wanted[-1] + ".tar", None, body, "application/x-tar")
    except BaseException:
        stack.close()
        raise
    stack.close()
    raise RestoreError(f"{path} is not in this backup")


def _parts(member: Member) -> tuple[str, ...] | None:
    try:
        return member_parts(member.name)
    except Refused:
        return None


def _stream(handle: object, stack: contextlib.ExitStack) -> Iterator[bytes]:
    try:
        read = handle.read  # type: ignore[attr-defined]
        while chunk := read(CHUNK):
            yield chunk
    finally:
        stack.close()


def _tar_header(member: Member, name: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.mode = member.mode & 0o7777
    info.mtime = int(member.mtime)
    if member.kind is MemberKind.DIRECTORY:
        info.type = tarfile.DIRTYPE
    elif member.kind is MemberKind.SYMLINK:
        info.type, info.linkname = tarfile.SYMTYPE, member.link
    elif member.kind is MemberKind.HARDLINK:
        info.type, info.linkname = tarfile.LNKTYPE, member.link
    else:
        info.size = member.size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _folder_tar(
    wanted: tuple[str, ...],
    first: Member,
    first_opener: Opener | None,
    members: Iterator[tuple[Member, Opener | None]],
    stack: contextlib.ExitStack,
) -> Iterator[bytes]:
    """An uncompressed tar of the members under `wanted`, named from the folder down."""
    base = len(wanted) - 1
    written = 0
    try:
        pending: Iterator[tuple[Member, Opener | None]] = iter([(first, first_opener)])
        for source in (pending, members):
            for member, opener in source:
                parts = _parts(member)
                if parts is None or parts[: len(wanted)] != wanted:
                    continue
                if member.kind is MemberKind.SPECIAL or member.refused:
                    continue
                if member.kind is MemberKind.FILE and opener is None:
                    continue
                header = _tar_header(member, "/".join(parts[base:]))
                yield header
                written += len(header)
                if member.kind is MemberKind.FILE and opener is not None:
                    copied = 0
                    with opener() as data:
                        while copied < member.size and (chunk := data.read(CHUNK)):
                            chunk = chunk[: member.size - copied]
                            copied += len(chunk)
                            yield chunk
                    if copied != member.size:
                        raise RestoreError(f"{member.name} is shorter than its header says")
                    padding = -copied % tarfile.BLOCKSIZE
                    yield b"\0" * padding
                    written += copied + padding
        trailer = 2 * tarfile.BLOCKSIZE
        written += trailer
        yield b"\0" * (trailer + (-written % tarfile.RECORDSIZE))
    finally:
        stack.close()
