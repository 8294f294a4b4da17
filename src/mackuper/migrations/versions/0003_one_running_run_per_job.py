"""at most one running run per job, enforced by a partial unique index

Revision ID: 0003_one_running_run_per_job
Revises: 0002_history_indexes, 0002_notify

The worker claims a queued run with a conditional UPDATE that checks no other
run of the job is running. Under PostgreSQL's READ COMMITTED two workers claiming
two queued runs of one job at the same moment both saw "none running" and both
won; the two runs then wrote archives under the same name. With this index the
second claim waits for the first and then fails, and the worker moves on.

It also merges the two 0002 branches. Should a database already hold two running
runs of one job (that race, or a crash), all but the newest are marked
interrupted first, as the worker's recovery would.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_one_running_run_per_job"
down_revision = ("0002_history_indexes", "0002_notify")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE runs SET status = 'interrupted', finished_at = CURRENT_TIMESTAMP"
            " WHERE status = 'running' AND job_id IS NOT NULL AND id NOT IN"
            " (SELECT max_id FROM (SELECT MAX(id) AS max_id FROM runs"
            "  WHERE status = 'running' AND job_id IS NOT NULL GROUP BY job_id) AS newest)"
        )
    )
    op.create_index(
        "uq_runs_one_running_per_job",
        "runs",
        ["job_id"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("uq_runs_one_running_per_job", table_name="runs")
