"""A job's encryption settings: the keys a run uses, the keys a restore tries.

Public settings live in `Job.encryption` (shown by the API):

    {"mode": "none"}
    {"mode": "passphrase"}
    {"mode": "recipients", "recipients": ["age1...", "ssh-ed25519 AAAA... me@host"],
     "identity_stored": false}

Secrets live in `Job.encryption_secrets_encrypted`, encrypted with the master key:
`{"passphrase": ...}` (needed by unattended backups) or `{"identity": "AGE-SECRET-KEY-1..."}`
(kept only when the user explicitly chose one-click restore). The form's input is
checked by mackuper.schemas.encryption.
"""

from __future__ import annotations

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
