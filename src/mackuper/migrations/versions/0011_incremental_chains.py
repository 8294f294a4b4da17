"""incremental chains: per-job change-detection state and chain links (issue 17)

Revision ID: 0011_incremental_chains
Revises: 0010_single_sign_on

`chain_points` links each backup of an incremental job to its chain (its full, the
previous point, every run a plain-tar restore of it needs); `chain_states` keeps,
per job, the file list of the newest good point that the next run compares with.
Existing jobs make full backups and have neither.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_incremental_chains"
down_revision = "0010_single_sign_on"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_points",
        sa.Column("run_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("full_run_id", sa.Integer(), nullable=False),
        sa.Column("previous_run_id", sa.Integer(), nullable=True),
        sa.Column("archive_name", sa.String(length=255), nullable=False),
        sa.Column("needs", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index("ix_chain_points_job", "chain_points", ["job_id"])
    op.create_table(
        "chain_states",
        sa.Column("job_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("archive_name", sa.String(length=255), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
    )


def downgrade() -> None:
    op.drop_table("chain_states")
    op.drop_index("ix_chain_points_job", table_name="chain_points")
    op.drop_table("chain_points")
