"""Slow clients on loopback: connections that trickle a request's headers.

`SlowClients` opens connections that send a request line at once and then one
header byte every 2 to 5 s, never finishing the headers (a "slowloris"). `probe`
times one ordinary GET. Shared by tests/e2e/test_slow_clients.py and
bench/web_servers.py.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from types import TracebackType

import requests

REQUEST_LINE = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class SlowClients:
    """`count` connections to 127.0.0.1:`port`, each sending one more header byte
    every 2 to 5 s from a single thread, until `close()` (or the `with` block's end)."""

    def __init__(self, port: int, count: int, seed: int = 24) -> None:
        self.port = port
        self.count = count
        self.random = random.Random(seed)
        self.sockets: list[socket.socket] = []
        self.next_send: list[float] = []
        self.sent_bytes = 0
        self.dropped = 0  # connections the server closed on us
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slow-clients", daemon=True)

    def open(self) -> SlowClients:
        """Connect every client and send its request line; OSError if one cannot connect."""
        now = time.monotonic()
        for _ in range(self.count):
            connection = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            connection.sendall(REQUEST_LINE)
            self.sockets.append(connection)
            self.next_send.append(now + self.random.uniform(2, 5))
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(0.1):
            now = time.monotonic()
            for index, connection in enumerate(self.sockets):
                if connection.fileno() < 0 or now < self.next_send[index]:
                    continue
                try:
                    connection.sendall(b"a")
                    self.sent_bytes += 1
                except OSError:
                    connection.close()
                    self.dropped += 1
                self.next_send[index] = now + self.random.uniform(2, 5)

    def still_open(self) -> int:
        """How many connections the server has not closed (a non-blocking peek each)."""
        open_count = 0
        for connection in self.sockets:
            if connection.fileno() < 0:
                continue
            connection.setblocking(False)
            try:
                closed = connection.recv(1, socket.MSG_PEEK) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            finally:
                connection.setblocking(True)
            open_count += not closed
        return open_count

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for connection in self.sockets:
            connection.close()

    def __enter__(self) -> SlowClients:
        return self.open()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def probe(url: str, timeout: float = 3.0) -> tuple[float, int | str]:
    """GET `url` on a new connection: (seconds taken, status code or the error's name)."""
    started = time.monotonic()
    try:
        status: int | str = requests.get(url, timeout=timeout).status_code
    except requests.RequestException as error:
        status = type(error).__name__
    return time.monotonic() - started, status


def probe_while_held(
    url: str, port: int, count: int, seconds: float, every: float = 0.5
) -> tuple[list[tuple[float, int | str]], SlowClients]:
    """Hold `count` slow clients open on `port` and probe `url` every `every` s for
    `seconds` s; the probes (latency, status) and the closed `SlowClients`."""
    probes: list[tuple[float, int | str]] = []
    with SlowClients(port, count) as clients:
        time.sleep(1)  # every client has sent its request line and is waiting
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            probes.append(probe(url))
            time.sleep(max(0.0, every - (time.monotonic() - started)))
        clients.dropped += count - clients.still_open() - clients.dropped
    return probes, clients
