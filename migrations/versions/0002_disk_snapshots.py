"""Disk snapshots.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disk_snapshots",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("source_devbox_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(256)),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("commit_message", sa.Text),
        sa.Column("source_blueprint_id", sa.String(64)),
        sa.Column("image", sa.String(512)),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("error_message", sa.Text),
        sa.Column("public", sa.Boolean, nullable=False),
    )
    op.create_index("ix_disk_snapshots_owner_id", "disk_snapshots", ["owner", "id"])
    op.create_index("ix_disk_snapshots_devbox", "disk_snapshots", ["source_devbox_id"])


def downgrade() -> None:
    op.drop_table("disk_snapshots")
