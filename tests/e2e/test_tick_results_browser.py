"""A tick backtest's run page in Chromium (tests/e2e/tick.mjs) against the shared ``alphaforge
serve``: a grid market maker on a synthetic book runs to Completed through the web app; the page
draws the mid price with one marker per fill (as many as the API's fills), the inventory pane on
the same time axis, the legend and the fills count; the wheel zooms (the visible range narrows),
a drag pans, Fit restores; hovering a bar shows its fills. Screenshots
tests/e2e/screenshots/tick-*.png."""

from __future__ import annotations

import pytest

from tests.e2e.driver import run_tour
from tests.serve_process import Served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def test_tick_run_page_draws_mid_fills_and_inventory_and_zooms(shared_serve: Served) -> None:
    expected = {"tick-01-run-page", "tick-02-zoomed-tooltip"}
    run_tour("tick.mjs", shared_serve.base, "tick-", expected, timeout=900)
