"""A tick backtest's chart data through the web API (``GET /api/runs/{id}/tick-chart``): the
real ``tick_backtest`` node runs once on a seeded synthetic book, its outputs are stored as the
flow stores them, and the endpoint's buckets are checked against pandas' own resampling of the
stored equity (open / high / low / close of the mid, min / max / last of position and
inventory: the extremes survive the downsampling) and its fills against the stored fills."""

from __future__ import annotations

import json
import secrets
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.models.run import Run
from api.services.run_ticks import bucket
from dsl.ir import NodeIR, PipelineIR
from flows.graph import store_for
from flows.spec import NodeRecord, RunRecord
from nodes.builtin.tickbacktest import TickBacktest, run_tick_backtest
from nodes.builtin.tickparams import TickBacktestParams
from nodes.synthbook import BookSpec, generate
from runners.io import file_name, write_value
from tests.api.conftest import Account

# one xdist worker runs the whole module, so its module-scoped tick backtest (a numba compile)
# is made once (spread test by test, each worker made its own)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tick_chart")]

SOURCE = 'pipeline tick_ui "Tick chart"\n\nbook = synthetic_book(seed=5, duration_s=90)\n'


@pytest.fixture(scope="module")
def tick_outputs() -> dict[str, Any]:
    """The node's outputs on a 90 s book (numba compiles the loop once: 20-60 s)."""
    book = generate(BookSpec(seed=5, duration_s=90, tick_size=0.01, lot_size=0.1))
    params = TickBacktestParams.model_validate(
        {"grid_levels": 3, "half_spread_ticks": 1, "order_qty": 1, "max_position": 5,
         "record_interval_ms": 100, "update_interval_ms": 100}
    )  # fmt: skip
    return run_tick_backtest(book, params)


