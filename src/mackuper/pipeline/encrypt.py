"""Streaming age encryption for the pipeline and streaming decryption for restore.

    archive -> compressor -> AgeEncryptStage -> meter -> fan-out

`AgeEncryptStage` is a Sink: it buffers at most one 64 KiB chunk (plus the write
in hand), so memory stays bounded whatever the archive size. The result is a
standard age v1 file that `age -d` opens.

Restore and verify read with `open_decrypting_reader(readable, identities=[...],
passphrase=...)`: it reads and checks the header at once (wrong key -> WrongKeyError,
before any byte is returned, so a caller writes nothing) and then returns a
readable of plaintext that raises TamperedError at the first modified or truncated
chunk. Small documents use `encrypt_bytes` / `decrypt_bytes`, which also speak
age's ASCII armor.

The manifest of an encrypted backup is split, not encrypted whole
(`seal_manifest` / `unseal_manifest`). The public header keeps what the system needs
without any key: job, run, times, format, archive size and hash, file count, and
the recipient TYPES (never a key or passphrase). So retention, catalog rebuild from
the bucket and integrity verification (hash of the stored ciphertext) work for
encrypted backups too, and a lost key still leaves a readable label. The sensitive
part, the file list (names, sizes, hashes; of an incremental point also the names it
removed) and the source description (host, user, paths), is encrypted to the same
recipients as ASCII-armored age in `sealed_age`, so anyone with the key can browse
without downloading the archive, with the standard tool: `jq -r .sealed_age
x.manifest.json | age -d -i key.txt`.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterable
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from mackuper.pipeline.age import (
    CHUNK_SIZE,
    HEADER_LIMIT,
    TAG_SIZE,
    AgeError,
    Identity,
    NotAgeError,
    Recipient,
    ScryptIdentity,
    TamperedError,
    WrongKeyError,
    build_header,
    hkdf,
    parse_header,
    parse_identities,
    recipient_types,
    unwrap_file_key,
)
from mackuper.pipeline.document import Writable, write_document
from mackuper.pipeline.filelist import Spool

__all__ = [
    "AgeEncryptStage",
    "AgeError",
    "DecryptingReader",
    "NotAgeError",
    "TamperedError",
    "WrongKeyError",
    "dearmor",
    "decrypt_bytes",
    "encrypt_bytes",
    "open_decrypting_reader",
    "parse_keys",
    "seal_manifest",
    "unseal_manifest",
]

SEALED_KEYS = ("source", "files", "removed", "databases")
"""Manifest keys that are encrypted in an encrypted backup's manifest."""

_SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE
_ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
_ARMOR_END = "-----END AGE ENCRYPTED FILE-----"
_ARMOR_COLUMNS = 64
_ARMOR_WHITESPACE_LIMIT = 1024


class Sink(Protocol):
    def write(self, data: bytes | memoryview) -> None: ...

    def close(self) -> None: ...


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class AgeEncryptStage:
    """Encrypts everything written to it for `recipients` and writes age v1 downstream."""

    def __init__(self, downstream: Sink, recipients: list[Recipient]) -> None:
        self.downstream = downstream
        file_key = os.urandom(16)
        nonce = os.urandom(16)
        self._preamble: bytes | None = build_header(recipients, file_key) + nonce
        self._aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
        self._counter = 0
        self._buffer = bytearray()

    def _start(self) -> None:
        if self._preamble is not None:
            preamble, self._preamble = self._preamble, None
            self.downstream.write(preamble)

    def _seal(self, plaintext: bytes | bytearray | memoryview, last: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._counter, last), plaintext, None)
        self._counter += 1
        return sealed

    def write(self, data: bytes | bytearray | memoryview) -> None:
        # A full chunk waits until more data arrives: only then is it known not to be last.
        if len(self._buffer) + len(data) <= CHUNK_SIZE:
            self._buffer += data
            return
        self._start()
        view = memoryview(data)
        if self._buffer:
            missing = CHUNK_SIZE - len(self._buffer)
            self._buffer += view[:missing]
            view = view[missing:]
            self.downstream.write(self._seal(self._buffer, False))
            self._buffer.clear()
        # Whole chunks are sealed straight from the caller's buffer, without a copy.
        offset = 0
        while len(view) - offset > CHUNK_SIZE:
            self.downstream.write(self._seal(view[offset : offset + CHUNK_SIZE], False))
            offset += CHUNK_SIZE
        self._buffer += view[offset:]

    def close(self) -> None:
        self._start()
        self.downstream.write(self._seal(bytes(self._buffer), True))
        self._buffer.clear()
        self.downstream.close()


