"""Errors users see never show an absolute server path or a host traceback (issue 10, item 8):
real error paths of the API (uploads, pipelines, custom nodes, the node lab without a worker,
request validation) and the error handlers themselves, fed messages that carry the server's
own paths and a traceback the way a lower layer's exception would."""

from __future__ import annotations

import re
import secrets
import traceback
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.errors import ApiError, Unprocessable, public_text
from api.main import create_app
from api.settings import ApiSettings
from nodes.errors import AlphaForgeError, DataError
from tests.api.conftest import Account

ROOT = Path(__file__).resolve().parents[2]
CSV = "ts,open,high,low,close\n"
NODE = {
    "name": "n1",
    "language": "python",
    "inputs": [{"name": "x", "type": "series"}],
    "outputs": [{"name": "y", "type": "series"}],
    "code": "def run(inputs, params):\n    return {}\n",
}


def _leaks(text: str, settings: ApiSettings) -> list[str]:
    found = [
        m
        for m in (str(ROOT), str(settings.root), "/tmp/", "/work/", "site-packages", "Traceback")
        if m in text
    ]
    if re.search(r'File "[^"]*", line \d+', text):
        found.append("a traceback frame")
    return found


def _traceback_text(path: Path) -> str:
    try:
        raise OSError(f"[Errno 2] No such file or directory: '{path}'")
    except OSError:
        return traceback.format_exc()


@pytest.fixture
def leaky_client(api_settings: ApiSettings) -> Any:
    """The app plus routes whose lower layers fail with the server's paths and tracebacks."""
    app = create_app(api_settings)
    store = api_settings.store_root / "artifacts" / "k"
    trace = _traceback_text(store)

    @app.get("/api/probe/api-error")
    def api_error() -> None:
        raise ApiError(f"the flow run failed: {trace}", status_code=502)

    @app.get("/api/probe/dict-detail")
    def dict_detail() -> None:
        raise Unprocessable({"message": f"cannot read {store}", "errors": [{"msg": trace}]})

    @app.get("/api/probe/domain-error")
    def domain_error() -> None:
        raise AlphaForgeError(f"no result in the store at file://{store}\n{trace}")

    @app.get("/api/probe/data-error")
    def data_error() -> None:
        raise DataError("MALFORMED_CSV", "not UTF-8", source=str(ROOT / "data" / "x.csv"))

    @app.get("/api/probe/bug")
    def bug() -> None:
        raise RuntimeError(trace)

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_no_error_path_shows_a_server_path_or_a_traceback(
    leaky_client: TestClient, api_settings: ApiSettings, make_user: Any
) -> None:
    alice: Account = make_user(username="alice")
    h = alice.headers
    c = leaky_client

    def upload(name: str, body: bytes, **form: str) -> Any:
        files = {"file": (f"{ROOT}/secret/x.csv", body, "text/csv")}
        return c.post("/api/datasets", data={"name": name, **form}, files=files, headers=h)

    answers = {
        "malformed csv": upload("d1", b"garbage\n\x00\x01,,\n"),
        "bad number": upload("d2", (CSV + "2024-01-01,1,2,0.5,x\n").encode()),
        "binary": upload("d3", secrets.token_bytes(4000)),
        "bad time zone": upload("d4", (CSV + "2024-01-01,1,2,0.5,1\n").encode(), timezone="X/Y"),
        "too large": upload("d5", b"a" * (api_settings.max_upload_bytes + 10)),
        "bad json": c.post(
            "/api/pipelines", content=b"{", headers={**h, "content-type": "application/json"}
        ),
        "bad dsl": c.post(
            "/api/pipelines", json={"name": "p", "source": "pipeline p\n\nx = nope(\n"}, headers=h
        ),
        "no worker": c.post("/api/custom-nodes/test-run", json={"manifest": NODE}, headers=h),
        "bad js": c.post(
            "/api/custom-nodes",
            json={**NODE, "name": "n2", "language": "javascript", "code": "function ( {"},
            headers=h,
        ),
        "api error": c.get("/api/probe/api-error"),
        "dict detail": c.get("/api/probe/dict-detail"),
        "domain error": c.get("/api/probe/domain-error"),
        "data error": c.get("/api/probe/data-error"),
        "bug": c.get("/api/probe/bug"),
    }
    expected = {
        "malformed csv": 422, "bad number": 422, "binary": 422, "bad time zone": 422,
        "too large": 413, "bad json": 422, "bad dsl": 422, "no worker": 503, "bad js": 422,
        "api error": 502, "dict detail": 422, "domain error": 400, "data error": 422, "bug": 500,
    }  # fmt: skip
    assert {k: r.status_code for k, r in answers.items()} == expected
    leaks = {k: _leaks(r.text, api_settings) for k, r in answers.items()}
    assert not any(leaks.values()), {k: (v, answers[k].text) for k, v in leaks.items() if v}
    # what remains still says what went wrong
    assert "cannot read …/k" in answers["dict detail"].text
    assert "no result in the store at …/k" in answers["domain error"].text
    assert "kept for operators" in answers["api error"].text


def test_public_text_keeps_urls_and_relative_paths() -> None:
    assert public_text("see http://127.0.0.1:4200/api/runs/1") == (
        "see http://127.0.0.1:4200/api/runs/1"
    )
    assert public_text("data/sample_ohlcv.csv not found") == "data/sample_ohlcv.csv not found"
    assert public_text("at /srv/alphaforge/data/store: gone") == "at …/store: gone"
