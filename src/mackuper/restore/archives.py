"""A stored archive, opened as members whatever its format and encryption."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from mackuper.destinations.base import Destination
from mackuper.restore.errors import EncryptedRestoreUnavailable, RestoreError
from mackuper.restore.formats import (
    Member,
    Opener,
    decompressed,
    format_of_key,
    iter_tar_members,
    iter_zip_members,
)
from mackuper.restore.readahead import members_ahead, read_ahead_chain, staged
from mackuper.restore.storage import open_seekable, open_stream


@dataclass(frozen=True)
class DecryptionKeys:
    identities: list[Any] = field(default_factory=list)
    """Identity strings or parsed age identities."""
    passphrase: str | None = None

    def __bool__(self) -> bool:
        return bool(self.identities or self.passphrase)


@dataclass
class StoredArchive:
    destination: Destination
    key: str
    keys: DecryptionKeys = field(default_factory=DecryptionKeys)

    @property
    def archive_format(self) -> str:
        return format_of_key(self.key)[0]

    @property
    def encrypted(self) -> bool:
        return format_of_key(self.key)[1]


def decrypting(raw: BinaryIO, keys: DecryptionKeys) -> BinaryIO:
    """The plaintext of an age stream; raises RestoreError when it cannot be opened."""
    try:
        from mackuper.pipeline.encrypt import open_decrypting_reader
    except ImportError:
        raise EncryptedRestoreUnavailable() from None
    if not keys:
        raise RestoreError(
            "this backup is encrypted: give its age identity or passphrase to restore it"
        )
    reader = open_decrypting_reader(raw, keys.identities, keys.passphrase)
    return cast(BinaryIO, reader)


class ByteCount:
    """Counts the bytes a reader hands to its `on_bytes` (or a number of bytes given)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, chunk: bytes | int) -> None:
        self.count += chunk if isinstance(chunk, int) else len(chunk)

    def value(self) -> int:
        return self.count


@contextlib.contextmanager
def open_members(
    archive: StoredArchive,
    on_bytes: Callable[[bytes], None] | None = None,
    drain: bool = False,
) -> Iterator[Iterator[tuple[Member, Opener | None]]]:
    """Members of the archive; `on_bytes` sees the stored bytes of tar formats as read.

    With `drain`, the rest of the stored object (after the tar trailer) is read at
    the end too, so `on_bytes` has seen every byte; without, tar formats are read
    through `ReadAhead` stages (restore/readahead.py), one thread per stage.
    """
    with contextlib.ExitStack() as stack:
        if archive.archive_format == "zip":
            if archive.encrypted:
                # ZIP needs random access and age gives none: spool the plaintext.
                spool = stack.enter_context(tempfile.TemporaryFile())
                raw = stack.enter_context(open_stream(archive.destination, archive.key, on_bytes))
                shutil.copyfileobj(decrypting(raw, archive.keys), spool, 1 << 20)
                spool.seek(0)
                yield iter_zip_members(cast(BinaryIO, spool))
                return
            seekable = stack.enter_context(open_seekable(archive.destination, archive.key))
            yield iter_zip_members(seekable)
            return
        raw = stack.enter_context(open_stream(archive.destination, archive.key, on_bytes))
        if drain:
            plain = decrypting(raw, archive.keys) if archive.encrypted else raw
            yield iter_tar_members(decompressed(plain, archive.archive_format))
            while raw.read(1 << 20):
                pass
            return
        # Download, decryption, decompression and tar parsing each in a thread of their own.
        chain = stack.enter_context(read_ahead_chain())
        stream = staged(raw, "download", chain)
        if archive.encrypted:
            stream = staged(decrypting(stream, archive.keys), "decrypt", chain)
        if archive.archive_format != "tar":
            stream = staged(decompressed(stream, archive.archive_format), "decompress", chain)
        yield members_ahead(iter_tar_members(stream), chain)
