"""worker labels: a job runs only on workers that carry its label

Revision ID: 0006_worker_labels
Revises: 0005_login_sessions_and_attempts

With workers on several machines any worker claimed any run, so a job backing up
local paths could run on a machine that lacks them. Workers now record their
labels in their heartbeat (MACKUPER_WORKER_LABELS, default the host name), a job
may name the label its workers must carry, and each queued run keeps the label it
waits for, so claiming checks one column. Existing jobs get no label: they run on
any worker, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_worker_labels"
down_revision = "0005_login_sessions_and_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("worker_label", sa.String(length=64), nullable=True))
    op.add_column("runs", sa.Column("worker_label", sa.String(length=64), nullable=True))
    op.add_column(
        "worker_heartbeats",
        sa.Column("labels", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.drop_column("labels")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("worker_label")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("worker_label")
