"""two-factor login: TOTP secrets, recovery codes, passkeys (issue 22)

Revision ID: 0009_two_factor
Revises: 0008_backup_anomalies

`totp_secrets` holds one authenticator-app secret per user, encrypted with the master
key like every other stored secret; it counts once `confirmed_at` is set (the user
typed a code from it), and `last_counter` is the time step of the last code accepted,
so a code seen on the wire cannot be used again. `recovery_codes` keeps only each
code's SHA-256 and when it was used. `passkeys` are WebAuthn credentials: the id the
authenticator chose, its public key (COSE) and signature counter. "Require two-factor
login for everyone" is a row of `settings`, so it needs no table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_two_factor"
down_revision = "0008_backup_anomalies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "totp_secrets",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("last_counter", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recovery_codes_user", "recovery_codes", ["user_id"])
    op.create_table(
        "passkeys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credential_id"),
    )
    op.create_index("ix_passkeys_user", "passkeys", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_passkeys_user", table_name="passkeys")
    op.drop_table("passkeys")
    op.drop_index("ix_recovery_codes_user", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_table("totp_secrets")
