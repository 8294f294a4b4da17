"""Request bodies and query strings of the jobs API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SkipValidation, ValidationInfo, field_validator

from mackuper.core.labels import LABEL_RULE, normalize_label
from mackuper.core.retention import LABELS, LIMIT
from mackuper.pipeline.streams import LEVEL_RANGES
from mackuper.schemas.alerts import Commands, Notifications
from mackuper.schemas.base import Id, Input, QueryInt, Text, says
from mackuper.schemas.encryption import Encryption
from mackuper.schemas.sources import (
    LocalSource,
    MariaDBSource,
    PostgresSource,
    RedisSource,
    SQLiteSource,
    SSHSource,
    VolumeSource,
)

ArchiveFormat = Literal["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip"]


_RANGE = f"a whole number from 1 to {LIMIT}, or empty."
KeepDays = Annotated[int, Field(ge=1, le=LIMIT), says(f"{LABELS['keep_days']} must be {_RANGE}")]
KeepLast = Annotated[int, Field(ge=1, le=LIMIT), says(f"{LABELS['keep_last']} must be {_RANGE}")]
KeepDaily = Annotated[int, Field(ge=1, le=LIMIT), says(f"{LABELS['keep_daily']} must be {_RANGE}")]
KeepWeekly = Annotated[
    int, Field(ge=1, le=LIMIT), says(f"{LABELS['keep_weekly']} must be {_RANGE}")
]
KeepMonthly = Annotated[
    int, Field(ge=1, le=LIMIT), says(f"{LABELS['keep_monthly']} must be {_RANGE}")
]
KeepYearly = Annotated[
    int, Field(ge=1, le=LIMIT), says(f"{LABELS['keep_yearly']} must be {_RANGE}")
]


class Retention(Input):
    """How long backups are kept; a rule left out keeps nothing by itself."""

    keep_days: KeepDays | None = None
    keep_last: KeepLast | None = None
    keep_daily: KeepDaily | None = None
    keep_weekly: KeepWeekly | None = None
    keep_monthly: KeepMonthly | None = None
    keep_yearly: KeepYearly | None = None

    def stored(self) -> dict[str, int]:
        """What `Job.retention` holds: the rules that are set."""
        return self.model_dump(exclude_none=True)


class BackupModeSettings(Input):
    """Full backups every time, or incremental chains (core/chain.py): a full, then
    only what changed, with a new full every `full_every_runs` runs and/or when the
    chain's full is `full_every_days` days old. Tar formats and local sources only."""

    mode: Literal["full", "incremental"] = "full"
    full_every_runs: (
        Annotated[
            int,
            Field(ge=2, le=1000),
            says("A new full every … runs must be a whole number from 2 to 1000, or empty."),
        ]
        | None
    ) = None
    full_every_days: (
        Annotated[
            int,
            Field(ge=1, le=3650),
            says("A new full every … days must be a whole number from 1 to 3650, or empty."),
        ]
        | None
    ) = None

    def stored(self) -> dict[str, object]:
        """What `Job.options["backup_mode"]` holds ({} for full backups)."""
        return self.model_dump() if self.mode == "incremental" else {}


WorkerLabel = Annotated[str, AfterValidator(normalize_label), says(f"A label is {LABEL_RULE}.")]

ContainerName = Annotated[
    str,
    Field(max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
    says("A container name has letters, digits, _ . and - only."),
]

SourceSettings = SkipValidation[
    LocalSource
    | SSHSource
    | PostgresSource
    | SQLiteSource
    | MariaDBSource
    | RedisSource
    | VolumeSource
]
"""Checked against the model of the job's source_kind once the kind is known."""


class JobBody(Input):
    """A job as the job form sends it. Left-out `retention`, `encryption`,
    `notifications`, `hooks` and `worker_label` keep what the job has."""

    name: Annotated[Text, Field(max_length=100, json_schema_extra={"minLength": 1})]
    """Checked for emptiness with the source and the schedule, so a form shows every
    problem at once."""
    source_kind: Literal["local", "ssh", "postgresql", "sqlite", "mariadb", "redis", "volume"] = (
        "local"
    )
    source: SourceSettings = Field(default_factory=dict)  # type: ignore[assignment]
    archive_format: ArchiveFormat = "tar.gz"
    compression_level: int | None = None
    schedule: Annotated[Text, Field(max_length=100)] | None = None
    timezone: Annotated[Text, Field(max_length=64)] | None = None
    retention: Retention | None = None
    destination_ids: list[Id]
    encryption: Encryption | None = None
    enabled: bool = True
    notifications: Notifications | None = None
    hooks: Commands | None = None
    worker_label: WorkerLabel | None = None
    """Only workers carrying this label run the job; null: any worker. Left out: kept."""
    stop_containers: list[ContainerName] | None = None
    """Containers stopped during the job's backups and started again after (besides those
    labelled mackuper.stop-during-backup=<slug>); null: none. Left out: kept."""
    backup_mode: BackupModeSettings | None = None
    """Full or incremental backups; left out: kept; null: full."""

    @field_validator("compression_level")
    @classmethod
    def _level(cls, level: int | None, info: ValidationInfo) -> int | None:
        if level is None:
            return None
        archive_format = info.data.get("archive_format")
        if archive_format not in LEVEL_RANGES:
            raise ValueError("This format takes no compression level.")
        low, high = LEVEL_RANGES[archive_format]
        if not low <= level <= high:
            raise ValueError(f"Use a level from {low} to {high}.")
        return level

    @field_validator("schedule", "timezone")
    @classmethod
    def _blank_is_none(cls, text: str | None) -> str | None:
        return text or None


class AlertsBody(Input):
    """A job's alerts and commands on their own; a part left out is kept."""

    notifications: Notifications | None = None
    hooks: Commands | None = None


class EnabledBody(Input):
    enabled: bool


class DeleteJobBody(Input):
    delete_backups: bool = False
    """Also delete the job's stored backups (else they are kept and stay restorable)."""


class RunNowBody(Input):
    another: bool = False
    """Queue a further backup even while one of the job is queued or running (scripts
    that mean it; a click never sends this)."""


class SchedulePreviewQuery(Input):
    cron: Annotated[Text, Field(max_length=200)] = ""
    timezone: Annotated[Text, Field(max_length=100)] = ""


class RetentionPreviewQuery(Input):
    """An unsaved policy to preview; without any rule the job's saved policy is used."""

    keep_days: QueryInt | None = None
    keep_last: QueryInt | None = None
    keep_daily: QueryInt | None = None
    keep_weekly: QueryInt | None = None
    keep_monthly: QueryInt | None = None
    keep_yearly: QueryInt | None = None
