"""Where the app links runs to (issue 9, item 2): the Prefect UI only when the server has one,
the MLflow run's own page (with its experiment), nothing when a UI is not running."""

from __future__ import annotations

from api.services.runs import mlflow_run_url
from api.settings import ApiSettings
from deployments.deploy import flow_run_url


def test_the_prefect_ui_link_follows_the_server_and_its_ui(api_settings: ApiSettings) -> None:
    served = api_settings.model_copy(update={"prefect_api_url": "http://127.0.0.1:41234/api"})
    assert served.derived_prefect_ui_url == "http://127.0.0.1:41234"
    assert flow_run_url(served.derived_prefect_ui_url, "abc") == (
        "http://127.0.0.1:41234/runs/flow-run/abc"
    )
    no_ui = served.model_copy(update={"prefect_ui": False})  # serve without --with-prefect-ui
    assert no_ui.derived_prefect_ui_url is None and flow_run_url(None, "abc") is None
    named = served.model_copy(update={"prefect_ui_url": "https://prefect.example/"})
    assert named.derived_prefect_ui_url == "https://prefect.example/"


def test_the_mlflow_link_opens_the_run_in_its_experiment() -> None:
    assert mlflow_run_url("http://127.0.0.1:5000/", "7", "f00d") == (
        "http://127.0.0.1:5000/#/experiments/7/runs/f00d"
    )
    assert mlflow_run_url(None, "7", "f00d") is None  # no MLflow UI running
    assert mlflow_run_url("http://127.0.0.1:5000", None, "f00d") is None  # not tracked (yet)
