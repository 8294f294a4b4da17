"""Loopback ports: find a free one, wait until a server listens on one."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now.

    The kernel picks it (bind to port 0). Another process could take it before
    the caller binds it, but on a test machine that race is rare enough.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Return True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_banner(port: int, host: str = LOOPBACK, timeout: float = 2.0) -> bytes:
    """Connect to ``host:port`` and return the first bytes the server sends.

    Returns ``b""`` when nothing can be read (connection refused, reset, or the
    server said nothing within ``timeout``).
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.recv(256)
    except OSError:
        return b""
