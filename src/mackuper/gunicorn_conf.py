"""Gunicorn settings for `mackuper web` (and the web child of `mackuper serve`).

Kept in one place so the container, the scale-out recipe and bare-metal runs
use the same server behaviour:

- `AsyncWorker` processes (WEB_CONCURRENCY of them): uvicorn's event loop reads each
  request whole, then one of 8 threads a process runs the Flask app on it (a2wsgi).
  A client that trickles its headers costs a socket and a few kilobytes, never a
  thread. With gunicorn's gthread workers it held a thread until it finished its
  headers, so a handful of such clients took the web UI offline without logging in.
  Measured twice on the shared 2-core machine (`bench/web_servers.py`, section "Web
  server: slow clients" of docs/benchmarks.md; 2 processes, 64 clients each sending
  one header byte every 2 to 5 s while /login is fetched every 0.5 s for 20 s):

  | server                      | /login probes        | /login req/s | download MiB/s |
  |-----------------------------|----------------------|--------------|----------------|
  | gthread, 4 threads (before) | all failed, twice    | 537 / 646    | 1448 / 1279    |
  | gthread, 64 threads         | 0.13 s; 6 of 15 fail | 598 / 418    |  924 / 605     |
  | AsyncWorker, h11 (this)     | all within 0.05 s    | 449 / 610    | 1058 / 884     |
  | AsyncWorker, httptools      | all within 0.09 s    | 598 / 351    | 1033 / 667     |
  | waitress, 8 threads         | all within 0.20 s    | 356 / 319    |  684 / 182     |

  With 256 such clients gthread with 64 threads and waitress (100 connections at
  most by default) failed every probe; AsyncWorker answered all within 0.07 s.
  More threads only move the cliff (connections spread unevenly over processes,
  and each thread is one more request against the database pool); waitress is one
  process with no graceful stop. The parser is h11, not httptools: h11 bounds an
  unfinished request head, httptools does not (see CONFIG_KWARGS).
- The response body of a request whose client has hung up stops being produced
  (`WatchDisconnect`): uvicorn discards what is sent to a gone client, and a
  download would otherwise read its whole backup.
- `graceful_timeout` 8 s, so a stopping container finishes within Docker's
  default 10 s stop timeout; uvicorn gives running requests 6 s of it.
- Forwarded headers (X-Forwarded-Proto/For/Host) are trusted only when
  HTTPS_ENABLED is on, i.e. when the operator says a TLS reverse proxy is in
  front; otherwise a client cannot make Mackuper believe it is on HTTPS. The app's
  ProxyFix reads them; uvicorn's own proxy header handling is off.
- Gunicorn's and uvicorn's log lines go through the root logger, so they share the
  `[timestamp] LEVEL [module.function:line] message` format and the rotating
  file in the data directory. No access lines, as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any, cast

from a2wsgi import WSGIMiddleware
from a2wsgi.asgi_typing import ASGIApp, Receive, Scope, Send, SendEvent
from a2wsgi.wsgi_typing import Environ, StartResponse, WSGIApp
from gunicorn import glogging
from uvicorn_worker import UvicornWorker

from mackuper.config import ConfigError, Settings
from mackuper.logs import flush_and_exit

# The key in an ASGI scope's "state" under which a request's "the client has gone"
# event travels to the WSGI side (a2wsgi hands the scope on as environ["asgi.scope"]).
CLIENT_GONE = "mackuper.client_gone"


class RootLogger(glogging.Logger):
    """Gunicorn's logger, handing its records to the handlers set up by logs.py."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


