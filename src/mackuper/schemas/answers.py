"""What the JSON API answers: the shapes the OpenAPI document promises and the fuzz checks.

These models only describe (the views build plain dicts in web.serialize); every
object may carry more fields than listed, so adding a field never breaks a client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    """An API answer. Each field's docstring is its description in the OpenAPI document."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)


class ErrorAnswer(Answer):
    """Why a request failed; `field` names the first bad value, `fields` each form field's."""

    error: str
    field: str | None = None
    fields: dict[str, str] = {}


class OkAnswer(Answer):
    ok: bool
    message: str | None = None


class DestinationRef(Answer):
    id: int
    name: str
    kind: str


class Job(Answer):
    id: int
    name: str
    slug: str
    enabled: bool
    source_kind: str
    source: dict[str, Any]
    archive_format: str
    compression_level: int | None
    schedule: str | None
    timezone: str | None
    retention: dict[str, Any]
    notifications: dict[str, Any]
    hooks: dict[str, Any]
    encryption: dict[str, Any]
    worker_label: str | None
    """Only workers carrying this label run the job; None: any worker."""
    stop_containers: list[str] = []
    """Containers stopped during its backups (besides those labelled for it)."""
    backup_mode: dict[str, Any]
    """{mode: full | incremental, full_every_runs, full_every_days}."""
    destination_ids: list[int]
    destinations: list[DestinationRef]
    created_at: str | None
    updated_at: str | None


class JobAnswer(Answer):
    job: Job


class SavedJobAnswer(JobAnswer):
    warnings: list[str]
    """Saved, but worth a look: a local source path this server cannot find."""


class JobsAnswer(Answer):
    jobs: list[Job]


class Destination(Answer):
    id: int
    name: str
    kind: str
    config: dict[str, Any]
    secrets: dict[str, str]
    """"set" or "not set" per secret field; secrets themselves never leave."""
    created_at: str | None


class DestinationAnswer(Answer):
    destination: Destination


class DestinationsAnswer(Answer):
    destinations: list[Destination]


class Artifact(Answer):
    id: int
    destination_id: int
    destination: str
    key: str
    state: str
    size: int | None
    sha256: str | None
    """The archive's SHA-256, for archives stored before 2026-12-02 (else None)."""
    blake3: str | None
    """The archive's BLAKE3 (`b3sum`), for archives stored since (else None)."""


class Run(Answer):
    id: int
    job_id: int | None
    job_name: str
    kind: str
    trigger: str
    status: str
    scheduled_for: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_seconds: float | None
    archive_name: str | None
    bytes_read: int
    bytes_written: int
    files_done: int
    current_file: str | None
    sha256: str | None
    """The archive's SHA-256, for archives stored before 2026-12-02 (else None)."""
    blake3: str | None
    """The archive's BLAKE3 (`b3sum`), for archives stored since (else None)."""
    error: str | None
    cancel_requested: bool
    worker_id: str | None
    """The worker that claimed it."""
    worker_label: str | None
    """The label a worker needs to claim it; None: any worker."""
    queue_position: int | None
    """While queued: its place among the queued runs of its lane (1: next); else None."""
    waiting_for: str | None
    """While queued for a label no live worker carries: a sentence saying so; else None."""
    summary: dict[str, Any]
    """A restore's target, dry run, policy and counts, or a verification's depth and
    counts; empty for a backup."""
    artifacts: list[Artifact]


class RunAnswer(Answer):
    run: Run


class RunNowAnswer(RunAnswer):
    queued: bool
    """False: a backup of the job was already queued or running, and `run` is that one."""
    message: str


class Worker(Answer):
    hostname: str
    labels: list[str]
    seen_at: str


class WorkersAnswer(Answer):
    workers: list[Worker]
    labels: list[str]


class RunsAnswer(Answer):
    runs: list[Run]
    total: int
    page: int
    per_page: int


class LogLine(Answer):
    id: int
    at: str | None
    level: str
    message: str


