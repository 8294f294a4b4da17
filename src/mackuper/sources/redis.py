"""Redis: a point-in-time RDB snapshot streamed from the server by `redis-cli --rdb -`.

The server forks and writes its snapshot to the replication link (nothing on its disk
or ours); it becomes `redis/dump.rdb.part000001...` (sources/dump.py). The password
reaches redis-cli as REDISCLI_AUTH, never a command line. redis-cli cannot cut the
40-byte end marker of the transfer off a pipe, so the joined file ends with it: Redis
stops reading at the RDB's own end and checksum, and loads such a file as it is.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from mackuper.sources.base import Entry, Reporter
from mackuper.sources.dump import PART_SIZE, DumpSource, dump_entries, tool_version

NAME = "redis/dump.rdb"


@dataclass
class RedisSource(DumpSource):
    host: str
    port: int
    username: str = ""
    password: str = ""
    part_size: int = PART_SIZE
    dumped: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: dict[str, Any], secrets: dict[str, Any]) -> RedisSource:
        return cls(
            host=str(config["host"]),
            port=int(config.get("port", 6379)),
            username=str(config.get("username") or ""),
            password=str(secrets.get("password", "")),
        )

    def describe(self) -> str:
        return f"Redis {self.host}:{self.port}"

    def dumps(self, reporter: Reporter) -> Generator[Entry, None, None]:
        argv = ["redis-cli", "-h", self.host, "-p", str(self.port), "--no-auth-warning"]
        if self.username:
            argv += ["--user", self.username]
        argv += ["--rdb", "-"]
        environment = {"REDISCLI_AUTH": self.password} if self.password else {}
        size = parts = 0
        for entry in dump_entries(NAME, argv, environment, "redis-cli", reporter, self.part_size):
            size += entry.size
            parts += 1
            yield entry
        self.dumped.append(
            {
                "database": "redis",
                "path": NAME,
                "parts": parts,
                "size": size,
                "tool": tool_version("redis-cli"),
            }
        )
        reporter.note(f"redis-cli: {size} bytes in {parts} part(s) as {NAME}.part*")