def parse_keys(identities: Iterable[str | Identity], passphrase: str | None) -> list[Identity]:
    """Identities from pasted strings, parsed ones and a passphrase; WrongKeyError if none."""
    parsed: list[Identity] = []
    for identity in identities:
        parsed.extend(parse_identities(identity) if isinstance(identity, str) else [identity])
    if passphrase:
        parsed.append(ScryptIdentity(passphrase))
    if not parsed:
        raise WrongKeyError("this backup is encrypted; give its identity or passphrase")
    return parsed


class DecryptingReader(io.RawIOBase):
    """Plaintext of an age stream; build it with `open_decrypting_reader`.

    Holds at most two sealed chunks. Closing it does not close the source.
    """

    def __init__(self, source: Readable, identities: list[Identity]) -> None:
        super().__init__()
        self._source = source
        self._pending = bytearray()
        self._eof = False
        self._plain = memoryview(b"")
        self._counter = 0
        self._final = False
        self._done = False
        header = parse_header(self._read_header_lines())
        file_key = unwrap_file_key(header, identities)
        self._fill(16)
        if len(self._pending) < 16:
            raise TamperedError(TamperedError.__doc__)
        nonce = bytes(self._pending[:16])
        del self._pending[:16]
        self._aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))

    def _fill(self, size: int) -> None:
        while len(self._pending) < size and not self._eof:
            data = self._source.read(max(size - len(self._pending), CHUNK_SIZE))
            if not data:
                self._eof = True
            else:
                self._pending += data

    def _read_header_lines(self) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            end = self._pending.find(b"\n", start)
            if end < 0:
                if len(self._pending) > HEADER_LIMIT or self._eof:
                    raise NotAgeError(NotAgeError.__doc__)
                self._fill(len(self._pending) + 1)
                continue
            line = bytes(self._pending[start : end + 1])
            lines.append(line)
            start = end + 1
            if not lines[0].startswith(b"age-encryption.org/"):
                raise NotAgeError(NotAgeError.__doc__)
            if line.startswith(b"---"):
                del self._pending[:start]
                return lines

    def _next_chunk(self) -> None:
        # As age's own reader: a short chunk is the last one; a full chunk is opened
        # as a middle chunk, and only if that fails as the last. So its plaintext is
        # released before a truncation or trailing data after it is noticed, never
        # before it authenticated.
        if self._final:
            self._fill(1)
            if self._pending:
                raise TamperedError(TamperedError.__doc__)
            self._done = True
            return
        self._fill(_SEALED_CHUNK)
        size = min(len(self._pending), _SEALED_CHUNK)
        if size < TAG_SIZE or (size == TAG_SIZE and self._counter > 0):
            raise TamperedError(TamperedError.__doc__)
        sealed = bytes(self._pending[:size])
        plain = None
        if size == _SEALED_CHUNK:
            plain = self._open(sealed, last=False)
        if plain is None:
            plain = self._open(sealed, last=True)
            self._final = True
        if plain is None:
            raise TamperedError(TamperedError.__doc__)
        del self._pending[:size]
        self._counter += 1
        self._plain = memoryview(plain)

    def _open(self, sealed: bytes, last: bool) -> bytes | None:
        try:
            return self._aead.decrypt(_nonce(self._counter, last), sealed, None)
        except InvalidTag:
            return None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._plain and not self._done:
            self._next_chunk()
        count = min(len(buffer), len(self._plain))
        buffer[:count] = self._plain[:count]
        self._plain = self._plain[count:]
        return count


