"""A devbox's HTTP tunnel: its key (looked up on every proxied request) and settings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devboxes") as batch:
        batch.add_column(sa.Column("tunnel_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("tunnel", sa.JSON, nullable=True))
    op.create_index("ux_devboxes_tunnel_key", "devboxes", ["tunnel_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_devboxes_tunnel_key", "devboxes")
    with op.batch_alter_table("devboxes") as batch:
        batch.drop_column("tunnel")
        batch.drop_column("tunnel_key")
