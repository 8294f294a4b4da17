"""Downloads: a whole archive, or one file or folder taken out of it, as streams.

A single file is streamed from the archive as it is read: tar and tar.zst
archives with an index in their manifest fetch only the frames that hold it
(restore/seekable.py), zip only its central directory and the member, other
formats are read from the start until the member is found. A folder comes out
as an uncompressed tar made on the fly. Nothing is saved to disk first.

A hard link's second name is a file like any other to the person downloading
it: its bytes are those of its first name, which came earlier in the archive,
so the archive is read once more for them (for a folder, only when the first
name lies outside the folder).

A database dump (sources/dump.py stores it as `<path>.part000001`, `...part000002`)
comes out as one file: its parts, in order, joined, decrypted and decompressed like
any member; with an index only the frames that hold them are fetched.

A point of an incremental chain (restore/chain.py) gives a file from the one archive
of its chain that holds it, and a folder from the archives holding its contents.
"""

from __future__ import annotations

import contextlib
import itertools
import posixpath
import tarfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mackuper.restore.archives import StoredArchive, open_members
from mackuper.restore.chain import (
    chain_holder,
    is_chain_point,
    open_parts,
    plan_parts,
    point_manifest,
)
from mackuper.restore.database import dump_members
from mackuper.restore.errors import Refused, RestoreError
from mackuper.restore.formats import Member, MemberKind, Opener
from mackuper.restore.manifest import read_manifest, unsealed
from mackuper.restore.paths import member_parts
from mackuper.restore.seekable import open_selected
from mackuper.restore.storage import object_size
from mackuper.sources.dump import PART_SUFFIX

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
    manifest = point_manifest(archive, _manifest_of(archive))
    holder = chain_holder(archive, manifest, wanted)
    if holder is not None:
        # One file of an incremental point: from the one archive of its chain holding it,
        # whose own manifest lists it (nothing to fold there).
        return _extract(holder, _manifest_of(holder), wanted, path)
    return _extract(archive, manifest, wanted, path)


def _extract(
    archive: StoredArchive, manifest: dict[str, Any] | None, wanted: tuple[str, ...], path: str
) -> Download:
    path = "/".join(wanted)

    def selected(name: str) -> bool:
        parts = _parts_of(name)
        return parts is not None and parts[: len(wanted)] == wanted

    stack = contextlib.ExitStack()
    try:
        if is_chain_point(manifest):
            needed = plan_parts(archive, manifest or {}, selected)
            members = stack.enter_context(open_parts(needed))
        else:
            members = stack.enter_context(open_selected(archive, manifest, selected))
        for member, opener in members:
            parts = _parts(member)
            if parts is None or parts[: len(wanted)] != wanted:
                continue
            if parts == wanted and member.kind is MemberKind.FILE and opener is not None:
                handle = stack.enter_context(opener())
                return Download(
                    wanted[-1], member.size, _stream(handle, stack), "application/octet-stream"
                )
            if parts == wanted and member.kind is MemberKind.HARDLINK:
                stack.close()
                return _hard_link_file(archive, manifest, wanted, member.link)
            body = _folder_tar(archive, manifest, wanted, member, opener, members, stack)
            return Download(wanted[-1] + ".tar", None, body, "application/x-tar")
    except BaseException:
        stack.close()
        raise
    stack.close()
    raise RestoreError(f"{path} is not in this backup")


def point_tar(archive: StoredArchive, filename: str) -> Download:
    """The whole backup as one plain, uncompressed and decrypted tar made on the fly;
    for a point of an incremental chain, everything present at that point, each file
    read from the archive of the chain holding it. Raises RestoreError for ZIP."""
    if archive.archive_format == "zip":
        raise RestoreError("a ZIP backup downloads as stored")
    manifest = point_manifest(archive, _manifest_of(archive))
    stack = contextlib.ExitStack()
    try:
        if is_chain_point(manifest):
            needed = plan_parts(archive, manifest or {}, lambda _name: True)
            members = stack.enter_context(open_parts(needed))
        else:
            members = stack.enter_context(open_members(archive))
        first = next(members, None)
        if first is None:
            raise RestoreError("this backup holds nothing")
    except BaseException:
        stack.close()
        raise
    body = _folder_tar(archive, manifest, (), first[0], first[1], members, stack)
    return Download(_plain_tar_name(filename), None, body, "application/x-tar")


