"""Encryption API: generate an age X25519 key pair, shown once and never stored here.

The private part goes back only in this response (marked no-store); it reaches the
database only if the user saves a job with "store the key for one-click restore",
and then encrypted with the master key.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from mackuper.encryption import generate_identity
from mackuper.schemas.answers import NewIdentity
from mackuper.web.operations import operation
from mackuper.web.security import login_required

blueprint = Blueprint("encryption", __name__, url_prefix="/api/encryption")


@blueprint.post("/identity")
@login_required
@operation("Generate an age key pair (shown once, stored nowhere)", responses={200: NewIdentity})
def new_identity() -> Response:
    identity, recipient = generate_identity()
    response = jsonify(
        identity=identity,
        recipient=recipient,
        notice="Keep this private key now; it is shown only once."
        " Without it (or a stored copy) the backups cannot be restored.",
    )
    response.headers["Cache-Control"] = "no-store"
    return response
