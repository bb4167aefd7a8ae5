"""The dashboard's API over the live tables: strategy modules and versions, instances (identity
fixed, config validated against CONFIG_SCHEMA, every change recorded and audited), who may see
and change what, and the engine's work seen through it (status, events, orders, widgets on
demand) with the reconciler running scripted hosts on the same database."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient

from live.engine import Engine
from live.store import Desired, LiveStore
from runners.papertrade.replay import ReplaySource
from tests.api.conftest import Account
from tests.deployments.fixtures import wait_for
from tests.live.fakes import HostLedger, ScriptedHost

ROOT = Path(__file__).resolve().parents[2]

CODE = """from alphaforge_strategy import Strategy


class SmaCross(Strategy):
    CONFIG_SCHEMA = {
        "type": "object",
        "properties": {
            "fast": {"type": "integer", "minimum": 1, "default": 3},
            "slow": {"type": "integer", "minimum": 2, "default": 8},
            "note": {"type": "string", "maxLength": 40},
        },
        "required": ["fast"],
        "additionalProperties": False,
    }

    def on_tick(self, tick):
        pass
"""
FEED = {"kind": "replay", "path": "data/sample_ohlcv.csv", "speed": 40, "warmup": 0}


def _strategy(client: TestClient, who: Account, code: str = CODE, name: str = "sma_cross") -> dict:
    resp = client.post("/api/strategies", json={"name": name, "code": code, "message": "first"},
                       headers=who.headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    return resp.json()


def _instance(client: TestClient, who: Account, sid: int, **kw: object) -> dict:
    body = {"strategy_id": sid, "market": "ASSET", "feed": FEED, "config": {"fast": 3}} | kw
    resp = client.post("/api/instances", json=body, headers=who.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_a_strategy_module_is_read_without_running_it_and_versioned(
    client: TestClient, alice: Account
) -> None:
    body = _strategy(client, alice)
    assert body["latest_version"] == 1 and body["versions"] == [1]
    assert body["latest"]["config_schema"]["properties"]["slow"]["default"] == 8
    again = _strategy(client, alice)  # the same code: nothing new
    assert again["latest_version"] == 1
    changed = _strategy(client, alice, CODE + "\n# tuned\n")
    assert changed["latest_version"] == 2 and changed["versions"] == [1, 2]
    v1 = client.get(f"/api/strategies/{body['id']}/versions/1", headers=alice.headers).json()
    assert v1["code"] == CODE

    bad = {
        "syntax": ("class X(Strategy):\n    def on_tick(self, t)\n", "line 2: syntax error"),
        "none": ("x = 1\n", "no strategy class"),
        "schema": (CODE.replace('"minimum": 1,', '"minimum": "one",'), "not a valid JSON Schema"),
        "call": (CODE.replace("CONFIG_SCHEMA = {", "CONFIG_SCHEMA = make() or {"), "literal dict"),
    }
    for name, (code, words) in bad.items():
        resp = client.post("/api/strategies", json={"name": f"bad_{name}", "code": code},
                           headers=alice.headers)  # fmt: skip
        assert resp.status_code == 422 and words in resp.json()["detail"], (name, resp.text)
    # nothing of the refused modules was stored
    listed = client.get("/api/strategies", headers=alice.headers).json()["items"]
    assert [s["name"] for s in listed] == ["sma_cross"]


def test_instances_validate_their_config_and_record_every_change(
    client: TestClient, alice: Account
) -> None:
    sid = _strategy(client, alice)["id"]
    inst = _instance(client, alice, sid)
    assert inst["config"] == {"fast": 3, "slow": 8}  # the schema's default filled in
    assert inst["mode"] == "off" and inst["status"] == "stopped" and inst["pnl"] == 0
    iid = inst["id"]
    for config, words in (
        ({"fast": 0}, "fast: 0 is less than the minimum of 1"),
        ({"fast": "3"}, "fast: '3' is not of type 'integer'"),
        ({"fast": 2, "note": "x" * 41}, "note: "),
        ({"fast": 2, "colour": "red"}, "Additional properties are not allowed"),
    ):
        resp = client.patch(f"/api/instances/{iid}", json={"config": config},
                            headers=alice.headers)  # fmt: skip
        assert resp.status_code == 422 and words in resp.json()["detail"], resp.text
    resp = client.post("/api/instances", json={"strategy_id": sid, "market": "ASSET",
                       "feed": {"kind": "replay", "path": "../etc/passwd"}},
                       headers=alice.headers)  # fmt: skip
    assert resp.status_code == 422 and "feed.path" in resp.json()["detail"]
    resp = client.post("/api/instances", json={"strategy_id": sid, "market": "ASSET",
                       "feed": {"kind": "carrier-pigeon"}}, headers=alice.headers)  # fmt: skip
    assert resp.status_code == 422 and "feed.kind" in resp.json()["detail"]
    # a tick strategy is stored like any module but runs in tick_strategy_backtest only
    tick = _strategy(client, alice, (ROOT / "examples/strategies/tick_grid.py").read_text(),
                     name="tick_grid")  # fmt: skip
    resp = client.post("/api/instances", json={"strategy_id": tick["id"], "market": "ASSET",
                       "feed": FEED}, headers=alice.headers)  # fmt: skip
    assert resp.status_code == 422, resp.text
    assert "tick_grid v1 is a tick strategy" in resp.json()["detail"], resp.text

    ok = client.patch(f"/api/instances/{iid}", json={"config": {"fast": 4, "slow": 9}},
                      headers=alice.headers)  # fmt: skip
    assert ok.status_code == 200 and ok.json()["config_version"] == 2
    ok = client.patch(f"/api/instances/{iid}", json={"mode": "observe"}, headers=alice.headers)
    assert ok.json()["mode"] == "observe" and ok.json()["config_version"] == 2
    changes = client.get(f"/api/instances/{iid}/changes", headers=alice.headers).json()
    assert [c["kind"] for c in changes] == ["mode", "config", "created"]
    assert changes[1]["config"] == {"fast": 4, "slow": 9} and changes[0]["user"] == "alice"
    # identity fields cannot be patched
    resp = client.patch(f"/api/instances/{iid}", json={"market": "BTCUSDT"}, headers=alice.headers)
    assert resp.status_code == 422
    audit = client.get("/api/audit?limit=50", headers=alice.headers)
    if audit.status_code == 200:  # admins only; alice is not
        raise AssertionError("a developer read the audit log")


def test_who_sees_and_changes_instances(
    client: TestClient, alice: Account, bob: Account, observer: Account, admin: Account
) -> None:
    sid = _strategy(client, alice)["id"]
    iid = _instance(client, alice, sid)["id"]
    assert client.get(f"/api/instances/{iid}", headers=bob.headers).status_code == 404
    assert client.get("/api/instances", headers=bob.headers).json()["total"] == 0
    assert client.patch(f"/api/instances/{iid}", json={"mode": "active"},
                        headers=bob.headers).status_code == 404  # fmt: skip
    assert client.post("/api/instances", json={"strategy_id": sid, "market": "X", "feed": FEED},
                       headers=bob.headers).status_code == 404  # fmt: skip
    seen = client.get(f"/api/instances/{iid}", headers=observer.headers)
    assert seen.status_code == 200 and seen.json()["can_edit"] is False
    refused = client.patch(f"/api/instances/{iid}", json={"mode": "active"},
                           headers=observer.headers)  # fmt: skip
    assert refused.status_code == 403
    assert client.post(f"/api/instances/{iid}/widgets", headers=observer.headers).status_code == 200
    by_admin = client.patch(f"/api/instances/{iid}", json={"mode": "observe"},
                            headers=admin.headers)  # fmt: skip
    assert by_admin.status_code == 200
    events = client.get("/api/audit?action=instance.mode", headers=admin.headers).json()
    assert [e["actor"] for e in events["items"]] == ["root"]
    assert client.delete(f"/api/instances/{iid}", headers=alice.headers).status_code == 204
    assert client.get(f"/api/instances/{iid}", headers=alice.headers).status_code == 404


def test_the_engine_runs_what_the_api_wrote_and_the_api_shows_what_it_did(
    client: TestClient, alice: Account
) -> None:
    """Observe on the replay feed, then active: status, intents, orders, PnL and the widgets
    (rendered only when asked) through the API, the engine on the same database."""
    sid = _strategy(client, alice)["id"]
    iid = _instance(client, alice, sid, mode="observe", fee_bps=5)["id"]
    sample = pd.read_csv(ROOT / "examples" / "data" / "sample_ohlcv.csv")
    ledger = HostLedger()

    def host(want: Desired) -> ScriptedHost:
        return ScriptedHost(want, ledger)

    def source(want: Desired) -> ReplaySource:
        return ReplaySource(sample, interval="1d", speed=40, start=0)

    engine = Engine(LiveStore(client.app.state.engine), host, source)  # type: ignore[attr-defined]

    def get() -> dict:
        return client.get(f"/api/instances/{iid}", headers=alice.headers).json()

    try:
        engine.reconcile()
        wait_for(
            lambda: get()["status"] == "running" and get()["bars_seen"] > 20, 60, what="running"
        )
        intents = client.get(f"/api/instances/{iid}/events?kind=intent", headers=alice.headers)
        assert intents.json()["total"] > 0
        assert client.get(f"/api/instances/{iid}/orders", headers=alice.headers).json() == []
        assert ledger.starts[iid] == 1
        first = client.post(f"/api/instances/{iid}/widgets", headers=alice.headers).json()
        assert first["requested_at"] is not None
        engine.reconcile()  # serves the render request
        rendered = client.post(f"/api/instances/{iid}/widgets", headers=alice.headers).json()
        assert rendered["widgets"][0]["label"] == "bars" and rendered["widgets"][0]["value"] > 0
        client.patch(f"/api/instances/{iid}", json={"mode": "active"}, headers=alice.headers)
        engine.reconcile()

        def filled() -> bool:
            orders = client.get(f"/api/instances/{iid}/orders", headers=alice.headers).json()
            return sum(o["status"] == "filled" for o in orders) >= 2

        wait_for(filled, 60, what="fills")
        body = get()
        assert body["pnl"] == body["equity"] - 100_000 and body["cash"] != 100_000
        assert ledger.starts[iid] == 1  # the mode switched in place
    finally:
        engine.shutdown()
    assert get()["status"] == "stopped" and get()["engine"] is None


def test_stream_pipelines_show_their_state_last_events_and_sink_health(
    client: TestClient, alice: Account, tmp_path: Path
) -> None:
    """A stream pipeline run with the app's data dir is listed with its counts, its last
    events (the newest the stream emitted) and each sink's health; a status file left by a
    process that stopped writing reads as not reporting."""
    import json

    from live.stream import StreamPipeline, StreamService
    from tests.live.stream_support import compiled, read_csv_events, workdir, write_af

    assert client.get("/api/streams", headers=alice.headers).json() == []
    settings = client.app.state.settings  # type: ignore[attr-defined]
    folder = workdir(tmp_path)
    text = (
        "pipeline dash\n"
        'data = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
        "fast = sma(data.close, window=5)\n"
        "stream {\n"
        "    source = replay(start=100, limit=30)\n"
        '    emit fast.value to csv_append(path="out/fast.csv")\n'
        "}\n"
    )
    ir = compiled(write_af(folder, "dash", text))
    root = settings.root / "stream"
    pipeline = StreamPipeline(ir, base_dir=folder, state_dir=root / ir.name)
    StreamService([pipeline]).run_until_end(timeout_s=120)
    listed = client.get("/api/streams", headers=alice.headers).json()
    assert [s["pipeline"] for s in listed] == ["dash"]
    dash = listed[0]
    written = read_csv_events(folder / "out" / "fast.csv")
    assert dash["state"] == "ended" and dash["bars"] == 30 and dash["events"] == len(written) == 30
    assert [e["value"] for e in dash["last_events"]] == list(written["value"].tail(20))
    (sink,) = dash["sinks"].values()
    assert sink["failures"] == 0 and sink["delivered"] == 30, sink
    # a "running" pipeline whose process stopped writing its status: not reporting
    status = root / "gone" / "status.json"
    status.parent.mkdir(parents=True)
    status.write_text(json.dumps({"pipeline": "gone", "state": "running",
                                  "written_at": "2026-01-01T00:00:00+00:00"}))  # fmt: skip
    gone = {s["pipeline"]: s for s in client.get("/api/streams", headers=alice.headers).json()}
    assert gone["gone"]["reporting"] is False and gone["dash"]["reporting"] is True


def _pipeline(strategy: str, config: str = "fast=4") -> str:
    return (
        "pipeline bt\n"
        'data = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
        f'result = strategy_backtest(data, strategy="{strategy}", {config}, fee_bps=5)\n'
    )


def test_pipelines_backtest_the_stored_modules_their_owner_may_read(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """``strategy_backtest``'s ``strategy`` resolves over the modules the pipeline's owner may
    read: the latest version or a pinned one, whose code (and config, defaults filled) the IR
    carries; another developer's module is not found, with the owner's names listed."""
    _strategy(client, alice)
    changed = CODE.replace('"default": 8', '"default": 9')
    resp = client.post("/api/strategies", json={"name": "sma_cross", "code": changed},
                       headers=alice.headers)  # fmt: skip
    assert resp.status_code == 201 and resp.json()["latest_version"] == 2

    body = client.post("/api/validate", json={"source": _pipeline("sma_cross")},
                       headers=alice.headers).json()  # fmt: skip
    assert body["ok"], body["diagnostics"]
    node = next(n for n in body["ir"]["nodes"] if n["id"] == "result")
    assert node["params"]["strategy"] == "sma_cross@2"
    assert node["params"]["code"] == changed
    assert (node["params"]["fast"], node["params"]["slow"]) == (4, 9)

    body = client.post("/api/validate", json={"source": _pipeline("sma_cross@1")},
                       headers=alice.headers).json()  # fmt: skip
    node = next(n for n in body["ir"]["nodes"] if n["id"] == "result")
    assert (node["params"]["code"], node["params"]["slow"]) == (CODE, 8)

    bad = client.post("/api/validate", json={"source": _pipeline("sma_cross@7")},
                      headers=alice.headers).json()  # fmt: skip
    assert [(d["code"], d["line"], d["message"]) for d in bad["diagnostics"]] == [
        ("AF220", 3, "strategy 'sma_cross' has no version 7 (versions 1 to 2)")
    ]
    # the config is checked against that module's schema (additionalProperties: false)
    bad = client.post("/api/validate", json={"source": _pipeline("sma_cross", "fast=0")},
                      headers=alice.headers).json()  # fmt: skip
    assert [d["code"] for d in bad["diagnostics"]] == ["AF105"]

    _strategy(client, bob, name="bobs_momentum")
    theirs = client.post("/api/validate", json={"source": _pipeline("sma_cross")},
                         headers=bob.headers).json()  # fmt: skip
    assert [d["code"] for d in theirs["diagnostics"]] == ["AF220"]
    assert (
        "no strategy module 'sma_cross' (modules: bobs_momentum)"
        in (theirs["diagnostics"][0]["message"])
    )
    # a file is the command line's, never the web app's
    path = client.post("/api/validate", json={"source": _pipeline("strategies/sma_cross.py")},
                       headers=alice.headers).json()  # fmt: skip
    assert [d["code"] for d in path["diagnostics"]] == ["AF220"]


def test_binance_feeds_are_checked_against_their_market(client: TestClient, alice: Account) -> None:
    sid = _strategy(client, alice)["id"]
    futures = {"kind": "binance_futures", "interval": "15m", "warmup": 50}
    made = _instance(client, alice, sid, market="BTCUSDT_261225", feed=futures)
    assert made["feed"] == futures and made["market"] == "BTCUSDT_261225"
    shown = client.get(f"/api/instances/{made['id']}", headers=alice.headers).json()
    assert shown["feed"] == futures
    spot = _instance(client, alice, sid, market="ETHUSDT", feed={"kind": "binance"})
    assert spot["feed"] == {"kind": "binance", "interval": "1m"}  # the default interval
    for market, feed, words in (
        ("BTCUSDT", {"kind": "binance_futures", "interval": "1s"},
         "feed.interval: '1s' is not a Binance USD-M futures kline interval"),
        ("BTCUSDT", {"kind": "binance", "interval": "10m"}, "'10m' is not a Binance spot kline"),
        ("BTC-USDT", {"kind": "binance_futures"},
         "market: the binance_futures feed: 'BTC-USDT' is not a Binance USD-M futures symbol"),
        ("BTCUSDT_261225", {"kind": "binance"}, "is not a Binance spot symbol"),
        ("BTCUSDT", {"kind": "binance_futures", "warmup": -1}, "feed.warmup: must be a number"),
    ):  # fmt: skip
        resp = client.post("/api/instances", json={"strategy_id": sid, "market": market,
                           "feed": feed}, headers=alice.headers)  # fmt: skip
        assert resp.status_code == 422 and words in resp.json()["detail"], (feed, resp.text)
