"""Logging to stdout and to a rotating file in the data directory."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from mackuper.config import Settings

FORMAT = "[%(asctime)s] %(levelname)s [%(name)s.%(funcName)s:%(lineno)d] %(message)s"


def configure_logging(settings: Settings | None, process: str) -> None:
    """Log to stdout, and to data/logs/mackuper.log (10 MB x 10) once settings exist."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if settings and settings.development else logging.INFO)
    formatter = logging.Formatter(FORMAT.replace("] %(levelname)s", f"] %(levelname)s {process}"))
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(formatter)
    root.addHandler(console)
    if settings is not None:
        directory = settings.data_dir / "logs"
        directory.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            directory / "mackuper.log", maxBytes=10 * 1024 * 1024, backupCount=10, encoding="utf-8"
        )
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "paramiko", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
