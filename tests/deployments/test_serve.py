"""``alphaforge serve`` as a user starts it: health, log-in, the sample pipeline, a run that
completes through the real worker, then a clean shutdown on SIGTERM with no child left."""

from __future__ import annotations

import re
import signal
import socket
from pathlib import Path

import httpx
import pytest

from tests.deployments.fixtures import pid_alive, wait_for
from tests.serve_process import children, serve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve")]

PASSWORD = "serve-smoke-password"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_serve_runs_the_sample_and_shuts_down_cleanly(tmp_path: Path) -> None:
    with serve(tmp_path, PASSWORD, "--with-prefect-ui") as served:
        base, printed = served.base, served.output()
        prefect_ui = re.search(r"Prefect UI:\s+(\S+)", printed)
        assert prefect_ui, printed
        prefect_port = int(prefect_ui.group(1).rsplit(":", 1)[1])
        assert httpx.get(f"{prefect_ui.group(1)}/api/health", timeout=5).status_code == 200

        login = httpx.post(
            f"{base}/api/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=60
        )
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        listed = httpx.get(f"{base}/api/pipelines", headers=headers, timeout=60).json()["items"]
        [sample] = [p for p in listed if p["name"] == "Moving Average Crossover (Sample)"]
        assert sample["title"] == "Moving Average Crossover (Sample)"
        run = httpx.post(
            f"{base}/api/pipelines/{sample['id']}/runs", headers=headers, timeout=60
        ).json()

        def ended() -> dict | None:
            got = httpx.get(f"{base}/api/runs/{run['id']}", headers=headers, timeout=60).json()
            return got if got["status"] in ("completed", "failed", "cancelled") else None

        final = wait_for(ended, 180, what="the sample run")
        assert final["status"] == "completed", final["error"]
        assert final["metrics"]["num_trades"] == 30

        descendants = children(served.proc.pid)
        assert descendants
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=60) == 0
        wait_for(lambda: not any(pid_alive(p) for p in descendants), 30, what="children to exit")
        assert not _port_open(served.port) and not _port_open(prefect_port)
