"""File request models, named exactly as the spec's schemas."""

from __future__ import annotations

from app.api.schemas.common import StrictRequest


class DevboxWriteFileParameters(StrictRequest):
    file_path: str
    contents: str


class DevboxReadFileParameters(StrictRequest):
    file_path: str


class DevboxDownloadFileParameters(StrictRequest):
    path: str
