"""Opening a manifest's sealed part (hardening item 7): only what was sealed comes
back, and a web request never runs scrypt past the work factor Mackuper writes."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import pytest

from mackuper.pipeline import age
from mackuper.pipeline.age import SCRYPT_WORK_FACTOR, Recipient, ScryptRecipient
from mackuper.pipeline.document import write_document
from mackuper.pipeline.encrypt import SealedPart, encrypt_bytes, seal_manifest, unseal_manifest
from mackuper.restore.archives import DecryptionKeys
from mackuper.restore.manifest import unsealed

PASSPHRASE = "correct horse battery staple"
FILES = [{"path": "home/a.txt", "type": "file", "size": 3}]


def _manifest() -> dict[str, Any]:
    return {
        "mackuper_manifest": 1,
        "started_at": "2026-11-30T10:00:00+00:00",
        "archive": {"size": 1234, "sha256": "0" * 64},
        "source": "local paths /home",
        "files": FILES,
    }


def sealed_document(manifest: dict[str, Any], recipients: list[Recipient]) -> dict[str, Any]:
    """The sealed manifest as a destination stores it, read back."""
    public = seal_manifest(manifest, recipients)
    out = io.BytesIO()
    write_document(public, out)
    sealed = public["sealed_age"]
    assert isinstance(sealed, SealedPart)
    sealed.close()
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


def test_a_manifest_asking_for_more_scrypt_than_mackuper_writes_is_not_tried_in_the_web(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sealed = sealed_document(_manifest(), [ScryptRecipient(PASSPHRASE, SCRYPT_WORK_FACTOR + 1)])
    costs: list[int] = []
    real = hashlib.scrypt

    def counting(password: bytes, *, salt: bytes, n: int, r: int, p: int, **rest: Any) -> bytes:
        costs.append(n)
        return real(password, salt=salt, n=n, r=r, p=p, **rest)

    monkeypatch.setattr(age.hashlib, "scrypt", counting)
    keys = DecryptionKeys(passphrase=PASSPHRASE)

    assert unsealed(sealed, keys) is sealed  # still sealed: not tried at all
    assert costs == []
    opened = unsealed(sealed, keys, max_work_factor=SCRYPT_WORK_FACTOR + 1)  # a worker run
    assert opened["files"] == FILES
    assert costs == [1 << (SCRYPT_WORK_FACTOR + 1)]


def test_the_sealed_part_may_only_bring_back_the_source_and_the_file_list() -> None:
    recipient = ScryptRecipient(PASSPHRASE, 10)
    manifest = _manifest()
    public = {key: value for key, value in manifest.items() if key not in {"files", "source"}}
    planted = {"files": FILES, "archive": {"size": 1}, "started_at": "2030-01-01T00:00:00+00:00"}
    public["sealed_age"] = encrypt_bytes(json.dumps(planted).encode(), [recipient], True).decode()

    whole = unseal_manifest(public, passphrase=PASSPHRASE)

    assert whole["files"] == FILES
    assert whole["archive"] == {"size": 1234, "sha256": "0" * 64}
    assert whole["started_at"] == "2026-11-30T10:00:00+00:00"
    assert "sealed_age" not in whole
