"""An idle worker does not carry the libraries of destination and source kinds it may
never use (issue 23: the worker's peak RSS goal is 150 MiB; boto3 and paramiko alone
are ~22 MiB), and an SSH host key still parses without paramiko."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mackuper.ssh import HostKey

HEAVY = ("boto3", "botocore", "s3transfer", "paramiko", "docker", "requests")
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def test_the_worker_starts_without_boto3_paramiko_docker_or_requests() -> None:
    # What `mackuper worker` imports before its first run: the loop, the runtime and
    # every run kind. A fresh interpreter, so the test process's own imports do not count.
    probe = (
        "import sys\n"
        "import mackuper.worker.service, mackuper.runtime, mackuper.runs.registry\n"
        f"print(' '.join(name for name in {HEAVY!r} if name in sys.modules))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and a fixed program
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split() == []


def test_a_host_key_parses_and_is_checked_without_paramiko() -> None:
    key = HostKey.parse(HOST_KEY)
    assert key.type == "ssh-ed25519"
    assert key.line == HOST_KEY
    kind, blob = HOST_KEY.split()
    with pytest.raises(ValueError, match="does not match"):
        HostKey.parse(f"ssh-rsa {blob}")  # an Ed25519 key's data under another type
    with pytest.raises(ValueError, match="does not match"):
        HostKey.parse(f"{kind} AAAAB3NzaC1yc2E=")  # the data of a truncated RSA key


def test_a_finished_run_gives_freed_memory_back() -> None:
    # What a run's threads free stays in their glibc arenas unless it is trimmed: a
    # thread allocates 128 MiB in 64 KiB pieces and keeps every tenth, like buffers
    # and manifest entries interleaved; the worker calls this after every run.
    probe = """
import threading
from mackuper.worker.service import return_free_memory

def rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS")) // 1024

kept = []
def run():
    pieces = [bytearray(64 * 1024 - 64) for _ in range(2048)]
    kept.extend(pieces[::10])
thread = threading.Thread(target=run)
thread.start()
thread.join()
before = rss()
return_free_memory()
print(before, rss())
"""
    result = subprocess.run(  # noqa: S603 - our own interpreter and a fixed program
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    before, after = map(int, result.stdout.split())
    assert before - after > 64, (before, after)  # MiB
