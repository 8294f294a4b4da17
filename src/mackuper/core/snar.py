"""GNU tar's own incremental state, for SSH sources in tar mode (issue 17).

An SSH source's chain is made by the remote GNU tar itself: `tar
--listed-incremental=FILE` decides what changed since the snapshot file FILE and
rewrites it. Mackuper keeps that file's contents (the `.snar`) in the database, one per
job, beside the chain's file-list state, hands it to the remote tar before each
incremental and keeps the rewritten one only when tar ended well.

Snapshot format 2 (GNU tar 1.20 and later): the line `GNU tar-VERSION-2`, then
NUL-terminated fields: the dump's time (seconds, nanoseconds), then per directory
`nfs mtime_s mtime_ns dev ino name`, its dumpdir entries, and two NULs.

Before it is handed back, every directory's device number is replaced by one no file
system has, and the remote tar runs with `--no-check-device`: a directory is then
recognised by its name and inode only, so a directory renamed since counts as new and
its contents are stored again under their new names, as a local source's chain does.
GNU tar would otherwise store only the rename (`R`/`T` dumpdir entries), which plain
tar replays but a manifest, listing for each path the archive holding its bytes,
cannot express.
"""

from __future__ import annotations

from collections.abc import Iterator

NO_DEVICE = b"9223372036854775807"
"""A device number (2**63 - 1) that no mounted file system has."""
SNAPSHOT_HEADER = b"GNU tar-"


class SnapshotError(ValueError):
    """The bytes are not a GNU tar snapshot file of format 2."""


def _records(data: bytes) -> tuple[bytes, list[bytes], Iterator[int]]:
    header, newline, rest = data.partition(b"\n")
    if not header.startswith(SNAPSHOT_HEADER) or not header.endswith(b"-2") or not newline:
        raise SnapshotError("not a GNU tar snapshot file of format 2")
    fields = rest.split(b"\0")

    def devices() -> Iterator[int]:
        position = 2
        while position < len(fields) - 1:
            if position + 6 > len(fields):
                raise SnapshotError("a GNU tar snapshot record is cut short")
            yield position + 3
            position += 6
            while position < len(fields) and fields[position]:
                position += 1
            if fields[position : position + 2] != [b"", b""]:
                raise SnapshotError("a GNU tar snapshot record does not end as it should")
            position += 2
        if position != len(fields) - 1 or fields[-1]:
            raise SnapshotError("a GNU tar snapshot file does not end as it should")

    if len(fields) < 3:
        raise SnapshotError("a GNU tar snapshot file without its time")
    return header, fields, devices()


def without_devices(data: bytes) -> bytes:
    """The snapshot `data` with every directory's device number replaced by NO_DEVICE
    (see the module's text); raises SnapshotError for bytes that are not one."""
    header, fields, devices = _records(data)
    for position in devices:
        if not fields[position].isdigit():
            raise SnapshotError("a GNU tar snapshot record has no device number")
        fields[position] = NO_DEVICE
    return header + b"\n" + b"\0".join(fields)


def check(data: bytes) -> None:
    """Raise SnapshotError unless `data` is a whole snapshot file of format 2."""
    for _position in _records(data)[2]:
        pass


def dumpdir_entries(dumpdir: bytes) -> list[tuple[str, str]]:
    """(letter, name) of each entry of a `GNU.dumpdir` list, names decoded as
    Mackuper decodes paths (UTF-8, undecodable bytes kept as surrogates)."""
    entries = []
    for raw in dumpdir.split(b"\0"):
        if raw:
            entries.append((chr(raw[0]), raw[1:].decode("utf-8", "surrogateescape")))
    return entries


def dumpdir_of(entries: list[tuple[str, str]]) -> bytes:
    """The `GNU.dumpdir` list of `entries` (letter, name), in their order."""
    return (
        b"".join(
            letter.encode() + name.encode("utf-8", "surrogateescape") + b"\0"
            for letter, name in entries
        )
        + b"\0"
    )
