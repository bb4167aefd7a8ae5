"""A finished portfolio run written from the contract (no engine, no Prefect) into a served
app's data dir, for looking at the run page of a ``portfolio_backtest`` (weights heat strip,
contribution, trades with symbols) with the API alone (``serve_api.sh``):

    ALPHAFORGE_DATA_DIR=<the app's> python tests/e2e/seed_portfolio_run.py --base-url URL

Prints the run's id. The numbers are made up (seeded), shaped like the node's outputs.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from sqlmodel import Session

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from api.db import make_engine  # noqa: E402
from api.models.run import Run  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from dsl.ir import NodeIR, PipelineIR  # noqa: E402
from flows.graph import store_for  # noqa: E402
from flows.spec import NodeRecord, RunRecord  # noqa: E402

SOURCE = """pipeline rotation_seed "Rotation (seeded outputs)"

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal)
"""


def outputs(symbols: int, bars: int) -> dict[str, pd.DataFrame]:
    """Weights (ts × symbol, a rotation: top 5 held, some shorts), equity, trades, contribution."""
    rng = np.random.default_rng(7)
    index = pd.date_range("2019-01-01", periods=bars, freq="B", tz="UTC", name="ts")
    names = [f"SYM{i:02d}" for i in range(symbols)]
    weights = np.zeros((bars, symbols))
    for start in range(0, bars, 21):
        held = rng.choice(symbols, size=5, replace=False)
        weights[start : start + 21, held[:4]] = 0.2
        weights[start : start + 21, held[4]] = -0.1
    weights *= 1 + 0.1 * rng.standard_normal(weights.shape)
    rets = rng.normal(0.0004, 0.01, bars)
    equity = 1_000_000 * np.cumprod(1 + rets)
    frame = pd.DataFrame({"equity": equity}, index=index)
    frame["cash"] = equity * 0.1
    frame["gross_exposure"] = np.abs(weights).sum(axis=1) * equity
    frame["net_exposure"] = weights.sum(axis=1) * equity
    frame["leverage"] = frame["gross_exposure"] / equity
    frame["drawdown"] = equity / np.maximum.accumulate(equity) - 1
    share = rng.normal(0.01, 0.04, symbols)
    contribution = pd.DataFrame(
        {"symbol": names, "pnl": share * 1e6, "contribution": share,
         "fees": rng.uniform(10, 500, symbols), "borrow_cost": rng.uniform(0, 50, symbols),
         "trades": rng.integers(1, 30, symbols)}
    )  # fmt: skip
    n = 60
    entry = rng.integers(0, bars - 30, n)
    trades = pd.DataFrame(
        {"symbol": rng.choice(names, n), "entry_ts": index[entry], "exit_ts": index[entry + 21],
         "side": rng.choice(["long", "short"], n, p=[0.8, 0.2]), "units": rng.uniform(50, 500, n),
         "entry_price": rng.uniform(20, 200, n), "exit_price": rng.uniform(20, 200, n),
         "fees": rng.uniform(1, 20, n), "borrow_cost": 0.0, "pnl": rng.normal(200, 2000, n),
         "return": rng.normal(0.01, 0.05, n), "bars_held": 21, "is_open": False}
    ).sort_values("entry_ts")  # fmt: skip
    return {
        "weights": pd.DataFrame(weights, index=index, columns=names),
        "equity": frame,
        "contribution": contribution,
        "trades": trades,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin-e2e-password")
    parser.add_argument("--symbols", type=int, default=24)
    parser.add_argument("--bars", type=int, default=1500)
    opt = parser.parse_args()
    http = httpx.Client(base_url=opt.base_url, timeout=30)
    login = http.post("/api/auth/login", json={"username": opt.user, "password": opt.password})
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    me = http.get("/api/auth/me", headers=headers).json()
    name = f"rotation_seed_{secrets.token_hex(2)}"
    created = http.post("/api/pipelines", headers=headers, json={"name": name, "source": SOURCE})
    created.raise_for_status()
    settings = ApiSettings()
    key = f"20261206-000000-000-{secrets.token_hex(3)}"
    run_dir = settings.runs_dir / key
    run_dir.mkdir(parents=True)
    values = outputs(opt.symbols, opt.bars)
    ports = {"equity": "equity", "weights": "frame", "contribution": "frame"}
    ports |= {"trades": "trades", "metrics": "metrics"}
    node = NodeIR(id="result", type="portfolio_backtest", version="1", outputs=ports)
    ir = PipelineIR(name=name, nodes=(node,))
    (run_dir / "ir.json").write_text(ir.model_dump_json())
    curve = values["equity"]
    metrics = {
        "total_return": float(curve["equity"].iloc[-1] / 1e6 - 1),
        "sharpe": 0.9,
        "max_drawdown": float(curve["drawdown"].min()),
        "num_trades": len(values["trades"]),
        "turnover": 11.2,
        "symbols": opt.symbols,
    }
    art = "cd" + secrets.token_hex(31)
    store = store_for(settings)
    staging = store.staging_dir()
    for port in ("weights", "contribution", "equity", "trades"):
        values[port].to_parquet(staging / f"{port}.parquet", index=port in ("weights", "equity"))
    files = {p: {"file": f"{p}.parquet"} for p in ("weights", "contribution", "equity", "trades")}
    store.commit(art, staging, {"outputs": files})
    record = RunRecord(
        run_id=key, pipeline=name, status="completed", primary_metrics_node="result",
        metrics=metrics,
        nodes={"result": NodeRecord(type="portfolio_backtest", version="1", state="completed",
                                    key=art)},
        node_states={"result": "completed"},
    )  # fmt: skip
    (run_dir / "run.json").write_text(record.model_dump_json())
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    values["equity"].to_parquet(run_dir / "equity.parquet")
    values["trades"].to_csv(run_dir / "trades.csv", index=False)
    engine = make_engine(settings.db_url)
    with Session(engine) as session:
        row = Run(pipeline_id=created.json()["id"], version=1, owner_id=me["id"],
                  started_by_id=me["id"], status="completed", run_key=key, ir_hash="0" * 64,
                  node_states_json=json.dumps({"result": "completed"}),
                  metrics_json=json.dumps(metrics))  # fmt: skip
        session.add(row)
        session.commit()
        print(row.id)


if __name__ == "__main__":
    main()
