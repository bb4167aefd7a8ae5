"""Benchmark the API's memory for a dataset upload: the peak resident memory a ``POST
/api/datasets`` of an N MB CSV adds to the API process (target: ≤ 150 MB whatever the file's
size, i.e. it does not grow with the upload).

The API runs as ``alphaforge serve`` runs it (``api.server.serve``: uvicorn, the real app) on
SQLite in a child process; this process uploads the file streamed from disk (httpx) and reads
the child's memory from ``/proc/<pid>/status`` (Linux): after start-up and a small warm-up
upload it resets the child's high-water mark (``/proc/<pid>/clear_refs``) and reads ``VmHWM``
after the big upload; the figure is that peak minus the child's resident memory just before.

Run with ``python bench/bench_upload_memory.py [--mb 100] [--mb 30 ...]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_MB = 150.0
SIZES_MB = (30, 100)
PASSWORD = "bench-admin-password-1"


def _bars_csv(path: Path, megabytes: float) -> int:
    """Write about ``megabytes`` of one-minute bars (ISO timestamps, 6 decimals); the size."""
    import numpy as np
    import pandas as pd

    rows = int(megabytes * 1e6 / 70)
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, rows)))
    ts = pd.date_range("2020-01-01", periods=rows, freq="min", tz="UTC")
    frame = pd.DataFrame(
        {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": rng.integers(1, 1000, rows),
        }
    )
    frame.to_csv(path, index=False, float_format="%.6f")
    return path.stat().st_size


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(megabytes: float) -> dict[str, Any]:
    """One upload of ``megabytes`` to a fresh API process; its added peak (MB)."""
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "bars.csv"
        size = _bars_csv(csv, megabytes)
        port = _free_port()
        code = (
            "from pathlib import Path; from api.server import serve; "
            "from api.settings import ApiSettings; "
            f"serve('127.0.0.1', {port}, ApiSettings(data_dir=Path({tmp!r}) / 'data', "
            f"admin_password={PASSWORD!r}, ui_dist_dir=Path({tmp!r}) / 'no-ui', "
            "max_upload_bytes=2 * 1024**3))"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFORGE_")}
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=600) as client:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        if client.get("/api/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the API did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
                    time.sleep(0.2)
                login = {"username": "admin", "password": PASSWORD}
                token = client.post("/api/auth/login", json=login).json()["access_token"]
                headers = {"Authorization": f"Bearer {token}"}
                small = b"ts,open,high,low,close\n2024-01-01T00:00:00Z,1,2,0.5,1\n"
                warm = client.post(
                    "/api/datasets",
                    data={"name": "warm"},
                    files={"file": ("w.csv", small)},
                    headers=headers,
                )
                assert warm.status_code == 201, warm.text
                before = _status(proc.pid, "VmRSS")
                Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
                with csv.open("rb") as fh:
                    resp = client.post(
                        "/api/datasets",
                        data={"name": "big"},
                        files={"file": ("bars.csv", fh)},
                        headers=headers,
                    )
                peak = _status(proc.pid, "VmHWM")
                assert resp.status_code == 201, resp.text[:500]
                rows = resp.json()["rows"]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return {
        "file_mb": size / 1e6,
        "rows": rows,
        "before_mb": before,
        "peak_mb": peak,
        "api_added_mb": peak - before,
    }


def main(sizes: tuple[float, ...] = SIZES_MB) -> dict[str, Any]:
    """Measure each size; prints a line per size and returns the figures."""
    results = {}
    for size in sizes:
        f = measure(size)
        verdict = "meets" if f["api_added_mb"] <= TARGET_MB else "MISSES"
        print(
            f"upload {f['file_mb']:.0f} MB CSV ({f['rows']:,} bars): API peak +"
            f"{f['api_added_mb']:.0f} MB over {f['before_mb']:.0f} MB "
            f"(target ≤ {TARGET_MB:.0f} MB): {verdict}"
        )
        results[f"upload_{size:g}mb_added_mb"] = round(f["api_added_mb"], 1)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=float, action="append", help="CSV size(s) in MB")
    args = parser.parse_args()
    main(tuple(args.mb) if args.mb else SIZES_MB)
