"""The `serve` supervisor: starts the web and worker processes and restarts one that dies.

`mackuper serve` checks the configuration and the master key and migrates the
database, then replaces itself (exec) with this module, so the process that only
watches two children does not keep the ~80 MiB of SQLAlchemy, Alembic and the
models it needed for that. It imports nothing but the standard library, settings
and logging.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from mackuper import __version__
from mackuper.config import MIGRATED_BY_SERVE, load_settings
from mackuper.logs import configure_logging, flush_and_exit

logger = logging.getLogger("mackuper")

STOP_SECONDS = 25


def supervise(host: str) -> None:
    """Run the web and one worker until a stop signal; restart a child that exits."""
    settings = load_settings()
    configure_logging(settings, "serve")
    base = [sys.executable, "-m", "mackuper"]
    commands = {"worker": [*base, "worker"], "web": [*base, "web", "--host", host]}
    child_env = {**os.environ, MIGRATED_BY_SERVE: "1"}
    children = {
        name: subprocess.Popen(command, env=child_env)  # noqa: S603
        for name, command in commands.items()
    }
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("Mackuper %s serving on http://%s:%s", __version__, host, settings.port)
    while not stopping:
        for name, child in list(children.items()):
            code = child.poll()
            if code is not None and not stopping:
                logger.error("the %s process exited with %s; restarting it", name, code)
                time.sleep(1)
                if stopping:  # a stop signal came during the pause: start nothing new
                    break
                children[name] = subprocess.Popen(commands[name], env=child_env)  # noqa: S603
        time.sleep(0.5)
    deadline = time.monotonic() + STOP_SECONDS
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    flush_and_exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="mackuper serve (supervisor)")
    parser.add_argument("--host", required=True)
    supervise(parser.parse_args().host)


if __name__ == "__main__":
    main()
