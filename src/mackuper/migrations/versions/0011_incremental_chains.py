"""incremental chains: per-job change-detection state and chain links (issue 17)

Revision ID: 0011_incremental_chains
Revises: 0010_single_sign_on

RESERVED SLOT: created empty so that several changes can add migrations at once in a
fixed order; the change that owns it fills in upgrade() and downgrade().
"""

from __future__ import annotations

revision = "0011_incremental_chains"
down_revision = "0010_single_sign_on"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
