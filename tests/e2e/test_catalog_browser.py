"""The dataset catalog and a portfolio's results in Chromium (tests/e2e/catalog.mjs) against the
shared ``alphaforge serve``: a CSV of several symbols uploaded, a version added with a message
(the same file again adds none), the versions table (latest badge, message, the
``dataset("name@short")`` reference), the symbols, the validation report with the worst gaps
highlighted, candles of two symbols (one "latest 2,000 of 2,500 bars"), a pre-catalog dataset's
note; then a momentum rotation over that dataset runs to Completed and its page draws the
weights heat strip (hovered), the contribution per symbol sorted as the API's numbers, and
trades with a symbol column filtered to one symbol. Screenshots tests/e2e/screenshots/catalog-*.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.driver import run_tour
from tests.serve_process import Served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def test_catalog_page_and_portfolio_results(shared_serve: Served) -> None:
    expected = {
        "catalog-01-uploaded",
        "catalog-02-versions",
        "catalog-03-report",
        "catalog-04-candles",
        "catalog-05-pre-catalog",
        "catalog-06-portfolio-weights",
        "catalog-07-portfolio-contribution",
        "catalog-08-portfolio-trades",
    }
    run_tour("catalog.mjs", shared_serve.base, "catalog-", expected, timeout=900)