def open_decrypting_reader(
    readable: Readable,
    identities: Iterable[str | Identity] = (),
    passphrase: str | None = None,
) -> DecryptingReader:
    """A readable of the plaintext of the age stream `readable`.

    `identities` are strings as a user pastes them: age identity files
    (`AGE-SECRET-KEY-1...`, comments allowed) or unencrypted OpenSSH private keys.
    Raises at once, before returning any byte: WrongKeyError (nothing given opens it),
    NotAgeError (not age data), TamperedError (header MAC wrong), KeyFormatError (an
    identity string is malformed). Reading later raises TamperedError when a chunk was
    modified, reordered or the stream was truncated.
    """
    return DecryptingReader(readable, parse_keys(identities, passphrase))


def encrypt_bytes(
    data: bytes | bytearray, recipients: list[Recipient], armored: bool = False
) -> bytes:
    """`data` as an age file (ASCII-armored when asked)."""
    out = _Collect()
    stage = AgeEncryptStage(_Armoring(out) if armored else out, recipients)
    stage.write(memoryview(data))
    stage.close()
    return bytes(out.data)


_ARMOR_BLOCK = 48 * 1024
"""Bytes armored at a time: a multiple of 3 (no base64 padding inside) whose base64
fills whole 64-column lines."""


class _Armoring:
    """A Sink that writes what it is given in age's ASCII armor (strict PEM, 64
    columns) to `out`, a block at a time: the whole base64 and a string per line made
    a sealed manifest of 200,000 files take several times its size
    (docs/benchmarks.md, "Memory per file")."""

    def __init__(self, out: Writable) -> None:
        self.out = out
        self._block = bytearray()
        out.write(_ARMOR_BEGIN.encode() + b"\n")

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            step = _ARMOR_BLOCK - len(self._block)
            self._block += view[:step]
            view = view[step:]
            if len(self._block) == _ARMOR_BLOCK:
                self._emit()

    def _emit(self) -> None:
        if self._block:
            text = base64.b64encode(self._block)
            columns = range(0, len(text), _ARMOR_COLUMNS)
            self.out.write(b"\n".join([text[line : line + _ARMOR_COLUMNS] for line in columns]))
            self.out.write(b"\n")
            self._block.clear()

    def close(self) -> None:
        self._emit()
        self.out.write(_ARMOR_END.encode() + b"\n")


def armor(sealed: bytes | bytearray) -> bytes | bytearray:
    """An age file in age's ASCII armor (what `age -a` writes)."""
    out = _Collect()
    armoring = _Armoring(out)
    armoring.write(memoryview(sealed))
    armoring.close()
    return out.data


def decrypt_bytes(
    data: bytes, identities: Iterable[str | Identity] = (), passphrase: str | None = None
) -> bytes:
    """The plaintext of a small age file, armored or not; raises like the reader."""
    if data.lstrip().startswith(_ARMOR_BEGIN.encode()):
        data = dearmor(data)
    reader = open_decrypting_reader(io.BytesIO(data), identities, passphrase)
    return reader.readall()


