"""Table definitions; Alembic migrations in migrations/versions create them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

devboxes = Table(
    "devboxes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("name", String(256)),
    Column("status", String(32), nullable=False),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("end_time_ms", BigInteger),
    Column("failure_reason", String(64)),
    Column("shutdown_reason", String(64)),
    Column("metadata", JSON, nullable=False),
    Column("launch_parameters", JSON, nullable=False),
    Column("environment", JSON, nullable=False),
    Column("entrypoint", Text),
    Column("snapshot_id", String(64)),
    Column("blueprint_id", String(64)),
    Column("image", String(512), nullable=False),
    Column("username", String(64), nullable=False),
    Column("uid", Integer, nullable=False),
    Column("cpus", Float, nullable=False),
    Column("memory_bytes", BigInteger, nullable=False),
    Column("disk_gb", Integer, nullable=False),
    Column("container_id", String(128)),
    Column("last_activity_ms", BigInteger, nullable=False),
    Column("keep_alive_ms", BigInteger),
    Column("tunnel_key", String(64)),
    Column("tunnel", JSON),
    Index("ix_devboxes_owner_id", "owner", "id"),
    Index("ix_devboxes_owner_created", "owner", "create_time_ms", "id"),
    Index("ix_devboxes_status", "status"),
    Index("ux_devboxes_tunnel_key", "tunnel_key", unique=True),
)

devbox_transitions = Table(
    "devbox_transitions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("devbox_id", String(64), ForeignKey("devboxes.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(32), nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    Index("ix_devbox_transitions_devbox", "devbox_id", "seq"),
)

executions = Table(
    "executions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("devbox_id", String(64), ForeignKey("devboxes.id", ondelete="CASCADE"), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("command_id", String(64)),
    Column("command", Text, nullable=False),
    Column("shell_name", String(256)),
    Column("status", String(32), nullable=False),
    Column("exit_status", Integer),
    Column("stdout", Text),
    Column("stderr", Text),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("end_time_ms", BigInteger),
    Index("ix_executions_devbox", "devbox_id", "id"),
    Index("ux_executions_command_id", "devbox_id", "command_id", unique=True),
)

devbox_logs = Table(
    "devbox_logs",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("devbox_id", String(64), ForeignKey("devboxes.id", ondelete="CASCADE"), nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("source", String(32), nullable=False),
    Column("level", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("cmd", Text),
    Column("cmd_id", String(64)),
    Column("exit_code", Integer),
    Column("shell_name", String(256)),
    Index("ix_devbox_logs_devbox", "devbox_id", "seq"),
)

disk_snapshots = Table(
    "disk_snapshots",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("source_devbox_id", String(64), nullable=False),  # no foreign key: snapshots outlive devboxes
    Column("status", String(32), nullable=False),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("name", String(256)),
    Column("metadata", JSON, nullable=False),
    Column("commit_message", Text),
    Column("source_blueprint_id", String(64)),
    Column("image", String(512)),
    Column("size_bytes", BigInteger),
    Column("error_message", Text),
    Column("public", Boolean, nullable=False),
    Index("ix_disk_snapshots_owner_id", "owner", "id"),
    Index("ix_disk_snapshots_devbox", "source_devbox_id"),
)

devbox_ssh_keys = Table(
    "devbox_ssh_keys",
    metadata,
    Column("fingerprint", String(128), primary_key=True),  # SHA256 of the public key: how a login finds its devbox
    Column("devbox_id", String(64), ForeignKey("devboxes.id", ondelete="CASCADE"), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("create_time_ms", BigInteger, nullable=False),
    Index("ix_devbox_ssh_keys_devbox", "devbox_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("digest", String(64), primary_key=True),  # SHA-256 of the key, hex: the key itself is never stored
    Column("name", String(256), nullable=False),
    Column("create_time_ms", BigInteger, nullable=False),
    Column("revoked_time_ms", BigInteger),
)
