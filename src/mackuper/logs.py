"""Logging to stdout and to a rotating file in the data directory."""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import logging.handlers
import os
import sys
from typing import NoReturn

from mackuper.config import Settings

FORMAT = "[%(asctime)s] %(levelname)s [%(name)s.%(funcName)s:%(lineno)d] %(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 10


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file that several processes (serve, web, worker) append to.

    Rotation happens under a file lock, and a process whose file was rotated by
    another one reopens the new file instead of rotating a second time. The logs
    name paths, hosts and users: every file is created for the owner only (0600).
    """

    def _open(self) -> io.TextIOWrapper:
        descriptor = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(descriptor, 0o600)  # also for a file an older version made 0644
        return io.TextIOWrapper(
            io.FileIO(descriptor, "a"), encoding=self.encoding, errors=self.errors
        )

    def _rotated_elsewhere(self) -> bool:
        if self.stream is None:
            return False
        try:
            on_disk = os.stat(self.baseFilename)
        except FileNotFoundError:
            return True
        ours = os.fstat(self.stream.fileno())
        return (on_disk.st_dev, on_disk.st_ino) != (ours.st_dev, ours.st_ino)

    def _reopen(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = self._open()

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802
        if self._rotated_elsewhere():
            self._reopen()
        return bool(super().shouldRollover(record))

    def doRollover(self) -> None:  # noqa: N802
        lock_descriptor = os.open(self.baseFilename + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(lock_descriptor, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._rotated_elsewhere():
                self._reopen()
                return
            super().doRollover()


def flush_and_exit(status: int) -> NoReturn:
    """Flush logs and output, then exit without interpreter teardown.

    Used once a process has finished stopping: tearing down the interpreter
    (boto3, SQLAlchemy, ...) takes seconds on a busy machine and would eat into
    a container's stop timeout.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def configure_logging(settings: Settings | None, process: str) -> None:
    """Log to stdout, and to data/logs/mackuper.log (10 MB x 10) once settings exist."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if settings and settings.development else logging.INFO)
    formatter = logging.Formatter(FORMAT.replace("] %(message)s", f"] {process}: %(message)s"))
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(formatter)
    root.addHandler(console)
    if settings is not None:
        directory = settings.data_dir / "logs"
        directory.mkdir(parents=True, exist_ok=True)
        file_handler = SharedRotatingFileHandler(
            directory / "mackuper.log",
            maxBytes=MAX_BYTES,
            backupCount=BACKUP_COUNT,
            encoding="utf-8",
        )
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "paramiko"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
