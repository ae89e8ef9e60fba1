"""Devbox request and response models, named exactly as the spec's schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from app.api.schemas.common import StrictRequest, limited, runnable
from app.domain.limits import (
    ENV_NAME_MAX,
    GIT_REF_MAX,
    ID_MAX,
    NAME_MAX,
    PATH_MAX,
    TOKEN_MAX,
    WORD_MAX,
    check_command,
    check_environment,
    check_length,
)

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


# Strings inside mounts and code_mounts (free-form objects here, checked further by the service).
# repo_owner and repo_name have their own, tighter rule in app/services/startup.py; a file mount's content
# is data, bounded by the body limit only.
_MOUNT_STRING_MAX = {"git_ref": GIT_REF_MAX, "token": TOKEN_MAX, "target": PATH_MAX}
_MOUNT_UNBOUNDED = {"content"}


def _bounded_mounts(field: str) -> Any:
    def check(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, mount in enumerate(mounts):
            for key, value in mount.items():
                check_length(key, NAME_MAX, f"a key of {field}[{i}]")
                where = f"{field}[{i}].{key}"
                if not isinstance(value, str) or key in _MOUNT_UNBOUNDED:
                    continue
                if key == "install_command":
                    check_command(value, where)
                else:
                    check_length(value, _MOUNT_STRING_MAX.get(key, NAME_MAX), where)
        return mounts

    return AfterValidator(check)


def _bounded_environment(environment: dict[str, str]) -> dict[str, str]:
    check_environment(environment)
    return environment


class LaunchParameters(StrictRequest):
    launch_commands: list[Annotated[str, runnable("launch_parameters.launch_commands[]")]] | None = None
    resource_size_request: ResourceSize | None = None
    available_ports: list[int] | None = None
    keep_alive_time_seconds: int | None = None
    after_idle: IdleConfigurationParameters | None = None
    custom_cpu_cores: float | None = None
    custom_gb_memory: int | None = None
    custom_disk_size: int | None = None
    architecture: Literal["x86_64", "arm64"] | None = None
    user_parameters: UserParameters | None = None
    required_services: list[Annotated[str, limited(NAME_MAX, "launch_parameters.required_services[]")]] | None = None
    network_policy_id: Annotated[str, limited(ID_MAX, "launch_parameters.network_policy_id")] | None = None
    lifecycle: LifecycleConfigurationParameters | None = None


class DevboxCreateParameters(StrictRequest):
    name: Annotated[str, limited(NAME_MAX, "name")] | None = None
    environment_variables: Annotated[dict[str, str], AfterValidator(_bounded_environment)] | None = None
    # Environment variable name -> secret name.
    secrets: (
        dict[
            Annotated[str, limited(ENV_NAME_MAX, "a secrets environment variable name")],
            Annotated[str, limited(NAME_MAX, "a secret name")],
        ]
        | None
    ) = None
    # Path -> content; the content is data (body limit only).
    file_mounts: dict[Annotated[str, limited(PATH_MAX, "a file_mounts path")], str] | None = None
    entrypoint: Annotated[str, runnable("entrypoint")] | None = None
    blueprint_id: Annotated[str, limited(ID_MAX, "blueprint_id")] | None = None
    blueprint_name: Annotated[str, limited(NAME_MAX, "blueprint_name")] | None = None
    repo_connection_id: Annotated[str, limited(ID_MAX, "repo_connection_id")] | None = None
    launch_parameters: LaunchParameters | None = None
    snapshot_id: Annotated[str, limited(ID_MAX, "snapshot_id")] | None = None
    metadata: dict[str, str] | None = None  # count and sizes: check_metadata in the service
    code_mounts: Annotated[list[dict[str, Any]], _bounded_mounts("code_mounts")] | None = None
    mounts: Annotated[list[dict[str, Any]], _bounded_mounts("mounts")] | None = None
    tunnel: TunnelConfig | None = None
    gateways: dict[str, Any] | None = None
    mcp: dict[str, Any] | None = None


class DevboxUpdateParameters(StrictRequest):
    name: Annotated[str, limited(NAME_MAX, "name")] | None = None
    metadata: dict[str, str] | None = None


class DevboxWaitForStatusRequest(StrictRequest):
    # Plain strings, so an unknown status is our 400 with a clear message rather than a 422.
    statuses: list[Annotated[str, limited(WORD_MAX, "a status")]]
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
