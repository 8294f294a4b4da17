"""The Flask app behind the async worker: a response body stops being produced (and is
closed) once its client has hung up, and is produced whole when it stays."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mackuper.gunicorn_conf import asgi_app

pytestmark = pytest.mark.timeout(30)

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/download",
    "query_string": b"",
    "root_path": "",
    "headers": [],
    "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 5000),
}


class Body:
    """An endless (or `limit`-chunk) response body that counts what it produced."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.produced = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for _ in itertools.count() if self.limit is None else range(self.limit):
            self.produced += 1
            yield b"x" * 1024

    def close(self) -> None:
        self.closed = True


def serve_one(body: Body, hang_up_after: int | None) -> list[dict[str, Any]]:
    """Run one request through asgi_app; the client hangs up after `hang_up_after`
    body messages (never when None). The messages the client was sent."""

    def wsgi(_environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return body

    async def run() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        gone = asyncio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if gone.is_set():
                return  # what uvicorn does once the client has gone
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                gone.set()  # the response is complete: uvicorn answers receive likewise
            bodies = sum(m["type"] == "http.response.body" for m in sent)
            if hang_up_after is not None and bodies >= hang_up_after:
                gone.set()
            await asyncio.sleep(0)

        await asgi_app(wsgi, threads=2)(SCOPE, receive, send)  # type: ignore[arg-type]
        return sent

    # Its own thread: Playwright's sync API (other tests in the session) leaves an
    # event loop running in the main thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()


def test_a_download_stops_and_is_closed_once_the_client_hangs_up() -> None:
    body = Body()
    sent = serve_one(body, hang_up_after=5)

    assert sent[0]["status"] == 200
    assert body.closed
    assert body.produced < 50  # a few chunks were in flight, not the endless rest


def test_a_download_is_sent_whole_while_the_client_stays() -> None:
    body = Body(limit=300)
    sent = serve_one(body, hang_up_after=None)

    chunks = [m["body"] for m in sent if m["type"] == "http.response.body" and m["body"]]
    assert len(chunks) == 300 and body.produced == 300
    assert body.closed
