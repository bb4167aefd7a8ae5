"""Benchmark the web API: validating the sample pipeline (target ≤ 100 ms per request) and
listing a pipeline's runs when it has 1,000 (target ≤ 200 ms per page of 50).

Requests go through the real app (FastAPI's in-process test client: routing, auth, JSON) on
PostgreSQL when it is reachable (a throw-away database), else SQLite. Run with
``python bench/bench_api.py``; :func:`main` returns the figures as a dict.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VALIDATE_TARGET_S = 0.100
LIST_TARGET_S = 0.200
RUNS = 1_000
REPEATS = 30
PG_ADMIN_DSN = os.environ.get(
    "AF_BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_BASE = os.environ.get("AF_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
PREVIEW = '{"sharpe": 1.0, "total_return": 0.1, "max_drawdown": -0.2, "num_trades": 7}'
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sma_crossover.af"


@contextmanager
def _database(tmp: Path) -> Iterator[str]:
    """A throw-away PostgreSQL database (dropped afterwards), or a SQLite file."""
    try:
        import psycopg

        name = f"af_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    try:
        yield f"{PG_URL_BASE}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _median(call: Callable[[], Any], repeats: int = REPEATS) -> float:
    call()  # warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> dict[str, Any]:
    """Measure both figures and print them against their targets."""
    from fastapi.testclient import TestClient
    from sqlmodel import Session

    from api.main import create_app
    from api.models.run import Run
    from api.models.user import Role, UserCreate
    from api.services.users import create_user
    from api.settings import ApiSettings

    source = SAMPLE.read_text()
    with tempfile.TemporaryDirectory() as tmp, _database(Path(tmp)) as db_url:
        settings = ApiSettings(
            data_dir=Path(tmp) / "data",
            database_url=db_url,
            secret_key="bench-" + "k" * 40,
            ui_dist_dir=Path(tmp) / "no-ui",
        )
        with TestClient(create_app(settings)) as client:
            with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
                create_user(
                    session,
                    None,
                    UserCreate(username="bench", password="bench-pass-1", role=Role.DEVELOPER),
                )
            token = client.post(
                "/api/auth/login", json={"username": "bench", "password": "bench-pass-1"}
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            pipeline = client.post(
                "/api/pipelines", json={"name": "sample", "source": source}, headers=headers
            ).json()
            with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
                user_id = client.get("/api/auth/me", headers=headers).json()["id"]
                session.add_all(
                    Run(
                        pipeline_id=pipeline["id"], version=1, owner_id=user_id,
                        run_key=f"bench-{i:05d}", ir_hash="h", status="completed",
                        metrics_json=PREVIEW,
                    )
                    for i in range(RUNS)
                )  # fmt: skip
                session.commit()
            validate_s = _median(
                lambda: client.post("/api/validate", json={"source": source}, headers=headers)
            )
            page = f"/api/pipelines/{pipeline['id']}/runs?offset=500&limit=50"
            assert client.get(page, headers=headers).json()["total"] == RUNS
            list_s = _median(lambda: client.get(page, headers=headers))
    backend = db_url.split(":", 1)[0].split("+")[0]
    out = {
        "backend": backend,
        "validate_median_s": round(validate_s, 4),
        "validate_target_s": VALIDATE_TARGET_S,
        "list_runs_median_s": round(list_s, 4),
        "list_runs_target_s": LIST_TARGET_S,
        # For run_all's table: the listing figure (the validate one is printed next to it).
        "figure_s": round(list_s, 4),
        "target_s": LIST_TARGET_S,
        "meets_target": validate_s <= VALIDATE_TARGET_S and list_s <= LIST_TARGET_S,
    }
    for label, got, target in (
        ("validate the sample", validate_s, VALIDATE_TARGET_S),
        (f"list runs (page of 50 of {RUNS})", list_s, LIST_TARGET_S),
    ):
        verdict = "OK" if got <= target else "SLOWER THAN TARGET"
        print(
            f"{label}: median {got * 1000:.1f} ms "
            f"(target <= {target * 1000:.0f} ms: {verdict}) [{backend}]"
        )
    return out


if __name__ == "__main__":
    main()
