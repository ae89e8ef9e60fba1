"""Unauthenticated operational routes: health, metrics and the API contract."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from app.observability.metrics import CONTENT_TYPE, render

router = APIRouter(tags=["System"])

OPENAPI_FILE = Path(__file__).resolve().parents[3] / "openapi.yaml"


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    report = await request.app.state.health.check()
    body = {
        "status": "ok" if report.ok else "unavailable",
        "database": report.database,
        "docker": report.docker,
        "image": report.image,
    }
    return JSONResponse(body, status_code=200 if report.ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus exposition; aggregates only, so no API key (see app/observability/metrics.py)."""
    devboxes = request.app.state.services.devboxes
    body = render(await devboxes.status_counts(), devboxes.warm_ready())
    return Response(body, media_type=CONTENT_TYPE)


@router.get("/openapi.yaml", include_in_schema=False)
async def openapi_yaml() -> FileResponse:
    return FileResponse(OPENAPI_FILE, media_type="application/yaml")
