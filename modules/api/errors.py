"""Errors in A1111's JSON shape, `{error, detail, body, errors}`, for every failure of an API route."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from modules.errors import DiskFull, OutOfMemory, UserError

_LONG = 200  # strings longer than this (base64 images) are summarised when a request body is echoed


class RequestError(ValueError):
    """A request field found wrong after pydantic's checks (an unknown script, an unreadable image…)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _shortened(value: Any) -> Any:
    """A request body made fit to echo as JSON: long strings summarised, and anything that is not JSON
    already (raw bytes of a text/plain or binary body, form data...) named by its type and size."""
    if isinstance(value, str):
        return f"<{len(value)} characters>" if len(value) > _LONG else value
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(key): _shortened(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shortened(item) for item in value]
    return f"<{type(value).__name__}>"


def error_response(
    status: int, error: str, detail: Any, errors: str, body: Any = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    """An answer in A1111's error shape; `body` is the request body to echo, made fit for JSON."""
    content = {"error": error, "detail": detail, "body": _shortened(body), "errors": errors}
    return JSONResponse(content, status_code=status, headers=headers)


def _field_errors(exc: RequestValidationError) -> JSONResponse:
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    summary = "; ".join(f"{'.'.join(str(part) for part in e['loc'][1:]) or 'body'}: {e['msg']}" for e in detail)
    return error_response(422, "RequestValidationError", detail, summary, exc.body)


def _request_error(exc: RequestError) -> JSONResponse:
    detail = [{"loc": ["body", *exc.field.split(".")], "msg": exc.message, "type": "value_error"}]
    return error_response(422, "RequestValidationError", detail, str(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Answer validation errors with 422 (field and reason), a UserError from a job with 422 and its
    message (503 when it ran out of memory, 507 when the disk is full), HTTP errors with their status, and
    anything else with 500; the server keeps running."""

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _field_errors(exc)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return _request_error(exc)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        return error_response(422, type(exc).__name__, str(exc), str(exc))

    @app.exception_handler(OutOfMemory)
    async def out_of_memory(request: Request, exc: OutOfMemory) -> JSONResponse:  # the request may fit later
        return error_response(503, type(exc).__name__, str(exc), str(exc))

    @app.exception_handler(DiskFull)
    async def disk_full(request: Request, exc: DiskFull) -> JSONResponse:  # the server's disk, not the request
        return error_response(507, type(exc).__name__, str(exc), str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, "HTTPException", exc.detail, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> JSONResponse:  # the server logs the traceback
        return error_response(500, type(exc).__name__, "", str(exc) or type(exc).__name__)
