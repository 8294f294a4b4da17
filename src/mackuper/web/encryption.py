"""Encryption API: generate an age X25519 key pair, shown once and never stored here.

The private part goes back only in this response (marked no-store); it reaches the
database only if the user saves a job with "store the key for one-click restore",
and then encrypted with the master key. The public part is remembered in the
browser session, so a job encrypted to it is refused until the person confirms
they saved the private key (or chose to store it): one careless click must not
make every backup of a job unrecoverable.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, session
from werkzeug.wrappers import Response

from mackuper.encryption import generate_identity
from mackuper.schemas.answers import NewIdentity
from mackuper.schemas.encryption import Encryption
from mackuper.web.operations import operation
from mackuper.web.security import login_required

blueprint = Blueprint("encryption", __name__, url_prefix="/api/encryption")

GENERATED = "generated_recipients"
"""Session key: public keys of pairs generated in this session (public data only)."""
REMEMBERED = 20


@blueprint.post("/identity")
@login_required
@operation("Generate an age key pair (shown once, stored nowhere)", responses={200: NewIdentity})
def new_identity() -> Response:
    """A job encrypted to the new public key is refused until its body says
    `identity_saved: true` or stores the private key."""
    identity, recipient = generate_identity()
    remembered = [*session.get(GENERATED, []), recipient][-REMEMBERED:]
    session[GENERATED] = remembered
    response = jsonify(
        identity=identity,
        recipient=recipient,
        notice="Keep this private key now; it is shown only once."
        " Without it (or a stored copy) the backups cannot be restored.",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def unconfirmed_key(encryption: Encryption, saved: dict[str, Any]) -> dict[str, str]:
    """A field error when `encryption` adds a key pair generated in this session whose
    private key is neither confirmed saved nor stored on the server; else {}.

    `saved` is the job's encryption as stored: keys it already used were confirmed then.
    """
    if encryption.mode != "recipients" or encryption.store_identity or encryption.identity_saved:
        return {}
    generated = set(session.get(GENERATED, [])) - set(saved.get("recipients") or [])
    if not generated.intersection(encryption.recipients):
        return {}
    return {
        "encryption.identity_saved": "Confirm that you saved the private key (or store it on"
        " this server): without it these backups cannot be restored."
    }
