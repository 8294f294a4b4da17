"""two-factor login: TOTP secrets, recovery codes, passkeys (issue 22)

Revision ID: 0009_two_factor
Revises: 0008_backup_anomalies

RESERVED SLOT: created empty so that several changes can add migrations at once in a
fixed order; the change that owns it fills in upgrade() and downgrade().
"""

from __future__ import annotations

revision = "0009_two_factor"
down_revision = "0008_backup_anomalies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
