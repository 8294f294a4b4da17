"""A destination's bandwidth limit: how close a 500 MiB upload keeps to it.

Uploads --mib MiB of random bytes (1 MiB writes, as the pipeline hands them on) to
a destination built from stored settings exactly as a run builds it
(destinations.registry.build), once without a limit and once with
`bandwidth_limit = --limit` MiB/s, to an SFTP destination on the throwaway sshd of
tests.servers (needs root) and to a local directory, and prints the achieved rate
and its distance from the limit side by side.

    .venv/bin/python -m bench.bandwidth [--mib 500] [--limit 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.servers.sshd import running_sshd

from mackuper.destinations import registry

MIB = 1024 * 1024


def upload(kind: str, config: dict[str, Any], secrets: dict[str, Any], mib: int) -> float:
    """Seconds to write and commit `mib` MiB through a destination built from settings."""
    destination = registry.build(kind, config, secrets)
    block = os.urandom(MIB)
    started = time.monotonic()
    writer = destination.open_writer(f"bench/upload-{time.time_ns()}.bin", {})
    for _ in range(mib):
        writer.write(block)
    stored = writer.commit()
    elapsed = time.monotonic() - started
    assert stored.size == mib * MIB
    destination.delete(stored.key)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=500)
    parser.add_argument("--limit", type=float, default=20.0, help="MiB/s")
    arguments = parser.parse_args()
    local_root = Path(tempfile.mkdtemp(prefix="mkp-bench-bw-"))
    try:
        with running_sshd() as server:
            user = server.users["password"]
            remote_root = server.make_remote_tree(user.username, {})
            sftp = {
                "host": server.host,
                "port": server.port,
                "username": user.username,
                "auth": "password",
                "path": str(remote_root),
                "host_key": server.host_public_key,
            }
            cases: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
                ("sftp", "sftp", sftp, {"password": user.password}),
                ("local", "local", {"path": str(local_root)}, {}),
            ]
            print(f"{arguments.mib} MiB upload, limit {arguments.limit:g} MiB/s")
            print(f"{'destination':<12} {'unlimited':>16} {'limited':>16} {'off the limit':>14}")
            for name, kind, config, secrets in cases:
                free = upload(kind, config, secrets, arguments.mib)
                limited_config = {**config, "bandwidth_limit": arguments.limit}
                paced = upload(kind, limited_config, secrets, arguments.mib)
                rate = arguments.mib / paced
                print(
                    f"{name:<12} {arguments.mib / free:>8.1f} MiB/s {free:>4.1f}s"
                    f" {rate:>8.2f} MiB/s {paced:>4.1f}s"
                    f" {100 * (rate - arguments.limit) / arguments.limit:>+12.2f} %"
                )
    finally:
        shutil.rmtree(local_root, ignore_errors=True)


if __name__ == "__main__":
    main()
