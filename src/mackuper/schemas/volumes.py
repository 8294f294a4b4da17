"""Restoring a volume backup into a named volume of the container engine: requests and
answers."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from mackuper.restore.volume import check_volume_name
from mackuper.schemas.answers import Answer
from mackuper.schemas.api import DecryptionKeys
from mackuper.schemas.base import Id, Input, Text


def _volume(name: str) -> str:
    if problem := check_volume_name(name):
        raise ValueError(problem[:1].upper() + problem[1:] + ".")
    return name


VolumeName = Annotated[Text, Field(min_length=1, max_length=255), AfterValidator(_volume)]
SelectedPaths = Annotated[list[Annotated[Text, Field(max_length=4000)]], Field(max_length=10_000)]


class VolumeTargetBody(Input):
    source: VolumeName
    """The volume in the backup (`volumes/<source>/...`)."""
    volume: VolumeName
    """The volume to write into."""
    create: bool = True
    """Make the volume (it must not exist); else write into an existing one that no
    running container uses."""
    replace: bool = False
    """An existing volume that is not empty: the backup's files replace those at the same
    paths (nothing else in it is removed)."""
    confirm: Annotated[Text, Field(max_length=255)] = ""
    """With `replace`: the volume's name typed again."""


class VolumeRestoreBody(Input):
    artifact_id: Id
    target: VolumeTargetBody
    paths: SelectedPaths = []
    """Files and folders of the backup's volume to restore; none restores all of it."""
    decryption: DecryptionKeys | None = None
    """The key or passphrase of an encrypted backup whose job stores none: used for this
    request only, never stored."""


class VolumeCheckBody(Input):
    artifact_id: Id
    source: VolumeName
    volume: VolumeName
    paths: SelectedPaths = []
    decryption: DecryptionKeys | None = None


class VolumeUser(Answer):
    name: str
    status: str


class VolumeStateAnswer(Answer):
    volume: str
    exists: bool
    empty: bool
    containers: list[VolumeUser]
    """Every container that mounts the volume, with its state."""
    running: list[str]
    """Those that run: a restore into the volume is refused until they are stopped."""
    writes: list[str]
    """The names directly in the volume that the restore writes."""
    overwritten: list[str]
    """Of those (the first 50), the ones the volume holds now: they are replaced."""
