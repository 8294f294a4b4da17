"""containers a run stopped, so recovery restarts them (issue 18)

Revision ID: 0012_container_quiesce
Revises: 0011_incremental_chains

RESERVED SLOT: created empty so that several changes can add migrations at once in a
fixed order; the change that owns it fills in upgrade() and downgrade().
"""

from __future__ import annotations

revision = "0012_container_quiesce"
down_revision = "0011_incremental_chains"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