class LogAnswer(Answer):
    status: str
    lines: list[LogLine]


class Channel(Answer):
    id: int
    name: str
    service: str
    url: str
    """"set" or "not set"."""
    events: dict[str, bool]
    enabled: bool
    created_at: str | None


class ChannelAnswer(Answer):
    channel: Channel


class ChannelsAnswer(Answer):
    channels: list[Channel]
    events: list[str]


class Token(Answer):
    id: int
    name: str
    role: str
    """viewer, operator or administrator: no more than its user's role."""
    user: str
    """The user the token acts as."""
    created_at: str | None
    last_used_at: str | None
    expires_at: str | None
    """None: the token works until it is revoked."""
    expired: bool


class TokensAnswer(Answer):
    tokens: list[Token]


class NewToken(Token):
    token: str
    """The token itself: shown in this answer only, stored as a hash."""
    shown_once: bool


class InstallationSettings(Answer):
    timezone: str
    missed_tick_grace_minutes: int
    max_concurrent_runs: int
    history_keep_days: int | None


class MasterKeyOrigin(Answer):
    origin: Literal["environment", "file"]
    """MACKUPER_MASTER_KEY, or the key file in the data directory."""
    path: str | None


class MasterKey(MasterKeyOrigin):
    master_key: str
    """The key itself: in this answer only (marked no-store)."""
    filename: str


class ConfigurationExport(Answer):
    mackuper_export: int
    exported_at: str
    warning: str
    installation: InstallationSettings
    destinations: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    notification_channels: list[dict[str, Any]]
    single_sign_on: dict[str, Any] = {}
    """The single sign-on settings, the client secret only as "set" or "not set"."""


class InstallationAnswer(Answer):
    settings: InstallationSettings


class JobAlertsAnswer(Answer):
    job_id: int
    notifications: dict[str, Any]
    hooks: dict[str, Any]


class SchedulePreview(Answer):
    timezone: str
    next: list[str]


class Backup(Answer):
    id: int
    run_id: int
    job_id: int | None
    job_name: str
    destination_id: int
    destination: str
    key: str
    name: str
    created_at: str | None
    size: int | None
    sha256: str | None
    """The archive's SHA-256, for archives stored before 2026-12-02 (else None)."""
    blake3: str | None
    """The archive's BLAKE3 (`b3sum`), for archives stored since (else None)."""
    format: str
    encrypted: bool
    key_stored: bool
    """The job keeps a key or passphrase that opens its backups."""


class BackupsAnswer(Answer):
    backups: list[Backup]
    total: int
    page: int
    per_page: int


class RunRef(Answer):
    run_id: int
    status: str
    finished_at: str | None


class SchedulerState(Answer):
    running: bool
    last_heartbeat: str | None


class AttentionItem(Answer):
    kind: Literal[
        "backup_failed", "backup_warning", "overdue", "destination_failing", "verify_failed"
    ]
    message: str
    job_id: int | None
    job_name: str | None
    destination_id: int | None
    run_id: int | None
    """The run to look at (for an overdue job, its last good backup, if any)."""
    at: str | None


class Dashboard(Answer):
    total_jobs: int
    active_jobs: int
    last_backup: RunRef | None
    scheduler: SchedulerState
    success_rate: float | None
    """Percent of the last `success_rate_days` days' finished backups that succeeded."""
    success_rate_days: int
    total_backups: int
    stored_archives: int
    total_size: int
    timezone: str
    attention: list[AttentionItem]
    """What needs a person: failed or warned last backups, overdue jobs, destinations
    that could not be written, failed verifications."""
    recent: list[Run]
    running: list[Run]


class About(Answer):
    version: str
    python: str
    database: str
    data_dir: str
    free_disk: int


class HeaderStatus(Answer):
    scheduler_running: bool
    running: int


