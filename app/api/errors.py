"""The one place where errors become HTTP responses: `{"error": <code>, "detail": <message>}` for every
error, FastAPI's validation list under "detail" for malformed bodies (422)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.domain.errors import (
    BackendError,
    BackendUnavailable,
    Conflict,
    DomainError,
    InvalidRequest,
    InvalidState,
    NotFound,
    Unauthorized,
    Unsupported,
    WaitTimeout,
)

log = logging.getLogger(__name__)

STATUS_OF: dict[type[DomainError], int] = {
    NotFound: 404,
    InvalidRequest: 400,
    InvalidState: 400,
    Unsupported: 400,
    Conflict: 409,
    WaitTimeout: 408,
    Unauthorized: 401,
    BackendUnavailable: 503,
}
# Retrying these cannot succeed; the Runloop client honours the header and stops retrying.
NO_RETRY = {400, 401, 404, 409}


def error_response(status: int, code: str, detail: object) -> JSONResponse:
    headers = {"x-should-retry": "false"} if status in NO_RETRY else None
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 401: "unauthorized"}


def domain_error_response(exc: DomainError) -> JSONResponse:
    status = next((code for kind, code in STATUS_OF.items() if isinstance(exc, kind)), 400)
    response = error_response(status, exc.code, exc.message)
    if status == 401:
        response.headers["www-authenticate"] = "Bearer"
    return response


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(BackendError)
    async def _backend(_: Request, exc: BackendError) -> JSONResponse:
        log.warning("container engine error: %s", exc)
        return error_response(503, "backend_unavailable", f"the container engine failed the operation: {exc}")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Without each error's `input`: a megabyte of wrongly typed value must not come back as a megabyte.
        errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
        return JSONResponse(
            {"error": "validation_error", "detail": jsonable_encoder(errors)},
            status_code=422,
            headers={"x-should-retry": "false"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), exc.detail)

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> Response:
        # Nobody is left to answer; what the request was doing has been undone by its own cleanup.
        log.info("client disconnected before the request finished")
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}")
