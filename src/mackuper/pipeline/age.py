"""The age v1 file format (https://age-encryption.org/v1), built on `cryptography`.

Recipients wrap a random 16-byte file key into header stanzas (X25519, scrypt,
ssh-ed25519, ssh-rsa); identities unwrap it. The header ends with an HMAC, and the
payload is ChaCha20-Poly1305 STREAM in 64 KiB chunks (see `encrypt.py`). The output
opens with the standard `age` tool, and `age` output opens here.

Why not pyrage: 1.4.0 streams only pull-style (`encrypt_io(reader, writer)`), which
would need a thread and a pipe inside our push pipeline, and has no streaming at all
for passphrases.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mackuper.pipeline.errors import PipelineError

INTRO = b"age-encryption.org/v1\n"
CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
FILE_KEY_SIZE = 16
SCRYPT_WORK_FACTOR = 18
"""log2(N) used when encrypting: age's own default (about 256 MiB for a moment)."""
SCRYPT_MAX_WORK_FACTOR = 22
"""The largest work factor accepted when decrypting, as age does."""
HEADER_LIMIT = 1024 * 1024
MAC_SIZE = 32

_ARGUMENT = re.compile(r"[\x21-\x7e]+")
"""A stanza argument: one or more visible ASCII characters (the spec's VCHAR)."""

_X25519_LABEL = b"age-encryption.org/v1/X25519"
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_ED25519_LABEL = b"age-encryption.org/v1/ssh-ed25519"
_RSA_LABEL = b"age-encryption.org/v1/ssh-rsa"
_ZERO_NONCE = bytes(12)


class AgeError(PipelineError):
    """The encrypted data could not be read."""


class NotAgeError(AgeError):
    """The data is not an age-encrypted file."""


class WrongKeyError(AgeError):
    """None of the given identities or passphrases opens this encrypted backup."""


class TamperedError(AgeError):
    """The encrypted backup was modified or damaged; its content cannot be trusted."""


class KeyFormatError(ValueError):
    """A recipient or identity string is not in a format age understands."""


# --- encodings ---------------------------------------------------------------


def b64encode(data: bytes) -> str:
    """Standard base64 without padding, as age headers use it."""
    return base64.b64encode(data).decode().rstrip("=")


def b64decode(text: str) -> bytes:
    """Strict, canonical unpadded base64; NotAgeError otherwise."""
    if "=" in text or "\r" in text or "\n" in text:
        raise NotAgeError("invalid base64 in the age header")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise NotAgeError("invalid base64 in the age header") from None
    if b64encode(data) != text:
        raise NotAgeError("non-canonical base64 in the age header")
    return data


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for index, generator in enumerate(_BECH32_GENERATOR):
            if (top >> index) & 1:
                checksum ^= generator
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]


def _convert_bits(data: bytes | list[int], source: int, target: int, pad: bool) -> list[int]:
    accumulator, bits, result = 0, 0, []
    maximum = (1 << target) - 1
    for value in data:
        accumulator = (accumulator << source) | value
        bits += source
        while bits >= target:
            bits -= target
            result.append((accumulator >> bits) & maximum)
    if pad and bits:
        result.append((accumulator << (target - bits)) & maximum)
    elif not pad and (bits >= source or (accumulator << (target - bits)) & maximum):
        raise KeyFormatError("invalid padding in a bech32 key")
    return result


def bech32_encode(hrp: str, data: bytes) -> str:
    words = _convert_bits(data, 8, 5, pad=True)
    checksum = _polymod(_hrp_expand(hrp) + words + [0] * 6) ^ 1
    words += [(checksum >> 5 * (5 - index)) & 31 for index in range(6)]
    return hrp + "1" + "".join(_BECH32[word] for word in words)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """(human-readable part, data) of a bech32 string; KeyFormatError when invalid."""
    if text.lower() != text and text.upper() != text:
        raise KeyFormatError("mixed case in a bech32 key")
    text = text.lower()
    position = text.rfind("1")
    if position < 1 or len(text) - position < 7:
        raise KeyFormatError("not a bech32 key")
    hrp, rest = text[:position], text[position + 1 :]
    if any(char not in _BECH32 for char in rest):
        raise KeyFormatError("invalid character in a bech32 key")
    words = [_BECH32.index(char) for char in rest]
    if _polymod(_hrp_expand(hrp) + words) != 1:
        raise KeyFormatError("bad checksum in a bech32 key")
    return hrp, bytes(_convert_bits(words[:-6], 5, 8, pad=False))


# --- primitives ----------------------------------------------------------------


