"""Mackuper's age and Debian's `age` CLI read each other's files; damage and wrong keys fail."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from mackuper.pipeline.age import ScryptRecipient, parse_recipient
from mackuper.pipeline.encrypt import (
    AgeEncryptStage,
    TamperedError,
    WrongKeyError,
    open_decrypting_reader,
)
from tests.integration.age_tty import run_with_tty

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024


@dataclass(frozen=True)
class KeyPair:
    kind: str
    identity_file: Path
    recipient: str

    @property
    def identity(self) -> str:
        return self.identity_file.read_text()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    folder = tmp_path_factory.mktemp("keys")
    subprocess.run(["age-keygen", "-o", str(folder / "age.txt")], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(folder / "age.txt")], check=True, capture_output=True, text=True
    ).stdout.strip()
    pairs = {"X25519": KeyPair("X25519", folder / "age.txt", public)}
    for kind, arguments in {"ssh-ed25519": ["-t", "ed25519"], "ssh-rsa": ["-t", "rsa"]}.items():
        path = folder / kind
        subprocess.run(["ssh-keygen", "-q", *arguments, "-N", "", "-f", str(path)], check=True)
        pairs[kind] = KeyPair(kind, path, (folder / f"{kind}.pub").read_text().strip())
    return pairs


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes | memoryview) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True


def encrypt_in_pieces(plaintext: bytes, recipients: list[str], piece: int = 10_007) -> bytes:
    """Through the pipeline stage, in odd-sized writes as the compressor makes them."""
    out = Collect()
    stage = AgeEncryptStage(out, [parse_recipient(text) for text in recipients])
    for start in range(0, len(plaintext), piece):
        stage.write(plaintext[start : start + piece])
    stage.close()
    assert out.closed
    return bytes(out.data)


def read_in_pieces(reader: io.RawIOBase, piece: int = 7_919) -> bytes:
    result = bytearray()
    while chunk := reader.read(piece):
        result += chunk
    return bytes(result)


def age_cli(arguments: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["age", *arguments], input=data, capture_output=True, timeout=120)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 200_003])
def test_age_cli_decrypts_what_the_stage_writes_at_every_chunk_boundary(
    keys: dict[str, KeyPair], size: int
) -> None:
    plaintext = os.urandom(size)
    sealed = encrypt_in_pieces(plaintext, [keys["X25519"].recipient])

    opened = age_cli(["-d", "-i", str(keys["X25519"].identity_file)], sealed)

    assert opened.returncode == 0, opened.stderr
    assert hashlib.sha256(opened.stdout).digest() == hashlib.sha256(plaintext).digest()


@pytest.mark.parametrize("kind", ["ssh-ed25519", "ssh-rsa"])
def test_age_cli_decrypts_for_ssh_recipients_with_the_private_ssh_key(
    keys: dict[str, KeyPair], kind: str
) -> None:
    plaintext = os.urandom(150_000)
    sealed = encrypt_in_pieces(plaintext, [keys["X25519"].recipient, keys[kind].recipient])

    opened = age_cli(["-d", "-i", str(keys[kind].identity_file)], sealed)

    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == plaintext


@pytest.mark.parametrize("kind", ["X25519", "ssh-ed25519", "ssh-rsa"])
@pytest.mark.parametrize("size", [0, CHUNK, 2 * CHUNK + 5])
def test_mackuper_reads_what_the_age_cli_writes(
    keys: dict[str, KeyPair], kind: str, size: int
) -> None:
    plaintext = os.urandom(size)
    sealed = age_cli(["-r", keys[kind].recipient], plaintext)
    assert sealed.returncode == 0, sealed.stderr

    reader = open_decrypting_reader(io.BytesIO(sealed.stdout), identities=[keys[kind].identity])

    assert read_in_pieces(reader) == plaintext


def test_passphrase_files_cross_between_mackuper_and_the_age_cli(tmp_path: Path) -> None:
    passphrase = "correct horse battery staple"
    plaintext = os.urandom(100_000)
    out = Collect()
    stage = AgeEncryptStage(out, [ScryptRecipient(passphrase)])
    stage.write(plaintext)
    stage.close()
    (tmp_path / "from-mackuper.age").write_bytes(out.data)

    code, screen = run_with_tty(
        ["age", "-d", "-o", str(tmp_path / "out"), str(tmp_path / "from-mackuper.age")],
        [passphrase],
    )
    assert code == 0, screen
    assert (tmp_path / "out").read_bytes() == plaintext

    (tmp_path / "plain").write_bytes(plaintext)
    code, screen = run_with_tty(
        ["age", "-p", "-o", str(tmp_path / "from-cli.age"), str(tmp_path / "plain")],
        [passphrase, passphrase],
    )
    assert code == 0, screen
    with (tmp_path / "from-cli.age").open("rb") as handle:
        reader = open_decrypting_reader(handle, passphrase=passphrase)
        assert read_in_pieces(reader) == plaintext


def test_wrong_identity_or_passphrase_fails_before_any_plaintext(
    keys: dict[str, KeyPair],
) -> None:
    sealed = encrypt_in_pieces(b"secret data" * 1000, [keys["X25519"].recipient])
    out = Collect()
    stage = AgeEncryptStage(out, [ScryptRecipient("the right passphrase", work_factor=10)])
    stage.write(b"secret data")
    stage.close()

    with pytest.raises(WrongKeyError, match="None of the given identities or passphrases"):
        open_decrypting_reader(io.BytesIO(sealed), identities=[keys["ssh-ed25519"].identity])
    with pytest.raises(WrongKeyError):
        open_decrypting_reader(io.BytesIO(bytes(out.data)), passphrase="a wrong passphrase")
    with pytest.raises(WrongKeyError, match="give its identity or passphrase"):
        open_decrypting_reader(io.BytesIO(sealed))


def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def test_tampered_or_truncated_ciphertext_is_detected(keys: dict[str, KeyPair]) -> None:
    identity = [keys["X25519"].identity]
    sealed = encrypt_in_pieces(os.urandom(3 * CHUNK + 100), [keys["X25519"].recipient])
    header_end = sealed.index(b"\n---") + 1
    header_end = sealed.index(b"\n", header_end) + 1
    payload_start = header_end + 16
    damaged = {
        "payload byte": _flip(sealed, payload_start + CHUNK + 500),
        "header MAC": _flip(sealed, header_end - 3),
        # A flip can make the MAC's base64 invalid ('A' ^ 1 is '@'): still damage.
        "header MAC not base64": sealed[: header_end - 3] + b"@" + sealed[header_end - 2 :],
        "truncated at a chunk boundary": sealed[: payload_start + 2 * (CHUNK + 16)],
        "last chunk dropped halfway": sealed[:-50],
        "trailing garbage": sealed + b"x",
    }
    for label, data in damaged.items():
        with pytest.raises(TamperedError, match="modified or damaged"):
            read_in_pieces(open_decrypting_reader(io.BytesIO(data), identities=identity))
        rejected = age_cli(["-d", "-i", str(keys["X25519"].identity_file)], data)
        assert rejected.returncode != 0, label