class JobOverview(Answer):
    schedule_text: str
    timezone: str
    """The zone the schedule runs in (the job's, or the installation's)."""
    next_run: str | None
    last_status: str | None
    """The status of the job's last backup run (restores and verifications aside)."""
    last_run_id: int | None
    last_at: str | None


class JobsOverview(Answer):
    jobs: dict[str, JobOverview]
    """Keyed by job id."""


class ChartDay(Answer):
    date: str
    bytes: int
    seconds: int


class Chart(Answer):
    days: list[ChartDay]


class Estimate(Answer):
    expected_bytes: int | None
    expected_seconds: float | None


class NewIdentity(Answer):
    identity: str
    """The private key: in this answer only, never stored unless a job is saved with it."""
    recipient: str
    notice: str


class SetupStatus(Answer):
    admin_created: bool
    complete: bool
    logged_in: bool


class LoggedIn(Answer):
    ok: bool
    setup_complete: bool


class DeletedJob(Answer):
    ok: bool
    backups_deleted: int


class CleanedHistory(Answer):
    removed: int
    days: int


class SSHProbeResult(Answer):
    ok: bool
    status: str
    message: str
    host_key: str | None
    key_type: str | None
    fingerprint: str | None
    paths: list[dict[str, Any]]
    transfer: str | None


class VerifySchedule(Answer):
    cron: str | None
    deep: bool


class VerifyScheduleAnswer(Answer):
    schedule: VerifySchedule


class ImportReport(Answer):
    manifests: int
    imported: int
    already_known: int
    refused: int
    jobs_created: list[str]
    """Slugs of the jobs the import created for backups of unknown jobs."""
    problems: list[str]
    chain_points: int = 0
    """Imported points of incremental chains, linked to the backups they need."""
    broken_chains: list[str] = []
    """One line per imported point whose chain lacks an archive."""


class ImportAnswer(Answer):
    report: ImportReport


class TreeEntry(Answer):
    name: str
    path: str
    type: str
    size: int | None
    mtime: Any


class DumpedDatabase(Answer):
    database: str
    kind: str
    """postgresql, mariadb, sqlite or redis: the folder its parts are stored in."""
    size: int | None


class Tree(Answer):
    entries: list[TreeEntry]
    truncated: bool
    sealed: bool
    """The file list is encrypted and no key at hand opened it: send one (POST)."""
    databases: list[str]
    """The databases dumped in this backup (restored with POST /api/restore/database)."""
    dumps: list[DumpedDatabase]
    """The same with each dump's kind and size (downloaded with GET /api/backups/{id}/dump)."""
    volumes: list[str]
    """The container volumes backed up in it (restored with POST /api/restore/volume)."""


class DownloadLink(Answer):
    url: str
    expires_in: int
    filename: str


class BackupAnswer(Answer):
    backup: Backup
    manifest: dict[str, Any]


class RetentionChain(Answer):
    level: int
    """0: the chain's full; n: the n-th incremental after it."""
    full_run_id: int
    needs: list[int]
    """The runs whose archives restoring this point reads, full first, itself last."""


class RetentionDecision(Answer):
    run_id: int
    finished_at: str
    successful: bool
    keep: bool
    reasons: list[str]
    locked_until: str | None = None
    """A backup the policy would delete whose archive is locked (S3 Object Lock) until
    then: retention deletes it only after that."""
    artifacts: list[dict[str, Any]]
    chain: RetentionChain | None = None
    """Its place in an incremental chain; None for a full-only job's backup."""
    needed_by: list[int] = []
    """Kept points (run ids) that need this backup's archives."""
    kept_for_chain: bool = False
    """Kept only because a kept point needs it: the policy alone would delete it."""
    missing: list[int] = []
    """Backups (run ids; 0: one never in the catalog) this point needs that are gone:
    its chain is broken and it cannot be restored whole."""


class RetentionPreview(Answer):
    policy: dict[str, int]
    delete_count: int
    keep_count: int
    backups: list[RetentionDecision]
