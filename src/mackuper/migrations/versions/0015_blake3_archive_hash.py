"""The archive's own hash is BLAKE3 from now on

Revision ID: 0015_blake3_archive_hash
Revises: 0014_run_settling

A run and each artifact it stored keep the archive's hash in the column named by its
algorithm (core/filehash.py): `blake3` for what is stored from now on, `sha256` for
everything stored before, which keeps its value. Every existing row has a NULL
`blake3`: none of them was hashed with it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_blake3_archive_hash"
down_revision = "0014_run_settling"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("blake3", sa.String(length=64), nullable=True))
    op.add_column("artifacts", sa.Column("blake3", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in ("artifacts", "runs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("blake3")
