"""The age format's pure parts: encodings, keys, stanzas and the header.

Interoperability with the `age` command is in tests/integration/test_encryption_interop.py
and the published test vectors in test_age_vectors.py; these pin the rules one by one.
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mackuper.pipeline.age import (
    AgeError,
    KeyFormatError,
    NotAgeError,
    ScryptIdentity,
    ScryptRecipient,
    SshEd25519Recipient,
    Stanza,
    TamperedError,
    WrongKeyError,
    X25519Identity,
    X25519Recipient,
    b64decode,
    b64encode,
    bech32_decode,
    bech32_encode,
    build_header,
    parse_header,
    parse_identities,
    parse_recipient,
    unwrap_file_key,
)

FILE_KEY = bytes(range(16))


def header_lines(header: bytes) -> list[bytes]:
    return header.splitlines(keepends=True)


def test_header_round_trips_and_unwraps_the_file_key_for_its_identity() -> None:
    identity = X25519Identity.generate()
    header = parse_header(header_lines(build_header([identity.recipient()], FILE_KEY)))
    assert [stanza.type for stanza in header.stanzas] == ["X25519"]
    assert unwrap_file_key(header, [identity]) == FILE_KEY


def test_another_identity_gets_wrong_key_error() -> None:
    header = parse_header(
        header_lines(build_header([X25519Identity.generate().recipient()], FILE_KEY))
    )
    with pytest.raises(WrongKeyError):
        unwrap_file_key(header, [X25519Identity.generate()])


def test_a_changed_header_fails_its_mac() -> None:
    identity = X25519Identity.generate()
    lines = header_lines(build_header([identity.recipient()], FILE_KEY))
    lines[1:1] = [b"-> grease extra\n", b"\n"]  # an unknown stanza: skipped, but under the MAC
    with pytest.raises(TamperedError):
        unwrap_file_key(parse_header(lines), [identity])


@pytest.mark.parametrize("mac", ["", "AAAA", "A" * 42, "A" * 44])
def test_a_mac_that_is_not_32_bytes_is_refused_while_parsing(mac: str) -> None:
    lines = header_lines(build_header([X25519Identity.generate().recipient()], FILE_KEY))
    lines[-1] = f"--- {mac}\n".encode()
    with pytest.raises(TamperedError):
        parse_header(lines)


@pytest.mark.parametrize(
    "stanza_line",
    ["-> \n", "-> X25519  a\n", "-> X25519 caf\xe9\n", "-> X25519 tab\there\n", "->X25519 a\n"],
    ids=["no type", "empty argument", "non-ascii", "control character", "no space"],
)
def test_malformed_stanza_lines_are_not_age(stanza_line: str) -> None:
    lines = [
        b"age-encryption.org/v1\n",
        stanza_line.encode("latin-1"),
        b"\n",
        b"--- " + b"A" * 43 + b"\n",
    ]
    with pytest.raises(NotAgeError):
        parse_header(lines)


def test_stanza_body_of_whole_lines_ends_with_an_empty_line() -> None:
    # 48 bytes are exactly one 64-column line; a short (here empty) line must follow.
    body = os.urandom(48)
    header = b"age-encryption.org/v1\n-> test\n" + b64encode(body).encode() + b"\n\n--- "
    lines = header_lines(header + b64encode(bytes(32)).encode() + b"\n")
    assert parse_header(lines).stanzas == [Stanza("test", (), body)]
    without_final_line = lines[:3] + lines[4:]
    with pytest.raises(NotAgeError):
        parse_header(without_final_line)


def test_passphrase_cannot_share_a_header_with_other_recipients() -> None:
    with pytest.raises(ValueError, match="passphrase"):
        build_header([ScryptRecipient("pw", 10), X25519Identity.generate().recipient()], FILE_KEY)
    with pytest.raises(ValueError, match="at least one"):
        build_header([], FILE_KEY)


def test_scrypt_work_factor_above_the_limit_is_refused_before_any_work() -> None:
    stanza = Stanza("scrypt", (b64encode(bytes(16)), "23"), bytes(32))
    with pytest.raises(AgeError, match="too large") as raised:
        ScryptIdentity("pw").unwrap(stanza)
    assert type(raised.value) is AgeError


def test_scrypt_round_trip_and_wrong_passphrase() -> None:
    stanza = ScryptRecipient("correct horse", work_factor=10).wrap(FILE_KEY)
    assert stanza.args[1] == "10"
    assert ScryptIdentity("correct horse").unwrap(stanza) == FILE_KEY
    assert ScryptIdentity("battery staple").unwrap(stanza) is None


@pytest.mark.parametrize("text", ["AA==", "AA\n", "A", "AB", "@@@@"])
def test_base64_in_headers_is_strict_unpadded_and_canonical(text: str) -> None:
    with pytest.raises(NotAgeError):
        b64decode(text)


def test_base64_round_trips_without_padding() -> None:
    assert b64encode(b"\x00") == "AA"
    assert b64decode("AA") == b"\x00"


@pytest.mark.parametrize(
    ("text", "hrp"),
    [
        ("A12UEL5L", "a"),
        ("a12uel5l", "a"),
        ("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "abcdef"),
    ],
)
def test_bech32_reads_bip173_valid_strings(text: str, hrp: str) -> None:
    assert bech32_decode(text)[0] == hrp


@pytest.mark.parametrize(
    "text",
    ["A12uEL5L", "a12uel5m", "1nwldj5", "pzry9x0s0muk", "x1b4n0q5v"],
    ids=["mixed case", "bad checksum", "empty hrp", "no separator", "bad character"],
)
def test_bech32_refuses_invalid_strings(text: str) -> None:
    with pytest.raises(KeyFormatError):
        bech32_decode(text)


def test_x25519_keys_print_as_age_and_parse_back() -> None:
    identity = X25519Identity.generate()
    printed = str(identity)
    assert printed.startswith("AGE-SECRET-KEY-1")
    assert X25519Identity.parse(printed).secret == identity.secret
    recipient = str(identity.recipient())
    assert recipient.startswith("age1")
    assert X25519Recipient.parse(recipient).public == identity.public
    assert bech32_decode(bech32_encode("age", identity.public)) == ("age", identity.public)


def test_parse_recipient_picks_the_kind_and_refuses_others() -> None:
    identity = X25519Identity.generate()
    assert isinstance(parse_recipient(f"  {identity.recipient()}\n"), X25519Recipient)
    ssh = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    )
    assert isinstance(parse_recipient(ssh.decode()), SshEd25519Recipient)
    with pytest.raises(KeyFormatError):
        parse_recipient("pgp-key 1234")
    with pytest.raises(KeyFormatError):
        parse_recipient(str(identity))  # a secret key is not a recipient


def test_identity_file_skips_comments_and_needs_one_key() -> None:
    identity = X25519Identity.generate()
    parsed = parse_identities(f"# created: today\n\n{identity}\n")
    assert [type(found) for found in parsed] == [X25519Identity]
    with pytest.raises(KeyFormatError, match="no identity"):
        parse_identities("# only a comment\n")
