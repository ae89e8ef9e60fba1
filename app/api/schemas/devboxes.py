"""Devbox request and response models, named exactly as the spec's schemas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.schemas.common import StrictRequest

ResourceSize = Literal["X_SMALL", "SMALL", "MEDIUM", "LARGE", "X_LARGE", "XX_LARGE", "CUSTOM_SIZE"]
DevboxViewStatus = Literal[
    "provisioning", "initializing", "running", "suspending", "suspended", "resuming", "failure", "shutdown"
]


class IdleConfigurationParameters(StrictRequest):
    idle_time_seconds: int = Field(ge=1)
    on_idle: Literal["shutdown", "suspend"]


class ResumeTriggers(StrictRequest):
    http: bool | None = None
    axon_event: bool | None = None


class LifecycleConfigurationParameters(StrictRequest):
    after_idle: IdleConfigurationParameters | None = None
    resume_triggers: ResumeTriggers | None = None


class UserParameters(StrictRequest):
    username: str = Field(min_length=1, max_length=32)
    uid: int


class LaunchParameters(StrictRequest):
    launch_commands: list[str] | None = None
    resource_size_request: ResourceSize | None = None
    available_ports: list[int] | None = None
    keep_alive_time_seconds: int | None = None
    after_idle: IdleConfigurationParameters | None = None
    custom_cpu_cores: float | None = None
    custom_gb_memory: int | None = None
    custom_disk_size: int | None = None
    architecture: Literal["x86_64", "arm64"] | None = None
    user_parameters: UserParameters | None = None
    required_services: list[str] | None = None
    network_policy_id: str | None = None
    lifecycle: LifecycleConfigurationParameters | None = None


class DevboxCreateParameters(StrictRequest):
    name: str | None = Field(None, max_length=256)
    environment_variables: dict[str, str] | None = None
    secrets: dict[str, str] | None = None
    file_mounts: dict[str, str] | None = None
    entrypoint: str | None = None
    blueprint_id: str | None = None
    blueprint_name: str | None = None
    repo_connection_id: str | None = None
    launch_parameters: LaunchParameters | None = None
    snapshot_id: str | None = None
    metadata: dict[str, str] | None = None
    code_mounts: list[dict[str, Any]] | None = None
    mounts: list[dict[str, Any]] | None = None
    tunnel: TunnelConfig | None = None
    gateways: dict[str, Any] | None = None
    mcp: dict[str, Any] | None = None


class DevboxUpdateParameters(StrictRequest):
    name: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = None


class DevboxWaitForStatusRequest(StrictRequest):
    # Plain strings, so an unknown status is our 400 with a clear message rather than a 422.
    statuses: list[str]
    timeout_seconds: float | None = None


class DevboxStateTransition(BaseModel):
    status: DevboxViewStatus
    transition_time_ms: int


class TunnelConfig(StrictRequest):
    auth_mode: Literal["open", "authenticated"] | None = None
    http_keep_alive: bool | None = None
    wake_on_http: bool | None = None


class TunnelView(BaseModel):
    tunnel_key: str
    auth_mode: Literal["open", "authenticated"]
    auth_token: str | None = None
    create_time_ms: int
    http_keep_alive: bool
    wake_on_http: bool


class DevboxView(BaseModel):
    id: str
    name: str | None = None
    status: DevboxViewStatus
    create_time_ms: int
    end_time_ms: int | None
    initiator_type: Literal["api"] = "api"
    initiator_id: str | None = None
    blueprint_id: str | None = None
    snapshot_id: str | None = None
    metadata: dict[str, str]
    failure_reason: Literal["out_of_memory", "out_of_disk", "execution_failed", "health_check_failed"] | None = None
    shutdown_reason: Literal["api_shutdown", "keep_alive_timeout", "entrypoint_exit", "idle", "ttl_expired"] | None = (
        None
    )
    launch_parameters: dict[str, Any]
    capabilities: list[Literal["unknown", "docker_in_docker"]]
    state_transitions: list[DevboxStateTransition]
    tunnel: TunnelView | None = None
    gateway_specs: dict[str, Any] | None = None
    mcp_specs: dict[str, Any] | None = None


class DevboxListView(BaseModel):
    devboxes: list[DevboxView]
    has_more: bool
    total_count: int | None = None


class DevboxResourceUsageView(BaseModel):
    id: str
    total_active_seconds: int
    total_elapsed_seconds: int
    vcpu_seconds: int
    memory_gb_seconds: int
    disk_gb_seconds: int
    start_time_ms: int
    end_time_ms: int | None = None
    status: str
