"""SSH keys issued by create_ssh_key: the public half, and the devbox it opens.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devbox_ssh_keys",
        sa.Column("fingerprint", sa.String(128), primary_key=True),
        sa.Column("devbox_id", sa.String(64), sa.ForeignKey("devboxes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_devbox_ssh_keys_devbox", "devbox_ssh_keys", ["devbox_id"])


def downgrade() -> None:
    op.drop_index("ix_devbox_ssh_keys_devbox", "devbox_ssh_keys")
    op.drop_table("devbox_ssh_keys")
