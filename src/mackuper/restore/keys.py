"""Whether the keys at hand open a stored backup, asked before anything is queued.

Only the age header is read and unwrapped (the first bytes of the object), so a
wrong or missing key is a message on the form, not a queued restore that fails
later and stays in History. A passphrase is tried only up to the work factor
Mackuper writes, as for manifests (restore/manifest.py): a stored header cannot
make a web request spend gigabytes of scrypt.
"""

from __future__ import annotations

from mackuper.pipeline.age import (
    SCRYPT_WORK_FACTOR,
    AgeError,
    Identity,
    KeyFormatError,
    ScryptIdentity,
    WrongKeyError,
)
from mackuper.pipeline.encrypt import open_decrypting_reader
from mackuper.restore.archives import DecryptionKeys, StoredArchive
from mackuper.restore.errors import RestoreError
from mackuper.restore.storage import open_stream


class KeyNeeded(RestoreError):
    """This backup is encrypted and its job stores no key: give the private key or passphrase."""

    def __init__(self) -> None:
        super().__init__(self.__doc__ or "")


class KeyRefused(RestoreError):
    """This key or passphrase does not open this backup."""

    def __init__(self) -> None:
        super().__init__(self.__doc__ or "")


def bounded_identities(keys: DecryptionKeys) -> list[str | Identity]:
    """The keys as age identities, the passphrase limited to Mackuper's own work factor."""
    identities: list[str | Identity] = list(keys.identities)
    if keys.passphrase:
        identities.append(ScryptIdentity(keys.passphrase, SCRYPT_WORK_FACTOR))
    return identities


def check_opens(archive: StoredArchive) -> None:
    """Return when the archive is not encrypted or its keys open it.

    Raises KeyNeeded (no key given or stored), KeyRefused (none of them opens it), or
    RestoreError when the header cannot be read; DestinationError passes through.
    """
    if not archive.encrypted:
        return
    if not archive.keys:
        raise KeyNeeded()
    with open_stream(archive.destination, archive.key) as raw:
        try:
            open_decrypting_reader(raw, bounded_identities(archive.keys))
        except WrongKeyError:
            raise KeyRefused() from None
        except (AgeError, KeyFormatError) as error:
            raise RestoreError(f"the backup's encryption cannot be read ({error})") from None
