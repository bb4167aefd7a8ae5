"""The HTML report escapes what users wrote (titles, source, params, trade cells) and stays
self-contained for a run that has no prices."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from api.services.run_report import ReportContext, render_report

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_report_escapes_user_text_and_needs_no_script_or_url(tmp_path: Path) -> None:
    index = pd.date_range("2024-01-01", periods=40, freq="D", tz="UTC", name="ts")
    equity = pd.Series(range(100, 140), index=index, dtype="float64")
    frame = pd.DataFrame({"equity": equity, "drawdown": equity / equity.cummax() - 1})
    frame.to_parquet(tmp_path / "equity.parquet")
    trades = pd.DataFrame(
        {"entry_ts": [index[1]], "exit_ts": [index[5]], "side": [EVIL], "pnl": [4.0]}
    )
    trades.to_csv(tmp_path / "trades.csv", index=False)
    ctx = ReportContext(
        run_id=3,
        status="completed",
        pipeline_name="p",
        pipeline_title=EVIL,
        version=1,
        source=f"# {EVIL}\n",
        ir_json="not json",
        ir_hash="0" * 64,
        created_at=None,
        finished_at=None,
        metrics={"total_return": 0.39, "notes": [EVIL]},
    )
    html = render_report(ctx, tmp_path)
    assert "<script" not in html and "<img" not in html and "onerror=alert(1)>" not in html
    assert html.count("&lt;script&gt;") >= 4  # title, heading, note, source, trade cell
    assert "39.00 %" in html and "No benchmark: no price data" in html
    assert "January" not in html and "<th>Jan</th>" in html  # the monthly table
    assert not [
        u for u in ("http://", "https://") if u in html.replace("http://www.w3.org/2000/svg", "")
    ]
