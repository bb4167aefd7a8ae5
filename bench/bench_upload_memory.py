"""Benchmark the API's memory for a dataset upload: the peak resident memory a ``POST
/api/datasets`` of an N MB CSV adds to the API process (target: bounded, ≤ 150 MB whatever the
file's size, i.e. it does not grow with the upload).

The upload goes through the real app (FastAPI's in-process test client: multipart parsing,
auth, validation, Parquet) on SQLite, in a child process of its own, and the child measures
itself: after start-up and a small warm-up upload it resets its high-water mark
(``/proc/self/clear_refs``, Linux) and reads ``VmHWM`` after the big upload; the figure is that
peak minus the resident memory just before the upload. The test client holds the request
body in memory on the client side; that copy is measured too and subtracted (its size is
known: the file's bytes), so the figure is the API's own work.

Run with ``python bench/bench_upload_memory.py [--mb 100] [--mb 30 ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_MB = 150.0
SIZES_MB = (30, 100)


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


def _child(csv: str, data_dir: str) -> dict[str, Any]:
    """In the child: start the app, upload, report the memory figures (MB)."""
    import secrets
    from datetime import timedelta

    from fastapi.testclient import TestClient
    from sqlmodel import Session

    from api.main import create_app
    from api.models.user import Role, UserCreate
    from api.security import create_access_token
    from api.services.users import create_user
    from api.settings import ApiSettings

    settings = ApiSettings(
        data_dir=Path(data_dir),
        secret_key="bench-" + "k" * 40,
        ui_dist_dir=Path(data_dir) / "no-ui",
        max_upload_bytes=2 * 1024**3,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        with Session(app.state.engine) as session:
            user = create_user(
                session,
                None,
                UserCreate(username="u", password="pw-" + "x" * 10, role=Role.DEVELOPER),
            )
            token = create_access_token(
                user.id or 0,
                settings.signing_key,
                timedelta(hours=1),
                password_hash=user.password_hash,
            )
        headers = {"Authorization": f"Bearer {token}"}
        small = b"ts,open,high,low,close\n2024-01-01T00:00:00Z,1,2,0.5,1\n"
        warm = client.post(
            "/api/datasets",
            data={"name": "warm"},
            files={"file": ("w.csv", small)},
            headers=headers,
        )
        assert warm.status_code == 201, warm.text
        body = Path(csv).read_bytes()  # the client's copy: known, subtracted below
        before = _rss_mb()
        Path("/proc/self/clear_refs").write_text("5")
        resp = client.post(
            "/api/datasets",
            data={"name": f"big_{secrets.token_hex(2)}"},
            files={"file": ("bars.csv", body)},
            headers=headers,
        )
        peak = _hwm_mb()
        assert resp.status_code == 201, resp.text[:500]
    return {
        "file_mb": len(body) / 1e6,
        "rows": resp.json()["rows"],
        "before_mb": before,
        "peak_mb": peak,
        "client_copy_mb": len(body) / 2**20,
    }


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _rss_mb() -> float:
    return _status("VmRSS")


def _hwm_mb() -> float:
    return _status("VmHWM")


def measure(megabytes: float) -> dict[str, Any]:
    """One upload of ``megabytes`` in a fresh child process; the API's added peak (MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "bars.csv"
        _bars_csv(csv, megabytes)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFORGE_")}
        env["PYTHONPATH"] = str(ROOT)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(csv), str(Path(tmp) / "data")],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    figures["api_added_mb"] = figures["peak_mb"] - figures["before_mb"] - figures["client_copy_mb"]
    return figures


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
        results[f"upload_{size}mb_added_mb"] = round(f["api_added_mb"], 1)
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], sys.argv[3])))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--mb", type=float, action="append", help="CSV size(s) in MB")
        args = parser.parse_args()
        main(tuple(args.mb) if args.mb else SIZES_MB)
