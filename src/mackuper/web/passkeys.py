"""Passkeys (WebAuthn) with py_webauthn: registration and login ceremonies.

The relying party: a passkey is bound to a domain name (the RP id) and the browser
states the origin the page was loaded from, which the server compares with the one
it expects. Both come from MACKUPER_BASE_URL when it is set (the address people use;
behind a proxy that is the only trustworthy answer). Without it they come from the
request (`Host`, and the scheme; behind `MACKUPER_HTTPS` the proxy's forwarded
ones): a wrong Host header only makes the browser's signed origin differ from the
expected one, and the browser offers a passkey only to the domain it was made for.
An IP address cannot be an RP id (WebAuthn needs a domain name): reach the server by
a name (`localhost` works on one machine) to use passkeys.

Each ceremony's challenge is kept in the signed session cookie with what it is for
and when it was made, and used once: options for registering never finish a login.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import request, session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from mackuper.models import Passkey, User
from mackuper.web.database import runtime

RP_NAME = "Mackuper"
CHALLENGE_KEY = "webauthn_challenge"
CHALLENGE_LIFETIME = 300
"""Seconds a ceremony's options stay good for (the browser's own timeout is 60 s)."""


class PasskeyError(Exception):
    """The passkey could not be checked; the message says why, for the user."""


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str


def relying_party() -> RelyingParty:
    """The RP id and origin for this request (see the module docstring).

    Raises PasskeyError when the server is reached by an IP address."""
    address = runtime().settings.base_url or request.host_url
    parts = urlsplit(address)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise PasskeyError(
            "Passkeys need Mackuper reached by a name, not an IP address: open it by its"
            " host name (or set MACKUPER_BASE_URL)."
        )
    if not host:
        raise PasskeyError("Passkeys need Mackuper reached by a host name.")
    return RelyingParty(id=host, origin=f"{parts.scheme}://{parts.netloc}")


def _remember(purpose: str, challenge: bytes) -> None:
    session[CHALLENGE_KEY] = {
        "purpose": purpose,
        "challenge": bytes_to_base64url(challenge),
        "at": int(time.time()),
    }


def _take_challenge(purpose: str) -> bytes:
    stored = session.pop(CHALLENGE_KEY, None)
    if (
        not isinstance(stored, dict)
        or stored.get("purpose") != purpose
        or not isinstance(stored.get("at"), int)
        or time.time() - stored["at"] > CHALLENGE_LIFETIME
    ):
        raise PasskeyError("The passkey request expired; try again.")
    return base64url_to_bytes(str(stored["challenge"]))


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in passkey.transports or []:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id), transports=transports or None
    )


def user_handle(user: User) -> bytes:
    """The WebAuthn user id: the user's row id (no name or e-mail in it)."""
    return user.id.to_bytes(8, "big")


def registration_options(user: User, existing: list[Passkey]) -> str:
    """The options for navigator.credentials.create(), as JSON; the challenge is kept."""
    party = relying_party()
    options = generate_registration_options(
        rp_id=party.id,
        rp_name=RP_NAME,
        user_name=user.username,
        user_id=user_handle(user),
        exclude_credentials=[_descriptor(passkey) for passkey in existing],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    _remember("register", options.challenge)
    return options_to_json(options)


@dataclass(frozen=True)
class NewPasskey:
    credential_id: str
    public_key: bytes
    sign_count: int
    transports: list[str]


def verify_registration(credential: dict[str, Any]) -> NewPasskey:
    """The checked new credential; PasskeyError when it is not one for these options."""
    party = relying_party()
    challenge = _take_challenge("register")
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=party.id,
            expected_origin=party.origin,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PasskeyError(f"The passkey was not accepted: {error}") from None
    response = credential.get("response")
    transports = response.get("transports") if isinstance(response, dict) else None
    return NewPasskey(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=[str(item) for item in transports or [] if isinstance(item, str)][:10],
    )


def authentication_options(passkeys: list[Passkey] | None) -> str:
    """Options for navigator.credentials.get(), as JSON; the challenge is kept.

    `passkeys` None: a passwordless login, where the browser offers any passkey it
    holds for this site and the user must be verified (PIN, fingerprint)."""
    party = relying_party()
    options = generate_authentication_options(
        rp_id=party.id,
        allow_credentials=None if passkeys is None else [_descriptor(item) for item in passkeys],
        user_verification=(
            UserVerificationRequirement.REQUIRED
            if passkeys is None
            else UserVerificationRequirement.PREFERRED
        ),
    )
    _remember("login" if passkeys is not None else "passwordless", options.challenge)
    return options_to_json(options)


def credential_id_of(credential: dict[str, Any]) -> str:
    value = credential.get("id")
    if not isinstance(value, str) or not value or len(value) > 1400:
        raise PasskeyError("The browser sent no passkey.")
    return value


def verify_authentication(credential: dict[str, Any], passkey: Passkey, passwordless: bool) -> int:
    """The credential's new signature count when it is `passkey`'s answer to the kept
    challenge; PasskeyError otherwise."""
    party = relying_party()
    challenge = _take_challenge("passwordless" if passwordless else "login")
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=party.id,
            expected_origin=party.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=passwordless,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PasskeyError(f"The passkey was not accepted: {error}") from None
    return int(verified.new_sign_count)