def hkdf(secret: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(
        secret
    )


def _x25519(scalar: bytes, point: bytes) -> bytes:
    """X25519(scalar, point); NotAgeError for a low-order point (all-zero result)."""
    try:
        return X25519PrivateKey.from_private_bytes(scalar).exchange(
            X25519PublicKey.from_public_bytes(point)
        )
    except ValueError:
        raise NotAgeError("invalid X25519 share in the age header") from None


def _x25519_public(scalar: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()


def _unwrap(key: bytes, body: bytes) -> bytes | None:
    if len(body) != FILE_KEY_SIZE + TAG_SIZE:
        raise NotAgeError("a stanza body in the age header has the wrong length")
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def _ssh_fingerprint(ssh_key: bytes) -> str:
    return b64encode(hashlib.sha256(ssh_key).digest()[:4])


_P = 2**255 - 19


def _ed25519_to_x25519_public(public: bytes) -> bytes:
    """The Montgomery u coordinate of an Edwards25519 point: u = (1 + y) / (1 - y)."""
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    if y >= _P or y == 1:
        raise KeyFormatError("invalid ed25519 public key")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return u.to_bytes(32, "little")


# --- stanzas, recipients and identities ---------------------------------------------


@dataclass(frozen=True)
class Stanza:
    type: str
    args: tuple[str, ...]
    body: bytes


class Recipient(Protocol):
    type: str

    def wrap(self, file_key: bytes) -> Stanza: ...


class Identity(Protocol):
    def unwrap(self, stanza: Stanza) -> bytes | None:
        """The file key, or None when this stanza is not for this identity."""
        ...


class X25519Recipient:
    type = "X25519"

    def __init__(self, public: bytes) -> None:
        self.public = public

    @classmethod
    def parse(cls, text: str) -> X25519Recipient:
        hrp, data = bech32_decode(text)
        if hrp != "age" or len(data) != 32:
            raise KeyFormatError("not an age X25519 recipient")
        return cls(data)

    def __str__(self) -> str:
        return bech32_encode("age", self.public)

    def wrap(self, file_key: bytes) -> Stanza:
        ephemeral = os.urandom(32)
        share = _x25519_public(ephemeral)
        shared = _x25519(ephemeral, self.public)
        key = hkdf(shared, share + self.public, _X25519_LABEL)
        body = ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)
        return Stanza("X25519", (b64encode(share),), body)


class X25519Identity:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.public = _x25519_public(secret)

    @classmethod
    def generate(cls) -> X25519Identity:
        return cls(os.urandom(32))

    @classmethod
    def parse(cls, text: str) -> X25519Identity:
        hrp, data = bech32_decode(text)
        if hrp != "age-secret-key-" or len(data) != 32:
            raise KeyFormatError("not an age X25519 identity")
        return cls(data)

    def __str__(self) -> str:
        return bech32_encode("age-secret-key-", self.secret).upper()

    def recipient(self) -> X25519Recipient:
        return X25519Recipient(self.public)

    def unwrap(self, stanza: Stanza) -> bytes | None:
        if stanza.type != "X25519":
            return None
        if len(stanza.args) != 1:
            raise NotAgeError("malformed X25519 stanza")
        share = b64decode(stanza.args[0])
        if len(share) != 32:
            raise NotAgeError("malformed X25519 stanza")
        shared = _x25519(self.secret, share)
        return _unwrap(hkdf(shared, share + self.public, _X25519_LABEL), stanza.body)


def _scrypt_key(passphrase: str, salt: bytes, work_factor: int) -> bytes:
    cost = 1 << work_factor
    return hashlib.scrypt(
        passphrase.encode(),
        salt=_SCRYPT_LABEL + salt,
        n=cost,
        r=8,
        p=1,
        maxmem=128 * 8 * cost + 2 * 1024 * 1024,
        dklen=32,
    )


class ScryptRecipient:
    type = "scrypt"

    def __init__(self, passphrase: str, work_factor: int = SCRYPT_WORK_FACTOR) -> None:
        self.passphrase = passphrase
        self.work_factor = work_factor

    def wrap(self, file_key: bytes) -> Stanza:
        salt = os.urandom(16)
        key = _scrypt_key(self.passphrase, salt, self.work_factor)
        body = ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)
        return Stanza("scrypt", (b64encode(salt), str(self.work_factor)), body)


