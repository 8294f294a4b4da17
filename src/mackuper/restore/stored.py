"""A catalog artifact opened for reading: its destination built and its keys found."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mackuper.destinations import registry as destinations
from mackuper.destinations.base import Destination
from mackuper.encryption import restore_keys
from mackuper.models import Artifact, ArtifactState, Job
from mackuper.models import Destination as DestinationRow
from mackuper.pipeline.age import KeyFormatError
from mackuper.restore.archives import DecryptionKeys, StoredArchive
from mackuper.restore.errors import RestoreError
from mackuper.runtime import Runtime


def build_destination(runtime: Runtime, row: DestinationRow) -> Destination:
    return destinations.build(row.kind, row.config, runtime.secrets.decrypt(row.secrets_encrypted))


def decryption_keys(runtime: Runtime, job: Job | None, given: dict[str, str]) -> DecryptionKeys:
    """A key or passphrase given for this restore first, then what the job stores."""
    stored = runtime.secrets.decrypt(job.encryption_secrets_encrypted) if job else {}
    pasted = given.get("key_identity") or given.get("key_passphrase")
    try:
        identities, passphrase = restore_keys(job.encryption if job else {}, stored, pasted)
    except KeyFormatError as error:
        raise RestoreError(f"the decryption key cannot be read ({error})") from None
    return DecryptionKeys(list(identities), passphrase)


def stored_archive(
    runtime: Runtime, session: Session, artifact: Artifact, given: dict[str, str]
) -> StoredArchive:
    if artifact.state != ArtifactState.STORED.value:
        raise RestoreError("this backup is no longer stored (it was deleted or never finished)")
    job = session.get(Job, artifact.job_id) if artifact.job_id is not None else None
    destination = build_destination(runtime, artifact.destination)
    return StoredArchive(destination, artifact.key, decryption_keys(runtime, job, given))
