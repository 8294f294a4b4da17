"""containers a run stopped, so recovery restarts them (issue 18)

Revision ID: 0012_container_quiesce
Revises: 0011_incremental_chains

A backup that stops containers while it runs writes each one to
`quiesced_containers` before stopping it and deletes the row once the container runs
again; a worker that died mid-backup leaves the rows, and recovery at the next worker
start starts those containers in their recorded order. New table, nothing to convert.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_container_quiesce"
down_revision = "0011_incremental_chains"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quiesced_containers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("engine", sa.String(length=500), nullable=False),
        sa.Column("container_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quiesced_containers_run", "quiesced_containers", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_quiesced_containers_run", table_name="quiesced_containers")
    op.drop_table("quiesced_containers")
