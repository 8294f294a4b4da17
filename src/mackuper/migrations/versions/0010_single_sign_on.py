"""single sign-on and invitations: OpenID Connect identities, invitations (issue 22)

Revision ID: 0010_single_sign_on
Revises: 0009_two_factor

`sso_identities` links a user to an account at an OpenID provider by the provider's
issuer and the account's subject (never by e-mail alone, which a provider may let its
users change). `invitations` are one-time links an administrator sends: only the
link's SHA-256 is stored, with the role the new user gets and when the link expires.
The single sign-on settings themselves are rows of `settings` (the client secret
encrypted with the master key), so they need no table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_single_sign_on"
down_revision = "0009_two_factor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer", "subject", name="uq_sso_identities_issuer_subject"),
    )
    op.create_index("ix_sso_identities_user", "sso_identities", ["user_id"])
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("can_download", sa.Boolean(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )


def downgrade() -> None:
    op.drop_table("invitations")
    op.drop_index("ix_sso_identities_user", table_name="sso_identities")
    op.drop_table("sso_identities")
