"""indexes for the dashboard and history filters on a large history

Revision ID: 0002_history_indexes
Revises: 0001

History filtered by status is ordered by creation time; the dashboard looks up
the last finished run, sums stored artifact sizes and loads each listed run's
artifacts. Without these, each was a scan of every run or artifact
(bench/seed_history.py, docs/benchmarks.md).
"""

from __future__ import annotations

from alembic import op

revision = "0002_history_indexes"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_status_created", "runs", ["status", "created_at"])
    op.create_index("ix_runs_finished", "runs", ["finished_at"])
    op.create_index("ix_artifacts_state_size", "artifacts", ["state", "size"])
    op.create_index("ix_artifacts_run", "artifacts", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_artifacts_run", table_name="artifacts")
    op.drop_index("ix_artifacts_state_size", table_name="artifacts")
    op.drop_index("ix_runs_finished", table_name="runs")
    op.drop_index("ix_runs_status_created", table_name="runs")
