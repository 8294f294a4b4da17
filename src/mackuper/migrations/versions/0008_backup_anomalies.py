"""backup anomalies: a job whose latest backups look encrypted or wiped

Revision ID: 0008_backup_anomalies
Revises: 0007_users_roles_audit

A backup whose manifest differs from the job's recent ones the way ransomware makes it
differ (most files changed or gone, data that stopped compressing) names itself in
`jobs.anomaly_run_id`; retention deletes nothing for that job until a person
acknowledges it, which clears the column. Existing jobs have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_backup_anomalies"
down_revision = "0007_users_roles_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("anomaly_run_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("anomaly_run_id")
