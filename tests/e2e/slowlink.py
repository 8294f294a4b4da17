"""A TCP proxy on loopback that limits upload bandwidth, like a slow uplink to S3.

UI tests use it to keep a small backup running for a few seconds whatever the
machine's speed, so a page can be watched while a run is in progress.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

CHUNK = 16 * 1024


def _pump(source: socket.socket, target: socket.socket, bytes_per_second: float | None) -> None:
    with suppress(OSError):
        while data := source.recv(CHUNK):
            target.sendall(data)
            if bytes_per_second:
                time.sleep(len(data) / bytes_per_second)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@contextmanager
def slow_link(upstream_url: str, bytes_per_second: float) -> Iterator[str]:
    """Yields an http://127.0.0.1:PORT URL forwarding to `upstream_url`'s host and port."""
    parts = urlsplit(upstream_url)
    upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()
    connections: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            connections.extend((client, server))
            for args in ((client, server, bytes_per_second), (server, client, None)):
                threading.Thread(target=_pump, args=args, daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        listener.close()
        for connection in connections:
            with suppress(OSError):
                connection.close()
        thread.join(timeout=5)
