"""users and roles, API tokens of a user, the audit log

Revision ID: 0007_users_roles_audit
Revises: 0006_worker_labels

Mackuper had one administrator. Users now carry a role (administrator, operator,
viewer), may be disabled, may be allowed to download (viewers), and operators may be
given local folders to restore into. Existing users are administrators, so an
installation keeps its administrator unchanged.

API tokens belong to a user and carry a role no higher than the user's; tokens made
before belong to the first user (the administrator) with the administrator role, as
they acted before.

`audit_events` records who did what, from where, to which object.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_users_roles_audit"
down_revision = "0006_worker_labels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("role", sa.String(length=16), nullable=False, server_default="administrator"),
    )
    op.add_column(
        "users", sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(
        "users",
        sa.Column("can_download", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "users",
        sa.Column("restore_targets", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column("api_tokens", sa.Column("user_id", sa.Integer(), nullable=True))
    op.add_column(
        "api_tokens",
        sa.Column("role", sa.String(length=16), nullable=False, server_default="administrator"),
    )
    op.execute("UPDATE api_tokens SET user_id = (SELECT MIN(id) FROM users)")
    op.execute("DELETE FROM api_tokens WHERE user_id IS NULL")
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(
            "fk_api_tokens_user", "users", ["user_id"], ["id"], ondelete="CASCADE"
        )
    op.create_index("ix_api_tokens_user", "api_tokens", ["user_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_action", "audit_events", ["action"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_action", table_name="audit_events")
    op.drop_index("ix_audit_events_at", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_api_tokens_user", table_name="api_tokens")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("fk_api_tokens_user", type_="foreignkey")
        batch.drop_column("role")
        batch.drop_column("user_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("restore_targets")
        batch.drop_column("can_download")
        batch.drop_column("disabled")
        batch.drop_column("role")
