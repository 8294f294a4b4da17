"""A job's encryption settings: validation, the keys a run uses, the keys a restore tries.

Public settings live in `Job.encryption` (shown by the API):

    {"mode": "none"}
    {"mode": "passphrase"}
    {"mode": "recipients", "recipients": ["age1...", "ssh-ed25519 AAAA... me@host"],
     "identity_stored": false}

Secrets live in `Job.encryption_secrets_encrypted`, encrypted with the master key:
`{"passphrase": ...}` (needed by unattended backups) or `{"identity": "AGE-SECRET-KEY-1..."}`
(kept only when the user explicitly chose one-click restore).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mackuper.pipeline.age import (
    Identity,
    KeyFormatError,
    Recipient,
    ScryptRecipient,
    X25519Identity,
    parse_identities,
    parse_recipient,
)

MODES = ("none", "passphrase", "recipients")
MIN_PASSPHRASE = 10
MAX_RECIPIENTS = 20


@dataclass(frozen=True)
class Validated:
    public: dict[str, Any]
    secrets: dict[str, Any]
    errors: dict[str, str]


def _recipient_lines(raw: object) -> list[str]:
    lines = raw.splitlines() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    kept: list[str] = []
    for line in lines:
        text = str(line).strip()
        if text and not text.startswith("#") and text not in kept:
            kept.append(text)
    return kept


def validate(payload: object, current: dict[str, Any], stored: dict[str, Any]) -> Validated:
    """The new public settings and secrets from the job form's `encryption` object.

    `current`/`stored` are the job's settings and decrypted secrets before the edit: an
    empty passphrase or identity field keeps the stored one. Errors are keyed
    `encryption.<field>`.
    """
    form: dict[str, Any] = payload if isinstance(payload, dict) else {}
    mode = str(form.get("mode") or "none")
    errors: dict[str, str] = {}
    if mode not in MODES:
        return Validated({}, {}, {"encryption.mode": "Choose none, passphrase or recipients."})
    if mode == "none":
        return Validated({"mode": "none"}, {}, errors)
    if mode == "passphrase":
        passphrase = str(form.get("passphrase") or "")
        if not passphrase and current.get("mode") == "passphrase":
            passphrase = str(stored.get("passphrase") or "")
        if not passphrase:
            errors["encryption.passphrase"] = "Enter a passphrase."
        elif len(passphrase) < MIN_PASSPHRASE:
            errors["encryption.passphrase"] = f"Use at least {MIN_PASSPHRASE} characters."
        return Validated({"mode": "passphrase"}, {"passphrase": passphrase}, errors)
    recipients = _recipient_lines(form.get("recipients"))
    secrets: dict[str, Any] = {}
    if form.get("store_identity"):
        text = str(form.get("identity") or "").strip() or str(stored.get("identity") or "")
        try:
            identity = X25519Identity.parse(text)
        except KeyFormatError:
            errors["encryption.identity"] = (
                "To store a key for one-click restore,"
                " paste or generate an AGE-SECRET-KEY-1... key."
            )
        else:
            secrets["identity"] = str(identity)
            public_key = str(identity.recipient())
            if public_key not in recipients:
                recipients.append(public_key)
    for index, line in enumerate(recipients):
        try:
            parse_recipient(line)
        except KeyFormatError as error:
            errors["encryption.recipients"] = f"Line {index + 1}: {error}."
            break
    if not recipients and "encryption.identity" not in errors:
        errors["encryption.recipients"] = (
            "Add at least one public key (age1..., ssh-ed25519, ssh-rsa)."
        )
    elif len(recipients) > MAX_RECIPIENTS:
        errors["encryption.recipients"] = f"Use at most {MAX_RECIPIENTS} public keys."
    public = {"mode": "recipients", "recipients": recipients, "identity_stored": bool(secrets)}
    return Validated(public, secrets, errors)


def backup_recipients(public: dict[str, Any], secrets: dict[str, Any]) -> list[Recipient] | None:
    """The age recipients a run encrypts to, or None for an unencrypted job."""
    mode = public.get("mode") or "none"
    if mode == "passphrase":
        return [ScryptRecipient(str(secrets.get("passphrase") or ""))]
    if mode == "recipients":
        return [parse_recipient(line) for line in public.get("recipients") or []]
    return None


def restore_keys(
    public: dict[str, Any], secrets: dict[str, Any], pasted: str | None = None
) -> tuple[list[Identity], str | None]:
    """(identities, passphrase) to try on a backup: what the user pasted, then what is stored.

    A pasted text is tried both as identities (when it parses as a key) and as a
    passphrase. KeyFormatError only when nothing usable is left.
    """
    identities: list[Identity] = []
    passphrase: str | None = secrets.get("passphrase") or None
    if pasted and pasted.strip():
        try:
            identities.extend(parse_identities(pasted))
        except KeyFormatError:
            if "-----BEGIN" in pasted or "AGE-SECRET-KEY-" in pasted.upper():
                raise  # a malformed key, not a passphrase: say so
            passphrase = pasted
    if secrets.get("identity"):
        identities.append(X25519Identity.parse(str(secrets["identity"])))
    return identities, passphrase


def describe(public: dict[str, Any]) -> dict[str, Any]:
    """What the API shows: the mode, public keys and their types, whether secrets are set."""
    mode = public.get("mode") or "none"
    recipients = list(public.get("recipients") or [])
    stored = mode == "recipients" and bool(public.get("identity_stored"))
    types: list[str] = []
    if mode == "passphrase":
        types = ["scrypt"]
    elif mode == "recipients":
        types = manifest_types(recipients)
    return {
        "mode": mode,
        "recipients": recipients if mode == "recipients" else [],
        "recipient_types": types,
        "passphrase": "set" if mode == "passphrase" else "not set",
        "identity": "stored" if stored else "not stored",
    }


def manifest_types(recipients: list[str]) -> list[str]:
    """The age stanza types of validated recipient lines (never the keys themselves)."""
    types = {line.split(" ", 1)[0] if line.startswith("ssh-") else "X25519" for line in recipients}
    return sorted(types)


def generate_identity() -> tuple[str, str]:
    """A new X25519 (identity, recipient) pair: `AGE-SECRET-KEY-1...`, `age1...`."""
    identity = X25519Identity.generate()
    return str(identity), str(identity.recipient())
