"""Initial schema: devboxes, their status transitions, executions and logs.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devboxes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
        sa.Column("end_time_ms", sa.BigInteger),
        sa.Column("failure_reason", sa.String(64)),
        sa.Column("shutdown_reason", sa.String(64)),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("launch_parameters", sa.JSON, nullable=False),
        sa.Column("environment", sa.JSON, nullable=False),
        sa.Column("entrypoint", sa.Text),
        sa.Column("snapshot_id", sa.String(64)),
        sa.Column("blueprint_id", sa.String(64)),
        sa.Column("image", sa.String(512), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("uid", sa.Integer, nullable=False),
        sa.Column("cpus", sa.Float, nullable=False),
        sa.Column("memory_bytes", sa.BigInteger, nullable=False),
        sa.Column("disk_gb", sa.Integer, nullable=False),
        sa.Column("container_id", sa.String(128)),
        sa.Column("last_activity_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_devboxes_owner_id", "devboxes", ["owner", "id"])
    op.create_index("ix_devboxes_status", "devboxes", ["status"])
    op.create_table(
        "devbox_transitions",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("devbox_id", sa.String(64), sa.ForeignKey("devboxes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_devbox_transitions_devbox", "devbox_transitions", ["devbox_id", "seq"])
    op.create_table(
        "executions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("devbox_id", sa.String(64), sa.ForeignKey("devboxes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("command_id", sa.String(64)),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("shell_name", sa.String(256)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("exit_status", sa.Integer),
        sa.Column("stdout", sa.Text),
        sa.Column("stderr", sa.Text),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
        sa.Column("end_time_ms", sa.BigInteger),
    )
    op.create_index("ix_executions_devbox", "executions", ["devbox_id", "id"])
    op.create_index("ux_executions_command_id", "executions", ["devbox_id", "command_id"], unique=True)
    op.create_table(
        "devbox_logs",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("devbox_id", sa.String(64), sa.ForeignKey("devboxes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("cmd", sa.Text),
        sa.Column("cmd_id", sa.String(64)),
        sa.Column("exit_code", sa.Integer),
        sa.Column("shell_name", sa.String(256)),
    )
    op.create_index("ix_devbox_logs_devbox", "devbox_logs", ["devbox_id", "seq"])


def downgrade() -> None:
    op.drop_table("devbox_logs")
    op.drop_table("executions")
    op.drop_table("devbox_transitions")
    op.drop_table("devboxes")