def _store_run(
    client: TestClient,
    owner: Account,
    outputs: dict[str, Any] | None,
    node_type: str = "tick_backtest",
) -> int:
    """A completed run row whose run dir names a ``tick_backtest`` step ``result`` with
    ``outputs`` in the artifact store (written as the flow writes them); ``None``: a run whose
    pipeline has no tick step."""
    settings = client.app.state.settings  # type: ignore[attr-defined]
    created = client.post(
        "/api/pipelines", json={"name": f"t{secrets.token_hex(3)}", "source": SOURCE},
        headers=owner.headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    key = f"20261207-000000-000-{secrets.token_hex(3)}"
    run_dir = settings.runs_dir / key
    run_dir.mkdir(parents=True)
    nodes: dict[str, NodeRecord] = {}
    ir_nodes = [NodeIR(id="book", type="synthetic_book", version="1", outputs={"ticks": "ticks"})]
    if outputs is not None:
        ports = {p.name: str(p.type.value) for p in TickBacktest.outputs}
        ir_nodes.append(NodeIR(id="result", type=node_type, version="1", outputs=ports))
        store = store_for(settings)
        staging = store.staging_dir()
        files = {}
        for name, port_type in ports.items():
            write_value(outputs[name], port_type, staging / file_name(name, port_type))
            files[name] = {"file": file_name(name, port_type)}
        art = "ef" + secrets.token_hex(31)
        store.commit(art, staging, {"outputs": files})
        nodes["result"] = NodeRecord(type=node_type, version="1", state="completed", key=art)
    ir = PipelineIR(name="tick_ui", nodes=tuple(ir_nodes))
    (run_dir / "ir.json").write_text(ir.model_dump_json())
    record = RunRecord(
        run_id=key, pipeline="tick_ui", status="completed", nodes=nodes,
        primary_metrics_node="result" if outputs is not None else None,
    )  # fmt: skip
    (run_dir / "run.json").write_text(record.model_dump_json())
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = Run(pipeline_id=created.json()["id"], version=1, owner_id=owner.id,
                  started_by_id=owner.id, status="completed", run_key=key, ir_hash="0" * 64,
                  node_states_json=json.dumps({"result": "completed"}))  # fmt: skip
        session.add(row)
        session.commit()
        return row.id or 0


def _resampled(equity: pd.DataFrame, seconds: int) -> pd.DataFrame:
    """Pandas' buckets of ``seconds`` from the epoch, empty ones dropped: the reference."""
    rule = f"{seconds}s"
    frame = equity[["mid", "position", "inventory"]]
    out = pd.concat(
        {
            "mid_open": frame["mid"].resample(rule, origin="epoch").first(),
            "mid_high": frame["mid"].resample(rule, origin="epoch").max(),
            "mid_low": frame["mid"].resample(rule, origin="epoch").min(),
            "mid_close": frame["mid"].resample(rule, origin="epoch").last(),
            "position_min": frame["position"].resample(rule, origin="epoch").min(),
            "position_max": frame["position"].resample(rule, origin="epoch").max(),
            "position_last": frame["position"].resample(rule, origin="epoch").last(),
            "inventory_min": frame["inventory"].resample(rule, origin="epoch").min(),
            "inventory_max": frame["inventory"].resample(rule, origin="epoch").max(),
            "inventory_last": frame["inventory"].resample(rule, origin="epoch").last(),
            "count": frame["mid"].resample(rule, origin="epoch").size(),
        },
        axis=1,
    )
    return out[out["count"] > 0]


@pytest.mark.parametrize("max_points", [2000, 12])
def test_the_buckets_are_pandas_resampling_and_keep_the_extremes(
    client: TestClient, alice: Account, tick_outputs: dict[str, Any], max_points: int
) -> None:
    run_id = _store_run(client, alice, tick_outputs)
    resp = client.get(
        f"/api/runs/{run_id}/tick-chart?max_points={max_points}", headers=alice.headers
    )
    assert resp.status_code == 200, resp.text
    chart = resp.json()
    equity = tick_outputs["equity"]
    assert chart["node"] == "result" and chart["records"] == len(equity) > 800
    span = int(equity.index[-1].timestamp()) - int(equity.index[0].timestamp()) + 1
    assert chart["bucket_s"] == max(1, -(-span // max_points))
    assert len(chart["time"]) <= max_points
    assert all(b > a for a, b in zip(chart["time"], chart["time"][1:], strict=False))
    ref = _resampled(equity, chart["bucket_s"])
    assert chart["time"] == [int(t.timestamp()) for t in ref.index]
    for column in ref.columns.drop("count"):
        np.testing.assert_allclose(chart[column], ref[column].to_numpy(), rtol=0, atol=1e-9)
    # the extremes of the whole run are in the buckets, however few
    assert max(chart["mid_high"]) == equity["mid"].max()
    assert min(chart["position_min"]) == equity["position"].min()
    assert max(chart["position_max"]) == equity["position"].max()
    assert equity["position"].abs().max() > 0  # the market maker did trade


def test_the_fills_are_the_stored_fills_with_millisecond_times(
    client: TestClient, alice: Account, tick_outputs: dict[str, Any]
) -> None:
    run_id = _store_run(client, alice, tick_outputs)
    chart = client.get(f"/api/runs/{run_id}/tick-chart", headers=alice.headers).json()
    fills = tick_outputs["orders"]
    assert chart["fills_total"] == len(fills) == len(chart["fills"]) > 10
    assert [f["side"] for f in chart["fills"]] == fills["side"].tolist()
    assert [f["liquidity"] for f in chart["fills"]] == fills["liquidity"].tolist()
    assert [f["price"] for f in chart["fills"]] == fills["price"].tolist()
    assert [f["qty"] for f in chart["fills"]] == fills["units"].tolist()
    stamps = pd.DatetimeIndex(fills["ts"])
    assert [f["time_ms"] for f in chart["fills"]] == (stamps.asi8 // 1_000_000).tolist()
    assert pd.Timestamp(chart["fills"][0]["ts"]) == stamps[0]
    # the inventory's last position is the signed sum of the fills (worked by hand)
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["units"]
    assert chart["position_last"][-1] == pytest.approx(signed.sum(), abs=1e-9)

    capped = client.get(f"/api/runs/{run_id}/tick-chart?max_fills=5", headers=alice.headers)
    assert capped.json()["fills_total"] == len(fills) and len(capped.json()["fills"]) == 5


def test_a_custom_tick_strategy_step_is_drawn_too(
    client: TestClient, alice: Account, tick_outputs: dict[str, Any]
) -> None:
    # tick_strategy_backtest's outputs are tick_backtest's (the same shaping code)
    run_id = _store_run(client, alice, tick_outputs, node_type="tick_strategy_backtest")
    resp = client.get(f"/api/runs/{run_id}/tick-chart", headers=alice.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["fills_total"] == len(tick_outputs["orders"]) > 10


def test_a_run_without_a_tick_backtest_or_someone_elses_is_a_404(
    client: TestClient, alice: Account, make_user: Any, tick_outputs: dict[str, Any]
) -> None:
    plain = _store_run(client, alice, None)
    resp = client.get(f"/api/runs/{plain}/tick-chart", headers=alice.headers)
    assert resp.status_code == 404
    assert "no tick_backtest result" in resp.json()["detail"]
    theirs = _store_run(client, alice, tick_outputs)
    bob = make_user(username="bob")
    assert client.get(f"/api/runs/{theirs}/tick-chart", headers=bob.headers).status_code == 404
    bad = client.get(f"/api/runs/{theirs}/tick-chart?max_points=1", headers=alice.headers)
    assert bad.status_code == 422


def test_bucket_widths_are_whole_seconds_from_the_epoch() -> None:
    s = 1_000_000_000
    ts = np.array([10 * s + 100, 10 * s + 900_000_000, 11 * s, 14 * s + 5, 19 * s], np.int64)
    starts, first, width = bucket(ts, 1000)
    assert (starts.tolist(), first.tolist(), width) == ([10, 11, 14, 19], [0, 2, 3, 4], 1)
    starts, first, width = bucket(ts, 3)  # 10 s span in at most 3 buckets: 4 s each
    assert (starts.tolist(), first.tolist(), width) == ([8, 12, 16], [0, 3, 4], 4)
    assert bucket(np.empty(0, np.int64), 5)[0].tolist() == []
