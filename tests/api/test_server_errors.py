"""A bug in a route is a 500 with a sentence and an incident id; the traceback goes to the
server's log under that id, never to the client (issue 9, item 1)."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings


def test_an_unexpected_exception_is_a_sentence_with_an_incident_id(
    api_settings: ApiSettings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(api_settings)

    @app.get("/api/boom")
    def boom() -> None:
        {"a": 1}["missing key of a buggy route"]

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        resp = client.get("/api/boom")
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/json"
    detail = resp.json()["detail"]
    found = re.fullmatch(
        r"AF990: the server hit an unexpected error \(incident ([0-9a-f]{12})\)\. Try again; "
        r"if it happens again, give your operator the incident id: .*",
        detail,
    )
    assert found, detail
    assert "Traceback" not in resp.text and "KeyError" not in resp.text
    assert "missing key" not in resp.text and 'File "' not in resp.text
    [record] = [r for r in caplog.records if found.group(1) in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "GET /api/boom" in record.getMessage()
