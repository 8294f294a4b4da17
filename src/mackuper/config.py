"""Settings read from the environment once, at start.

A bad value stops start-up with one line naming the variable and what is wrong
(`ConfigError`), never with a traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mackuper.core.labels import host_label, parse_labels


class ConfigError(Exception):
    """A setting from the environment is not usable."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    temp_dir: Path
    local_backup_dir: Path
    port: int
    https_enabled: bool
    development: bool
    secret_key: str
    master_key: str | None
    """MACKUPER_MASTER_KEY when set; otherwise the key file in data_dir is used."""
    master_key_file: Path
    worker_poll_seconds: float = 1.0
    max_concurrent_runs: int = 2
    base_url: str = ""
    """MACKUPER_BASE_URL: how people reach the web pages (links in alerts); "" = localhost."""
    metrics_token: str | None = None
    """MACKUPER_METRICS_TOKEN: bearer token for /metrics; None keeps /metrics disabled."""
    worker_alert_seconds: int = 120
    """MACKUPER_WORKER_ALERT_SECONDS: alert when no worker heartbeat for this long (0: off)."""
    retry_seconds: float = 300.0
    """MACKUPER_RETRY_SECONDS: how long a storage or SSH outage is retried before a run fails."""
    worker_recycle_mib: int = 16
    """MACKUPER_WORKER_RECYCLE_MIB: an idle `mackuper worker` whose resident memory grew by
    more than this since it started executes itself again (worker/service.py); 0: never."""
    worker_labels: tuple[str, ...] = ()
    """MACKUPER_WORKER_LABELS: what this machine's workers are known by (default: host name);
    a job with a label runs only on workers that carry it."""

    @property
    def public_url(self) -> str:
        return self.base_url or f"http://localhost:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


MIGRATED_BY_SERVE = "MACKUPER_MIGRATED_BY_SERVE"
"""Set by `serve` for its web and worker processes: it migrated, so they skip it."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use true or false")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range ({low} to {high})")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range ({low} to {high})")
    return value


def _directory(name: str, path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{name}={path} cannot be created: {error.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{name}={path} is not writable")
    return path


def _secret_key(env: Mapping[str, str], data_dir: Path) -> str:
    """SECRET_KEY, or one generated on first start and kept in the data directory."""
    given = env.get("SECRET_KEY", "").strip()
    if given:
        if len(given) < 16:
            raise ConfigError("SECRET_KEY is shorter than 16 characters")
        return given
    path = data_dir / "secret_key"
    if not path.exists():
        # Another process starting at the same moment may create it first.
        with contextlib.suppress(FileExistsError):
            write_private_file(path, secrets.token_hex(32))
    return path.read_text().strip()


def write_private_file(path: Path, text: str) -> None:
    """Create `path` with mode 0600 and `text`; FileExistsError if it already exists.

    The file appears complete or not at all (written aside, then hard-linked), so a
    process starting at the same moment never reads it half-written.
    """
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_new(temp, text, os.O_TRUNC)
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links: create in place instead
        _write_new(path, text, os.O_EXCL)
    finally:
        temp.unlink(missing_ok=True)


def _write_new(path: Path, text: str, flag: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | flag, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from `env` (default: the process environment).

    Raises ConfigError naming the variable when a value is unusable.
    """
    env = os.environ if env is None else env
    data_dir = _directory(
        "MACKUPER_DATA_DIR", Path(env.get("MACKUPER_DATA_DIR", "./data")).expanduser().resolve()
    )
    database_url = env.get("DATABASE_URL", "").strip() or f"sqlite:///{data_dir / 'mackuper.db'}"
    if not database_url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(
            "DATABASE_URL must start with sqlite:/// or postgresql+psycopg://"
            f" (got {database_url.split(':', 1)[0]}:...)"
        )
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    flask_env = env.get("FLASK_ENV", "production").strip().lower()
    if flask_env not in {"production", "development"}:
        raise ConfigError(f"FLASK_ENV={flask_env!r} must be production or development")
    master_key = env.get("MACKUPER_MASTER_KEY", "").strip() or None
    check_ssh_ciphers(env)
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        temp_dir=_directory(
            "TEMP_DIR", Path(env.get("TEMP_DIR", str(data_dir / "temp"))).expanduser().resolve()
        ),
        local_backup_dir=Path(
            env.get("LOCAL_BACKUP_DIR", str(data_dir / "local_backups"))
        ).expanduser(),
        port=_int(env, "PORT", 5000, 1, 65535),
        https_enabled=_bool(env, "HTTPS_ENABLED", False),
        development=flask_env == "development",
        secret_key=_secret_key(env, data_dir),
        master_key=master_key,
        master_key_file=data_dir / "master.key",
        worker_poll_seconds=_float(env, "MACKUPER_WORKER_POLL_SECONDS", 1.0, 0.05, 60.0),
        max_concurrent_runs=_int(env, "MACKUPER_MAX_CONCURRENT_RUNS", 2, 1, 64),
        base_url=_base_url(env),
        metrics_token=_metrics_token(env),
        worker_alert_seconds=_int(env, "MACKUPER_WORKER_ALERT_SECONDS", 120, 0, 7 * 86400),
        retry_seconds=retry_seconds(env),
        worker_recycle_mib=_int(env, "MACKUPER_WORKER_RECYCLE_MIB", 16, 0, 1 << 20),
        worker_labels=_worker_labels(env),
    )


def retry_seconds(env: Mapping[str, str]) -> float:
    """MACKUPER_RETRY_SECONDS (read at start, and by destinations and the SSH source when
    they are built): how long transient outages are retried; raises ConfigError."""
    return _float(env, "MACKUPER_RETRY_SECONDS", 300.0, 0.0, 86400.0)


SSH_CIPHER_LIST = re.compile(r"[-+^]?[a-z0-9@.-]+(,[a-z0-9@.-]+)*")
"""An OpenSSH `Ciphers` value: names separated by commas, optionally after ^, + or -."""


def check_ssh_ciphers(env: Mapping[str, str]) -> str:
    """MACKUPER_SSH_CIPHERS (read by the SSH source at each run), checked; "" when unset."""
    raw = env.get("MACKUPER_SSH_CIPHERS", "").strip()
    if raw and raw != "default" and not SSH_CIPHER_LIST.fullmatch(raw):
        raise ConfigError(
            f"MACKUPER_SSH_CIPHERS={raw!r} is not an OpenSSH cipher list"
            " (names separated by commas, optionally starting with ^, + or -)"
        )
    return raw


def _worker_labels(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("MACKUPER_WORKER_LABELS", "")
    try:
        labels = parse_labels(raw)
    except ValueError as error:
        raise ConfigError(f"MACKUPER_WORKER_LABELS: {error}") from None
    return labels or (host_label(socket.gethostname()),)


def _base_url(env: Mapping[str, str]) -> str:
    raw = env.get("MACKUPER_BASE_URL", "").strip().rstrip("/")
    if raw and not raw.startswith(("http://", "https://")):
        raise ConfigError(f"MACKUPER_BASE_URL={raw!r} must start with http:// or https://")
    return raw


def _metrics_token(env: Mapping[str, str]) -> str | None:
    raw = env.get("MACKUPER_METRICS_TOKEN", "").strip()
    if raw and len(raw) < 16:
        raise ConfigError("MACKUPER_METRICS_TOKEN is shorter than 16 characters")
    return raw or None
