"""Which SSH library moves a remote `tar` stream fastest? (picks the SSH source's transport)

Starts the throwaway sshd from tests.servers (needs root), makes a corpus the
key user can read, and times reading `tar cf - CORPUS` to nowhere with:
the OpenSSH client, paramiko's exec channel, asyncssh's exec channel, and
paramiko's SFTP (pipelined reads, several files in flight).

    .venv/bin/python -m bench.ssh_transports [--mib 1024] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
from tests.servers.sshd import SSHServer, running_sshd

from bench.ssh_corpus import ensure_corpus

CHUNK = 1 << 20


def _ssh_argv(server: SSHServer, key_file: Path, known_hosts: Path) -> list[str]:
    return [
        "ssh",
        "-p",
        str(server.port),
        "-i",
        str(key_file),
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        f"{server.users['key'].username}@{server.host}",
    ]


def openssh(server: SSHServer, corpus: Path, key_file: Path, known_hosts: Path) -> int:
    argv = [*_ssh_argv(server, key_file, known_hosts), "tar", "cf", "-", str(corpus)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as process:  # noqa: S603
        assert process.stdout is not None
        total = 0
        while data := process.stdout.read(CHUNK):
            total += len(data)
    return total


def _paramiko_client(server: SSHServer) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - bench only
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(server.users["key"].private_key or ""))
    client.connect(
        server.host,
        server.port,
        server.users["key"].username,
        pkey=key,
        look_for_keys=False,
        allow_agent=False,
    )
    return client


def paramiko_exec(server: SSHServer, corpus: Path) -> int:
    client = _paramiko_client(server)
    try:
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_session(window_size=64 * CHUNK, max_packet_size=32768)
        channel.exec_command(f"tar cf - {corpus}")
        total = 0
        while data := channel.recv(CHUNK):
            total += len(data)
        return total
    finally:
        client.close()


def paramiko_sftp(server: SSHServer, corpus: Path) -> int:
    client = _paramiko_client(server)
    try:
        sftp = client.open_sftp()
        files = [str(path) for path in sorted(corpus.rglob("*")) if path.is_file()]

        def read(path: str) -> int:
            with sftp.open(path, "rb") as handle:
                handle.prefetch()
                count = 0
                while data := handle.read(CHUNK):
                    count += len(data)
                return count

        with ThreadPoolExecutor(4) as pool:
            return sum(pool.map(read, files))
    finally:
        client.close()


def asyncssh_exec(server: SSHServer, corpus: Path, key_file: Path) -> int:
    import asyncssh

    async def main() -> int:
        async with asyncssh.connect(
            server.host,
            server.port,
            username=server.users["key"].username,
            client_keys=[str(key_file)],
            known_hosts=None,
        ) as connection:
            process = await connection.create_process(
                f"tar cf - {corpus}", encoding=None, window=64 * CHUNK
            )
            total = 0
            while data := await process.stdout.read(CHUNK):
                total += len(data)
            await process.wait()
            return total

    return asyncio.run(main())


def _time(name: str, action: Callable[[], int], repeat: int) -> None:
    best = float("inf")
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            size = action()
        except Exception as error:  # noqa: BLE001 - a failed transport is a result too
            print(f"{name:22s} failed after {time.perf_counter() - started:.1f} s: {error!r}")
            return
        best = min(best, time.perf_counter() - started)
    print(f"{name:22s} {size / 2**20:8.0f} MiB  {best:6.2f} s  {size / 2**20 / best:7.1f} MiB/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    corpus = ensure_corpus(args.mib)
    print("load average before:", os.getloadavg())
    with running_sshd() as server, tempfile.TemporaryDirectory() as scratch:
        key_file = server.key_path("key")
        known_hosts = Path(scratch) / "known_hosts"
        known_hosts.write_text(server.known_hosts_line() + "\n")
        runs: dict[str, Callable[[], int]] = {
            "openssh tar": lambda: openssh(server, corpus, key_file, known_hosts),
            "paramiko tar": lambda: paramiko_exec(server, corpus),
            "asyncssh tar": lambda: asyncssh_exec(server, corpus, key_file),
            "paramiko sftp x4": lambda: paramiko_sftp(server, corpus),
        }
        for name, action in runs.items():
            if not args.only or args.only in name:
                _time(name, action, args.repeat)
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
