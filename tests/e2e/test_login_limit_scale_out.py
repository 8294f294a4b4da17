"""Issue 24 item 3 across processes: two `mackuper web` on one PostgreSQL database
share the login limits exactly.

Wrong logins are sent concurrently, alternating between the two processes, from
their own loopback address (127.0.0.2 ...: every 127/8 address is this machine, so
each client really is another address, with no proxy header to trust). Each
attempt is counted in the database before its password is checked, so exactly the
limit gets a 401 and every other attempt a 429, whichever process served it; a
client at another address still logs in. A logout on one process ends the session
on the other (sessions are rows too).
"""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from requests.adapters import HTTPAdapter
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from mackuper.models import LoginAttempt
from mackuper.web.login_limit import LoginLimits
from tests.harness import ADMIN_PASSWORD, ADMIN_USER, BrowserClient, MackuperProcess

pytestmark = pytest.mark.e2e

LIMITS = LoginLimits()
ATTEMPTS = 24


class SourceAddress(HTTPAdapter):
    """Connects from a chosen local address."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_from(base_url: str, address: str) -> BrowserClient:
    """A browser at `address` holding the login page's CSRF token."""
    client = BrowserClient(base_url)
    client.http.mount("http://", SourceAddress(address))
    client.page("/login")
    return client


def login_status(client: BrowserClient, username: str, password: str) -> int:
    response = client.api("POST", "/api/login", {"username": username, "password": password})
    assert response.status_code in {200, 401, 429}, response.text
    status: int = response.status_code
    return status


def concurrently(clients: list[BrowserClient], usernames: list[str]) -> Counter[int]:
    """Attempt i (wrong password, name usernames[i]) through clients[i % 2], 8 at a time."""

    def attempt(index: int) -> int:
        return login_status(clients[index % 2], usernames[index], "Wrong-pass-1")

    with ThreadPoolExecutor(max_workers=8) as pool:
        return Counter(pool.map(attempt, range(len(usernames))))


def test_two_web_processes_share_the_login_limit_exactly(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    shared = {
        "DATABASE_URL": empty_postgres_url,
        "MACKUPER_MASTER_KEY": Fernet.generate_key().decode(),
        "SECRET_KEY": uuid.uuid4().hex,
    }
    webs = [MackuperProcess(tmp_path / f"web-{index}-data", shared) for index in (1, 2)]
    engine = create_engine(empty_postgres_url)
    try:
        for web in webs:
            web.start("web", wait=False)
        for web in webs:
            web.wait_ready(timeout=90)
        BrowserClient(webs[0].url).complete_setup(
            {"name": "Disk", "kind": "local", "path": str(tmp_path / "backups")}
        )

        # One client, one user name, both processes: exactly the per-user limit checked.
        attacker = [client_from(web.url, "127.0.0.2") for web in webs]
        codes = concurrently(attacker, [ADMIN_USER] * ATTEMPTS)
        assert codes == {401: LIMITS.per_user, 429: ATTEMPTS - LIMITS.per_user}

        # Another client's correct password is not blocked, on either process...
        others = [client_from(web.url, "127.0.0.3") for web in webs]
        for other in others:
            assert login_status(other, ADMIN_USER, ADMIN_PASSWORD) == 200
        # ...while the attacker's address stays refused, even with the right one.
        assert login_status(attacker[1], ADMIN_USER, ADMIN_PASSWORD) == 429

        # Logging out on one process ends the session on the other: a copy of the
        # cookie that works on web-2 is refused there once web-1 logged it out.
        copy = BrowserClient(webs[1].url)
        copy.http.cookies.update(others[0].http.cookies)
        assert copy.api("GET", "/api/jobs").status_code == 200
        others[0].ok("POST", "/api/logout")
        assert copy.api("GET", "/api/jobs").status_code == 401

        # One client trying a new name each time: exactly the per-address limit checked.
        sprayer = [client_from(web.url, "127.0.0.4") for web in webs]
        names = [f"guess-{index}" for index in range(LIMITS.per_address + 10)]
        codes = concurrently(sprayer, names)
        assert codes == {401: LIMITS.per_address, 429: 10}
        with Session(engine) as session:
            rows = session.scalar(select(func.count()).select_from(LoginAttempt))
        # The attacker's address and name, the other client's address (its name's row
        # went with its success), the sprayer's address and the names it could try.
        assert rows == 2 + 1 + 1 + LIMITS.per_address
    finally:
        engine.dispose()
        for web in webs:
            try:
                web.stop()
            finally:
                web.kill_all()
