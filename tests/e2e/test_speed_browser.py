"""A web run pushes its result to the page (issue 9 #11), in Chromium (tests/e2e/speed.mjs)
against the shared ``alphaforge serve``: ▶ Run on the sample pipeline shows that run's metric
cards without a page reload, while every poll of the run after its start is refused, so the
page can only have learnt of the completion from the API's run stream. No timing threshold here:
``bench/bench_web_run.py`` measures the speed."""

from __future__ import annotations

import pytest

from tests.e2e.driver import HERE, run_script
from tests.serve_process import Served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def test_a_run_shows_its_metrics_pushed_by_the_stream_without_reload(
    shared_serve: Served,
) -> None:
    shots = HERE / "screenshots"
    for old in shots.glob("speed-*.png"):
        old.unlink()
    run_script("speed.mjs", shared_serve.base, timeout=600)
    taken = {p.stem for p in shots.glob("speed-*.png")}
    assert "speed-01-metrics-after-run" in taken, sorted(taken)
    assert not any(n.startswith("speed-fail-") for n in taken), sorted(taken)
