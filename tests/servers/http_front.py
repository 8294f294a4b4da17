"""A tiny HTTP front for a real server that refuses chosen requests, to test retries.

Every request is forwarded as it came (method, path, headers, body) to the server
behind, unless `refuse(method, path)` says otherwise: then it is answered with the
S3 error `503 SlowDown`, as a throttling or overloaded S3 endpoint does. Each
request's time is recorded, so a test can check when a client tried again.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers.ports import LOOPBACK

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"}
"""Not forwarded: they concern one hop (the front has read the whole body already)."""
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class Seen:
    at: float
    method: str
    path: str
    refused: bool
    range: str | None = None
    """The request's Range header."""
    sent: int = 0
    """Body bytes answered (a test counts what a client read)."""


@dataclass
class HttpFront:
    target: tuple[str, int]
    refuse: Callable[[str, str], bool]
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("the front is not running")
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        refused = self.refuse(handler.command, handler.path)
        seen = Seen(
            time.monotonic(), handler.command, handler.path, refused, handler.headers.get("Range")
        )
        self.seen.append(seen)
        if refused:
            handler.send_response(503)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(SLOW_DOWN)))
            handler.end_headers()
            handler.wfile.write(SLOW_DOWN)
            return
        upstream = http.client.HTTPConnection(*self.target, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        handler.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP | {"content-length"}:
                handler.send_header(key, value)
        # A HEAD answer has no body but announces the object's length, as the server did.
        length = response.getheader("Content-Length") if handler.command == "HEAD" else None
        handler.send_header("Content-Length", length or str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
            seen.sent = len(data)


def _handler_for(front: HttpFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            front.handle(self)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return None

    return Handler


@contextlib.contextmanager
def http_front(target: tuple[str, int], refuse: Callable[[str, str], bool]) -> Iterator[HttpFront]:
    """An HttpFront to `target` on a free loopback port, stopped afterwards."""
    front = HttpFront(target, refuse)
    front.server = ThreadingHTTPServer((LOOPBACK, 0), _handler_for(front))
    front.server.daemon_threads = True
    thread = threading.Thread(target=front.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield front
    finally:
        front.server.shutdown()
        front.server.server_close()
        thread.join(timeout=5)
