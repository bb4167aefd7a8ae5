"""A real web run's results beyond metrics (issue 9, item 10): prices, buy-and-hold benchmark,
monthly returns, equity CSV and the HTML report, each checked against an independent
computation from the sample data itself; and runs named by their pipeline (item 8)."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.models.run import Run
from api.settings import ApiSettings
from nodes.builtin.backtest import BacktestParams, run_backtest
from tests.api.conftest import Account
from tests.api.stack import api_settings
from tests.deployments.fixtures import STACK_GROUP, wait_for

__all__ = ["api_settings"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "examples" / "sma_crossover.af").read_text()
NO_BACKTEST = (
    'pipeline closes_only "Closes only"\n\n'
    'data = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
    "fast = sma(data.close, window=10)\n"
)
CASH, FEE_BPS, SLIP_BPS = 100_000.0, 5.0, 2.0  # as the sample pipeline sets them


def _run(client: TestClient, who: Account, name: str, source: str) -> dict:
    resp = client.post("/api/pipelines", json={"name": name, "source": source}, headers=who.headers)
    assert resp.status_code == 201, resp.text
    started = client.post(f"/api/pipelines/{resp.json()['id']}/runs", json={}, headers=who.headers)
    assert started.status_code == 202, started.text

    def final() -> dict | None:
        run = client.get(f"/api/runs/{started.json()['id']}", headers=who.headers).json()
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    run = wait_for(final, 180, what="the run to end")
    assert run["status"] == "completed", run["error"]
    return run


def _sample_bars() -> pd.DataFrame:
    """The sample data read straight from the CSV (not through the run's files)."""
    frame = pd.read_csv(ROOT / "examples" / "data" / "sample_ohlcv.csv")
    ts_col = next(c for c in frame.columns if c.lower() in ("ts", "timestamp", "date", "datetime"))
    frame.index = pd.to_datetime(frame.pop(ts_col), utc=True)
    return frame.rename(columns=str.lower)


class _Tags(HTMLParser):
    """Collects tags and checks that every non-void element is closed in order."""

    VOID: ClassVar[set[str]] = {
        "meta",
        "br",
        "hr",
        "img",
        "input",
        "link",
        "line",
        "polyline",
        "polygon",
        "path",
    }

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.seen: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        self.attrs.extend(attrs)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        self.attrs.extend(attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()


def test_a_run_serves_prices_benchmark_monthly_csv_and_report_that_match_the_data(
    client: TestClient, alice: Account, bob: Account, api_settings: ApiSettings
) -> None:
    run = _run(client, alice, "sample_results", SAMPLE)
    rid = run["id"]
    assert run["pipeline_name"] == "sample_results"
    assert run["pipeline_title"] == "Moving Average Crossover (Sample)"
    listed = client.get(f"/api/pipelines/{run['pipeline_id']}/runs", headers=alice.headers).json()
    assert listed["items"][0]["pipeline_title"] == "Moving Average Crossover (Sample)"

    bars = _sample_bars()
    analysis = client.get(f"/api/runs/{rid}/analysis", headers=alice.headers).json()
    results = client.get(f"/api/runs/{rid}/results", headers=alice.headers).json()
    # a share link of the run shows the same analysis to anyone holding it
    link = client.post(
        "/api/shares", json={"kind": "run", "target_id": rid}, headers=alice.headers
    ).json()
    assert client.get(f"/api/shared/{link['token']}").json()["analysis"] == analysis

    # prices: every bar of the CSV, unmerged (900 bars < 5,000)
    assert analysis["price_bars"] == len(bars) == 900 and analysis["bars_per_candle"] == 1
    prices = pd.DataFrame(analysis["prices"])
    assert pd.to_datetime(prices["ts"], utc=True).tolist() == bars.index.tolist()
    for col in ("open", "high", "low", "close"):
        np.testing.assert_allclose(prices[col], bars[col], rtol=0, atol=1e-12)

    # benchmark: the formula (all cash buys at the second open with slippage, fee included in
    # the sizing) and, independently, the backtest kernel trading a signal of 1 from bar 0
    fill = bars["open"].iloc[1] * (1 + SLIP_BPS / 1e4)
    units = CASH / (fill * (1 + FEE_BPS / 1e4))
    formula = np.r_[CASH, units * bars["close"].to_numpy()[1:]]
    kernel = run_backtest(
        bars,
        pd.Series(1.0, index=bars.index),
        BacktestParams(cash=CASH, fee_bps=FEE_BPS, slippage_bps=SLIP_BPS),
    )["equity"]["equity"].to_numpy()
    np.testing.assert_allclose(formula, kernel, rtol=1e-12)
    bench = analysis["benchmark"]
    assert [p["ts"] for p in bench["equity"]] == [p["ts"] for p in results["equity"]]
    np.testing.assert_allclose([p["equity"] for p in bench["equity"]], formula, rtol=1e-12)
    assert bench["total_return"] == pytest.approx(formula[-1] / CASH - 1, rel=1e-12)
    years = (bars.index[-1] - bars.index[0]).days / 365.25
    assert bench["cagr"] == pytest.approx((formula[-1] / CASH) ** (1 / years) - 1, rel=1e-12)
    peak = np.maximum.accumulate(formula)
    assert bench["max_drawdown"] == pytest.approx((formula / peak - 1).min(), rel=1e-12)
    assert (bench["fee_bps"], bench["slippage_bps"], bench["cash"]) == (FEE_BPS, SLIP_BPS, CASH)
    assert "fee (5 bps)" in bench["note"] and "slippage (2 bps)" in bench["note"]
    for path in ("analysis", "equity.csv", "report.html"):  # someone else's run: not found
        resp = client.get(f"/api/runs/{rid}/{path}", headers=bob.headers)
        assert resp.status_code == 404 and resp.json()["detail"] == "run not found", path

    # monthly returns: month-end equity by resample, chained from the starting equity
    run_dir = api_settings.runs_dir / _run_key(client, rid)
    equity = pd.read_parquet(run_dir / "equity.parquet")["equity"]
    month_end = equity.resample("ME").last().dropna()
    chained = month_end / pd.concat([pd.Series([equity.iloc[0]]), month_end.iloc[:-1]]).values - 1
    expected = {(ts.year, ts.month): r for ts, r in chained.items()}
    got = {
        (row["year"], m + 1): v
        for row in analysis["monthly"]
        for m, v in enumerate(row["months"])
        if v is not None
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    for row in analysis["monthly"]:  # a year compounds to its year-end over last year-end
        year = equity[equity.index.year == row["year"]]
        before = equity[equity.index.year < row["year"]]
        base = before.iloc[-1] if len(before) else equity.iloc[0]
        assert row["total"] == pytest.approx(year.iloc[-1] / base - 1, rel=1e-9)
    totals = np.prod([1 + r["total"] for r in analysis["monthly"]]) - 1
    assert totals == pytest.approx(results["metrics"]["total_return"], rel=1e-9)

    # equity CSV: parses back to the equity artifact, bar for bar, with close and benchmark
    resp = client.get(f"/api/runs/{rid}/equity.csv", headers=alice.headers)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    disposition = resp.headers["content-disposition"]
    assert disposition == f'attachment; filename="sample_results-run-{rid}-equity.csv"'
    parsed = pd.read_csv(io.StringIO(resp.text), index_col="ts", parse_dates=["ts"])
    stored = pd.read_parquet(run_dir / "equity.parquet")
    parsed.index = pd.DatetimeIndex(parsed.index).as_unit(stored.index.unit)
    assert list(parsed.columns) == [*stored.columns, "close", "benchmark_equity"]
    assert parsed.index.equals(stored.index)
    pd.testing.assert_frame_equal(parsed[stored.columns], stored, check_exact=True)
    np.testing.assert_array_equal(parsed["close"], bars["close"])
    np.testing.assert_allclose(parsed["benchmark_equity"], formula, rtol=1e-12)

    # the report: one self-contained, well-formed page with the run's numbers
    page = client.get(f"/api/runs/{rid}/report.html", headers=alice.headers)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-disposition"].endswith(f'sample_results-run-{rid}-report.html"')
    html = page.text
    tags = _Tags()
    tags.feed(html)
    tags.close()
    assert html.startswith("<!DOCTYPE html>") and not tags.errors and not tags.stack
    assert "script" not in tags.seen and "link" not in tags.seen and "img" not in tags.seen
    urls = [v for k, v in tags.attrs if k in ("src", "href") or (v and "://" in v)]
    assert urls == ["http://www.w3.org/2000/svg"] * tags.seen.count("svg")
    assert tags.seen.count("svg") == 2  # equity with benchmark, drawdown
    text = re.sub(r"<[^>]+>", " ", html)
    metrics = results["metrics"]
    for expected_text in (
        "Moving Average Crossover (Sample) — run #",
        f"{metrics['total_return'] * 100:,.2f} %",  # strategy
        f"{bench['total_return'] * 100:,.2f} %",  # buy and hold
        f"{bench['max_drawdown'] * 100:,.2f} %",
        f"{metrics['sharpe']:,.3f}",
        f"{analysis['monthly'][0]['total'] * 100:.1f}%",
        f"First 25 of {results['trades_total']} trades",
        "crossover(fast, slow)",  # the source
        "&quot;fee_bps&quot;: 5.0",  # the params
        metrics["ppy_source"],
    ):
        assert expected_text in html or expected_text in text, expected_text


def test_a_run_without_a_backtest_says_it_has_no_prices(client: TestClient, alice: Account) -> None:
    run = _run(client, alice, "closes_only", NO_BACKTEST)
    analysis = client.get(f"/api/runs/{run['id']}/analysis", headers=alice.headers).json()
    assert analysis["prices"] == [] and analysis["benchmark"] is None
    assert analysis["prices_note"].startswith("No price data in this run")
    assert analysis["benchmark_note"].startswith("No benchmark: no price data")
    assert analysis["monthly"] == [] and "No equity curve" in analysis["monthly_note"]
    csv_text = client.get(f"/api/runs/{run['id']}/equity.csv", headers=alice.headers).text
    assert csv_text == "ts,equity,drawdown\n"
    page = client.get(f"/api/runs/{run['id']}/report.html", headers=alice.headers).text
    assert "No equity curve in this run." in page and "Closes only — run #" in page


def _run_key(client: TestClient, run_id: int) -> str:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        run = session.get(Run, run_id)
        assert run is not None
        return run.run_key
