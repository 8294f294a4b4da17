"""Request bodies and query strings of the API outside jobs: destinations, channels,
tokens, installation settings, runs, restore, SSH tests and login."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, SkipValidation, StringConstraints

from mackuper.notify.dispatch import CHANNEL_DEFAULT_EVENTS
from mackuper.schemas.base import (
    MAX_ID,
    QUERY_INT,
    ChannelName,
    DestinationName,
    Id,
    Input,
    KindSettings,
    Name,
    Passphrase,
    QueryDay,
    QueryId,
    QueryMoment,
    SecretText,
    Text,
)
from mackuper.schemas.destinations import (
    LocalDestination,
    RcloneDestination,
    S3Destination,
    SFTPDestination,
)
from mackuper.schemas.sources import SSHProbe
from mackuper.schemas.users import RoleName

Password = Annotated[
    str, StringConstraints(max_length=1024), Field(json_schema_extra={"writeOnly": True})
]
"""A login password, taken exactly as typed."""


class DestinationHead(KindSettings):
    """What every destination form carries besides its kind's settings (none of it is
    stored in the settings, hence `exclude`)."""

    name: Annotated[DestinationName, Field(exclude=True)]
    test: Annotated[bool, Field(exclude=True)] = True
    """Write, read back and delete a small object before saving."""
    id: Annotated[Id | None, Field(exclude=True)] = None
    """The destination being edited: its stored secrets fill blank secret fields."""


class LocalDestinationBody(DestinationHead, LocalDestination):
    kind: Annotated[Literal["local"], Field(exclude=True)]


class S3DestinationBody(DestinationHead, S3Destination):
    kind: Annotated[Literal["s3"], Field(exclude=True)]


class SFTPDestinationBody(DestinationHead, SFTPDestination):
    kind: Annotated[Literal["sftp"], Field(exclude=True)]


class RcloneDestinationBody(DestinationHead, RcloneDestination):
    kind: Annotated[Literal["rclone"], Field(exclude=True)]


DestinationBody = Annotated[
    LocalDestinationBody | S3DestinationBody | SFTPDestinationBody | RcloneDestinationBody,
    Discriminator("kind"),
]
"""A destination form: `kind` says which settings follow."""

DESTINATION_BODIES: dict[str, type[DestinationHead]] = {
    "local": LocalDestinationBody,
    "s3": S3DestinationBody,
    "sftp": SFTPDestinationBody,
    "rclone": RcloneDestinationBody,
}


class DestinationKind(Input):
    """A destination form's kind and the destination it edits (settings are checked per kind)."""

    kind: Literal["local", "s3", "sftp", "rclone"]
    id: Id | None = None


class ChannelEvents(Input):
    """Which events a global channel is told about; "worker" is the heartbeat alert."""

    start: bool = CHANNEL_DEFAULT_EVENTS["start"]
    success: bool = CHANNEL_DEFAULT_EVENTS["success"]
    warning: bool = CHANNEL_DEFAULT_EVENTS["warning"]
    failure: bool = CHANNEL_DEFAULT_EVENTS["failure"]
    worker: bool = CHANNEL_DEFAULT_EVENTS["worker"]


class ChannelBody(Input):
    """A global alert channel; a blank `url` keeps the stored one."""

    name: ChannelName
    url: SecretText = ""
    events: ChannelEvents = ChannelEvents()
    enabled: bool = True


class ChannelTest(Input):
    """Send a test to `url`, or (when blank) to the stored URL of channel `id`."""

    url: SecretText = ""
    id: Id | None = None


class TokenBody(Input):
    name: Name
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    """Days until the token stops working; null (or left out): until it is revoked."""
    role: RoleName | None = None
    """What the token may do, no more than its user; null (or left out): the user's role."""


class InstallationBody(Input):
    """Installation settings; a field left out is unchanged, history_keep_days null keeps all."""

    timezone: Annotated[Text, Field(max_length=100)] | None = None
    missed_tick_grace_minutes: int | None = None
    max_concurrent_runs: int | None = None
    history_keep_days: int | None = None


class CleanupBody(Input):
    days: int
    """Remove runs older than this many days (runs of stored backups stay)."""


RunStatusName = Literal[
    "queued", "running", "success", "warning", "failed", "cancelled", "interrupted", "skipped"
]


RunKindName = Literal["backup", "restore", "verify"]


