"""Dump commands run inside a container (the engine's exec), so a database in a
container is dumped by its own tools: no port needs publishing, and the versions match.

The dump machinery (sources/dump.py) runs a local process and reads its standard
output, standard error and exit status. Here that process is this module run as a
small program, `python -m mackuper.sources.engine_exec ...`: it asks the engine to
exec the tool in the container, copies the tool's output and errors to its own, and
exits with the tool's exit status (125 when the engine itself refused). Killing it
closes the engine connection, which ends the tool at its next write.

Settings and passwords reach it as lines on its standard input and the exec as its
environment: never a command line, neither this program's nor the container's.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from mackuper.sources import engine
from mackuper.sources.base import Command, SourceError

ENGINE_FAILED = 125
"""This program's exit status when the engine refused or could not be reached."""


def exec_argv(
    address: str, container: str, names: list[str], fixed: Mapping[str, str], tool: list[str]
) -> list[str]:
    """The local command that runs `tool` in `container`; it reads one value per name of
    `names` from standard input."""
    return [
        sys.executable,
        "-m",
        "mackuper.sources.engine_exec",
        address,
        container,
        json.dumps(names),
        json.dumps(dict(fixed)),
        "--",
        *tool,
    ]


@contextlib.contextmanager
def command_in(
    address: str,
    container: str,
    tool: list[str],
    environment: Mapping[str, str],
    exported: Mapping[str, str] = {},  # noqa: B006 - read only
) -> Iterator[Command]:
    """How to run `tool` with `environment` in `container`: (argv, environment, the
    values to feed on standard input), like sources/remote.py's `command_on`."""
    names = list(environment)
    values = [environment[name] for name in names]
    if any("\n" in value or "\r" in value for value in values):
        raise SourceError("a setting or password with a line break cannot be passed on")
    feed = "".join(value + "\n" for value in values).encode()
    yield Command(exec_argv(address, container, names, exported, tool), {}, feed)


def _run(address: str, container: str, environment: dict[str, str], tool: list[str]) -> int:
    client: Any = engine.connect(address)
    try:
        with engine.engine_call(f"running {tool[0]} in container {container}"):
            created = client.api.exec_create(
                container, tool, stdout=True, stderr=True, environment=environment
            )
            for output, errors in client.api.exec_start(created["Id"], stream=True, demux=True):
                if output:
                    sys.stdout.buffer.write(output)
                if errors:
                    sys.stderr.buffer.write(errors)
                    sys.stderr.buffer.flush()
            sys.stdout.buffer.flush()
            code = client.api.exec_inspect(created["Id"]).get("ExitCode")
        return int(code) if code is not None else ENGINE_FAILED
    finally:
        client.close()


def main(argv: list[str]) -> int:
    address, container, names_json, fixed_json, separator, *tool = argv
    if separator != "--" or not tool:
        print("mackuper exec: usage: ADDRESS CONTAINER NAMES FIXED -- TOOL...", file=sys.stderr)
        return ENGINE_FAILED
    names: list[str] = json.loads(names_json)
    environment: dict[str, str] = dict(json.loads(fixed_json))
    for name in names:
        environment[name] = sys.stdin.readline().rstrip("\n")
    try:
        return _run(address, container, environment, tool)
    except SourceError as error:
        print(f"mackuper exec: error: {error}", file=sys.stderr)
        return ENGINE_FAILED
    except BrokenPipeError:
        return ENGINE_FAILED  # the reader stopped (a cancelled backup): nothing to say


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
