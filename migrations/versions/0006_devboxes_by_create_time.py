"""Devbox lists are ordered by create time (warm-pool ids predate their create): index it per owner.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_devboxes_owner_created", "devboxes", ["owner", "create_time_ms", "id"])


def downgrade() -> None:
    op.drop_index("ix_devboxes_owner_created", "devboxes")