class ScryptIdentity:
    def __init__(self, passphrase: str, max_work_factor: int = SCRYPT_MAX_WORK_FACTOR) -> None:
        self.passphrase = passphrase
        self.max_work_factor = max_work_factor

    def unwrap(self, stanza: Stanza) -> bytes | None:
        if stanza.type != "scrypt":
            return None
        if len(stanza.args) != 2 or not re.fullmatch(r"[1-9][0-9]?", stanza.args[1]):
            raise NotAgeError("malformed scrypt stanza")
        salt, work_factor = b64decode(stanza.args[0]), int(stanza.args[1])
        if len(salt) != 16:
            raise NotAgeError("malformed scrypt stanza")
        if work_factor > self.max_work_factor:
            raise AgeError(f"the passphrase work factor {work_factor} is too large to try")
        return _unwrap(_scrypt_key(self.passphrase, salt, work_factor), stanza.body)


def _ssh_blob(line: str) -> tuple[str, bytes]:
    parts = line.split()
    if len(parts) < 2:
        raise KeyFormatError("not an SSH public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise KeyFormatError("not an SSH public key") from None
    return parts[0], blob


class SshEd25519Recipient:
    type = "ssh-ed25519"

    def __init__(self, line: str) -> None:
        kind, self.ssh_key = _ssh_blob(line)
        key = _load_ssh_public(kind, self.ssh_key)
        if kind != "ssh-ed25519" or not isinstance(key, ed25519.Ed25519PublicKey):
            raise KeyFormatError("not an ssh-ed25519 public key")
        self.public = _ed25519_to_x25519_public(key.public_bytes_raw())

    def wrap(self, file_key: bytes) -> Stanza:
        ephemeral = os.urandom(32)
        share = _x25519_public(ephemeral)
        tweak = hkdf(b"", self.ssh_key, _ED25519_LABEL)
        shared = _x25519(tweak, _x25519(ephemeral, self.public))
        key = hkdf(shared, share + self.public, _ED25519_LABEL)
        body = ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)
        return Stanza("ssh-ed25519", (_ssh_fingerprint(self.ssh_key), b64encode(share)), body)


class SshRsaRecipient:
    type = "ssh-rsa"

    def __init__(self, line: str) -> None:
        kind, self.ssh_key = _ssh_blob(line)
        key = _load_ssh_public(kind, self.ssh_key)
        if kind != "ssh-rsa" or not isinstance(key, rsa.RSAPublicKey):
            raise KeyFormatError("not an ssh-rsa public key")
        if key.key_size < 2048:
            raise KeyFormatError("RSA keys shorter than 2048 bits are not accepted")
        self.key = key

    def wrap(self, file_key: bytes) -> Stanza:
        body = self.key.encrypt(file_key, _rsa_padding())
        return Stanza("ssh-rsa", (_ssh_fingerprint(self.ssh_key),), body)


def _rsa_padding() -> padding.OAEP:
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=_RSA_LABEL
    )


