"""Issue 11 #7 in Chromium (tests/e2e/sweeps.mjs) against the shared ``alphaforge serve``: a
sweep started with ▶ Sweep on the pipeline page is followed to completion on its page, a
heatmap cell opens that trial as a run (the run page with its results), a walk-forward sweep
shows its folds and out-of-sample curve, and an observer sees it all with every control that
would start something disabled. The heatmap has axis titles, a colour legend and a hover
tooltip; Delete is disabled while the sweep runs, asks in a dialog, shows a 409 and goes to the
pipeline's sweeps (DELETE answered by a page.route mock while the API does not serve it)."""

from __future__ import annotations

import pytest

from tests.e2e.driver import run_tour
from tests.serve_process import Served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]

SHOTS = {
    "sweep-01-running",
    "sweep-02-finished",
    "sweep-03-trial-run",
    "sweep-04-walkforward",
    "sweep-05-observer",
    "sweep-06-delete-dialog",
    "sweep-07-delete-disabled-running",
}


def test_a_sweep_from_the_pipeline_page_to_a_trial_run(shared_serve: Served) -> None:
    run_tour("sweeps.mjs", shared_serve.base, "sweep-", SHOTS, timeout=900)