class RunsQuery(Input):
    status: RunStatusName | None = None
    kind: RunKindName | None = None
    job_id: QueryId | None = None
    since: QueryMoment | None = None
    until: QueryMoment | None = None
    from_date: QueryDay | None = None
    """Runs created on this day or later, in the installation's time zone."""
    to_date: QueryDay | None = None
    """Runs created on this day or earlier, in the installation's time zone."""
    page: Annotated[int, Field(ge=1, le=1_000_000), QUERY_INT] = 1
    per_page: Annotated[int, Field(ge=1, le=200), QUERY_INT] = 25


class LogQuery(Input):
    after: Annotated[int, Field(ge=0, le=MAX_ID), QUERY_INT] = 0
    """Only lines after this line id (a page following a running run sends its last)."""


class BackupsQuery(Input):
    job_id: QueryId | None = None
    destination_id: QueryId | None = None
    order: Literal["newest", "job"] = "newest"
    """Newest first, or grouped by job (by name, each job's newest first)."""
    page: Annotated[int, Field(ge=1, le=1_000_000), QUERY_INT] = 1
    per_page: Annotated[int, Field(ge=1, le=500), QUERY_INT] = 500


class TreeQuery(Input):
    q: Annotated[Text, Field(max_length=1000)] = ""
    """Search file names; without it, list the folder `path`."""
    path: Annotated[Text, Field(max_length=4000)] = ""


class DownloadQuery(Input):
    shape: Literal["stored", "tar"] = "stored"
    """`stored`: the archive as stored; `tar`: one plain tar made on the fly, decrypted
    and uncompressed; of an incremental point, everything present at that point."""


class ExtractQuery(Input):
    path: Annotated[Text, Field(min_length=1, max_length=4000)]


class RestoreTarget(Input):
    kind: Literal["local", "ssh", "original"] = "local"
    """`original`: where the files came from (the job's host or SSH server, path `/`)."""
    path: Text = ""
    same_as_source: bool = False
    host: Text = ""
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    username: Text = ""
    host_key_fingerprint: Text = ""
    host_key: Text = ""
    password: SecretText = ""
    private_key: SecretText = ""
    passphrase: SecretText = ""


class DecryptionKeys(Input):
    identity: SecretText = ""
    passphrase: Passphrase = ""
    """Taken exactly as typed; a secret, so never shown, stored or audited."""


class TreeBody(TreeQuery):
    decryption: DecryptionKeys | None = None
    """The key or passphrase of an encrypted backup whose job stores none: used for this
    request only, never stored."""


class ExtractBody(ExtractQuery):
    decryption: DecryptionKeys | None = None
    """The key or passphrase of an encrypted backup whose job stores none: used for this
    request only, never stored."""


class RestoreBody(Input):
    artifact_id: Id
    policy: Literal["skip", "overwrite", "keep-both"] = "skip"
    paths: list[Annotated[Text, Field(max_length=4000)]] = []
    """Files and folders to restore; none restores everything."""
    target: RestoreTarget = RestoreTarget()
    decryption: DecryptionKeys | None = None
    dry_run: bool = False
    """Read the archive and report what would be restored, writing nothing."""


class VerifyBody(Input):
    artifact_id: Id
    deep: bool = False
    """Also decrypt, decompress and read every file (else: the stored bytes' hash)."""


class ImportBody(Input):
    destination_id: Id


class VerifyScheduleBody(Input):
    cron: Annotated[Text, Field(max_length=200)] | None = None
    deep: bool = False


class SSHTestBody(Input):
    source: SkipValidation[SSHProbe] = Field(default_factory=dict)  # type: ignore[assignment]
    """The SSH source form; checked as an SSHProbe."""
    job_id: Id | None = None
    """The job being edited: its stored secrets fill blank secret fields."""


class SetupAdminBody(Input):
    username: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
    password: Password
    password_confirm: Password | None = None


class LoginBody(Input):
    username: Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)] = ""
    password: Password = ""
    remember: bool = False


class MasterKeyBody(Input):
    password: Password = ""
    """The signed-in user's password, typed again."""


class PasswordBody(Input):
    current_password: Password = ""
    new_password: Password = ""


def dumped(body: Input) -> dict[str, Any]:
    """`body` as a plain dict, for code that still reads dicts (the restore request)."""
    return body.model_dump(mode="json")
