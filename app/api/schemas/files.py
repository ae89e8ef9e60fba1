"""File request models, named exactly as the spec's schemas."""

from __future__ import annotations

from typing import Annotated

from app.api.schemas.common import StrictRequest, limited
from app.domain.limits import PATH_MAX


class DevboxWriteFileParameters(StrictRequest):
    file_path: Annotated[str, limited(PATH_MAX, "file_path")]
    contents: str  # data: the body limit only


class DevboxReadFileParameters(StrictRequest):
    file_path: Annotated[str, limited(PATH_MAX, "file_path")]


class DevboxDownloadFileParameters(StrictRequest):
    path: Annotated[str, limited(PATH_MAX, "path")]
