"""Redis: a point-in-time RDB snapshot streamed from the server by `redis-cli --rdb -`.

The server forks and writes its snapshot to the replication link (nothing on its disk
or ours); it becomes `redis/dump.rdb.part000001...` (sources/dump.py). The password
reaches redis-cli as REDISCLI_AUTH, never a command line. redis-cli cannot cut the
40-byte end marker of the transfer off a pipe, so the joined file ends with it: Redis
stops reading at the RDB's own end and checksum, and loads such a file as it is.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from mackuper.sources.base import Entry, Reporter, SourceError
from mackuper.sources.dump import (
    PART_SIZE,
    DumpFailed,
    DumpSource,
    Probe,
    dump_entries,
    tool_version,
)
from mackuper.sources.remote import command_on, explained, remote_version, run_tool, ssh_target
from mackuper.ssh import SSHError, SSHTarget

NAME = "redis/dump.rdb"
COMMAND_TIMEOUT = 60.0
_ERROR_REPLY = re.compile(r"^(?:NOAUTH|WRONGPASS|NOPERM|ERR|LOADING|MASTERDOWN)\b")
_KEYSPACE = re.compile(r"^(db\d+):keys=(\d+)")


def command(host: str, port: int, username: str = "") -> list[str]:
    """redis-cli for the server; the password goes in REDISCLI_AUTH, never here."""
    argv = ["redis-cli", "-h", host, "-p", str(port), "--no-auth-warning"]
    return argv + (["--user", username] if username else [])


def ask(
    host: str,
    port: int,
    username: str,
    password: str,
    *arguments: str,
    ssh: SSHTarget | None = None,
) -> str:
    """One command's reply (asked here or on the SSH host); SourceError with redis-cli's
    complaint (which redis-cli prints with exit status 0 for a refused login, so the
    reply is checked too); SSHError when the SSH host cannot be used."""
    environment = {"REDISCLI_AUTH": password} if password else {}
    argv = [*command(host, port, username), *arguments]
    result = run_tool(ssh, argv, environment, timeout=COMMAND_TIMEOUT)
    reply = result.stdout.decode("utf-8", "replace")
    complaint = " ".join(result.stderr.decode("utf-8", "replace").split())
    if result.returncode != 0 or _ERROR_REPLY.match(reply):
        why = complaint or " ".join(reply.split()) or f"exit status {result.returncode}"
        raise SourceError(f"Redis at {host}:{port}: {why[:400]}")
    return reply


def probe(
    host: str, port: int, username: str = "", password: str = "", ssh: SSHTarget | None = None
) -> Probe:
    """Log in, read the server version and its non-empty databases; never raises."""
    try:
        info = ask(host, port, username, password, "INFO", "server", ssh=ssh)
        keyspace = ask(host, port, username, password, "INFO", "keyspace", ssh=ssh)
    except (SourceError, SSHError) as error:
        return Probe(False, str(error))
    fields = dict(line.split(":", 1) for line in info.replace("\r", "").splitlines() if ":" in line)
    version = fields.get("redis_version", "")
    databases = [
        f"{match.group(1)} ({match.group(2)} keys)"
        for line in keyspace.replace("\r", "").splitlines()
        if (match := _KEYSPACE.match(line))
    ]
    tool = remote_version(ssh, "redis-cli")
    found = Probe(True, "", version, databases, tool)
    if not tool:
        where = f"the SSH host {ssh.address}" if ssh else "this worker"
        found.ok, found.message = False, f"redis-cli is not installed on {where}"
    else:
        found.message = (
            f"Redis {version}: {len(databases)} database(s) with keys; redis-cli takes the"
            " snapshot over the replication link, which every Redis version offers"
        )
    return found


@dataclass
class RedisSource(DumpSource):
    host: str
    port: int
    username: str = ""
    password: str = ""
    part_size: int = PART_SIZE
    ssh: SSHTarget | None = None
    """Run redis-cli on this SSH host (for a server on its loopback); the password
    reaches it on standard input (sources/remote.py)."""
    dumped: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_config(
        cls, config: dict[str, Any], secrets: dict[str, Any], retry_seconds: float = 0.0
    ) -> RedisSource:
        return cls(
            host=str(config["host"]),
            port=int(config.get("port", 6379)),
            username=str(config.get("username") or ""),
            password=str(secrets.get("password", "")),
            ssh=ssh_target(config, secrets, retry_seconds),
        )

    def describe(self) -> str:
        via = f" via SSH {self.ssh.address}" if self.ssh is not None else ""
        return f"Redis {self.host}:{self.port}{via}"

    def dumps(self, reporter: Reporter) -> Generator[Entry, None, None]:
        argv = [*command(self.host, self.port, self.username), "--rdb", "-"]
        environment = {"REDISCLI_AUTH": self.password} if self.password else {}
        size = parts = 0
        with command_on(self.ssh, argv, environment) as (tool, env, feed, preamble):
            try:
                for entry in dump_entries(
                    NAME,
                    tool,
                    env,
                    "redis-cli",
                    reporter,
                    self.part_size,
                    feed,
                    preamble=preamble,
                ):
                    size += entry.size
                    parts += 1
                    yield entry
            except DumpFailed as error:
                raise explained(self.ssh, error) from error
        version = f"redis-cli on {self.ssh.address}" if self.ssh else tool_version("redis-cli")
        self.dumped.append(
            {"database": "redis", "path": NAME, "parts": parts, "size": size, "tool": version}
        )
        reporter.note(f"redis-cli: {size} bytes in {parts} part(s) as {NAME}.part*")
