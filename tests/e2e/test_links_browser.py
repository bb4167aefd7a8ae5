"""Issue 9 in Chromium (tests/e2e/links.mjs) against the shared ``alphaforge serve
--with-prefect-ui --with-mlflow-ui`` (tests/e2e/conftest.py): a new user creates a
pipeline from the template and runs it to Completed; the run page's Prefect and MLflow links open
pages that show this run — its name ``<title slug>/<run id>`` and its Prefect / MLflow id — and
never "Can't connect to Server API". Screenshots land in tests/e2e/screenshots/links-*.png.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.driver import run_tour
from tests.serve_process import Served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def test_a_template_pipeline_runs_to_completed_and_its_prefect_and_mlflow_links_show_it(
    shared_serve: Served,
) -> None:
    printed = shared_serve.output()
    prefect_ui = re.search(r"Prefect UI:\s+(\S+)", printed)
    assert prefect_ui, printed
    assert re.search(r"MLflow UI:\s+(\S+)", printed), printed
    # the UI's own settings name the server it is served from (not Prefect's default 4200)
    ui_settings = httpx.get(f"{prefect_ui.group(1)}/ui-settings", timeout=10).json()
    assert ui_settings["api_url"] == f"{prefect_ui.group(1)}/api"
    expected = {"links-02-run-completed", "links-04-prefect-flow-run", "links-05-mlflow-run"}
    run_tour("links.mjs", shared_serve.base, "links-", expected, timeout=900)
