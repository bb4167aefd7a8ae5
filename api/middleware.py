"""ASGI middleware: request ids, request body limits (413 before parsing), security headers.

Both are plain ASGI so they see the raw stream: the body limit refuses a too-large
``Content-Length`` before reading a byte, and counts the bytes of a chunked body as they
arrive, so no handler ever parses more than the limit.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flows.logformat import log_context

# Vite emits hashed script/style files; Monaco needs inline styles and blob:/self workers,
# fonts may be inlined as data: URLs. Nothing is loaded from another origin.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "child-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # Share links carry their token in the URL: never leak it to another site.
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


class SecurityHeadersMiddleware:
    """Adds the security headers to every response; ``/api`` responses are never cached."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers = dict(SECURITY_HEADERS)
        if hsts:
            self.headers["strict-transport-security"] = "max-age=31536000; includeSubDomains"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = scope["path"].startswith("/api")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {bytes(k).lower() for k, _ in headers}
                for key, value in self.headers.items():
                    if key.encode() not in present:
                        headers.append((key.encode(), value.encode()))
                if is_api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit (FastAPI re-raises it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


def size_text(limit: int) -> str:
    """A byte count as a person reads it: ``1 MB``, ``256 KB``, ``1.5 MB``."""
    if limit >= 1 << 20:
        mb = limit / (1 << 20)
        return f"{mb:.0f} MB" if mb == int(mb) else f"{mb:.1f} MB"
    return f"{limit // 1024} KB" if limit >= 1024 else f"{limit} bytes"


def default_message(_method: str, _path: str, limit: int) -> str:
    """The 413 sentence of a request body over its limit."""
    return (
        f"The request body is larger than the limit of {size_text(limit)} "
        "(ALPHAFORGE_MAX_BODY_BYTES); send a smaller request."
    )


class BodyLimitMiddleware:
    """Refuses request bodies over ``limit_for(method, path)`` bytes with 413 and the sentence
    ``message_for(method, path, limit)``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit_for: Callable[[str, str], int],
        message_for: Callable[[str, str, int], str] = default_message,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.message_for = message_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        message = self.message_for(scope["method"], scope["path"], limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send, message)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _send_413(send, message)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, message: str) -> None:
    body = json.dumps({"detail": message})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Gives every HTTP request an id: the caller's ``X-Request-ID`` when it is a plain token
    (letters, digits, ``._:-``, at most 128), else a new one. The id is bound to the request's
    log lines (``request_id``, :func:`flows.logformat.log_context`) and sent back in the
    response's ``X-Request-ID``, so a user's report and the server log meet."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (bytes(v).decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), ""
        )
        request_id = given if _REQUEST_ID_OK.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if bytes(k).lower() != REQUEST_ID_HEADER.encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        with log_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)
