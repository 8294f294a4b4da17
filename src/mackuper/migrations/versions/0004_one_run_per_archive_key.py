"""one run per archive key and destination, enforced by a partial unique index

Revision ID: 0004_one_run_per_archive_key
Revises: 0003_one_running_run_per_job

Archive names had one-second resolution, so two runs of a job that started in the
same second wrote the same key and the second silently replaced the first: both
runs pointed at one object. From now on each run's archive has its own name
(core/naming.py) and this index makes the database refuse a second live artifact
with the same key at the same destination.

Catalogs that already hold such pairs are repaired first. The object holds the
bytes of the run that published last, taken to be the one that finished last
(then the higher id); every other artifact of the pair becomes `replaced`, so
restores no longer return another run's data and retention deleting one run no
longer deletes the other's only archive. Each such run gets a log line saying so.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_one_run_per_archive_key"
down_revision = "0003_one_running_run_per_job"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    # Newest publisher first in each (destination, key) group: a run still going
    # (no finished_at) would publish last, then the run that finished last.
    rows = connection.execute(
        sa.text(
            "SELECT a.id, a.run_id, a.destination_id, a.key FROM artifacts a"
            " JOIN runs r ON r.id = a.run_id"
            " WHERE a.state IN ('pending', 'stored') AND EXISTS (SELECT 1 FROM artifacts b"
            "  WHERE b.state IN ('pending', 'stored') AND b.destination_id = a.destination_id"
            "   AND b.key = a.key AND b.id <> a.id)"
            " ORDER BY a.destination_id, a.key,"
            "  CASE WHEN r.finished_at IS NULL THEN 1 ELSE 0 END DESC, r.finished_at DESC,"
            "  a.id DESC"
        )
    ).all()
    holders: dict[tuple[int, str], int] = {}
    for artifact_id, run_id, destination_id, key in rows:
        if (destination_id, key) not in holders:
            holders[destination_id, key] = run_id
            continue
        holder = holders[destination_id, key]
        connection.execute(
            sa.text("UPDATE artifacts SET state = 'replaced', upload_id = NULL WHERE id = :id"),
            {"id": artifact_id},
        )
        connection.execute(
            sa.text(
                "INSERT INTO run_logs (run_id, at, level, message)"
                " VALUES (:run_id, CURRENT_TIMESTAMP, 'warning', :message)"
            ),
            {
                "run_id": run_id,
                "message": f"{key} holds the archive of run {holder}, which started in the same"
                " second and replaced this run's archive there; this run has no archive of its"
                " own at that destination",
            },
        )
    op.create_index(
        "uq_artifacts_live_key",
        "artifacts",
        ["destination_id", "key"],
        unique=True,
        sqlite_where=sa.text("state IN ('pending', 'stored')"),
        postgresql_where=sa.text("state IN ('pending', 'stored')"),
    )


def downgrade() -> None:
    op.drop_index("uq_artifacts_live_key", table_name="artifacts")
