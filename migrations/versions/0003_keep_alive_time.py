"""When a devbox's keep-alive countdown last restarted (create, resume, keep_alive call).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devboxes") as batch:
        batch.add_column(sa.Column("keep_alive_ms", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devboxes") as batch:
        batch.drop_column("keep_alive_ms")
