"""Converting the JSON and YAML pipeline forms into .af text that parses and means the same."""

from __future__ import annotations

import pytest

from dsl import compile_source
from dsl.convert import ConvertError, convert_text, json_to_af, literal, yaml_to_af
from nodes.base import NodeRegistry

PRD_JSON = {
    "pipeline": [
        {
            "id": "node1",
            "type": "DataLoaderNode",
            "params": {"symbol": "BTC/USD", "timeframe": "1h", "start": "2021-01-01"},
        },
        {
            "id": "node2",
            "type": "FeatureGeneratorNode",
            "depends_on": ["node1"],
            "params": {"features_config": [["EMA", 14], ["RSI", 14]]},
        },
        {"id": "node3", "type": "LabelingNode", "depends_on": ["node1"], "params": {"horizon": 5}},
        {
            "id": "node4",
            "type": "ModelTrainerNode",
            "depends_on": ["node2", "node3"],
            "params": {"model_type": "LSTM", "epochs": 5},
        },
    ]
}

SEED_YAML = """
name: bilstm_realtime_signal_generation
expand:
  rsi_windows: [6, 12, 24]
signal_generation:
  mode: stream
  warmup: {lookback_days: 90}
  scheduling: {interval: 2h, buffer_minutes: 5}
  on_prediction:
    - using: sinks.csv_append
      params: {path: outputs/predictions.csv, dedup_key: [ts, symbol]}
pipeline:
  - data:
      using: data.binance_futures
      outputs: {frame: ohlcv}
      params: {universe: [BTCUSDT, ETHUSDT], interval: 1h}
  - features:
      using: features.rsi
      inputs: {column: ohlcv.close}
      outputs: {columns: ["rsi{window}"]}
      params: {window: "${expand.rsi_windows}"}
  - model:
      using: models.pytorch_bilstm_predictor
      inputs: {frame: ohlcv, model_ref: my_model.unified}
      outputs: {columns: [model.prediction]}
      params: {window_size: 30}
"""


def test_json_form_keeps_ids_dependencies_and_params(reg: NodeRegistry) -> None:
    text = json_to_af(PRD_JSON)
    assert 'node4 = ModelTrainerNode(node2, node3, model_type="LSTM", epochs=5)' in text
    result = compile_source(text, registry=reg)
    # it parses; only the node types are unknown to this registry
    assert {d.code for d in result.errors} == {"AF101"}
    outline = {o.id: o for o in result.outline}
    assert outline["node4"].inputs == ["node2", "node3"]
    assert outline["node2"].params == {"features_config": [["EMA", 14], ["RSI", 14]]}
    assert outline["node1"].params == {
        "symbol": "BTC/USD",
        "timeframe": "1h",
        "start": "2021-01-01",
    }


def test_json_form_with_builtin_types_compiles(reg: NodeRegistry) -> None:
    doc = {
        "name": "from_json",
        "pipeline": [
            {"id": "data", "type": "csv_ohlcv", "params": {"path": "a.csv"}},
            {"id": "fast", "type": "ema", "depends_on": ["data.close"], "params": {"window": 5}},
        ],
    }
    text = json_to_af(doc)
    assert "fast = ema(data.close, window=5)" in text
    result = compile_source(text, registry=reg)
    assert result.ok, result.format()


def test_yaml_form_expands_loops_and_builds_the_stream_block(reg: NodeRegistry) -> None:
    text = yaml_to_af(SEED_YAML)
    assert "for window in [6, 12, 24] {" in text
    assert "    every 2h after 5m" in text and "    warmup = 90d" in text
    result = compile_source(text, registry=reg)
    assert {d.code for d in result.errors} == {"AF101"}  # binance_futures etc. are not built in
    ids = [o.id for o in result.outline]
    assert ids == ["ohlcv", "rsi6", "rsi12", "rsi24", "model"]
    rsi12 = next(o for o in result.outline if o.id == "rsi12")
    assert rsi12.inputs == ["ohlcv.close"] and rsi12.params == {"window": 12}
    assert "emit model.prediction to csv_append(" in text


def test_convert_text_detects_the_form() -> None:
    import json

    assert convert_text(json.dumps(PRD_JSON)).startswith("pipeline converted")
    assert convert_text(SEED_YAML).startswith("pipeline bilstm_realtime_signal_generation")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "none"),
        (True, "true"),
        (3, "3"),
        (0.25, "0.25"),
        ("30d", "30d"),
        ("2021-01-01", "2021-01-01"),
        ('say "hi"', '"say \\"hi\\""'),
        ([1, "a"], '[1, "a"]'),
    ],
)
def test_literals(value: object, text: str) -> None:
    assert literal(value) == text


def test_unrepresentable_values_are_refused() -> None:
    with pytest.raises(ConvertError, match="dict"):
        json_to_af({"pipeline": [{"id": "a", "type": "t", "params": {"x": {"k": 1}}}]})
    with pytest.raises(ConvertError, match="nan"):
        literal(float("nan"))
    with pytest.raises(ConvertError):
        json_to_af({"nodes": []})


def test_names_are_made_valid() -> None:
    text = json_to_af({"pipeline": [{"id": "1st-node", "type": "for", "params": {}}]})
    assert "n_1st_node = for_()" in text
