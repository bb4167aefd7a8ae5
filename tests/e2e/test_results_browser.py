"""Results people expect, in Chromium (tests/e2e/results.mjs) against the shared
``alphaforge serve``: the sample pipeline runs to Completed; its run page names the pipeline,
draws the price chart with trade markers (hovered: a trade's tooltip), buy and hold on the equity
chart and beside the metrics, the monthly returns table; sorting the trades by PnL reorders them;
equity.csv and the HTML report download; a run without a backtest says it has no prices; the
compare page names both runs; the Nodes page renders Markdown. Screenshots land in
tests/e2e/screenshots/results-*.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.driver import run_tour
from tests.serve_process import Served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def test_run_page_shows_prices_benchmark_monthly_sorting_and_downloads(
    shared_serve: Served,
) -> None:
    expected = {
        "results-01-run-page",
        "results-02-price-tooltip",
        "results-05-trades-sorted",
        "results-06-report",
        "results-09-nodes-doc-light",
    }
    run_tour("results.mjs", shared_serve.base, "results-", expected, timeout=900)
