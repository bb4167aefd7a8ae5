"""The registry of built-in nodes: the documented catalog, typed ports, params schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nodes.base import Node, PortType, registry
from nodes.errors import UnknownNodeTypeError

CATALOG_DOC = Path(__file__).resolve().parents[2] / "docs" / "builtin-nodes.md"


def _documented_names() -> set[str]:
    return set(re.findall(r"^- `([a-z_]+)\(", CATALOG_DOC.read_text(), flags=re.MULTILINE))


def _product_types() -> list[type[Node]]:
    """Registered types that ship with the product. A session-wide test fixture (the Prefect
    stack) puts the ``t_*`` test types from ``tests.flows.testnodes`` in the default registry
    of its pytest worker; they are not part of the catalog under test here."""
    return [t for t in registry() if not t.__module__.startswith("tests.")]


def test_every_documented_node_is_registered_and_nothing_else() -> None:
    documented = _documented_names()
    assert len(documented) == 39
    assert {t.name for t in _product_types()} == documented


def test_lookup_of_an_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownNodeTypeError) as info:
        registry().get("crosover")
    assert "crossover" in info.value.suggestions
    assert "did you mean 'crossover'" in str(info.value)


def test_catalog_is_json_with_schemas_and_typed_ports() -> None:
    catalog = json.loads(json.dumps([t.spec() for t in _product_types()]))
    port_types = {t.value for t in PortType}
    for spec in catalog:
        assert spec["doc"] and spec["summary"], spec["name"]
        assert spec["params_schema"]["type"] == "object", spec["name"]
        assert spec["outputs"], spec["name"]
        for port in spec["inputs"] + spec["outputs"]:
            assert port["type"] in port_types, (spec["name"], port)
        for name, prop in spec["params_schema"].get("properties", {}).items():
            assert prop.get("description"), (spec["name"], name)


@pytest.mark.parametrize("name", ["backtest", "metrics", "portfolio_backtest"])
def test_metric_nodes_declare_their_metric_keys(name: str) -> None:
    keys = registry().get(name).metric_keys
    assert {"sharpe", "total_return", "max_drawdown", "num_trades", "final_equity"} <= set(keys)


def test_documented_ports_and_params_of_key_nodes() -> None:
    reg = registry()
    bt: type[Node] = reg.get("backtest")
    assert [p.name for p in bt.inputs] == ["data", "signal"]
    assert [p.name for p in bt.outputs] == ["equity", "trades", "metrics", "orders"]
    assert set(bt.params_model.model_fields) == {
        "cash",
        "fee_bps",
        "slippage_bps",
        "lot_size",
        "ppy",
        "calendar",
        "risk_free",
        "stop_loss_bps",
        "take_profit_bps",
    }
    assert [p.name for p in reg.get("macd").outputs] == ["macd", "signal", "hist"]
    assert [p.name for p in reg.get("bollinger").outputs] == [
        "middle",
        "upper",
        "lower",
        "percent_b",
    ]
    assert reg.get("combine").inputs[0].variadic
    assert set(reg.get("csv_ohlcv").params_model.model_fields) == {
        "path",
        "symbol",
        "timezone",
        "start",
        "end",
    }


def test_params_accept_json_integers_for_floats_and_refuse_unknown_keys() -> None:
    bt = registry().get("backtest")
    assert bt.parse_params({"cash": 1000, "fee_bps": 5}).cash == 1000.0
    with pytest.raises(Exception, match="extra"):
        bt.parse_params({"fees": 5})


def test_the_dsl_takes_calendar_from_the_params_schema() -> None:
    # no DSL change was needed: the compiler reads the params model (Literal -> allowed values)
    from dsl import compile_source

    head = (
        'pipeline p "P"\n'
        'data = csv_ohlcv(path="x.csv")\n'
        "f = sma(data.close, window=5)\n"
        "s = sma(data.close, window=20)\n"
        "sig = crossover(f, s)\n"
    )
    ok = compile_source(head + 'bt = backtest(data, sig, calendar="crypto")\n')
    assert ok.ok and ok.ir is not None
    assert ok.ir.node("bt").params["calendar"] == "crypto"
    bad = compile_source(head + 'bt = backtest(data, sig, calendar="nyse")\n')
    (d,) = bad.errors
    assert d.code == "AF104" and "'equities', 'crypto', '24x7', 'fx' or '24x5'" in d.message
    both = compile_source(head + 'bt = backtest(data, sig, calendar="fx", ppy=260)\n')
    (d,) = both.errors
    assert d.code == "AF108" and "give ppy or calendar, not both" in d.message
