"""The ML example in Chromium (tests/e2e/ml.mjs) against the shared ``alphaforge serve``: the
8-node LSTM pipeline runs from ▶ Run; its run page draws the training curve, names the
registered version and downloads the model file; the Models page lists it with its source run;
a second pipeline trades it by name with the same metrics. Screenshots: screenshots/ml-*.png."""

from __future__ import annotations

import pytest

from tests.e2e.driver import run_tour
from tests.serve_process import Served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def test_the_ml_example_runs_in_the_web_app_and_its_model_is_shown_listed_and_reused(
    shared_serve: Served,
) -> None:
    expected = {"ml-01-run-model", "ml-02-models-page"}
    run_tour("ml.mjs", shared_serve.base, "ml-", expected, timeout=900)
