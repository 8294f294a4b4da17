"""A job's encryption settings: none, a passphrase, or age recipients.

Public settings live in `Job.encryption` (shown by the API):

    {"mode": "none"}
    {"mode": "passphrase"}
    {"mode": "recipients", "recipients": ["age1...", "ssh-ed25519 AAAA... me@host"],
     "identity_stored": false}

Secrets live in `Job.encryption_secrets_encrypted`: `{"passphrase": ...}` (needed by
unattended backups) or `{"identity": "AGE-SECRET-KEY-1..."}` (kept only when the user
explicitly chose one-click restore).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from mackuper.pipeline.age import KeyFormatError, X25519Identity, parse_recipient
from mackuper.schemas.base import KindSettings, Passphrase, SecretText, Text, says

MIN_PASSPHRASE = 10
MAX_RECIPIENTS = 20


def _recipient_lines(value: object) -> object:
    """Lines of a textarea or items of a list; blank lines and # comments dropped."""
    lines = value.splitlines() if isinstance(value, str) else value
    if not isinstance(lines, list):
        return value
    return [line.strip() if isinstance(line, str) else line for line in lines]


class Encryption(KindSettings):
    """How a job's archives are encrypted with age; a blank passphrase or key keeps the stored."""

    mode: Annotated[
        Literal["none", "passphrase", "recipients"],
        says("Choose none, passphrase or recipients."),
    ] = "none"
    passphrase: Passphrase = ""
    recipients: Annotated[list[Text], BeforeValidator(_recipient_lines)] = []
    store_identity: Annotated[bool, Field(exclude=True)] = False
    """Keep `identity` (encrypted) so restores need no key pasted."""
    identity: SecretText = ""
    identity_saved: Annotated[bool, Field(exclude=True)] = False
    """The person confirmed they keep the private key of a key pair generated here."""

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, lines: list[str], info: ValidationInfo) -> list[str]:
        kept: list[str] = []
        for line in lines:
            if line and not line.startswith("#") and line not in kept:
                kept.append(line)
        if info.data.get("mode") != "recipients":
            return kept
        for index, line in enumerate(kept):
            try:
                parse_recipient(line)
            except KeyFormatError as error:
                raise ValueError(f"Line {index + 1}: {error}.") from error
        return kept

    def unused_secrets(self) -> set[str]:
        if self.mode == "passphrase":
            return {"identity"}
        if self.mode == "recipients" and self.store_identity:
            return {"passphrase"}
        return {"passphrase", "identity"}

    def _stored_identity(self) -> X25519Identity | None:
        if self.mode != "recipients" or not self.store_identity:
            return None
        try:
            return X25519Identity.parse(self.identity.strip())
        except KeyFormatError:
            return None

    def all_recipients(self) -> list[str]:
        """The public keys archives are encrypted to, the stored identity's included."""
        recipients = list(self.recipients)
        identity = self._stored_identity()
        if identity is not None and str(identity.recipient()) not in recipients:
            recipients.append(str(identity.recipient()))
        return recipients

    def problems(self) -> dict[str, str]:
        if self.mode == "passphrase":
            if not self.passphrase:
                return {"passphrase": "Enter a passphrase."}
            if len(self.passphrase) < MIN_PASSPHRASE:
                return {"passphrase": f"Use at least {MIN_PASSPHRASE} characters."}
            return {}
        if self.mode == "none":
            return {}
        problems: dict[str, str] = {}
        if self.store_identity and self._stored_identity() is None:
            problems["identity"] = (
                "To store a key for one-click restore,"
                " paste or generate an AGE-SECRET-KEY-1... key."
            )
        recipients = self.all_recipients()
        if not recipients and "identity" not in problems:
            problems["recipients"] = "Add at least one public key (age1..., ssh-ed25519, ssh-rsa)."
        elif len(recipients) > MAX_RECIPIENTS:
            problems["recipients"] = f"Use at most {MAX_RECIPIENTS} public keys."
        return problems

    def secrets(self) -> dict[str, Any]:
        secrets = super().secrets()
        identity = self._stored_identity()
        if identity is not None:
            secrets["identity"] = str(identity)
        return secrets

    def public(self) -> dict[str, Any]:
        if self.mode != "recipients":
            return {"mode": self.mode}
        return {
            "mode": "recipients",
            "recipients": self.all_recipients(),
            "identity_stored": "identity" in self.secrets(),
        }
