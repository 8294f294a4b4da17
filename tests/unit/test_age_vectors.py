"""The hand-written age code against the age project's published test vectors.

tests/data/age-cctv/ is a copy of every file in C2SP/CCTV's `age/testdata` (commit
1e3d2860d46e94e777e1b17c7a6f2436387e3ecc) with its README and LICENSE (0BSD, CC0
or Unlicense). Each vector is opened the way restore reads a backup: `dearmor` first
when it is armored, then `open_decrypting_reader`, read in odd-sized pieces.
Armored vectors also go through `decrypt_bytes`, which reads sealed manifests.

What each expected outcome must be here:

- `success`: the plaintext's SHA-256 is the vector's `payload`.
- `no match`: WrongKeyError.
- `HMAC failure`: TamperedError.
- `header failure`: NotAgeError, except where Mackuper names the cause more exactly
  (HEADER_FAILURE_ALIASES): a header that parses up to a garbled, missing or
  truncated MAC, or a file that ends inside the payload nonce, is a damaged backup
  (TamperedError); a scrypt work factor above 2**22 is refused as too costly to try
  (AgeError), as age itself refuses it.
- `payload failure`: TamperedError while reading, after exactly the plaintext whose
  SHA-256 is `payload` was released (age's own reader releases the same).
- `armor failure`: NotAgeError from `dearmor`.

A vector without an identity or passphrase is given a fresh X25519 identity, since
the reader refuses to start with nothing to try.

Out of scope, listed so none is dropped silently: Mackuper does not implement the
post-quantum `mlkem768x25519` recipient, so these vectors, whose identities are
hybrid ones, are not run: armor_hybrid, hybrid, hybrid_and_x25519, hybrid_bad_tag,
hybrid_currupted_enc_mlkem, hybrid_currupted_enc_x25519, hybrid_extra_argument,
hybrid_grease, hybrid_identity, hybrid_long_file_key, hybrid_long_share,
hybrid_low_order, hybrid_multiple_recipients, hybrid_no_match,
hybrid_not_canonical_body, hybrid_not_canonical_enc, hybrid_short_share,
hybrid_uppercase, hybrid_x25519_arg. CCTV has no vectors for the ssh-ed25519 and
ssh-rsa recipients, which Mackuper implements; those are checked against the age
command in tests/integration/test_encryption_interop.py.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from mackuper.pipeline.age import AgeError, Identity, ScryptIdentity, X25519Identity
from mackuper.pipeline.encrypt import (
    NotAgeError,
    TamperedError,
    WrongKeyError,
    dearmor,
    decrypt_bytes,
    open_decrypting_reader,
)

VECTORS = Path(__file__).parent.parent / "data" / "age-cctv"
ATTRIBUTION = {"README.md", "LICENSE"}

OUT_OF_SCOPE = frozenset(
    {
        "armor_hybrid",
        "hybrid",
        "hybrid_and_x25519",
        "hybrid_bad_tag",
        "hybrid_currupted_enc_mlkem",
        "hybrid_currupted_enc_x25519",
        "hybrid_extra_argument",
        "hybrid_grease",
        "hybrid_identity",
        "hybrid_long_file_key",
        "hybrid_long_share",
        "hybrid_low_order",
        "hybrid_multiple_recipients",
        "hybrid_no_match",
        "hybrid_not_canonical_body",
        "hybrid_not_canonical_enc",
        "hybrid_short_share",
        "hybrid_uppercase",
        "hybrid_x25519_arg",
    }
)

FAILURES: dict[str, type[AgeError]] = {
    "no match": WrongKeyError,
    "HMAC failure": TamperedError,
    "header failure": NotAgeError,
    "payload failure": TamperedError,
    "armor failure": NotAgeError,
}

HEADER_FAILURE_ALIASES: dict[str, type[AgeError]] = {
    "hmac_extra_space": TamperedError,
    "hmac_garbage": TamperedError,
    "hmac_missing": TamperedError,
    "hmac_not_canonical": TamperedError,
    "hmac_trailing_space": TamperedError,
    "hmac_truncated": TamperedError,
    "stream_no_nonce": TamperedError,
    "stream_short_nonce": TamperedError,
    "scrypt_work_factor_23": AgeError,
}

PIECE = 7919
"""Bytes asked of the reader at a time: prime, so reads straddle chunk boundaries."""


@dataclass(frozen=True)
class Vector:
    name: str
    expect: str
    payload: str | None
    identities: tuple[str, ...]
    passphrases: tuple[str, ...]
    armored: bool
    data: bytes

    def keys(self) -> list[str | Identity]:
        keys: list[str | Identity] = [*self.identities]
        keys += [ScryptIdentity(passphrase) for passphrase in self.passphrases]
        return keys or [X25519Identity.generate()]

    def failure(self) -> type[AgeError]:
        if self.expect == "header failure":
            return HEADER_FAILURE_ALIASES.get(self.name, NotAgeError)
        return FAILURES[self.expect]


def load(path: Path) -> Vector:
    """A vector: `key: value` lines, an empty line, then the (maybe zlib) age file."""
    text, _, data = path.read_bytes().partition(b"\n\n")
    fields: dict[str, list[str]] = {}
    for line in text.decode().splitlines():
        key, _, value = line.partition(": ")
        assert key in {
            "expect",
            "payload",
            "identity",
            "passphrase",
            "armored",
            "compressed",
            "file key",
            "comment",
        }, f"{path.name}: unknown header {key!r}"
        fields.setdefault(key, []).append(value)
    if fields.get("compressed") == ["zlib"]:
        data = zlib.decompress(data)
    return Vector(
        name=path.name,
        expect=fields["expect"][0],
        payload=fields.get("payload", [None])[0],
        identities=tuple(fields.get("identity", [])),
        passphrases=tuple(fields.get("passphrase", [])),
        armored=fields.get("armored") == ["yes"],
        data=data,
    )


def vector_files() -> list[Path]:
    return sorted(path for path in VECTORS.iterdir() if path.name not in ATTRIBUTION)


IN_SCOPE = [load(path) for path in vector_files() if path.name not in OUT_OF_SCOPE]


def decrypt(vector: Vector) -> tuple[bytes, AgeError | None]:
    """The plaintext released before the first error, and that error (None if none)."""
    released = bytearray()
    try:
        data = dearmor(vector.data) if vector.armored else vector.data
        reader = open_decrypting_reader(io.BytesIO(data), vector.keys())
        while piece := reader.read(PIECE):
            released += piece
    except AgeError as error:
        return bytes(released), error
    return bytes(released), None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_vector_is_run_or_named_out_of_scope() -> None:
    names = {path.name for path in vector_files()}
    assert len(names) == 143
    assert names >= OUT_OF_SCOPE
    assert len(IN_SCOPE) == len(names) - len(OUT_OF_SCOPE)
    assert set(HEADER_FAILURE_ALIASES) <= {v.name for v in IN_SCOPE if v.expect == "header failure"}


@pytest.mark.parametrize(
    "vector", [v for v in IN_SCOPE if v.expect == "success"], ids=lambda vector: vector.name
)
def test_success_vector_decrypts_to_its_payload(vector: Vector) -> None:
    released, error = decrypt(vector)
    assert error is None
    assert sha256(released) == vector.payload


@pytest.mark.parametrize(
    "vector", [v for v in IN_SCOPE if v.expect != "success"], ids=lambda vector: vector.name
)
def test_failure_vector_is_refused_with_its_error_class(vector: Vector) -> None:
    released, error = decrypt(vector)
    assert type(error) is vector.failure(), f"{vector.expect}: got {error!r}"
    if vector.expect == "payload failure":
        assert sha256(released) == vector.payload
    else:
        assert released == b""


@pytest.mark.parametrize(
    "vector", [v for v in IN_SCOPE if v.armored], ids=lambda vector: vector.name
)
def test_armored_vector_reads_the_same_through_decrypt_bytes(vector: Vector) -> None:
    if vector.expect == "success":
        assert sha256(decrypt_bytes(vector.data, vector.keys())) == vector.payload
    else:
        with pytest.raises(AgeError) as raised:
            decrypt_bytes(vector.data, vector.keys())
        assert type(raised.value) is vector.failure()
