"""The `dataset` node: reads an exact catalog version, pruned as the step asks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd
import pytest

from nodes.base import NodeContext, registry
from nodes.errors import DataError, NodeError

V = "c3" * 32


def _bars() -> pd.DataFrame:
    idx = pd.DatetimeIndex(
        pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-02"], utc=True),
        name="ts",
    )
    return pd.DataFrame(
        {
            "symbol": ["AAA", "BBB", "AAA", "BBB"],
            "open": [1.0, 2.0, 1.1, 2.1],
            "high": [1.2, 2.2, 1.3, 2.3],
            "low": [0.9, 1.9, 1.0, 2.0],
            "close": [1.1, 2.1, 1.2, 2.2],
            "volume": [10.0, 20.0, 11.0, 21.0],
        },
        index=idx,
    )


class Recorder:
    """A catalog that records what a step asked for."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.reads: list[dict[str, Any]] = []
        self.resolved: list[tuple[str, str | None]] = []

    def resolve(self, name: str, version: str | None = None) -> str:
        self.resolved.append((name, version))
        return V

    def read(self, version: str, **kw: Any) -> pd.DataFrame:
        self.reads.append({"version": version, **kw})
        return self.frame


def _run(params: dict[str, Any], catalog: Any) -> tuple[pd.DataFrame, list[str]]:
    logs: list[str] = []
    node_type = registry().get("dataset")
    node = node_type(NodeContext(catalog=catalog, log=logs.append))
    out = node.run({}, node_type.validated_params(params))
    return out["bars"], logs


def test_reads_the_ir_version_without_resolving_again() -> None:
    cat = Recorder(_bars())
    bars, logs = _run({"name": "eq", "version": V}, cat)
    assert cat.resolved == [] and cat.reads[0]["version"] == V
    pd.testing.assert_frame_equal(bars, _bars())
    assert "2 symbol(s)" in logs[0] and V[:12] in logs[0]


def test_a_name_at_a_prefix_is_resolved_when_the_ir_has_no_version() -> None:
    cat = Recorder(_bars())
    _run({"name": "eq@c3c3c3"}, cat)
    assert cat.resolved == [("eq", "c3c3c3")]


def test_pruning_is_passed_to_the_catalog_with_inclusive_utc_bounds() -> None:
    cat = Recorder(_bars())
    _run(
        {
            "name": "eq",
            "version": V,
            "symbols": ["AAA"],
            "columns": ["vwap"],
            "start": "2024-01-01",
            "end": "2024-01-02",
        },
        cat,
    )
    read = cat.reads[0]
    assert read["symbols"] == ["AAA"]
    assert read["columns"] == ["open", "high", "low", "close", "volume", "vwap"]
    assert read["start"] == pd.Timestamp("2024-01-01", tz="UTC")
    # an end date keeps that whole day: its last nanosecond
    assert read["end"] == pd.Timestamp("2024-01-03", tz="UTC") - pd.Timedelta(1, "ns")


def test_a_naive_end_time_is_utc_and_exact() -> None:
    cat = Recorder(_bars())
    _run({"name": "eq", "version": V, "end": "2024-01-02T12:30:00"}, cat)
    assert cat.reads[0]["end"] == pd.Timestamp(datetime(2024, 1, 2, 12, 30), tz="UTC")
    assert date(2024, 1, 2) <= cat.reads[0]["end"].date()


def test_nothing_in_range_is_an_empty_error() -> None:
    with pytest.raises(DataError, match="no bars in the range") as exc:
        _run({"name": "eq", "version": V}, Recorder(_bars().iloc[:0]))
    assert exc.value.kind == "EMPTY"


def test_without_a_catalog_the_error_says_how_to_get_one() -> None:
    with pytest.raises(NodeError, match="no dataset catalog"):
        _run({"name": "eq", "version": V}, None)


def test_fingerprint_is_the_version() -> None:
    node_type = registry().get("dataset")
    node = node_type(NodeContext(catalog=Recorder(_bars())))
    assert node.fingerprint(node_type.validated_params({"name": "eq"})) == f"catalog:{V}"
