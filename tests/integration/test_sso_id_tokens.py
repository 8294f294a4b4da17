"""ID tokens that must not log anyone in: a hostile provider on loopback answers the
code exchange with a token that is wrong in one way each (signature, issuer,
audience, expiry, nonce, algorithm "none", missing), and Mackuper refuses it with a
clear message, no session and no 500. A correct token from the same server logs in,
so each refusal is the check's doing.

The certified provider of test_sso.py never issues a bad token, hence this small one:
discovery, JWKS, an authorization endpoint that sends the browser straight back, and
a token endpoint that insists on the PKCE verifier.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from mackuper.models import AuditEvent, User
from mackuper.runtime import Runtime
from tests.conftest import ApiClient
from tests.servers.ports import LOOPBACK, free_port

pytestmark = pytest.mark.integration

CLIENT_ID = "mackuper"
KEY = RSAKey.generate_key(2048, parameters={"kid": "signing"})
IMPOSTOR = RSAKey.generate_key(2048, parameters={"kid": "signing"})


@dataclass
class HostileProvider:
    issuer: str
    scenario: str = "good"
    nonces: dict[str, str] = field(default_factory=dict)
    """code -> the nonce the authorization request carried."""
    challenges: dict[str, str] = field(default_factory=dict)


def _id_token(provider: HostileProvider, nonce: str) -> str | None:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": provider.issuer,
        "sub": "hostile-1",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
        "preferred_username": "mallory",
        "groups": ["backup-operators"],
    }
    header = {"alg": "RS256", "kid": "signing"}
    key = KEY
    match provider.scenario:
        case "wrong signature":
            key = IMPOSTOR
        case "wrong issuer":
            claims["iss"] = "http://evil.example"
        case "wrong audience":
            claims["aud"] = "another-client"
        case "expired":
            claims["exp"] = now - 600
            claims["iat"] = now - 900
        case "wrong nonce":
            claims["nonce"] = "replayed"
        case "missing":
            return None
        case "alg none":
            encoded = [
                base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
                for part in ({"alg": "none", "typ": "JWT"}, claims)
            ]
            return ".".join(encoded) + "."
    return jwt.encode(header, claims, key)


def _provider_app(provider: HostileProvider) -> Flask:
    app = Flask("hostile_provider")

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        return jsonify(
            issuer=provider.issuer,
            authorization_endpoint=provider.issuer + "/authorize",
            token_endpoint=provider.issuer + "/token",
            jwks_uri=provider.issuer + "/jwks",
            id_token_signing_alg_values_supported=["RS256"],
        )

    @app.get("/jwks")
    def jwks() -> Response:
        return jsonify(KeySet([KEY]).as_dict(private=False))

    @app.get("/authorize")
    def authorize() -> Any:
        code = f"code-{len(provider.nonces)}"
        provider.nonces[code] = request.args["nonce"]
        provider.challenges[code] = request.args["code_challenge"]
        back = {"code": code, "state": request.args["state"]}
        return redirect(request.args["redirect_uri"] + "?" + urlencode(back))

    @app.post("/token")
    def token() -> Any:
        code = request.form["code"]
        verifier = request.form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != provider.challenges[code]:
            return jsonify(error="invalid_grant"), 400
        answer = {"access_token": "access", "token_type": "Bearer", "expires_in": 300}
        id_token = _id_token(provider, provider.nonces[code])
        if id_token is not None:
            answer["id_token"] = id_token
        return jsonify(answer)

    return app


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileProvider]:
    port = free_port()
    provider = HostileProvider(f"http://{LOOPBACK}:{port}")
    server = make_server(LOOPBACK, port, _provider_app(provider), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield provider
    server.shutdown()
    thread.join(timeout=10)


def _sign_in(app: Flask, api: ApiClient, provider: HostileProvider) -> Any:
    settings = {
        "enabled": True,
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": "hostile-secret",
        "role_mapping": [{"group": "backup-operators", "role": "operator"}],
    }
    assert api.call("PUT", "/api/sso/settings", settings).status_code == 200
    browser = app.test_client()
    start = browser.get("/sso/login")
    assert start.status_code == 302
    # The hostile /authorize sends the browser straight back; follow it by hand.
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    callback = urlsplit(back.headers["Location"])
    response = browser.get(f"{callback.path}?{callback.query}")
    return browser, response


def test_a_correct_token_from_the_same_server_logs_in(
    app: Flask, api: ApiClient, runtime: Runtime, hostile: HostileProvider
) -> None:
    hostile.scenario = "good"

    browser, response = _sign_in(app, api, hostile)

    assert response.status_code == 302, response.get_data(as_text=True)
    assert browser.get("/api/jobs").status_code == 200
    with runtime.sessions() as session:
        mallory = session.scalar(select(User).where(User.username == "mallory"))
        assert mallory is not None and mallory.role.value == "operator"


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("wrong signature", "ID token did not check out"),
        ("wrong issuer", "ID token did not check out"),
        ("wrong audience", "ID token did not check out"),
        ("expired", "ID token did not check out"),
        ("wrong nonce", "ID token did not check out"),
        ("alg none", "ID token did not check out"),
        ("missing", "sent no ID token"),
    ],
)
def test_a_token_wrong_in_any_way_logs_nobody_in(
    app: Flask,
    api: ApiClient,
    runtime: Runtime,
    hostile: HostileProvider,
    scenario: str,
    message: str,
) -> None:
    hostile.scenario = scenario

    browser, response = _sign_in(app, api, hostile)

    assert 400 <= response.status_code < 500 or response.status_code == 502
    assert message in response.get_data(as_text=True)
    assert browser.get("/api/jobs").status_code == 401
    with runtime.sessions() as session:
        assert session.scalar(select(User).where(User.username == "mallory")) is None
        failed = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "SSO login failed")
        ).all()
    assert len(failed) == 1 and failed[0].address == "127.0.0.1"
