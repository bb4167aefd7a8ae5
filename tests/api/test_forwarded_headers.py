"""The log-in throttle behind the real uvicorn server (``api.server.serve``, as ``alphaforge
serve`` runs it) on loopback: a forged ``X-Forwarded-For`` is ignored unless the peer is a
configured proxy (``ALPHAFORGE_TRUSTED_PROXIES``); from a configured proxy it is the client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import SECRET

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PW = "admin-pw-for-throttle-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(db_url: str, tmp_path: Path) -> Iterator[object]:
    """Start ``api.server.serve`` with the given trusted proxies; yields a starter."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(trusted: list[str]) -> str:
        port = _free_port()
        code = (
            "from api.server import serve; from api.settings import ApiSettings; "
            f"serve('127.0.0.1', {port}, ApiSettings(data_dir={str(tmp_path / 'data')!r}, "
            f"database_url={db_url!r}, secret_key={SECRET!r}, admin_password={ADMIN_PW!r}, "
            f"ui_dist_dir={str(tmp_path / 'no-ui')!r}, trusted_proxies={trusted!r}))"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFORGE_")}
        env.pop("FORWARDED_ALLOW_IPS", None)
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/health", timeout=5) as r:
                    assert r.status == 200
                    return base
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)

    yield start
    for proc in procs:
        proc.terminate()
        proc.communicate(timeout=30)


def _login(base: str, forwarded_for: str, username: str = "admin") -> tuple[int, str]:
    body = json.dumps({"username": username, "password": "wrong-password"}).encode()
    req = urllib.request.Request(
        f"{base}/api/auth/login",
        data=body,
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_forged_forwarded_for_from_loopback_does_not_reset_the_throttle(serve) -> None:  # type: ignore[no-untyped-def]
    base = serve([])  # the default: no proxy is trusted
    codes = [_login(base, f"198.51.100.{i}")[0] for i in range(1, 13)]
    assert codes[:5] == [401] * 5
    assert codes[5:] == [429] * 7, codes  # one address (loopback), whatever the header says
    status, text = _login(base, "203.0.113.99")
    assert status == 429 and "Too many failed log-ins for this account" in text


def test_forwarded_for_from_a_configured_proxy_names_the_client(serve) -> None:  # type: ignore[no-untyped-def]
    base = serve(["127.0.0.1"])  # this test's client is the proxy
    # twelve different clients behind the proxy: each is under its allowance
    assert [_login(base, f"198.51.100.{i}")[0] for i in range(1, 13)] == [401] * 12
    # one client behind the proxy guessing: throttled on its own address ...
    codes = [_login(base, "203.0.113.7")[0] for _ in range(6)]
    assert codes == [401] * 5 + [429]
    # ... which the next proxy hop cannot launder (the rightmost untrusted address counts)
    assert _login(base, "192.0.2.1, 203.0.113.7")[0] == 429
    # and another client behind the same proxy is not locked out by it
    assert _login(base, "203.0.113.8")[0] == 401
