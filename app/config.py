"""Server settings, read once from DEVBOX_* environment variables and passed down from create_app."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.domain.pool_sizes import parse_pool_sizes


class Settings(BaseSettings):
    """Everything an operator can set; each field maps to DEVBOX_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="DEVBOX_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, description="Port for the API (HTTP/1.1 and cleartext HTTP/2 on the same port).")
    log_format: Literal["json", "text"] = Field(
        "json", description="Server log lines: JSON objects (with request ids) or plain text."
    )
    data_dir: Path = Field(Path.home() / ".local/share/devboxd", description="Where the SQLite file and keys live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in data_dir.")
    api_keys: str = Field("", description="Comma-separated bearer keys; empty: one is generated and stored.")
    default_image: str | None = Field(None, description="Devbox image; default: the locally built recipe image.")
    build_image_on_start: bool = Field(True, description="Build the default image at start if it is missing.")
    docker_threads: int = Field(32, description="Worker threads for blocking Docker calls.")
    host_file_access: bool = Field(
        True,
        description="Read and write large files (downloads, uploads) from this host through the container's root "
        "(/proc/<pid>/root) where the engine's containers are this host's processes; false: always through the "
        "engine's archive API.",
    )
    stop_timeout_seconds: int = Field(3, description="Grace period before SIGKILL when a container is stopped.")
    pids_limit: int = Field(4096, description="Max processes in one devbox.")
    network: str = Field(
        "devboxd", description="Docker network for devboxes, created with inter-container traffic off."
    )
    runtime: str | None = Field(None, description="Docker runtime for devboxes (e.g. runsc); engine default if unset.")
    tunnel_domain: str = Field(
        "localhost", description="Tunnels answer at {port}-{tunnel_key}.<this domain> on the API port."
    )
    ssh_host: str = Field("127.0.0.1", description="Address the SSH gateway listens on.")
    ssh_port: int = Field(
        2222, ge=0, le=65535, description="Port of the SSH gateway into devboxes (0: any free port, see the log)."
    )
    public_host: str = Field(
        "127.0.0.1", description="Host name clients use to reach this server; create_ssh_key's url names it."
    )
    warm_pool: str = Field(
        "SMALL=2",
        description="Started containers kept ready per resource size, as SIZE=COUNT,...; empty: no pool.",
    )
    warm_pool_refill_gap_seconds: float = Field(
        0.2, ge=0, le=60, description="Pause between two warm-pool refills (they also wait for creates)."
    )
    pty_idle_ttl_seconds: int = Field(
        300, ge=1, le=86_400, description="How long a terminal session waits for its client to come back."
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body accepted (upload_file and tunnels excepted)."
    )
    timer_tick_seconds: float = Field(
        1.0, gt=0, le=60, description="How often keep-alive and idle deadlines are checked."
    )
    git_base_url: str = Field("https://github.com", description="Where code mounts clone <owner>/<repo>.git from.")
    secrets: dict[str, str] = Field(default_factory=dict, description="Secret name -> value, as a JSON object.")
    secrets_file: Path | None = Field(None, description="A JSON file of secret name -> value (merged over secrets).")
    instance_id: str | None = Field(None, description="Label value marking this server's containers.")

    @field_validator("warm_pool")
    @classmethod
    def _pool_sizes(cls, value: str) -> str:
        parse_pool_sizes(value)  # fails start-up on a typo rather than running without a pool
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'devboxd.sqlite3'}"

    @property
    def resolved_instance_id(self) -> str:
        """Containers carry this label so two servers on one engine never touch each other's devboxes."""
        if self.instance_id:
            return self.instance_id
        return hashlib.sha256(self.resolved_database_url.encode()).hexdigest()[:12]

    def load_secrets(self) -> dict[str, str]:
        """Secrets by name for create's `secrets` parameter; values never leave the server's memory."""
        loaded = dict(self.secrets)
        if self.secrets_file is not None:
            data = json.loads(self.secrets_file.read_text())
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise ValueError(f"{self.secrets_file} must hold a JSON object of string values")
            loaded.update(data)
        return loaded

    @property
    def configured_api_keys(self) -> list[str]:
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]
