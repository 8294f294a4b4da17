"""A loopback TCP proxy that cuts traffic on demand, to test outages of real servers.

Put it in front of a real server (an S3 endpoint, sshd, PostgreSQL) and point the
code under test at the proxy. `cut()` makes the server look gone:

- new connections are refused (the listening socket is closed, so the kernel
  answers with RST, exactly as for a stopped server);
- connections already open are reset (`existing="reset"`: closed with SO_LINGER 0,
  so both ends see ECONNRESET) or stalled (`existing="stall"`: bytes stop moving
  until the traffic is restored, as when a route disappears).

`cut(seconds)` restores the traffic by itself after `seconds`; `cut()` cuts it for
good, until `restore()`. The proxy listens on the same port throughout.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

from tests.servers.ports import LOOPBACK

CHUNK = 64 * 1024


def _reset(sock: socket.socket) -> None:
    """Close `sock` so that the peer sees a reset, not an orderly end.

    close() alone does not reach a socket another thread is blocked on (a pipe in
    recv or sendall): the kernel keeps it open until that call returns, and the
    client would wait for its read timeout. shutdown() wakes those threads first.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``target``, until told to cut the traffic."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.lock = threading.Lock()
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = threading.Event()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.connections = 0
        """Connections accepted so far (a test can see that a client reconnected)."""
        self.cuts: list[tuple[float, float | None]] = []
        """(start, end) in time.monotonic() of each cut; end None while it lasts."""
        self._timer: threading.Timer | None = None
        self.listener: socket.socket | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # --- control -------------------------------------------------------------

    def cut(self, seconds: float | None = None, existing: str = "reset") -> None:
        """Refuse new connections and reset (or stall) open ones, for `seconds` or for good."""
        if existing not in {"reset", "stall"}:
            raise ValueError("existing is 'reset' or 'stall'")
        with self.lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self.flowing.is_set():
                self.cuts.append((time.monotonic(), None))
            self.flowing.clear()
            if self.listener is not None:
                self._stop_listening()
            if existing == "reset":
                for client, upstream in self.pairs:
                    _reset(client)
                    _reset(upstream)
                self.pairs = []
            if seconds is not None:
                self._timer = threading.Timer(seconds, self.restore)
                self._timer.daemon = True
                self._timer.start()

    def restore(self) -> None:
        """Let traffic flow again: accept new connections, resume stalled ones."""
        with self.lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self.closed.is_set() or self.flowing.is_set():
                return
            self._listen()
            if self.cuts and self.cuts[-1][1] is None:
                self.cuts[-1] = (self.cuts[-1][0], time.monotonic())
            self.flowing.set()

    def close(self) -> None:
        with self.lock:
            self.closed.set()
            if self._timer is not None:
                self._timer.cancel()
            if self.listener is not None:
                self._stop_listening()
            for client, upstream in self.pairs:
                _reset(client)
                _reset(upstream)
            self.pairs = []
        self.flowing.set()  # wake stalled pipes so their threads end

    # --- forwarding ------------------------------------------------------------

    def _stop_listening(self) -> None:
        # close() alone leaves the socket listening while accept() blocks on it in
        # another thread; shutdown() stops the listening and wakes that thread.
        if self.listener is None:
            return
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.listener = None

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self.closed.is_set():
            try:
                client, _address = listener.accept()
            except OSError:
                return  # closed by cut() or close()
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self.lock:
                if not self.flowing.is_set() or self.closed.is_set():
                    _reset(client)
                    _reset(upstream)
                    continue
                self.pairs.append((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                self.flowing.wait()  # a stall holds the bytes here
                if self.closed.is_set():
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def fault_proxy(host: str, port: int) -> Iterator[FaultProxy]:
    """A FaultProxy to ``host:port``, closed afterwards."""
    proxy = FaultProxy(host, port)
    try:
        yield proxy
    finally:
        proxy.close()


def endpoint_address(url: str) -> tuple[str, int]:
    """``("127.0.0.1", 9000)`` from ``http://127.0.0.1:9000``."""
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)
