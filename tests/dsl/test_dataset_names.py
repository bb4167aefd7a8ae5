"""Dataset names in `dataset_ohlcv(name=...)` (AF209), the title limit (AF011) and the helpers
behind issue 9's items 5 and 6: nearest names by edit distance, the title rewrite."""

from __future__ import annotations

import pytest

from dsl import compile_source
from dsl.compiler import dataset_names, with_title
from dsl.diagnostics import edit_distance, nearest_by_edits

HEAD = 'pipeline p "P"\n\n'
STEPS = (
    "fast = sma(data.close, window=2)\nslow = sma(data.close, window=3)\n"
    "sig = crossover(fast, slow)\nresult = backtest(data, sig)\n"
)


def test_edit_distance_by_hand() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("goog_dialy", "goog_daily") == 2
    assert edit_distance("", "abc") == 3 and edit_distance("same", "same") == 0
    assert nearest_by_edits("goog_dialy", ["goog_daily", "eurusd", "goog"]) == ["goog_daily"]
    assert nearest_by_edits("BTC", ["btc", "eth"]) == ["btc"]  # case counts as one edit
    assert nearest_by_edits("zzz", ["btc", "eth"]) == []


def test_unknown_dataset_error_points_at_the_name() -> None:
    src = HEAD + 'data = dataset_ohlcv(name="btc_dialy")\n' + STEPS
    result = compile_source(src, datasets={"btc_daily", "eth"})
    (d,) = result.errors
    assert (d.code, d.line, d.col, d.end_line, d.end_col) == ("AF209", 3, 27, 3, 38)
    assert d.message == 'no dataset named "btc_dialy"; did you mean `btc_daily`?'
    assert result.ir is None
    ok = compile_source(src.replace("btc_dialy", "btc_daily"), datasets={"btc_daily"})
    assert ok.ok and ok.ir is not None and dataset_names(ok.ir) == {"btc_daily"}
    # not checked when no names are given (plain `compile_source`)
    assert compile_source(src).ok
    # a warning where a pipeline is saved: the IR is still produced
    saved = compile_source(src, datasets=set(), dataset_severity="warning")
    assert saved.ok and [w.code for w in saved.warnings] == ["AF209"]


def test_title_limit() -> None:
    long = compile_source('pipeline p "' + "x" * 121 + '"\n')
    assert [d.code for d in long.errors] == ["AF011"]
    assert not [d for d in compile_source('pipeline p "' + "x" * 120 + '"\n').errors]


@pytest.mark.parametrize(
    ("src", "title", "expected"),
    [
        ('pipeline p "Old"\n# x = 1\n', "New", 'pipeline p "New"\n# x = 1\n'),
        ("pipeline p\n# c\n", 'A "q" \\ b', 'pipeline p "A \\"q\\" \\\\ b"\n# c\n'),
        ('# top\npipeline p "Old \\"x\\""  # keep\n', "T", '# top\npipeline p "T"  # keep\n'),
    ],
)
def test_with_title_changes_only_the_title(src: str, title: str, expected: str) -> None:
    out = with_title(src, title)
    assert out == expected
    header = compile_source(out + 'd = csv_ohlcv(path="x.csv")\n')
    assert header.ir is not None and header.ir.title == title


def test_member_references_completion_offers_are_what_the_validator_accepts() -> None:
    """ui/src/lib/dsl/completion.ts offers after `step.` in a call: the output ports and the
    columns of the first frame-like output. Each compiles (no AF202); params and metrics don't."""
    base = (
        'pipeline p\ndata = csv_ohlcv(path="x.csv")\nfast = sma(data.close)\n'
        "sig = crossover(fast, fast)\nr = backtest(data, sig)\n"
    )
    offered = {
        "data": ["bars", "open", "high", "low", "close", "volume"],
        "r": ["equity", "trades", "orders", "metrics", "cash", "drawdown", "position"],
    }
    for step, members in offered.items():
        for m in members:
            codes = {d.code for d in compile_source(base + f"x = sma({step}.{m})\n").errors}
            assert "AF202" not in codes, (step, m)
    for step, m in (("data", "path"), ("r", "sharpe"), ("r", "fee_bps"), ("fast", "window")):
        codes = {d.code for d in compile_source(base + f"x = sma({step}.{m})\n").errors}
        assert "AF202" in codes, (step, m)


def test_reading_volume_of_a_dataset_without_volume_is_af210() -> None:
    src = (
        HEAD
        + 'data = dataset_ohlcv(name="fx")\nother = dataset_ohlcv(name="btc")\n'
        + "v = sma(data.volume, window=2)\nw = sma(other.volume, window=2)\n"
        + STEPS
    )
    result = compile_source(src, datasets={"fx", "btc"}, datasets_without_volume={"fx"})
    assert result.ok, result.format()
    (d,) = [d for d in result.diagnostics if d.code == "AF210"]
    assert (d.severity, d.line, d.col, d.end_col) == ("warning", 5, 9, 20)
    assert '"fx" has no volume column' in d.message
    # without the datasets' columns nothing is known: no warning
    assert not [d for d in compile_source(src).diagnostics if d.code == "AF210"]
