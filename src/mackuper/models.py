"""The database tables, as SQLAlchemy 2 typed models.

Times are stored as naive UTC and come back as aware UTC (`UTCDateTime`), so
SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mackuper.core.filehash import FILE_HASHES, named_hash


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    WARNING = "warning"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        return self not in {RunStatus.QUEUED, RunStatus.RUNNING}


class RunKind(enum.StrEnum):
    """What a run does; each kind is one module in `mackuper.runs`."""

    BACKUP = "backup"
    RESTORE = "restore"
    VERIFY = "verify"


class Role(enum.StrEnum):
    """What a user (or an API token) may do; each includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMINISTRATOR = "administrator"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank

    def capped(self, other: Role) -> Role:
        """The lower of the two roles."""
        return self if self.rank <= other.rank else other


class RunTrigger(enum.StrEnum):
    """Who asked for a run."""

    MANUAL = "manual"
    SCHEDULE = "schedule"
    CLI = "cli"
    IMPORT = "import"


E = TypeVar("E", bound=enum.StrEnum)


class StringEnum(TypeDecorator[E]):
    """A StrEnum stored as its plain string value, so the column stays a VARCHAR."""

    impl = String
    cache_ok = True

    def __init__(self, enum_type: type[E], length: int = 16) -> None:
        super().__init__(length)
        self.enum_type = enum_type

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum_type(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_type(value)


class ArtifactState(enum.StrEnum):
    PENDING = "pending"
    STORED = "stored"
    DELETED = "deleted"
    REPLACED = "replaced"
    """Another run's archive took its place before each run had its own name (0004)."""


LIVE_ARTIFACT_STATES = (ArtifactState.PENDING.value, ArtifactState.STORED.value)
"""An artifact in these states holds its key at its destination."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    role: Mapped[Role] = mapped_column(StringEnum(Role), default=Role.ADMINISTRATOR)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    """A disabled user cannot log in; their sessions and tokens stop working."""
    can_download: Mapped[bool] = mapped_column(Boolean, default=False)
    """Lets a viewer download backups (operators and administrators always may)."""
    restore_targets: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Local folders an operator may restore into (administrators restore anywhere)."""


class Setting(Base):
    """Installation-wide key/value settings (setup state, key check, time zone)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Destination(Base):
    __tablename__ = "destinations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Non-secret settings (bucket, region, endpoint, prefix, path)."""
    secrets_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    """Secret settings as JSON, encrypted with the master key."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


job_destinations = Table(
    "job_destinations",
    Base.metadata,
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("destination_id", ForeignKey("destinations.id", ondelete="RESTRICT"), primary_key=True),
)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    """Storage name, fixed at creation so renaming never orphans backups."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    source_kind: Mapped[str] = mapped_column(String(16))
    source_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source_secrets_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    archive_format: Mapped[str] = mapped_column(String(16), default="tar.gz")
    compression_level: Mapped[int | None] = mapped_column(Integer, default=None)
    schedule: Mapped[str | None] = mapped_column(String(100), default=None)
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    retention: Mapped[dict[str, Any]] = mapped_column(default=dict)
    encryption: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Public encryption settings (mode, recipients); secrets live in encryption_secrets."""
    encryption_secrets_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    notifications: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notify_secrets_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    """The job's own alert and ping URLs (they hold tokens), encrypted."""
    hooks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Further per-job settings that need no column of their own."""
    worker_label: Mapped[str | None] = mapped_column(String(64), default=None)
    """Only workers carrying this label run the job (its files are on their machine);
    None: any worker."""
    anomaly_run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    """A backup that looked encrypted or wiped (0008); retention deletes nothing for the
    job until a person acknowledges it, which clears this."""
    schedule_anchor: Mapped[datetime | None] = mapped_column(default=None)
    """Fire times are counted from here (last tick handled, or creation)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    destinations: Mapped[list[Destination]] = relationship(
        secondary=job_destinations, lazy="selectin", order_by=Destination.id
    )


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("job_id", "scheduled_for", name="uq_runs_job_tick"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_job_created", "job_id", "created_at"),
        Index("ix_runs_created", "created_at"),
        Index("ix_runs_status_created", "status", "created_at"),
        Index("ix_runs_finished", "finished_at"),
        # At most one running run per job, enforced by the database: two workers
        # claiming two queued runs of one job at once cannot both win, whatever the
        # isolation level (PostgreSQL's READ COMMITTED let both see "none running").
        Index(
            "uq_runs_one_running_per_job",
            "job_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        # The few runs in their post-phase, which recovery looks at every few polls.
        Index(
            "ix_runs_settling",
            "id",
            sqlite_where=text("settling = 1"),  # as SQLAlchemy writes `Run.settling` there
            postgresql_where=text("settling"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    job_name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[RunKind] = mapped_column(StringEnum(RunKind), default=RunKind.BACKUP)
    trigger: Mapped[RunTrigger] = mapped_column(StringEnum(RunTrigger), default=RunTrigger.MANUAL)
    scheduled_for: Mapped[datetime | None] = mapped_column(default=None)
    """The schedule tick this run belongs to; unique per job, so a tick runs once."""
    status: Mapped[RunStatus] = mapped_column(StringEnum(RunStatus), default=RunStatus.QUEUED)
    worker_id: Mapped[str | None] = mapped_column(String(100), default=None)
    worker_label: Mapped[str | None] = mapped_column(String(64), default=None)
    """Only a worker carrying this label may claim the run (from its job when queued)."""
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    settling: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Ended (its status written) but still running its post-command, alerts and
    retention: no other run of its job is claimed until this is false."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    archive_name: Mapped[str | None] = mapped_column(String(255), default=None)
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_written: Mapped[int] = mapped_column(BigInteger, default=0)
    files_done: Mapped[int] = mapped_column(Integer, default=0)
    current_file: Mapped[str | None] = mapped_column(Text, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    """The archive's hash when it was SHA-256 (runs before 2026-12-02); see archive_hash."""
    blake3: Mapped[str | None] = mapped_column(String(64), default=None)
    """The archive's hash when it is BLAKE3 (core/filehash.py's ARCHIVE_HASH)."""
    error: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Kind-specific parameters and results (a restore's target, a verify's artifact)."""

    job: Mapped[Job | None] = relationship(lazy="joined")
    artifacts: Mapped[list[Artifact]] = relationship(back_populates="run", lazy="selectin")

    @property
    def archive_hash(self) -> tuple[str, str] | None:
        """(algorithm, hexadecimal digest) of the archive this run stored, or None."""
        return _stored_hash(self)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or utcnow()
        return (end - self.started_at).total_seconds()


def _stored_hash(row: Run | Artifact) -> tuple[str, str] | None:
    """The hash a run's or an artifact's columns hold: each algorithm has its own column
    (`blake3`, `sha256`), filled for the one the archive was hashed with."""
    return named_hash({algorithm: getattr(row, algorithm) for algorithm in FILE_HASHES})


def hash_columns(archive_hash: tuple[str, str]) -> dict[str, str]:
    """The column that records `archive_hash` (algorithm, digest) on a run or an artifact,
    with its value: `{"blake3": digest}` for what this version stores."""
    algorithm, digest = archive_hash
    if algorithm not in FILE_HASHES:
        raise ValueError(f"unknown archive hash {algorithm!r}")
    return {algorithm: digest}


class RunLog(Base):
    __tablename__ = "run_logs"
    __table_args__ = (Index("ix_run_logs_run", "run_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)


class Artifact(Base):
    """One archive stored at one destination by one run."""

    __tablename__ = "artifacts"
    __table_args__ = (
        Index("ix_artifacts_job_state", "job_id", "state"),
        Index("ix_artifacts_state_size", "state", "size"),
        Index("ix_artifacts_run", "run_id"),
        # One archive name, one run: two runs of a job that start in the same second
        # cannot both write (or keep) the same key at one destination, whichever
        # worker they run on. The pipeline takes the next name when this refuses.
        Index(
            "uq_artifacts_live_key",
            "destination_id",
            "key",
            unique=True,
            sqlite_where=text("state IN ('pending', 'stored')"),
            postgresql_where=text("state IN ('pending', 'stored')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id"))
    key: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=ArtifactState.PENDING.value)
    upload_id: Mapped[str | None] = mapped_column(Text, default=None)
    """An S3 multipart upload in progress, kept so recovery can abort it."""
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    """The stored bytes' hash when it was SHA-256 (before 2026-12-02); see archive_hash."""
    blake3: Mapped[str | None] = mapped_column(String(64), default=None)
    """The stored bytes' hash when it is BLAKE3 (core/filehash.py's ARCHIVE_HASH)."""
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    verify_status: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    run: Mapped[Run] = relationship(back_populates="artifacts")
    destination: Mapped[Destination] = relationship(lazy="joined")

    @property
    def archive_hash(self) -> tuple[str, str] | None:
        """(algorithm, hexadecimal digest) of the stored bytes, or None before they are."""
        return _stored_hash(self)


class ChainPoint(Base):
    """One point of a job's incremental chain (issue 17; core/chain.py): the backup run
    whose archive it is, the chain's full and the previous point, and every run whose
    archive a plain-tar restore of this point needs (`needs`, full first, itself last)."""

    __tablename__ = "chain_points"
    __table_args__ = (Index("ix_chain_points_job", "job_id"),)

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    level: Mapped[int] = mapped_column(Integer)
    full_run_id: Mapped[int] = mapped_column(Integer)
    previous_run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    archive_name: Mapped[str] = mapped_column(String(255))
    needs: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChainState(Base):
    """A job's change-detection state: the file list of its newest good point, each
    entry naming the archive holding it (zlib-compressed JSON). Kept in the database
    rather than the data directory because any worker with the job's label may run
    the next backup, and a sealed manifest cannot be read back with a backup-only
    key; it is rebuilt from the point's manifest when missing."""

    __tablename__ = "chain_states"

    job_id: Mapped[int] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    run_id: Mapped[int] = mapped_column(Integer)
    archive_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[bytes] = mapped_column(LargeBinary)
    remote_snapshot: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """Of an SSH source's chain: the remote GNU tar's snapshot file for `run_id`,
    zlib-compressed (core/snar.py); it cannot be rebuilt, so without it the next run
    is a full."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    """MACKUPER_WORKER_LABELS of the worker (its host name by default)."""
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationChannel(Base):
    """An installation-wide alert channel (an Apprise URL, encrypted)."""

    __tablename__ = "notification_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url_encrypted: Mapped[str] = mapped_column(Text)
    events: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A token for scripts; only its SHA-256 is stored. It acts as its user, with a role
    no higher than the user's (the lower of the two counts at each request)."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(StringEnum(Role), default=Role.ADMINISTRATOR)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    """None: the token works until it is revoked."""


class AuditEvent(Base):
    """Who did what, from where, to which object; rows are only added (and deleted by
    the retention setting when old), never changed. `details` never holds a secret."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_action", "action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    """The user name, or None for an anonymous request (a failed login names the attempt)."""
    address: Mapped[str | None] = mapped_column(String(64), default=None)
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LoginSession(Base):
    """A logged-in browser: the cookie carries a random id, the row its SHA-256.

    Deleting the row ends the session on the server, so a cookie copied before
    logout (or before a password change, for other browsers) is refused after it.
    """

    __tablename__ = "login_sessions"
    __table_args__ = (
        Index("ix_login_sessions_user", "user_id"),
        Index("ix_login_sessions_expires", "expires_at"),
    )

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class LoginAttempt(Base):
    """Login attempts counted per limiter key (client address, or address and user name)
    in a window that starts with the first attempt; the key is a hash, so a password
    typed into the user name field is never stored."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_started", "started_at"),)

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()


class TotpSecret(Base):
    """A user's authenticator-app secret, encrypted with the master key. It counts as a
    second factor once confirmed; `last_counter` (the time step of the last accepted
    code) refuses a code used once already."""

    __tablename__ = "totp_secrets"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    last_counter: Mapped[int | None] = mapped_column(BigInteger, default=None)


class RecoveryCode(Base):
    """A one-time code for when the authenticator is lost; only its SHA-256 is kept."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class Passkey(Base):
    """A WebAuthn credential: the id its authenticator chose, its COSE public key and
    signature counter."""

    __tablename__ = "passkeys"
    __table_args__ = (Index("ix_passkeys_user", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    """base64url, as the browser sends it."""
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class SsoIdentity(Base):
    """A user's account at an OpenID provider: the provider's issuer and the account's
    subject, never the e-mail alone (a provider may let its users change it)."""

    __tablename__ = "sso_identities"
    __table_args__ = (
        UniqueConstraint("issuer", "subject", name="uq_sso_identities_issuer_subject"),
        Index("ix_sso_identities_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255), default=None)
    """As the provider last said; shown, never used to find the user."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class Invitation(Base):
    """A one-time link that lets a new user set their password; only its SHA-256 is kept."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[Role] = mapped_column(StringEnum(Role), default=Role.VIEWER)
    can_download: Mapped[bool] = mapped_column(Boolean, default=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class QuiescedContainer(Base):
    """A container a backup stopped and has not started again yet (issue 18).

    Written before the stop is asked for and deleted once the container runs again, so
    a worker that dies mid-backup leaves the list behind: recovery at the next worker
    start (runs/quiesce.py) starts them in `position` order. No foreign key to the run:
    history cleanup must never drop what still has to be started.
    """

    __tablename__ = "quiesced_containers"
    __table_args__ = (Index("ix_quiesced_containers_run", "run_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer)
    engine: Mapped[str] = mapped_column(String(500))
    """The engine address the container was stopped through."""
    container_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer)
    """Its place in the start order (0 starts first)."""
    stopped_at: Mapped[datetime] = mapped_column(default=utcnow)
