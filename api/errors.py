"""The API's errors and the one place exceptions become HTTP responses.

Services raise :class:`ApiError` subclasses (plain domain errors with a status attached); other
layers raise :class:`AlphaForgeError` subclasses, mapped here. Nothing else builds error
responses, so every error body is ``{"detail": ...}`` as the contract says.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from nodes.errors import AlphaForgeError, DataError

log = logging.getLogger(__name__)


class ApiError(AlphaForgeError):
    """An error with an HTTP status; ``detail`` is what the client receives."""

    status_code: int = 400
    headers: ClassVar[dict[str, str] | None] = None
    code = "AF900"

    def __init__(self, detail: Any, *, status_code: int | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else str(detail))
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class Unauthorized(ApiError):
    """No usable credentials: wrong password, or a missing/forged/expired token."""

    status_code = 401
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": "Bearer"}


class NotFound(ApiError):
    """The object does not exist, or is not the caller's to see (never tell which)."""

    status_code = 404


class Forbidden(ApiError):
    """The caller is known but their role may not do this."""

    status_code = 403


class Conflict(ApiError):
    """A unique name is taken."""

    status_code = 409


class TooManyRequests(ApiError):
    """Too many attempts (failed log-ins); ``retry_after`` seconds until the next may succeed."""

    status_code = 429

    def __init__(self, detail: Any, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unprocessable(ApiError):
    """The request is well-formed but its content is not acceptable (e.g. DSL errors)."""

    status_code = 422


def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = dict(exc.headers or {})
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def _data_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DataError)
    detail = {"message": exc.message, "kind": exc.kind, "row": exc.row}
    return JSONResponse({"detail": detail}, status_code=422)


def _alphaforge_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AlphaForgeError)
    log.warning("request failed: %s (%s)", exc.message, exc.code)
    return JSONResponse({"detail": exc.message}, status_code=400)


class ServerError(ApiError):
    """An exception no handler foresaw (a bug): 500 with a sentence and an incident id; the
    traceback goes to the server's log under that id, never to the client."""

    status_code = 500
    code = "AF990"


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    incident = secrets.token_hex(6)
    log.error("incident %s: %s %s failed", incident, request.method, request.url.path, exc_info=exc)
    detail = (
        f"{ServerError.code}: the server hit an unexpected error (incident {incident}). Try "
        "again; if it happens again, give your operator the incident id: the server's log has "
        "the details."
    )
    return JSONResponse({"detail": detail}, status_code=ServerError.status_code)


def install_error_handlers(app: FastAPI) -> None:
    """Map the product's exceptions to JSON error responses."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(AlphaForgeError, _alphaforge_error)
    app.add_exception_handler(Exception, _unexpected_error)
