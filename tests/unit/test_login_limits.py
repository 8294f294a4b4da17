"""Issue 24 item 3: login limits that nobody else's failures can trip, kept in the
database, and a login time that does not tell whether a user exists.

The exact count under concurrency, across two web processes on PostgreSQL, is
tests/e2e/test_login_limit_scale_out.py.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import argon2
import pytest
from flask import Flask
from sqlalchemy import func, select

from mackuper import passwords
from mackuper.models import LoginAttempt, User
from mackuper.runtime import Runtime
from mackuper.web import create_app
from mackuper.web.login_limit import LoginLimiter, LoginLimits, client_network
from tests.conftest import ADMIN_PASSWORD, ApiClient

WRONG = "Wrong-pass-1"


def _client_at(app: Flask, address: str) -> ApiClient:
    """A browser at `address` on the login page (holding its CSRF token)."""
    client = ApiClient(app.test_client())
    client.client.environ_base["REMOTE_ADDR"] = address
    client.refresh_csrf("/login")
    return client


def _login(client: ApiClient, username: str, password: str) -> int:
    response = client.call("POST", "/api/login", {"username": username, "password": password})
    status: int = response.status_code
    return status


class CountingHasher:
    """argon2's hasher, writing down the hash of every verification."""

    def __init__(self, hasher: argon2.PasswordHasher) -> None:
        self.hasher = hasher
        self.verified: list[str] = []

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return self.hasher.verify(password_hash, password)


@pytest.fixture
def verified_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hash given to every argon2 verification from now on, in order."""
    counting = CountingHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", counting)
    return counting.verified


def _attempt_rows(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(LoginAttempt)) or 0


def test_an_unknown_user_name_costs_one_argon2_verification_like_a_known_one(
    app: Flask, api: ApiClient, runtime: Runtime, verified_hashes: list[str]
) -> None:
    with runtime.sessions() as session:
        admin_hash = session.scalars(select(User.password_hash)).one()
    client = _client_at(app, "192.0.2.10")

    assert _login(client, "admin", WRONG) == 401
    assert _login(client, "nobody", WRONG) == 401
    assert _login(client, "nobody-else", WRONG) == 401

    assert len(verified_hashes) == 3
    known, unknown, other_unknown = verified_hashes
    assert known == admin_hash
    # Unknown names verify against one dummy hash made once, as costly as a real one.
    assert unknown == other_unknown != admin_hash
    assert argon2.extract_parameters(unknown) == argon2.extract_parameters(admin_hash)


def test_one_address_failures_never_block_another_address_correct_password(
    app: Flask, api: ApiClient, verified_hashes: list[str]
) -> None:
    attacker = _client_at(app, "192.0.2.66")
    codes = [_login(attacker, "admin", WRONG) for _ in range(60)]
    assert codes == [401] * 5 + [429] * 55
    assert len(verified_hashes) == 5  # a refused attempt runs no argon2

    assert _login(_client_at(app, "198.51.100.7"), "admin", ADMIN_PASSWORD) == 200
    assert _login(_client_at(app, "2001:db8:1::5"), "admin", ADMIN_PASSWORD) == 200
    # The attacker's own address stays refused, even with the right password.
    refused = attacker.call("POST", "/api/login", {"username": "admin", "password": ADMIN_PASSWORD})
    assert refused.status_code == 429
    assert "try again in 15 minute(s)" in refused.get_json()["error"]
    assert 0 < int(refused.headers["Retry-After"]) <= 900
    assert ADMIN_PASSWORD not in refused.get_data(as_text=True)


def test_a_successful_login_clears_the_count_for_its_address_and_name(
    app: Flask, api: ApiClient
) -> None:
    client = _client_at(app, "192.0.2.20")
    assert [_login(client, "admin", WRONG) for _ in range(4)] == [401] * 4
    assert _login(client, "admin", ADMIN_PASSWORD) == 200
    assert client.call("POST", "/api/logout").status_code == 200
    client.refresh_csrf("/login")
    assert [_login(client, "admin", WRONG) for _ in range(6)] == [401] * 5 + [429]


def test_an_address_trying_many_names_is_capped_and_adds_bounded_rows(
    app: Flask, api: ApiClient, runtime: Runtime
) -> None:
    limits = LoginLimits()
    client = _client_at(app, "192.0.2.30")
    codes = [_login(client, f"guess-{index}", WRONG) for index in range(limits.per_address + 20)]
    assert Counter(codes) == {401: limits.per_address, 429: 20}
    assert codes[: limits.per_address] == [401] * limits.per_address
    # One row for the address and one per name it was allowed to try: the 20 names
    # tried over the cap added none.
    assert _attempt_rows(runtime) == 1 + limits.per_address
    # An IPv6 client counts by its /64: changing the last bits does not reset it.
    for index in range(limits.per_address):
        _login(_client_at(app, f"2001:db8:2::{index + 1:x}"), f"name-{index}", WRONG)
    assert _login(_client_at(app, "2001:db8:2::ffff"), "admin", ADMIN_PASSWORD) == 429
    assert _login(_client_at(app, "2001:db8:3::1"), "admin", ADMIN_PASSWORD) == 200


def test_attempts_are_forgotten_when_their_window_has_passed(runtime: Runtime) -> None:
    now = [datetime(2026, 11, 30, 12, 0, tzinfo=UTC)]
    limiter = LoginLimiter("secret-key-for-tests", LoginLimits(per_user=2), clock=lambda: now[0])
    with runtime.sessions() as session:
        admitted = [limiter.admit(session, "192.0.2.1", "admin").allowed for _ in range(3)]
        assert admitted == [True, True, False]
        now[0] += timedelta(minutes=5)
        refused = limiter.admit(session, "192.0.2.1", "Admin")  # names count case-blind
        assert refused.retry_after == 10 * 60
        for index in range(5):
            limiter.admit(session, f"192.0.2.{100 + index}", "someone")
        assert _attempt_rows(runtime) == 2 + 2 * 5

        now[0] += timedelta(minutes=15)
        again = limiter.admit(session, "192.0.2.1", "admin")
        assert again.allowed
        # Every other row's window had passed: only this attempt's two rows remain.
        assert _attempt_rows(runtime) == 2
        stored = session.scalars(select(LoginAttempt.key)).all()
        assert all("admin" not in key and "192.0.2" not in key for key in stored)


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::9", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        (None, "unknown"),
        ("not an address", "not an address"),
    ],
)
def test_a_client_is_limited_by_its_address_or_its_ipv6_64(
    address: str | None, network: str
) -> None:
    assert client_network(address) == network


def test_login_limits_are_shared_by_apps_on_one_database(runtime: Runtime, api: ApiClient) -> None:
    """Two apps stand for two processes: failures counted by one count in the other."""
    first = create_app(runtime, {"TESTING": True})
    second = create_app(runtime, {"TESTING": True})
    codes = [_login(_client_at(app, "192.0.2.40"), "admin", WRONG) for app in [first, second] * 4]
    assert codes == [401] * 5 + [429] * 3


def test_a_password_typed_as_the_user_name_is_not_logged(
    app: Flask, api: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client_at(app, "192.0.2.50")
    with caplog.at_level("INFO"):
        assert _login(client, ADMIN_PASSWORD, ADMIN_PASSWORD) == 401
        assert _login(client, "admin", WRONG) == 401
    assert ADMIN_PASSWORD not in caplog.text
    assert "failed login for an unknown user name from 192.0.2.50" in caplog.text
    assert "failed login for 'admin' from 192.0.2.50" in caplog.text
