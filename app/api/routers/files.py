"""File routes (Devbox-FileTools): text in and out, and streaming upload/download."""

from __future__ import annotations

import posixpath
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from app.api.deps import Svc, Tenant
from app.api.multipart_upload import stream_upload
from app.api.schemas.common import EmptyRecord
from app.api.schemas.executions import DevboxExecutionDetailView
from app.api.schemas.files import (
    DevboxDownloadFileParameters,
    DevboxReadFileParameters,
    DevboxWriteFileParameters,
)

router = APIRouter(prefix="/v1/devboxes", tags=["Devbox-FileTools"])


@router.post("/{id}/write_file_contents", response_model=DevboxExecutionDetailView)
async def write_file_contents(
    svc: Svc, owner: Tenant, id: str, body: DevboxWriteFileParameters
) -> DevboxExecutionDetailView:
    devbox = await svc.files.write_text(owner, id, body.file_path, body.contents)
    return DevboxExecutionDetailView(devbox_id=devbox.id, stdout="", stderr="", exit_status=0)


@router.post("/{id}/read_file_contents", response_class=PlainTextResponse)
async def read_file_contents(svc: Svc, owner: Tenant, id: str, body: DevboxReadFileParameters) -> PlainTextResponse:
    return PlainTextResponse(await svc.files.read_text(owner, id, body.file_path))


@router.post("/{id}/upload_file", response_model=EmptyRecord)
async def upload_file(svc: Svc, owner: Tenant, id: str, request: Request) -> EmptyRecord:
    # A refusal answers before the body is read; app/api/body_limit.py reads the rest before it goes out.
    await svc.devboxes.require_running(owner, id, "upload a file")
    length = request.headers.get("content-length", "")
    upload = await stream_upload(
        request.headers.get("content-type", ""), int(length) if length.isdigit() else None, request.stream()
    )
    await svc.files.write(owner, id, upload.path, upload.chunks, upload.size_hint)
    return EmptyRecord()


@router.post("/{id}/download_file", response_class=StreamingResponse)
async def download_file(svc: Svc, owner: Tenant, id: str, body: DevboxDownloadFileParameters) -> StreamingResponse:
    download = await svc.files.download(owner, id, body.path)
    name = posixpath.basename(download.path)
    return StreamingResponse(
        download.chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(download.size),
            "Content-Disposition": f"attachment; filename=\"{quote(name)}\"; filename*=UTF-8''{quote(name)}",
        },
    )
