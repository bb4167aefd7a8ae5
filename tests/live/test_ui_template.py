"""The web app's "New strategy" template (ui/src/lib/strategyTemplate.ts) is a strategy module:
the API reads its CONFIG_SCHEMA (with the titles and descriptions the config forms show) without
running it, and — where this tree has the strategy host — it runs in the host over the sample
bars: observe records its orders as refused, active places them, and render() returns widgets the
host accepts (one of each kind the dashboard draws)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import runners.strategyhost as strategyhost
from nodes.strategycode import ConfigError, read_module, validate_config

ROOT = Path(__file__).resolve().parents[2]


def template() -> str:
    source = (ROOT / "ui" / "src" / "lib" / "strategyTemplate.ts").read_text()
    m = re.search(r"export const STRATEGY_TEMPLATE = `(.*?)`;", source, re.S)
    assert m, "no STRATEGY_TEMPLATE template literal"
    text = m.group(1)
    # the literal is the text only without escapes or substitutions
    assert "\\" not in text and "${" not in text, "the template literal must stay plain"
    return text


def test_the_template_is_a_module_the_api_reads() -> None:
    module = read_module(template())
    assert module.class_name == "SmaCross"
    assert validate_config(module.config_schema, {}) == {"fast": 5, "slow": 20, "qty": 10}
    props = module.config_schema["properties"]
    for name in ("fast", "slow", "qty"):
        assert props[name].get("title") and props[name].get("description"), name
    with pytest.raises(ConfigError, match="fast: 0 is less than the minimum of 1"):
        validate_config(module.config_schema, {"fast": 0})
    with pytest.raises(ConfigError, match="qty: 0 is less than or equal to the minimum of 0"):
        validate_config(module.config_schema, {"qty": 0})


def _ticks() -> list[dict[str, Any]]:
    frame = pd.read_csv(ROOT / "examples" / "data" / "sample_ohlcv.csv").head(200)
    out = []
    for row in frame.itertuples(index=False):
        ts = pd.Timestamp(row.ts, tz="UTC").isoformat()
        out.append({"symbol": "ASSET", "ts": ts, "interval": "1d", "open": row.open,
                    "high": row.high, "low": row.low, "close": row.close,
                    "volume": row.volume, "price": row.close})  # fmt: skip
    return out


@pytest.mark.parametrize("mode", ["observe", "active"])
def test_the_template_runs_in_the_strategy_host(
    mode: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    make = getattr(strategyhost, "strategy_host", None)
    if make is None:
        pytest.skip("this tree's runners/strategyhost.py has no strategy_host yet (the host lands)")
    monkeypatch.setenv("ALPHAFORGE_ALLOW_PROCESS_RUNNER", "1")
    monkeypatch.setenv("ALPHAFORGE_DATA_DIR", str(tmp_path))
    host = make(template(), instance_id="si_template", choice="process")
    identity = {"id": "si_template", "strategy_type": "SmaCross", "account": "paper",
                "market": "ASSET"}  # fmt: skip
    config = validate_config(read_module(template()).config_schema, {})
    try:
        host.start(identity, config, mode)
        placed, refused, position = 0, 0, 0.0
        for tick in _ticks():
            account = {"cash": 100_000.0, "positions": {"ASSET": position}, "open_orders": []}
            reply = host.tick(tick, account)
            assert reply.error is None, reply.traceback
            for intent in reply.intents:
                if intent.get("refused"):
                    refused += 1
                    assert "not" in intent["refused"] or "never" in intent["refused"]
                else:
                    placed += 1
                    position += intent["qty"] if intent["side"] == "buy" else -intent["qty"]
        if mode == "observe":
            assert refused > 0 and placed == 0
        else:
            assert placed > 1 and refused == 0  # bought and sold again
        widgets = host.render()
    finally:
        host.stop()
    kinds = [w["type"] for w in widgets]
    assert kinds == ["metric", "metric", "line_chart", "table", "log"]
    assert widgets[0] == {"type": "metric", "label": "Ticks (with warm-up)", "value": 200}
    assert len(widgets[2]["points"]) == 200
    outcomes = {row[-1] for row in widgets[3]["rows"]}
    assert outcomes == ({"observed"} if mode == "observe" else {"placed"})
