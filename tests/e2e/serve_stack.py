"""The whole stack for browser tests: a Prefect server, a process worker, the web deployment and
the API (serving ui/dist) on 127.0.0.1:$PORT (8000), all in one throw-away data dir.

    .venv/bin/python tests/e2e/serve_stack.py          # Ctrl-C stops everything

Env: ALPHAFORGE_DATA_DIR (default: a new temp dir), ALPHAFORGE_ADMIN_PASSWORD (default
"admin-e2e-password"), PORT. Mirrors the run tests' ``prefect_stack`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    data = Path(os.environ.get("ALPHAFORGE_DATA_DIR") or tempfile.mkdtemp(prefix="alphaforge-e2e-"))
    os.environ["ALPHAFORGE_DATA_DIR"] = str(data)
    os.environ.setdefault("ALPHAFORGE_ADMIN_PASSWORD", "admin-e2e-password")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.chdir(ROOT)
    print(f"data dir: {data}", flush=True)

    from prefect.client.orchestration import SyncPrefectClient

    from deployments.deploy import ensure_web_deployment
    from deployments.stack import PrefectServer, Worker

    server = PrefectServer(data / "prefect-server", ui=False)
    try:
        server.wait_ready()
        print(f"prefect: {server.api_url}", flush=True)
        with SyncPrefectClient(api=server.api_url) as client:
            ensure_web_deployment(client)
        os.environ["ALPHAFORGE_PREFECT_API_URL"] = server.api_url
        worker = Worker(server.api_url, data / "prefect-worker", data / "worker.log")
        try:
            worker.wait_ready()
            print("worker: ready", flush=True)
            # The API in a child process: uvicorn owns its signals, so Ctrl-C / SIGTERM here
            # stops all three processes cleanly.
            port = os.environ.get("PORT", "8000")
            api = subprocess.Popen(
                [sys.executable, "-c", f"from api.server import serve; serve(port={int(port)})"]
            )
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
            try:
                api.wait()
            except KeyboardInterrupt:
                pass
            finally:
                api.terminate()
                try:
                    api.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    api.kill()
        finally:
            worker.stop()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
