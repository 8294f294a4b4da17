"""server-side login sessions, login attempts counted in the database, token expiry

Revision ID: 0005_login_sessions_and_attempts
Revises: 0004_one_run_per_archive_key

A session cookie used to name the user (and a hash of the password hash), so logout
could not end it: a copied cookie, or a remember cookie, worked on. Now the cookie
carries a random session id whose row logout deletes. Cookies issued before this
migration name no row and are refused once: everyone logs in again.

Failed logins were counted in each web process's memory, so every process (and every
machine) allowed its own share; `login_attempts` counts them for all of them.

API tokens may now expire (`expires_at`, NULL for tokens that do not).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_login_sessions_and_attempts"
down_revision = "0004_one_run_per_archive_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("remember", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("ix_login_sessions_user", "login_sessions", ["user_id"])
    op.create_index("ix_login_sessions_expires", "login_sessions", ["expires_at"])
    op.create_table(
        "login_attempts",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_login_attempts_started", "login_attempts", ["started_at"])
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
    op.drop_index("ix_login_attempts_started", table_name="login_attempts")
    op.drop_table("login_attempts")
    op.drop_index("ix_login_sessions_expires", table_name="login_sessions")
    op.drop_index("ix_login_sessions_user", table_name="login_sessions")
    op.drop_table("login_sessions")