def _plain_tar_name(filename: str) -> str:
    """'Job - backup_20261201_020000.tar.zst.age' -> 'Job - backup_20261201_020000.tar'."""
    stem = filename.removesuffix(".age")
    for extension in (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tar"):
        if stem.endswith(extension):
            return stem[: -len(extension)] + ".tar"
    return stem + ".tar"


def dump_filename(path: str) -> str:
    """The file name a dump downloads as: its member name's last part, `%XX` decoded
    (`postgresql/app.dump` -> `app.dump`, `redis/dump.rdb` -> `dump.rdb`)."""
    return urllib.parse.unquote(posixpath.basename(path), errors="replace") or "dump"


def database_dump(
    archive: StoredArchive, manifest: dict[str, Any] | None, path: str, size: int | None
) -> Download:
    """The dump stored as `path` (the manifest's `path`) as one stream: its parts joined.

    `size` (the manifest's) is announced as the length; RestoreError when the archive
    holds no such dump, or a part is missing (found while streaming: the download
    then stops short of `size`).
    """
    prefix = path + PART_SUFFIX
    stack = contextlib.ExitStack()
    try:
        members = stack.enter_context(
            open_selected(archive, manifest, lambda name: name.startswith(prefix))
        )
        parts = dump_members(members, path)
        first = next(parts)  # RestoreError now when there is none
    except BaseException:
        stack.close()
        raise

    def body() -> Iterator[bytes]:
        try:
            for _member, opener in itertools.chain([first], parts):
                with opener() as part:
                    while chunk := part.read(CHUNK):
                        yield chunk
        finally:
            stack.close()

    return Download(dump_filename(path), size, body(), "application/octet-stream")


def _hard_link_file(
    archive: StoredArchive, manifest: dict[str, Any] | None, wanted: tuple[str, ...], link: str
) -> Download:
    """The bytes of the hard link's first name, `link`, under the name `wanted`."""
    source = _parts_of(link)
    stack = contextlib.ExitStack()
    try:
        members = open_selected(archive, manifest, lambda name: _parts_of(name) == source)
        for member, opener in stack.enter_context(members):
            if member.kind is MemberKind.FILE and opener is not None and _parts(member) == source:
                handle = stack.enter_context(opener())
                return Download(
                    wanted[-1], member.size, _stream(handle, stack), "application/octet-stream"
                )
    except BaseException:
        stack.close()
        raise
    stack.close()
    raise RestoreError(f"{'/'.join(wanted)} is a hard link to {link}, which is not in this backup")


def _manifest_of(archive: StoredArchive) -> dict[str, Any] | None:
    """The archive's manifest with its file list opened, or None when it cannot be read
    (the archive is then read as one stream)."""
    try:
        return unsealed(read_manifest(archive.destination, archive.key), archive.keys)
    except RestoreError:
        return None


def _parts_of(name: str) -> tuple[str, ...] | None:
    try:
        return member_parts(name)
    except Refused:
        return None


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


def _file_entry(member: Member, opener: Opener, name: str) -> Iterator[bytes]:
    """A regular file's tar header, bytes and padding."""
    yield _tar_header(member, name)
    copied = 0
    with opener() as data:
        while copied < member.size and (chunk := data.read(CHUNK)):
            chunk = chunk[: member.size - copied]
            copied += len(chunk)
            yield chunk
    if copied != member.size:
        raise RestoreError(f"{member.name} is shorter than its header says")
    yield b"\0" * (-copied % tarfile.BLOCKSIZE)


def _folder_tar(
    archive: StoredArchive,
    manifest: dict[str, Any] | None,
    wanted: tuple[str, ...],
    first: Member,
    first_opener: Opener | None,
    members: Iterator[tuple[Member, Opener | None]],
    stack: contextlib.ExitStack,
) -> Iterator[bytes]:
    """An uncompressed tar of the members under `wanted`, named from the folder down.

    Hard links keep linking inside the folder; one whose first name lies outside
    it becomes a regular file with that name's bytes, read in a second pass.
    """
    base = max(len(wanted) - 1, 0)
    written = 0
    emitted: dict[tuple[str, ...], str] = {}
    orphans: dict[tuple[str, ...], list[tuple[Member, str]]] = {}
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
                name = "/".join(parts[base:])
                if member.kind is MemberKind.HARDLINK:
                    link_source = _parts_of(member.link)
                    if link_source is None:
                        continue
                    if link_source not in emitted:
                        orphans.setdefault(link_source, []).append((member, name))
                        continue
                    member = Member(
                        member.name,
                        member.kind,
                        0,
                        member.mode,
                        member.mtime,
                        link=emitted[link_source],
                    )
                if member.kind is MemberKind.FILE and opener is not None:
                    pieces: Iterator[bytes] = _file_entry(member, opener, name)
                else:
                    pieces = iter([_tar_header(member, name)])
                for piece in pieces:
                    written += len(piece)
                    yield piece
                if member.kind in {MemberKind.FILE, MemberKind.HARDLINK}:
                    emitted[parts] = name
        stack.close()
        for piece in _adopted_hard_links(archive, manifest, orphans):
            written += len(piece)
            yield piece
        trailer = 2 * tarfile.BLOCKSIZE
        written += trailer
        yield b"\0" * (trailer + (-written % tarfile.RECORDSIZE))
    finally:
        stack.close()


def _adopted_hard_links(
    archive: StoredArchive,
    manifest: dict[str, Any] | None,
    orphans: dict[tuple[str, ...], list[tuple[Member, str]]],
) -> Iterator[bytes]:
    """Hard links whose first name lies outside the folder, as files with its bytes."""
    if not orphans:
        return
    with open_selected(archive, manifest, lambda name: _parts_of(name) in orphans) as members:
        for member, opener in members:
            waiting = orphans.get(_parts(member) or ()) if member.kind is MemberKind.FILE else None
            if not waiting or opener is None:
                continue
            (first, first_name), *others = waiting
            yield from _file_entry(
                Member(first_name, MemberKind.FILE, member.size, member.mode, member.mtime),
                opener,
                first_name,
            )
            for other, name in others:
                link = Member(other.name, MemberKind.HARDLINK, 0, other.mode, other.mtime)
                link.link = first_name
                yield _tar_header(link, name)
