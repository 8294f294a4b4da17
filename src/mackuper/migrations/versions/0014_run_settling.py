"""A run that has ended but is still running its post-command and retention

Revision ID: 0014_run_settling
Revises: 0013_remote_tar_snapshot

A run's status is written as soon as its work ends, so that the page shows it at
once; its post-command, alerts and retention follow. `settling` is true in between,
and a run of the same job is not claimed until it is false: a queued run's
pre-command must not run beside the previous run's post-command. False for every
existing row: none of them is in that phase across an upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_run_settling"
down_revision = "0013_remote_tar_snapshot"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "runs", sa.Column("settling", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.create_index(
        "ix_runs_settling",
        "runs",
        ["id"],
        sqlite_where=sa.text("settling = 1"),
        postgresql_where=sa.text("settling"),
    )


def downgrade() -> None:
    op.drop_index("ix_runs_settling", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("settling")
