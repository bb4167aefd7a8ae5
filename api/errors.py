"""The API's errors and the one place exceptions become HTTP responses.

Services raise :class:`ApiError` subclasses (plain domain errors with a status attached); other
layers raise :class:`AlphaForgeError` subclasses, mapped here. Nothing else builds error
responses, so every error body is ``{"detail": ...}`` as the contract says.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from flows.tracebacks import user_text
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


# An absolute path of the server's file system: two or more components after a "/" that does
# not continue a word, a URL ("http://host/...") or a relative path ("data/x.csv").
_FILE_URL = re.compile(r"\bfile://(?=/)")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.@+-]+/)+([\w.@+-]*)")


def public_text(text: str) -> str:
    """``text`` as a user may see it: every Python traceback replaced by a pointer to the
    operators' copy, every absolute server path shortened to ``…/<its last part>`` (where
    the server keeps things is the operator's business). Applied to every error body."""
    text = _FILE_URL.sub("", user_text(text))
    return _ABSOLUTE_PATH.sub(lambda m: "…/" + m.group(1), text)


def public_detail(detail: Any) -> Any:
    """An error ``detail`` with :func:`public_text` applied to every string in it."""
    if isinstance(detail, str):
        return public_text(detail)
    if isinstance(detail, Mapping):
        return {k: public_detail(v) for k, v in detail.items()}
    if isinstance(detail, list | tuple):
        return [public_detail(v) for v in detail]
    return detail


def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = dict(exc.headers or {})
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(
        {"detail": public_detail(exc.detail)}, status_code=exc.status_code, headers=headers
    )


def _data_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DataError)
    detail = {"message": public_text(exc.message), "kind": exc.kind, "row": exc.row}
    return JSONResponse({"detail": detail}, status_code=422)


def _alphaforge_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AlphaForgeError)
    log.warning("request failed: %s (%s)", exc.message, exc.code)
    return JSONResponse({"detail": public_text(exc.message)}, status_code=400)


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


# Patterns the API's models use, said in words (a regex never reaches a user).
PATTERN_WORDS: dict[str, str] = {
    r"^[^\x00-\x1f\x7f]+$": "must be one line of text without tabs or other control characters",
    r"^[^\x00]*$": "must not contain NUL characters (\\u0000); remove them",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$": (
        "uses letters, digits, '_', '.' and '-', starts with a letter or digit and has at most "
        "64 characters, e.g. alice"
    ),
    r"^[0-9A-Za-z.+-]+$": "must be a version such as 1.2.0",
}
_LOC_ROOTS = {"body", "query", "path", "form", "header", "cookie"}
_TYPE_WORDS = {
    "int": "a whole number, e.g. 10",
    "float": "a number, e.g. 0.5",
    "bool": "true or false",
    "string": "text in double quotes",
    "list": "a list, e.g. [1, 2]",
    "dict": "an object, e.g. {}",
    "model": "an object, e.g. {}",
    "datetime": "a date and time, e.g. 2024-01-31T09:30:00Z",
    "date": "a date, e.g. 2024-01-31",
}


def field_label(loc: Sequence[Any]) -> str:
    """A request field as a user reads it: ``("body", "interval_seconds")`` -> "Interval
    seconds"; nested places keep their path (``manifest.outputs[0].type``)."""
    parts = list(loc[1:] if loc and loc[0] in _LOC_ROOTS else loc)
    if not parts:
        return "The request"
    if len(parts) == 1:
        return str(parts[0]).replace("_", " ").capitalize()
    text = str(parts[0])
    for part in parts[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def plain_message(error: Mapping[str, Any]) -> str:
    """One pydantic/FastAPI validation error as a sentence that says what to type instead.

    Never a regex, a pydantic type name or "Input should be"."""
    field = field_label(error.get("loc") or ())
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return f"{field} is required; add it."
    if kind == "extra_forbidden":
        return f"{field} is not an accepted field; remove it."
    if kind == "json_invalid":
        return "The request body is not valid JSON; send a JSON object."
    if kind in ("string_too_long", "too_long"):
        limit = ctx.get("max_length")
        got = f" is {len(value)} characters long" if isinstance(value, str) else " is too long"
        unit = "characters" if kind == "string_too_long" else "items"
        return f"{field}{got}; the limit is {limit} {unit}. Shorten it."
    if kind in ("string_too_short", "too_short"):
        least = ctx.get("min_length", 1)
        if kind == "string_too_short" and least == 1:
            return f"{field} is empty; type something."
        unit = "character(s)" if kind == "string_too_short" else "item(s)"
        return f"{field} is too short; give at least {least} {unit}."
    if kind == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(str(ctx.get("pattern", "")))
        return (
            f"{field} {words}." if words else f"{field} contains characters that are not allowed."
        )
    for bound, words in (
        ("greater_than_equal", "at least"),
        ("greater_than", "greater than"),
        ("less_than_equal", "at most"),
        ("less_than", "less than"),
    ):
        if kind == bound:
            limit = next(iter(ctx.values()), "")
            return f"{field} must be {words} {limit}; you sent {value!r}."
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", "")).replace("'", '"')
        return f"{field} must be one of {expected}; you sent {value!r}."
    if kind in ("value_error", "assertion_error"):
        text = str(error.get("msg", "")).removeprefix("Value error, ")
        text = text.removeprefix("Assertion failed, ")
        text = text[:1].upper() + text[1:]
        return text if text.endswith((".", "?", "!")) else text + "."
    for prefix, words in _TYPE_WORDS.items():
        if kind.startswith(prefix + "_"):
            return f"{field} must be {words}; you sent {value!r}."
    message = str(error.get("msg", "is not valid"))
    message = re.sub(r"^Input should be", "must be", message)
    message = re.sub(r"^Input ", "", message)
    return f"{field}: {message}." if not message.endswith(".") else f"{field}: {message}"


def validation_body(errors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The 422 detail of a refused request: ``{message, errors: [{loc, msg}]}``, sentences."""
    items = [
        {"loc": [p for p in e.get("loc", ()) if p not in _LOC_ROOTS], "msg": plain_message(e)}
        for e in errors
    ] or [{"loc": [], "msg": "The request is not valid."}]
    more = f" ({len(items) - 1} more problem(s) below.)" if len(items) > 1 else ""
    return {"message": items[0]["msg"] + more, "errors": items}


def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": validation_body(exc.errors())}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Map the product's exceptions to JSON error responses."""
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(AlphaForgeError, _alphaforge_error)
    app.add_exception_handler(Exception, _unexpected_error)
