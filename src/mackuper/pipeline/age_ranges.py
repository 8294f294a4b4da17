"""Random access to the plaintext of an age file, by ranged reads of the stored object.

age's payload is ChaCha20-Poly1305 STREAM in 64 KiB chunks, each sealed with a
counter nonce under a key derived from the file key and the header's 16-byte
nonce: chunk `i` sits at `payload_start + i * (64 KiB + 16)` and opens on its
own. So plaintext bytes `[offset, offset + length)` cost the header, once, and
the chunks that hold them. The last chunk is sealed with the "last" flag, so a
truncated object fails to open instead of passing as shorter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from mackuper.pipeline.age import (
    CHUNK_SIZE,
    HEADER_LIMIT,
    TAG_SIZE,
    Identity,
    NotAgeError,
    TamperedError,
    hkdf,
    parse_header,
    unwrap_file_key,
)
from mackuper.pipeline.encrypt import parse_keys

SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE
NONCE_SIZE = 16
FIRST_READ = 4096
"""Header bytes asked for first: enough for a handful of X25519 or scrypt stanzas."""

ReadRange = Callable[[int, int], bytes]


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _header_lines(read_range: ReadRange) -> tuple[list[bytes], int]:
    """The header's lines and the offset just after its MAC line."""
    want = FIRST_READ
    while True:
        data = read_range(0, want)
        if not data.startswith(b"age-encryption.org/"[: len(data)]):
            raise NotAgeError(NotAgeError.__doc__)
        lines: list[bytes] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            lines.append(data[start : end + 1])
            start = end + 1
            if lines[-1].startswith(b"---"):
                return lines, start
        if len(data) < want or want >= HEADER_LIMIT:
            raise NotAgeError(NotAgeError.__doc__)
        want *= 8


class AgeRanges:
    """Plaintext ranges of an age file of `size` bytes read through `read_range`.

    Raises at once like `open_decrypting_reader` (WrongKeyError, NotAgeError,
    TamperedError for a bad header); `read` raises TamperedError for a chunk that
    does not open, and for an object whose length no age file can have.
    """

    def __init__(
        self,
        read_range: ReadRange,
        size: int,
        identities: Iterable[str | Identity] = (),
        passphrase: str | None = None,
    ) -> None:
        self.read_range = read_range
        lines, header_end = _header_lines(read_range)
        file_key = unwrap_file_key(parse_header(lines), parse_keys(identities, passphrase))
        nonce = read_range(header_end, NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise TamperedError(TamperedError.__doc__)
        self.aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
        self.payload_start = header_end + NONCE_SIZE
        payload = size - self.payload_start
        self.chunks = max(1, -(-payload // SEALED_CHUNK))
        last = payload - (self.chunks - 1) * SEALED_CHUNK
        if last < TAG_SIZE or (last == TAG_SIZE and self.chunks > 1):
            raise TamperedError(TamperedError.__doc__)
        self.size = payload - self.chunks * TAG_SIZE
        """The plaintext's size."""

    def read(self, offset: int, length: int) -> bytes:
        """Plaintext bytes from `offset`: `length` of them, fewer only at the end."""
        length = min(length, self.size - offset)
        if offset < 0 or length <= 0:
            return b""
        first = offset // CHUNK_SIZE
        last = (offset + length - 1) // CHUNK_SIZE
        start = self.payload_start + first * SEALED_CHUNK
        sealed = self.read_range(start, (last - first + 1) * SEALED_CHUNK)
        plain = bytearray()
        for index in range(first, last + 1):
            piece = sealed[(index - first) * SEALED_CHUNK : (index - first + 1) * SEALED_CHUNK]
            try:
                plain += self.aead.decrypt(_nonce(index, index == self.chunks - 1), piece, None)
            except InvalidTag:
                raise TamperedError(TamperedError.__doc__) from None
        skip = offset - first * CHUNK_SIZE
        return bytes(plain[skip : skip + length])
