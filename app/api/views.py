"""Domain records -> response models. Routers call these; nothing else shapes a response."""

from __future__ import annotations

from app.api.schemas.devboxes import DevboxResourceUsageView, DevboxStateTransition, DevboxView, TunnelView
from app.api.schemas.executions import DevboxAsyncExecutionDetailView, DevboxExecutionDetailView
from app.api.schemas.snapshots import DevboxDiskSnapshotView, DevboxSnapshotAsyncStatusView
from app.domain.devbox import Devbox
from app.domain.snapshot import DiskSnapshot
from app.domain.statuses import SnapshotStatus
from app.domain.usage import Usage
from app.services.executions import ExecutionDetail


def devbox_view(devbox: Devbox) -> DevboxView:
    return DevboxView(
        id=devbox.id,
        name=devbox.name,
        status=devbox.status.value,
        create_time_ms=devbox.create_time_ms,
        end_time_ms=devbox.end_time_ms,
        blueprint_id=devbox.blueprint_id,
        snapshot_id=devbox.snapshot_id,
        metadata=devbox.metadata,
        failure_reason=devbox.failure_reason,
        shutdown_reason=devbox.shutdown_reason,
        launch_parameters=devbox.launch_parameters,
        capabilities=[],
        state_transitions=[
            DevboxStateTransition(status=t.status.value, transition_time_ms=t.time_ms) for t in devbox.transitions
        ],
        tunnel=TunnelView.model_validate(devbox.tunnel) if devbox.tunnel else None,
    )


def usage_view(devbox: Devbox, usage: Usage) -> DevboxResourceUsageView:
    return DevboxResourceUsageView(
        id=devbox.id,
        total_active_seconds=usage.total_active_seconds,
        total_elapsed_seconds=usage.total_elapsed_seconds,
        vcpu_seconds=usage.vcpu_seconds,
        memory_gb_seconds=usage.memory_gb_seconds,
        disk_gb_seconds=usage.disk_gb_seconds,
        start_time_ms=devbox.create_time_ms,
        end_time_ms=devbox.end_time_ms,
        status=devbox.status.value,
    )


def execution_view(detail: ExecutionDetail) -> DevboxAsyncExecutionDetailView:
    execution = detail.execution
    return DevboxAsyncExecutionDetailView(
        devbox_id=execution.devbox_id,
        execution_id=execution.id,
        status=execution.status.value,
        shell_name=execution.shell_name,
        stdout=detail.stdout.text if detail.stdout else None,
        stderr=detail.stderr.text if detail.stderr else None,
        exit_status=execution.exit_status,
        stdout_truncated=detail.stdout.truncated if detail.stdout else None,
        stderr_truncated=detail.stderr.truncated if detail.stderr else None,
    )


def sync_execution_view(detail: ExecutionDetail) -> DevboxExecutionDetailView:
    execution = detail.execution
    return DevboxExecutionDetailView(
        devbox_id=execution.devbox_id,
        stdout=detail.stdout.text if detail.stdout else "",
        stderr=detail.stderr.text if detail.stderr else "",
        exit_status=execution.exit_status if execution.exit_status is not None else -1,
        shell_name=execution.shell_name,
    )


def snapshot_view(snapshot: DiskSnapshot) -> DevboxDiskSnapshotView:
    return DevboxDiskSnapshotView(
        id=snapshot.id,
        name=snapshot.name,
        create_time_ms=snapshot.create_time_ms,
        metadata=snapshot.metadata,
        source_devbox_id=snapshot.source_devbox_id,
        source_blueprint_id=snapshot.source_blueprint_id,
        commit_message=snapshot.commit_message,
        size_bytes=snapshot.size_bytes,
    )


def snapshot_status_view(snapshot: DiskSnapshot) -> DevboxSnapshotAsyncStatusView:
    return DevboxSnapshotAsyncStatusView(
        status=snapshot.status.value,
        snapshot=snapshot_view(snapshot) if snapshot.status == SnapshotStatus.COMPLETE else None,
        error_message=snapshot.error_message,
    )
