"""GNU tar's snapshot of an SSH source's chain (issue 17)

Revision ID: 0013_remote_tar_snapshot
Revises: 0012_container_quiesce

An SSH source in tar mode makes its incremental chain with the remote GNU tar's
`--listed-incremental`; the snapshot file it rewrites (zlib-compressed) is kept beside
the chain's file-list state, for the point `chain_states.run_id`. Empty for every
existing row: a local source's chain needs none, and nothing else exists yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_remote_tar_snapshot"
down_revision = "0012_container_quiesce"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chain_states") as batch:
        batch.add_column(sa.Column("remote_snapshot", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chain_states") as batch:
        batch.drop_column("remote_snapshot")
