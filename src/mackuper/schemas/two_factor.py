"""Two-factor login: authenticator-app codes, recovery codes and passkeys."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from mackuper.schemas.answers import Answer
from mackuper.schemas.api import Password
from mackuper.schemas.base import Input

Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=64),
    Field(json_schema_extra={"writeOnly": True}),
]
"""A 6-digit code from the authenticator app, or a recovery code (xxxxx-xxxxx)."""

Credential = Annotated[dict[str, Any], Field(json_schema_extra={"writeOnly": True})]
"""What navigator.credentials answered, in its JSON form (base64url fields)."""


class CodeBody(Input):
    code: Code = ""


class PasswordAndCodeBody(Input):
    """The account's password and a current code (or a recovery code)."""

    password: Password = ""
    code: Code = ""


class PasswordOnlyBody(Input):
    password: Password = ""


class NewPasskeyBody(Input):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    credential: Credential


class PasskeyLoginBody(Input):
    credential: Credential


class PolicyBody(Input):
    required: bool


class PasskeyInfo(Answer):
    id: int
    name: str
    created_at: str
    last_used_at: str | None


class TwoFactorStatus(Answer):
    totp: bool
    """An authenticator app is set up."""
    recovery_codes_left: int
    passkeys: list[PasskeyInfo]
    required: bool
    """An administrator requires two-factor login for everyone."""


class TotpEnrolment(Answer):
    secret: str
    """Shown once, for typing into the app by hand."""
    uri: str
    """The otpauth:// URI an app reads."""


class RecoveryCodesAnswer(Answer):
    recovery_codes: list[str]
    """Shown once: each works one time when the app is lost."""


class PolicyAnswer(Answer):
    required: bool
