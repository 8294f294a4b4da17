"""single sign-on and invitations: OpenID Connect identities, invitations (issue 22)

Revision ID: 0010_single_sign_on
Revises: 0009_two_factor

RESERVED SLOT: created empty so that several changes can add migrations at once in a
fixed order; the change that owns it fills in upgrade() and downgrade().
"""

from __future__ import annotations

revision = "0010_single_sign_on"
down_revision = "0009_two_factor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