class WatchDisconnect:
    """ASGI middleware: sets the request's CLIENT_GONE event once the client hangs up.

    uvicorn silently drops what is sent to a client that has gone, so without this
    an abandoned download would read its whole backup to the end (from S3, too).
    Watching starts with the response, when the application has read its request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = threading.Event()
        watcher: asyncio.Task[None] | None = None

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        async def send_and_watch(message: SendEvent) -> None:
            nonlocal watcher
            await send(message)
            if watcher is None and message["type"] == "http.response.start":
                watcher = asyncio.get_running_loop().create_task(watch())

        watched = scope.copy()
        watched["state"] = {**scope.get("state", {}), CLIENT_GONE: gone}
        try:
            await self.app(watched, receive, send_and_watch)
        finally:
            if watcher is not None:
                watcher.cancel()


def stop_when_client_gone(app: WSGIApp) -> WSGIApp:
    """The WSGI `app`, its response bodies ending (and closed) once the client has gone."""

    def wrapped(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = app(environ, start_response)
        scope: dict[str, Any] = environ.get("asgi.scope", {})  # type: ignore[assignment]
        gone = scope.get("state", {}).get(CLIENT_GONE)
        return body if gone is None else _until_set(gone, body)

    return wrapped


def _until_set(gone: threading.Event, body: Iterable[bytes]) -> Iterator[bytes]:
    try:
        for chunk in body:
            if gone.is_set():
                return
            yield chunk
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def asgi_app(app: WSGIApp, threads: int) -> ASGIApp:
    """The Flask `app` as an ASGI application running requests on `threads` threads."""
    return WatchDisconnect(WSGIMiddleware(stop_when_client_gone(app), workers=threads))


class AsyncWorker(UvicornWorker):  # type: ignore[misc]
    """A gunicorn worker that reads requests in uvicorn's event loop and runs the
    Flask app on a pool of `threads` threads, only once a request has arrived whole."""

    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012
        "loop": "asyncio",
        # h11 drops a connection once it holds 16 KiB of an unfinished request head;
        # httptools has no such cap (it took a 50 MB header into memory, answered 200).
        "http": "h11",
        "interface": "asgi3",
        "lifespan": "off",
        # The app's ProxyFix trusts X-Forwarded-* when HTTPS_ENABLED; nothing else does.
        "proxy_headers": False,
        "access_log": False,
        # Within gunicorn's graceful_timeout, so the worker exits before it is killed.
        "timeout_graceful_shutdown": 6,
    }

    wsgi: Any  # the Flask app once loaded, then its ASGI wrapper

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Through the root logger's handlers, like gunicorn's own lines. Access lines
        # stay off (uvicorn.access keeps no handler), as with gunicorn's accesslog=None.
        errors = logging.getLogger("uvicorn.error")
        errors.handlers = []
        errors.propagate = True

    def init_signals(self) -> None:
        super().init_signals()
        # uvicorn raises the stop signal again once it has shut down: with these
        # handlers that marks the worker stopped (worker_exit then flushes the logs
        # and exits) instead of killing it before the logs are written.
        for stop in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(stop, self._stopped)

    def _stopped(self, _signum: int, _frame: FrameType | None) -> None:
        self.alive = False

    def _install_sigquit_handler(self) -> None:
        # Gunicorn's quick stop (SIGINT or SIGQUIT to its master) sends SIGQUIT: exit
        # now, as gthread workers did. uvicorn-worker's own handler only marked the
        # worker, which was then killed at graceful_timeout ("was sent SIGKILL!").
        asyncio.get_running_loop().add_signal_handler(signal.SIGQUIT, flush_and_exit, 0)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = asgi_app(cast(WSGIApp, self.wsgi), self.cfg.threads)


def worker_exit(_server: Any, worker: Any) -> None:
    """A web worker that was asked to stop and has finished its requests exits now."""
    if worker.booted and not worker.alive:
        flush_and_exit(0)


def web_concurrency(env: dict[str, str] | None = None) -> int:
    """WEB_CONCURRENCY (gunicorn worker processes), 2 by default."""
    raw = (os.environ if env is None else env).get("WEB_CONCURRENCY", "").strip()
    if not raw:
        return 2
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise ConfigError(f"WEB_CONCURRENCY={raw!r} must be a whole number from 1 to 64")
    return int(raw)


def options(settings: Settings, host: str, workers: int | None = None) -> dict[str, Any]:
    """The gunicorn configuration for this installation."""
    trusted = "*" if settings.https_enabled else ""
    return {
        "bind": f"{host}:{settings.port}",
        "workers": workers if workers is not None else web_concurrency(),
        "worker_class": AsyncWorker,
        "threads": 8,
        "timeout": 120,
        "graceful_timeout": 8,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "logger_class": RootLogger,
        "forwarded_allow_ips": trusted,
        "proxy_allow_ips": trusted,
        "proxy_protocol": False,
        "control_socket_disable": True,
        "worker_exit": worker_exit,
    }