def _load_ssh_public(kind: str, blob: bytes) -> object:
    try:
        return serialization.load_ssh_public_key(
            f"{kind} {base64.b64encode(blob).decode()}".encode()
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFormatError("not a supported SSH public key") from None


class SshIdentity:
    """An unencrypted OpenSSH private key (ed25519 or RSA) used as an age identity."""

    def __init__(self, pem: str) -> None:
        try:
            key = serialization.load_ssh_private_key(pem.encode(), password=None)
        except (ValueError, TypeError):
            raise KeyFormatError("not an unencrypted OpenSSH ed25519 or RSA private key") from None
        public_line = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        _, self.ssh_key = _ssh_blob(public_line.decode())
        self.tag = _ssh_fingerprint(self.ssh_key)
        self.key = key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            seed = key.private_bytes_raw()
            self.scalar = hashlib.sha512(seed).digest()[:32]
            self.public = _ed25519_to_x25519_public(key.public_key().public_bytes_raw())
        elif not isinstance(key, rsa.RSAPrivateKey):
            raise KeyFormatError("only ed25519 and RSA SSH keys can be age identities")

    def unwrap(self, stanza: Stanza) -> bytes | None:
        if stanza.type not in {"ssh-ed25519", "ssh-rsa"} or not stanza.args:
            return None
        if stanza.args[0] != self.tag:
            return None
        if stanza.type == "ssh-rsa" and isinstance(self.key, rsa.RSAPrivateKey):
            try:
                return self.key.decrypt(stanza.body, _rsa_padding())
            except ValueError:
                return None
        if stanza.type == "ssh-ed25519" and isinstance(self.key, ed25519.Ed25519PrivateKey):
            if len(stanza.args) != 2:
                raise NotAgeError("malformed ssh-ed25519 stanza")
            share = b64decode(stanza.args[1])
            tweak = hkdf(b"", self.ssh_key, _ED25519_LABEL)
            shared = _x25519(tweak, _x25519(self.scalar, share))
            return _unwrap(hkdf(shared, share + self.public, _ED25519_LABEL), stanza.body)
        return None


def parse_recipient(text: str) -> Recipient:
    """A recipient from `age1...`, `ssh-ed25519 AAAA...` or `ssh-rsa AAAA...`."""
    text = text.strip()
    if text.startswith("ssh-ed25519 "):
        return SshEd25519Recipient(text)
    if text.startswith("ssh-rsa "):
        return SshRsaRecipient(text)
    if text.lower().startswith("age1"):
        return X25519Recipient.parse(text)
    raise KeyFormatError("use an age1... key or an ssh-ed25519 / ssh-rsa public key")


def parse_identities(text: str) -> list[Identity]:
    """Identities from an age identity file (comments allowed) or an OpenSSH private key."""
    if "-----BEGIN OPENSSH PRIVATE KEY-----" in text:
        return [SshIdentity(text)]
    found: list[Identity] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        found.append(X25519Identity.parse(line))
    if not found:
        raise KeyFormatError("no identity found")
    return found


# --- the header -------------------------------------------------------------------


def _stanza_lines(stanza: Stanza) -> bytes:
    lines = "-> " + " ".join((stanza.type, *stanza.args)) + "\n"
    body = b64encode(stanza.body)
    for start in range(0, len(body) + 1, 64):
        lines += body[start : start + 64] + "\n"
    return lines.encode()


def build_header(recipients: list[Recipient], file_key: bytes) -> bytes:
    """The complete header, MAC line included."""
    if not recipients:
        raise ValueError("at least one recipient is needed")
    if any(recipient.type == "scrypt" for recipient in recipients) and len(recipients) > 1:
        raise ValueError("a passphrase cannot be combined with other recipients")
    header = INTRO + b"".join(_stanza_lines(recipient.wrap(file_key)) for recipient in recipients)
    header += b"---"
    mac = hmac.new(hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest()
    return header + b" " + b64encode(mac).encode() + b"\n"


@dataclass(frozen=True)
class Header:
    stanzas: list[Stanza]
    mac_input: bytes
    mac: bytes


def parse_header(lines: list[bytes]) -> Header:
    """A header from its lines (each with its newline, the last being the MAC line)."""
    if not lines or lines[0] != INTRO:
        raise NotAgeError(NotAgeError.__doc__)
    stanzas: list[Stanza] = []
    index = 1
    while index < len(lines):
        line = lines[index].decode("ascii", "replace").rstrip("\n")
        if line.startswith("---"):
            if not line.startswith("--- ") or index != len(lines) - 1:
                raise NotAgeError("malformed age header")
            try:
                mac = b64decode(line[4:])
            except NotAgeError:
                mac = b""
            if len(mac) != MAC_SIZE:  # a whole header with a garbled MAC line: damage
                raise TamperedError(TamperedError.__doc__)
            mac_input = b"".join(lines[:index]) + b"---"
            return Header(stanzas, mac_input, mac)
        if not line.startswith("-> "):
            raise NotAgeError("malformed age header")
        args = line[3:].split(" ")
        if any(not _ARGUMENT.fullmatch(arg) for arg in args):
            raise NotAgeError("malformed stanza in the age header")
        body_text = ""
        while True:
            index += 1
            if index >= len(lines):
                raise NotAgeError("truncated age header")
            body_line = lines[index].decode("ascii", "replace").rstrip("\n")
            if len(body_line) > 64:
                raise NotAgeError("malformed stanza body in the age header")
            body_text += body_line
            if len(body_line) < 64:
                break
        stanzas.append(Stanza(args[0], tuple(args[1:]), b64decode(body_text)))
        index += 1
    raise NotAgeError("truncated age header")


def unwrap_file_key(header: Header, identities: list[Identity]) -> bytes:
    """The file key, after checking the header MAC; WrongKeyError or TamperedError."""
    if any(stanza.type == "scrypt" for stanza in header.stanzas) and len(header.stanzas) != 1:
        raise NotAgeError("a passphrase stanza must be alone in the age header")
    for stanza in header.stanzas:
        for identity in identities:
            file_key = identity.unwrap(stanza)
            if file_key is None:
                continue
            expected = hmac.new(hkdf(file_key, b"", b"header"), header.mac_input, hashlib.sha256)
            if not hmac.compare_digest(expected.digest(), header.mac):
                raise TamperedError(TamperedError.__doc__)
            return file_key
    raise WrongKeyError(WrongKeyError.__doc__)


def recipient_types(recipients: list[Recipient]) -> list[str]:
    return sorted({recipient.type for recipient in recipients})
