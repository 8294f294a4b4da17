"""A slow network link for tests: a loopback TCP proxy with a bandwidth limit.

Put it in front of a real server (an S3 endpoint) so that an upload takes
seconds instead of milliseconds and a test can act while it is in flight.
The limit is shared by all connections, like one uplink.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from tests.servers.ports import LOOPBACK

CHUNK = 64 * 1024


class _Limiter:
    def __init__(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def take(self, size: int) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(self.next_free, now)
            self.next_free = start + size / self.rate
            wait = self.next_free - now
        if wait > 0:
            time.sleep(wait)


class ThrottledProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; client-to-server bytes are limited."""

    def __init__(self, target_host: str, target_port: int, bytes_per_second: float) -> None:
        self.target = (target_host, target_port)
        self.limiter = _Limiter(bytes_per_second)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(32)
        self.port: int = self.listener.getsockname()[1]
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> ThrottledProxy:
        self.thread.start()
        return self

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, limited: bool) -> None:
        try:
            while data := source.recv(CHUNK):
                if limited:
                    self.limiter.take(len(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def throttled(endpoint_url: str, bytes_per_second: float) -> Iterator[ThrottledProxy]:
    """A proxy to ``http://host:port`` limited to ``bytes_per_second`` upstream."""
    host, port = endpoint_url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    proxy = ThrottledProxy(host, int(port), bytes_per_second).start()
    try:
        yield proxy
    finally:
        proxy.close()
