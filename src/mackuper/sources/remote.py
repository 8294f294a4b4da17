"""Dump commands run on an SSH host: for databases bound to that host's loopback (or an
SQLite file on its disk), the tool runs there and only the dump crosses the connection.

The OpenSSH client runs with the pinned host key (mackuper/ssh.py's OpenSSHSession).
Settings and passwords that must not be on a command line reach the remote tool as
lines on its standard input, read by the shell's `read` builtin and exported to the
tool alone: never in the remote command line, where `ps` on that host would show them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

from mackuper.sources.base import Command, SourceError
from mackuper.sources.dump import DumpFailed, tool_version
from mackuper.ssh import (
    NOT_THE_TOOL,
    SAY_STARTS,
    OpenSSHSession,
    SSHError,
    SSHTarget,
    connection_error,
    without_output_preamble,
    without_preamble,
)

SSH_FAILED = 255
"""The OpenSSH client's exit status for its own failures (connection, host key, login)."""
_NAME = "[A-Z_][A-Z0-9_]*"


def remote_command(tool: list[str], names: list[str], exported: Mapping[str, str] = {}) -> str:  # noqa: B006 - read only
    """The remote shell command: say TOOL_STARTS on standard error and OUTPUT_MARK on
    standard output (what a login shell printed comes before them), read `names` from
    standard input, one line each, export them and the fixed `exported` settings, then
    run `tool`."""
    reads = "".join(f"IFS= read -r {name} && " for name in names)
    fixed = " ".join(f"{name}={shlex.quote(value)}" for name, value in exported.items())
    export = " ".join([*names, fixed]).strip()
    exports = f"export {export} && " if export else ""
    return f"{SAY_STARTS} {reads}{exports}exec {shlex.join(tool)}"


@contextlib.contextmanager
def command_on(
    ssh: SSHTarget | None,
    tool: list[str],
    environment: Mapping[str, str],
    exported: Mapping[str, str] = {},  # noqa: B006 - read only
) -> Iterator[Command]:
    """How to run `tool` with `environment`: here (argv, the environment, no input), or on
    the SSH host (the ssh argv, its environment, the values to feed on standard input,
    behind its login shell); the session's private files are removed afterwards."""
    if ssh is None:
        yield Command(tool, {**environment, **exported})
        return
    names = list(environment)
    values = [environment[name] for name in names]
    if any("\n" in value or "\r" in value for value in values):
        raise SourceError("a setting or password with a line break cannot be sent over SSH")
    session = OpenSSHSession(ssh)  # SSHError when no host key is pinned
    try:
        feed = "".join(value + "\n" for value in values).encode()
        argv = [*session.argv, remote_command(tool, names, exported)]
        yield Command(argv, session.env, feed, preamble=True)
    finally:
        session.close()


def run_tool(
    ssh: SSHTarget | None,
    tool: list[str],
    environment: Mapping[str, str],
    stdin: bytes = b"",
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[bytes]:
    """Run a short command (a query, `--version`) here or on the SSH host, `stdin` after
    the fed settings; its result, with only the tool's output and standard error (not
    what a login shell printed before them: `without_preamble`). SSHError when the SSH client itself
    failed, SourceError when the command could not run."""
    with command_on(ssh, tool, environment) as (argv, env, feed, _):
        try:
            result = subprocess.run(  # noqa: S603 - argv built by the caller, no shell here
                argv,
                input=(feed or b"") + stdin,
                capture_output=True,
                env={**os.environ, **env},
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SourceError(f"{tool[0]} could not run: {error}") from error
    if ssh is not None:
        result.stderr = without_preamble(result.stderr)
        if result.returncode == SSH_FAILED:
            raise connection_error(ssh, result.stderr.decode("utf-8", "replace"))
        output = without_output_preamble(result.stdout)
        if output is None and result.returncode == 0:
            raise SourceError(f"{tool[0]} did not run: {NOT_THE_TOOL}")
        result.stdout = output or b""
    return result


def remote_version(ssh: SSHTarget | None, program: str) -> str:
    """The first line `program --version` prints on the SSH host, or "" (None: here)."""
    if ssh is None:
        return tool_version(program)
    try:
        result = run_tool(ssh, [program, "--version"], {})
    except (SourceError, SSHError):
        return ""
    lines = result.stdout.decode("utf-8", "replace").strip().splitlines()
    return lines[0][:200] if lines and result.returncode == 0 else ""


def explained(ssh: SSHTarget | None, error: DumpFailed) -> SourceError | SSHError:
    """An SSH client failure (exit 255) as the plain connection message; else `error`."""
    if ssh is not None and error.code == SSH_FAILED:
        return connection_error(ssh, "\n".join(error.lines))
    return error


def ssh_target(
    config: dict[str, Any], secrets: dict[str, Any], retry_seconds: float = 0.0
) -> SSHTarget | None:
    """The SSH host a database source's tools run on (`ssh_host` and its fellows), or None."""
    if not config.get("ssh_host"):
        return None
    return SSHTarget.from_config(
        {
            "host": config["ssh_host"],
            "port": config.get("ssh_port") or 22,
            "username": config.get("ssh_username", ""),
            "auth": config.get("ssh_auth", "password"),
            "host_key": config.get("ssh_host_key", ""),
        },
        {
            "password": secrets.get("ssh_password", ""),
            "private_key": secrets.get("ssh_private_key", ""),
            "passphrase": secrets.get("ssh_passphrase", ""),
        },
        retry_seconds,
    )
