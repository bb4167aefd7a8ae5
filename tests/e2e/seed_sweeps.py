"""Sweeps written from the contract (no sweep engine, no Prefect) into a served app's data dir,
for looking at the sweep pages: a running one, a finished grid, a walk-forward one.

    ALPHAFORGE_DATA_DIR=<the app's> python tests/e2e/seed_sweeps.py --base-url URL --password PW

Prints the sweeps' ids as JSON ({"running": id, "starting": id (no trial yet), "grid": id,
"walkforward": id, "three": id, "pipeline": id}).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx
from sqlmodel import Session

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from api.db import make_engine  # noqa: E402
from api.models.sweep import Sweep  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from flows.sweepspec import read_sweep_record  # noqa: E402
from tests.api.sweep_dirs import SWEPT, write_sweep  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin-e2e-password")
    opt = parser.parse_args()
    http = httpx.Client(base_url=opt.base_url, timeout=30)
    login = http.post("/api/auth/login", json={"username": opt.user, "password": opt.password})
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    me = http.get("/api/auth/me", headers=headers).json()
    created = http.post("/api/pipelines", headers=headers,
                        json={"name": "sma_sweep_seed", "source": SWEPT})  # fmt: skip
    if created.status_code == 409:
        found = http.get("/api/pipelines?limit=500", headers=headers).json()["items"]
        pid = next(p["id"] for p in found if p["name"] == "sma_sweep_seed")
    else:
        created.raise_for_status()
        pid = created.json()["id"]
    settings = ApiSettings()
    engine = make_engine(settings.db_url)
    out: dict[str, int] = {}
    kinds = {
        "running": {"status": "running", "done": 6},
        "starting": {"status": "running", "done": 0},
        "grid": {"status": "completed"},
        "walkforward": {"status": "completed", "walkforward": True, "warning": False},
        "three": {"status": "completed", "third": True},
    }
    import secrets

    for name, kw in kinds.items():
        key = f"20261205-000000-000-{secrets.token_hex(3)}"
        folder = write_sweep(settings.store_root, key, **kw)  # type: ignore[arg-type]
        record = read_sweep_record(folder)
        assert record is not None
        best = record.best
        with Session(engine) as session:  # the row as the status sync leaves it
            row = Sweep(sweep_key=key, pipeline_id=pid, version=1, owner_id=me["id"],
                        started_by_id=me["id"], status=kw["status"], method="grid",
                        objective="maximize result.sharpe",
                        walkforward=bool(kw.get("walkforward")), ir_hash="0" * 64,
                        n_trials=record.n_trials, done=record.done, failed=record.failed,
                        best_objective=best.objective if best else None,
                        best_trial=best.trial if best else None)  # fmt: skip
            session.add(row)
            session.commit()
            out[name] = row.id or 0
    out["pipeline"] = pid
    print(json.dumps(out))


if __name__ == "__main__":
    main()
