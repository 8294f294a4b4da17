"""The `mackuper` command: serve, web, worker, db upgrade."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from mackuper import __version__
from mackuper.config import MIGRATED_BY_SERVE, ConfigError, load_settings
from mackuper.logs import configure_logging, flush_and_exit

if TYPE_CHECKING:  # the runtime (SQLAlchemy, models) is loaded only by commands that use it
    from mackuper.runtime import Runtime

logger = logging.getLogger("mackuper")


def _start(process: str) -> Runtime:
    """Settings, logging, migrations and the key check; exits with one line on error."""
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"mackuper: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings, process)
    from mackuper.runtime import open_runtime

    # serve migrates once before it starts its children, which then skip it.
    migrate = os.environ.get(MIGRATED_BY_SERVE) != "1"
    try:
        return open_runtime(settings, migrate=migrate)
    except ConfigError as error:
        print(f"mackuper: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def command_worker(_args: argparse.Namespace) -> int:
    from mackuper.worker.service import Worker

    runtime = _start("worker")
    worker = Worker(runtime, recycle_mib=runtime.settings.worker_recycle_mib)
    worker.install_signal_handlers()
    # A stop signal that came while the previous image executed this one waits, blocked
    # across exec (see `execute_again`), until the handlers above can take it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if worker.run_forever():
        # From here a stop signal waits (see `execute_again`); one that came before,
        # while the worker shut down to start afresh, means stop instead.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        if not worker.signalled:
            runtime.engine.dispose()
            execute_again(worker.for_successor())
    flush_and_exit(0)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def execute_again(environment: dict[str, str] | None = None) -> NoReturn:
    """Replace this process with a fresh run of the same command line (same pid, so
    `mackuper serve` and container runtimes see the same process), with `environment`
    added. Stop signals are blocked first: one that arrives now stays pending across
    exec and is taken once the new worker has installed its handlers, instead of
    killing it half-started."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # (again: it may be called alone)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os.execve(  # noqa: S606 - our own command line
        sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **(environment or {})}
    )


def gunicorn_options(runtime: Runtime, host: str) -> dict[str, Any]:
    from mackuper.gunicorn_conf import options

    try:
        return options(runtime.settings, host)
    except ConfigError as error:
        print(f"mackuper: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def command_web(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from mackuper.web import create_app

    runtime = _start("web")
    app = create_app(runtime)
    options = gunicorn_options(runtime, args.host)

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    logger.info("web listening on http://%s", options["bind"])
    try:
        Server().run()
    except SystemExit as stop:
        flush_and_exit(stop.code if isinstance(stop.code, int) else 1)
    return 0


def command_serve(args: argparse.Namespace) -> int:
    """Check and migrate here, then become the small supervisor (`cli.supervise`)."""
    _start("serve").engine.dispose()
    logging.shutdown()
    sys.stdout.flush()
    command = [sys.executable, "-m", "mackuper.cli.supervise", "--host", args.host]
    os.execv(sys.executable, command)  # noqa: S606 (our own interpreter and module)


def command_db_upgrade(_args: argparse.Namespace) -> int:
    _start("db")
    print("database is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mackuper", description="Self-hosted backups.")
    parser.add_argument("--version", action="version", version=f"mackuper {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    default_host = os.environ.get("MACKUPER_HOST", "127.0.0.1")
    serve = commands.add_parser("serve", help="run the web interface and a worker")
    serve.add_argument("--host", default=default_host, help="address to listen on")
    serve.set_defaults(handler=command_serve)
    web = commands.add_parser("web", help="run only the web interface")
    web.add_argument("--host", default=default_host, help="address to listen on")
    web.set_defaults(handler=command_web)
    worker = commands.add_parser("worker", help="run only a worker (schedules and backups)")
    worker.set_defaults(handler=command_worker)
    database = commands.add_parser("db", help="database maintenance")
    database_commands = database.add_subparsers(dest="db_command", required=True)
    upgrade = database_commands.add_parser("upgrade", help="apply migrations")
    upgrade.set_defaults(handler=command_db_upgrade)
    from mackuper.cli.restore import add_commands as add_restore_commands

    add_restore_commands(commands, _start)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result
