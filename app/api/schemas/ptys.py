"""PTY request and response models, named as the spec's schemas."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel

from app.api.schemas.common import StrictRequest, limited
from app.domain.limits import WORD_MAX


class PtyConnectView(BaseModel):
    session_name: str
    status: str
    protocol_version: str
    connect_url: str
    created: bool
    attached: bool
    cols: int
    rows: int
    idle_ttl_seconds: int


class PtyControlParameters(StrictRequest):
    action: Literal["resize", "signal", "close"] | None = None
    cols: int | None = None
    rows: int | None = None
    signal: Annotated[str, limited(WORD_MAX, "signal")] | None = None


class PtyControlResultView(BaseModel):
    session_name: str
    status: str


class PtyTunnelView(BaseModel):
    tunnel_key: str
    auth_token: str
