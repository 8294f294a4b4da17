"""A real OpenID Connect provider on a loopback port: panva's certified `oidc-provider`
from npm (tests/servers/oidc/, installed by `npm ci --prefix tests/servers/oidc`, as
scripts/test does), run by node with a static client and accounts given here.

The provider's login page is its own development form: any password, the account is
the login name. `sign_in_at_provider` fills it in as a browser would, with requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from tests.servers.ports import LOOPBACK, free_port
from tests.servers.process import ManagedProcess

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc"
SCRIPT = PROVIDER_DIR / "provider.mjs"
CLIENT_ID = "mackuper"
CLIENT_SECRET = "provider-client-secret-4f9c2e"  # noqa: S105 - a throwaway test client

ACCOUNTS: dict[str, dict[str, Any]] = {
    "olivia": {
        "email": "olivia@example.org",
        "email_verified": True,
        "name": "Olivia Operator",
        "groups": ["staff", "backup-operators"],
    },
    "uma": {
        "email": "uma@example.org",
        "email_verified": True,
        "name": "Uma Unmapped",
        "groups": ["staff", "marketing"],
    },
    "alice": {
        "email": "alice@example.org",
        "email_verified": True,
        "name": "Alice Admin",
        "groups": ["backup-admins"],
    },
}
"""Accounts by login name (also their subject); olivia's group maps to operator in the tests."""


@dataclass
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str
    accounts: Mapping[str, Mapping[str, Any]]
    process: ManagedProcess
    work_dir: Path
    redirect_uris: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.process.log_text()


def _node_modules_or_fail() -> str:
    """node's path; a missing node or provider install fails under CI, else skips."""
    node = shutil.which("node")
    installed = (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir()
    if node and installed:
        return node
    problem = (
        "node is not installed (apt-get install nodejs npm)"
        if not node
        else f"the OpenID provider is not installed: npm ci --prefix {PROVIDER_DIR}"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(problem)
    pytest.skip(problem)


@contextlib.contextmanager
def running_oidc_provider(redirect_uris: list[str]) -> Iterator[OidcProvider]:
    """oidc-provider on a free loopback port with one confidential client (PKCE
    required) allowed to return to `redirect_uris`; stopped afterwards."""
    node = _node_modules_or_fail()
    work_dir = Path(tempfile.mkdtemp(prefix="mkp-oidc-"))
    port = free_port()
    issuer = f"http://{LOOPBACK}:{port}"
    config = {
        "port": port,
        "issuer": issuer,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": redirect_uris,
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }
        ],
        "accounts": ACCOUNTS,
    }
    config_path = work_dir / "config.json"
    config_path.write_text(json.dumps(config))
    process = ManagedProcess(
        "oidc-provider", [node, str(SCRIPT), str(config_path)], work_dir / "provider.log"
    )
    provider = OidcProvider(
        issuer, CLIENT_ID, CLIENT_SECRET, ACCOUNTS, process, work_dir, redirect_uris
    )
    try:
        process.start()
        process.wait_ready(lambda: _answers(issuer), timeout=60)
        yield provider
    finally:
        process.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


def _answers(issuer: str) -> bool:
    try:
        url = issuer + "/.well-known/openid-configuration"
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"')


def _follow(http: requests.Session, url: str, origin: str) -> tuple[requests.Response | None, str]:
    """GET `url` and follow redirects while they stay at `origin`: (the page, its URL),
    or (None, the URL a redirect leaves `origin` for)."""
    while True:
        if not url.startswith(origin):
            return None, url
        response = http.get(url, allow_redirects=False, timeout=15)
        if not response.is_redirect:
            return response, url
        url = urljoin(url, response.headers["Location"])


def sign_in_at_provider(http: requests.Session, authorize_url: str, login: str) -> str:
    """Open the provider's authorization URL, post its login form as `login`, and
    follow the provider's redirects until they leave it: the URL it sends the
    browser back to (the relying party's callback, with code and state, or error)."""
    origin_match = re.match(r"https?://[^/]+", authorize_url)
    assert origin_match
    origin = origin_match.group(0)
    page, url = _follow(http, authorize_url, origin)
    if page is None:
        return url
    page.raise_for_status()
    match = FORM.search(page.text)
    assert match, f"no login form at the provider:\n{page.text[:2000]}"
    action, body = match.groups()
    fields = {name: unescape(value) for name, value in HIDDEN.findall(body)}
    fields.update(login=login, password="any password")  # noqa: S106 - dev login form
    url = urljoin(url, unescape(action))
    response = http.post(url, data=fields, allow_redirects=False, timeout=15)
    assert response.is_redirect, f"the provider kept the browser:\n{response.text[:2000]}"
    page, url = _follow(http, urljoin(url, response.headers["Location"]), origin)
    assert page is None, f"the provider did not send the browser back:\n{page.text[:2000]}"
    return url
