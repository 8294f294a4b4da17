"""Helpers for the container engine tests: volumes with known files, throwaway containers."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.servers.podman import BASE_IMAGE, PodmanEngine


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def volume_with(engine: PodmanEngine, tree: Path) -> str:
    """A new named volume holding a copy of `tree` (copied by a container, `cp -a`)."""
    name = unique("mkp-vol")
    engine.client.volumes.create(name, labels=engine.labels())
    engine.client.containers.run(
        BASE_IMAGE,
        ["cp", "-a", "/tree/.", "/v/"],
        volumes={str(tree): {"bind": "/tree", "mode": "ro"}, name: {"bind": "/v", "mode": "rw"}},
        labels=engine.labels(),
        remove=True,
    )
    return name
