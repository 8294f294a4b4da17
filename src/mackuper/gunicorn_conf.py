"""Gunicorn settings for `mackuper web` (and the web child of `mackuper serve`).

Kept in one place so the container, the scale-out recipe and bare-metal runs
use the same server behaviour:

- gthread workers: pages and the JSON API are short requests; backups never run
  in the web process.
- `graceful_timeout` 8 s, so a stopping container finishes within Docker's
  default 10 s stop timeout.
- Forwarded headers (X-Forwarded-Proto/For/Host) are trusted only when
  HTTPS_ENABLED is on, i.e. when the operator says a TLS reverse proxy is in
  front; otherwise a client cannot make Mackuper believe it is on HTTPS.
- Gunicorn's own log lines go through the root logger, so they share the
  `[timestamp] LEVEL [module.function:line] message` format and the rotating
  file in the data directory.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn import glogging

from mackuper.config import ConfigError, Settings
from mackuper.logs import flush_and_exit


class RootLogger(glogging.Logger):
    """Gunicorn's logger, handing its records to the handlers set up by logs.py."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


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
        "worker_class": "gthread",
        "threads": 4,
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
