"""A real S3-compatible HTTP server for the catalog tests: moto's server, behind a small proxy
that can answer chosen requests with HTTP 500 (a server failing mid-read or mid-write).

Started once per session by the ``s3_server`` fixture in ``tests/conftest.py``.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

Rule = Callable[[str, str], bool]  # (method, path) -> answer 500?
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    """moto's S3 at ``moto_url``; clients use ``endpoint`` (the proxy)."""

    moto: Any
    proxy: ThreadingHTTPServer
    moto_url: str
    endpoint: str
    fail: Rule | None = None
    failed: list[str] = field(default_factory=list)

    def new_bucket(self) -> str:
        """A fresh empty bucket (one per test)."""
        name = f"t-{uuid.uuid4().hex[:16]}"
        httpx.put(f"{self.moto_url}/{name}").raise_for_status()
        return name

    def options(self) -> dict[str, Any]:
        """Catalog.open kwargs for this server (no retries: a 500 fails at once)."""
        return {
            "endpoint_url": self.endpoint,
            "key": "testing",
            "secret": "testing",
            "region": "us-east-1",
            "options": {"config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}}},
        }

    def stop(self) -> None:
        self.proxy.shutdown()
        self.proxy.server_close()
        self.moto.stop()


def start_s3_server() -> S3Server:
    """moto's server and the proxy, each on a free port."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    moto_url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=moto_url, timeout=30.0)
    state: dict[str, S3Server] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _forward(self) -> None:
            server = state["server"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if server.fail is not None and server.fail(self.command, self.path):
                server.failed.append(f"{self.command} {self.path}")
                self._answer(500, {"Content-Type": "application/xml"}, _ERROR)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
            resp = client.request(self.command, self.path, headers=headers, content=body)
            out = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
            if self.command == "HEAD":  # the size of the object, not of the (empty) body
                out["Content-Length"] = resp.headers.get("Content-Length", "0")
            self._answer(resp.status_code, out, resp.content)

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    proxy = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
    state["server"] = S3Server(moto, proxy, moto_url, endpoint)
    return state["server"]


_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