def dearmor(data: bytes) -> bytes:
    """The age file inside age's ASCII armor; NotAgeError if the armor is not exact.

    The armor is strict PEM, as age reads it: only whitespace around it (at most
    1 KiB each side), LF or CRLF line ends, 64 columns on every line but the last,
    which is shorter (never empty), canonical padded base64 and no PEM headers.
    """
    lines = [line.removesuffix(b"\r") for line in data.split(b"\n")]
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    leading = sum(len(line) + 1 for line in lines[:index])
    if leading > _ARMOR_WHITESPACE_LIMIT or lines[index : index + 1] != [_ARMOR_BEGIN.encode()]:
        raise NotAgeError("invalid ASCII armor: no BEGIN AGE ENCRYPTED FILE line")
    index += 1
    decoded = bytearray()
    while True:
        line = lines[index] if index < len(lines) else b""
        index += 1
        if line == _ARMOR_END.encode():
            break
        decoded += _armor_line(line)
        if len(line) < _ARMOR_COLUMNS or line.endswith(b"="):
            if lines[index : index + 1] != [_ARMOR_END.encode()]:
                raise NotAgeError("invalid ASCII armor: a short line before the last")
            index += 1
            break
    trailing = b"\n".join(lines[index:])
    if trailing.strip() or len(trailing) >= _ARMOR_WHITESPACE_LIMIT:
        raise NotAgeError("invalid ASCII armor: data after the END line")
    return bytes(decoded)


def _armor_line(line: bytes) -> bytes:
    if not line or len(line) > _ARMOR_COLUMNS:
        raise NotAgeError("invalid ASCII armor: a line is empty or longer than 64 columns")
    try:
        decoded = base64.b64decode(line, validate=True)
    except ValueError:
        raise NotAgeError("invalid ASCII armor: not base64") from None
    if base64.b64encode(decoded) != line:
        raise NotAgeError("invalid ASCII armor: not canonical base64")
    return decoded


class SealedPart:
    """An encrypted manifest's sealed part: the private keys' JSON, encrypted with age as
    it is encoded and armored as it is encrypted, into a spool (pipeline/filelist.py:
    in memory while small, then an unlinked temporary file holding only ciphertext).
    Written into the manifest as the JSON string `sealed_age`: the armor's only
    character JSON escapes is its line end. Close it when the manifest is out."""

    def __init__(self, private: dict[str, Any], recipients: list[Recipient]) -> None:
        self._spool = Spool()
        try:
            stage = AgeEncryptStage(_Armoring(self._spool), recipients)  # leaves it open
            write_document(private, stage)
            stage.close()
        except BaseException:
            self._spool.close()
            raise

    def write_json(self, out: Writable) -> None:
        out.write(b'"')
        for piece in self._spool.pieces():
            out.write(piece.replace(b"\n", b"\\n"))
        out.write(b'"')

    def close(self) -> None:
        self._spool.close()


def seal_manifest(manifest: dict[str, Any], recipients: list[Recipient]) -> dict[str, Any]:
    """The manifest with SEALED_KEYS moved into `sealed_age` (armored age JSON), a
    `SealedPart` to write with pipeline/document.py (and close afterwards)."""
    private = {key: manifest[key] for key in SEALED_KEYS if key in manifest}
    public = {key: value for key, value in manifest.items() if key not in SEALED_KEYS}
    public["encryption"] = {
        "scheme": "age-encryption.org/v1",
        "recipient_types": recipient_types(recipients),
        "sealed": list(private),
    }
    public["file_count"] = len(manifest.get("files") or [])
    public["sealed_age"] = SealedPart(private, recipients)
    return public


def unseal_manifest(
    manifest: dict[str, Any],
    identities: Iterable[str | Identity] = (),
    passphrase: str | None = None,
) -> dict[str, Any]:
    """The whole manifest (files and source back in place); unchanged when not sealed.

    Raises like `open_decrypting_reader`.
    """
    sealed = manifest.get("sealed_age")
    if not isinstance(sealed, str):
        return manifest
    private = json.loads(decrypt_bytes(sealed.encode(), identities, passphrase))
    if not isinstance(private, dict):
        raise ValueError("the sealed part of this manifest is not an object")
    whole = {key: value for key, value in manifest.items() if key != "sealed_age"}
    # Only what seal_manifest moved may come back: the sealed part of a manifest
    # found at a destination must not replace its public header (times, sizes).
    whole.update({key: private[key] for key in SEALED_KEYS if key in private})
    return whole


class _Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        self.data += data

    def close(self) -> None:
        return None
