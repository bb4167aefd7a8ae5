"""Issue 9, items 3-6 and 8 (part): what a new user meets first, said in sentences.

Datasets without volume, dataset names, unknown dataset names in pipelines (did-you-mean with
line and column), title and name limits, Duplicate "(copy)", request errors in plain language
(never a regex or pydantic's wording) and custom-node code checked for syntax on save.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from tests.api.conftest import Account
from tests.api.custom_node_helpers import manifest
from tests.api.sources import SMA
from tests.api.test_datasets import bars, upload

NO_VOLUME = (
    "timestamp,open,high,low,close\n"
    "2024-01-01,100,102,99,101\n"
    "2024-01-02,101,103,100,102.5\n"
    "2024-01-03,102,104,101,103\n"
)
# what no 422 body may say: a regex, pydantic's wording or its type/class names
FORBIDDEN = re.compile(
    r"pattern|regex|Input should|\^\[|\]\{|\\\\d|string_type|int_parsing|missing_argument|"
    r"ValidationError|pydantic|value_error|type=|Field required|Value error",
    re.IGNORECASE,
)


SAMPLE_SRC = SMA.replace('dataset_ohlcv(name="btc")', 'csv_ohlcv(path="data/sample_ohlcv.csv")')


def source_reading(dataset: str, title: str = "Uses a dataset") -> str:
    return SMA.replace('dataset_ohlcv(name="btc")', f'dataset_ohlcv(name="{dataset}")').replace(
        '"SMA Crossover"', json.dumps(title)
    )


# -- datasets (item 3) -------------------------------------------------------------------------


def test_a_csv_without_volume_uploads_with_a_note(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    r = upload(client, alice, "goog_daily", NO_VOLUME, filename="GOOG.csv")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["rows"] == 3
    assert ds["columns"] == ["ts", "open", "high", "low", "close"]
    assert ds["notes"] == ["no volume column: volume is missing"]
    assert client.get(f"/api/datasets/{ds['id']}", headers=alice.headers).json()["notes"] == [
        "no volume column: volume is missing"
    ]
    preview = client.get(f"/api/datasets/{ds['id']}/preview", headers=alice.headers).json()
    assert preview["columns"] == ds["columns"]
    assert preview["rows"][1][1:] == [101.0, 103.0, 100.0, 102.5]
    (stored,) = api_settings.datasets_dir.iterdir()
    frame = pd.read_parquet(stored)
    assert frame["volume"].isna().all() and frame["close"].tolist() == [101.0, 102.5, 103.0]
    # a dataset with volume carries no note
    with_volume = upload(client, alice, "btc", bars(3)).json()
    assert with_volume["notes"] == [] and with_volume["columns"][-1] == "volume"


@pytest.mark.parametrize("name", ["../x", "2024_bars", "has space", "dot.ted", "x" * 65, "é"])
def test_a_bad_dataset_name_is_refused_with_the_rule_in_words(
    client: TestClient, alice: Account, name: str
) -> None:
    r = upload(client, alice, name, bars(3))
    assert r.status_code == 422, r.text
    message = r.json()["detail"]["message"]
    assert message == (
        f"{name!r} is not a valid name. Dataset names use letters, digits, '_' and '-', start "
        "with a letter, at most 64 characters, e.g. goog_daily."
    )
    assert client.get("/api/datasets", headers=alice.headers).json()["total"] == 0


def test_a_taken_dataset_name_says_what_to_do(client: TestClient, alice: Account) -> None:
    assert upload(client, alice, "btc", bars(3)).status_code == 201
    r = upload(client, alice, "btc", bars(3))
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "You already have a dataset called 'btc'; add a version to it, choose another name or "
        "delete the old dataset first."
    )


# -- unknown dataset names (item 5) -----------------------------------------------------------


def test_an_unknown_dataset_is_a_validation_error_with_the_nearest_names(
    client: TestClient, alice: Account
) -> None:
    for name in ("goog_daily", "eurusd_1h", "btc"):
        assert upload(client, alice, name, bars(3)).status_code == 201
    src = source_reading("goog_dialy")
    body = client.post("/api/validate", json={"source": src}, headers=alice.headers).json()
    assert body["ok"] is False and body["ir"] is None
    (diag,) = [d for d in body["diagnostics"] if d["code"] == "AF209"]
    line = src.splitlines().index('data   = dataset_ohlcv(name="goog_dialy")') + 1
    col = src.splitlines()[line - 1].index('"goog_dialy"') + 1
    assert (diag["severity"], diag["line"], diag["col"]) == ("error", line, col)
    assert diag["end_col"] == col + len('"goog_dialy"')
    assert diag["message"] == 'no dataset named "goog_dialy"; did you mean `goog_daily`?'
    assert diag["suggestions"] == ["goog_daily"]
    assert "btc, eurusd_1h, goog_daily" in diag["hint"]
    compiled = client.post("/api/compile", json={"source": src}, headers=alice.headers)
    assert compiled.status_code == 422
    assert compiled.json()["detail"]["diagnostics"][0]["code"] == "AF209"
    # the known name validates; someone else's datasets do not count
    ok = client.post(
        "/api/validate", json={"source": source_reading("goog_daily")}, headers=alice.headers
    )
    assert ok.json()["ok"] is True


def test_a_pipeline_can_be_saved_before_its_dataset_exists(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """Saving keeps the work (the name is a warning there); validation and Run say error."""
    assert upload(client, bob, "goog_daily", bars(3)).status_code == 201
    src = source_reading("goog_daily")
    r = client.post("/api/pipelines", json={"name": "p", "source": src}, headers=alice.headers)
    assert r.status_code == 201, r.text
    assert r.json()["version"]["source"] == src
    body = client.post("/api/validate", json={"source": src}, headers=alice.headers).json()
    assert [d["code"] for d in body["diagnostics"] if d["severity"] == "error"] == ["AF209"]
    # Run refuses it up front, with the editor's diagnostic, and starts nothing
    run = client.post(f"/api/pipelines/{r.json()['id']}/runs", json={}, headers=alice.headers)
    assert run.status_code == 422, run.text
    (diag,) = run.json()["detail"]["diagnostics"]
    assert (diag["code"], diag["severity"]) == ("AF209", "error")
    assert diag["line"] == src.splitlines().index('data   = dataset_ohlcv(name="goog_daily")') + 1
    assert run.json()["detail"]["message"].startswith("the pipeline has 1 error(s); first at line")
    runs = client.get(f"/api/pipelines/{r.json()['id']}/runs", headers=alice.headers).json()
    assert runs["total"] == 0


# -- names, titles, duplicate (item 6) ---------------------------------------------------------


def test_titles_are_limited_to_120_characters(client: TestClient, alice: Account) -> None:
    src = source_reading("btc", "T" * 121).replace(
        'dataset_ohlcv(name="btc")', 'csv_ohlcv(path="data/sample_ohlcv.csv")'
    )
    r = client.post("/api/pipelines", json={"name": "long", "source": src}, headers=alice.headers)
    assert r.status_code == 422
    (diag,) = r.json()["detail"]["diagnostics"]
    assert diag["code"] == "AF011" and diag["line"] == 2
    assert diag["message"] == "the pipeline title is 121 characters long; the limit is 120"
    ok = client.post(
        "/api/pipelines",
        json={"name": "ok", "source": src.replace("T" * 121, "T" * 120)},
        headers=alice.headers,
    )
    assert ok.status_code == 201
    pid = ok.json()["id"]
    long = client.patch(
        f"/api/pipelines/{pid}", json={"name": "ok", "title": "x" * 2000}, headers=alice.headers
    )
    assert long.status_code == 422
    assert long.json()["detail"]["message"] == (
        "The title is 2000 characters long; the limit is 120. Shorten it."
    )


def test_rename_and_create_follow_the_same_rules_and_titles_stay_text(
    client: TestClient, alice: Account
) -> None:
    src = SAMPLE_SRC
    for bad, message in (
        (
            "a\nb",
            "The name must be one line of text without tabs or control characters, e.g. "
            "sma_crossover.",
        ),
        ("x" * 101, "The name is 101 characters long; the limit is 100. Shorten it."),
        ("   ", "The name is empty: type a name such as sma_crossover."),
    ):
        created = client.post(
            "/api/pipelines", json={"name": bad, "source": src}, headers=alice.headers
        )
        assert created.status_code == 422
        assert created.json()["detail"]["message"] == message
    pid = client.post(
        "/api/pipelines", json={"name": "mine", "source": src}, headers=alice.headers
    ).json()["id"]
    url = f"/api/pipelines/{pid}"
    for bad in ("a\nb", "x" * 101):
        renamed = client.patch(url, json={"name": bad}, headers=alice.headers)
        assert renamed.status_code == 422
        created = client.post(
            "/api/pipelines", json={"name": bad, "source": src}, headers=alice.headers
        )
        assert renamed.json()["detail"]["message"] == created.json()["detail"]["message"]
    title = 'My "best" <b>idea</b> \\ ok'
    r = client.patch(url, json={"name": "renamed", "title": title}, headers=alice.headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["name"], got["title"]) == ("renamed", title)  # text, stored as typed
    assert got["version"]["message"] == "Rename title"
    header = got["version"]["source"].splitlines()[1]
    assert header == f"pipeline sma_crossover {json.dumps(title)}"
    # only the header changed
    before = src.splitlines()
    after = got["version"]["source"].splitlines()
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [1]
    # the same title again adds no version
    same = client.patch(url, json={"name": "renamed", "title": title}, headers=alice.headers)
    assert same.json()["version"]["number"] == got["version"]["number"]


def test_duplicate_titles_the_copy_copy_then_copy_2(client: TestClient, alice: Account) -> None:
    src = source_reading("btc", "Trend").replace(
        'dataset_ohlcv(name="btc")', 'csv_ohlcv(path="data/sample_ohlcv.csv")'
    )
    pid = client.post(
        "/api/pipelines", json={"name": "trend", "source": src}, headers=alice.headers
    ).json()["id"]
    first = client.post(f"/api/pipelines/{pid}/fork", json={}, headers=alice.headers)
    assert first.status_code == 201, first.text
    assert (first.json()["name"], first.json()["title"]) == ("trend_copy", "Trend (copy)")
    second = client.post(f"/api/pipelines/{pid}/fork", json={}, headers=alice.headers).json()
    assert (second["name"], second["title"]) == ("trend_copy_2", "Trend (copy 2)")
    chosen = client.post(
        f"/api/pipelines/{pid}/fork", json={"name": "mine", "title": "Mine"}, headers=alice.headers
    ).json()
    assert (chosen["name"], chosen["title"]) == ("mine", "Mine")
    listed = client.get("/api/pipelines", headers=alice.headers).json()["items"]
    assert sorted(p["title"] for p in listed) == ["Mine", "Trend", "Trend (copy 2)", "Trend (copy)"]


# -- request errors in plain language (item 6) -------------------------------------------------


def test_a_bad_cron_says_what_is_wrong_and_gives_an_example(
    client: TestClient, alice: Account
) -> None:
    url = "/api/pipelines/1/schedules"
    cases = {
        "61 * * * *": "Cron expression '61 * * * *' is not valid: minute must be 0–59 (got '61'). "
        "Example: '0 9 * * 1-5' (09:00 on weekdays).",
        "0 9 * *": "Cron expression '0 9 * *' is not valid: it needs 5 fields (minute hour "
        "day-of-month month day-of-week), it has 4. Example: '0 9 * * 1-5' (09:00 on weekdays).",
        "0 25 * * *": "Cron expression '0 25 * * *' is not valid: hour must be 0–23 (got '25'). "
        "Example: '0 9 * * 1-5' (09:00 on weekdays).",
        "0 9 * * mon-fri/0": "Cron expression '0 9 * * mon-fri/0' is not valid: the step '0' of "
        "the day of week must be a whole number from 1. "
        "Example: '0 9 * * 1-5' (09:00 on weekdays).",
    }
    for cron, message in cases.items():
        r = client.post(url, json={"cron": cron}, headers=alice.headers)
        assert r.status_code == 422, cron
        assert r.json()["detail"]["message"] == message
    tz = client.post(
        url, json={"cron": "0 9 * * 1-5", "timezone": "Mars/Olympus"}, headers=alice.headers
    )
    assert tz.json()["detail"]["message"] == (
        "Time zone 'Mars/Olympus' is not known: use an IANA name such as 'Europe/London', "
        "'America/New_York' or 'UTC'."
    )


def _bad_requests(pid: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, request kwargs) of bad input to the main endpoints."""
    return [
        ("POST", "/api/pipelines", {"json": {}}),
        ("POST", "/api/pipelines", {"json": {"name": "x" * 300, "source": 5}}),
        (
            "POST",
            "/api/pipelines",
            {"json": {"name": "ok", "source": "pipeline p\n", "message": "\x00"}},
        ),
        (
            "POST",
            "/api/pipelines",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        ),
        ("PUT", f"/api/pipelines/{pid}", {"json": {"source": None}}),
        ("PATCH", f"/api/pipelines/{pid}", {"json": {"name": "tab\there"}}),
        ("PATCH", f"/api/pipelines/{pid}", {"json": {"name": "ok", "title": "a\nb"}}),
        ("POST", f"/api/pipelines/{pid}/fork", {"json": {"name": "x" * 101}}),
        ("GET", "/api/pipelines/abc", {}),
        ("GET", "/api/pipelines?limit=-1", {}),
        ("GET", f"/api/pipelines/{pid}/versions/0", {}),
        ("POST", f"/api/pipelines/{pid}/schedules", {"json": {"cron": "* *"}}),
        ("POST", f"/api/pipelines/{pid}/schedules", {"json": {"interval_seconds": 1}}),
        ("POST", f"/api/pipelines/{pid}/schedules", {"json": {"interval_seconds": "soon"}}),
        (
            "POST",
            f"/api/pipelines/{pid}/schedules",
            {"json": {"cron": "0 9 * * *", "interval_seconds": 60}},
        ),
        (
            "POST",
            "/api/datasets",
            {"data": {"name": "bad name"}, "files": {"file": ("a.csv", b"x")}},
        ),
        ("POST", "/api/datasets", {"data": {"name": "ok"}}),
        ("GET", "/api/datasets/1/preview?limit=5000", {}),
        ("POST", "/api/validate", {"json": {"source": ["not", "text"]}}),
        ("POST", "/api/compile", {"json": {}}),
        ("POST", "/api/custom-nodes", {"json": manifest(name="Bad-Name", version="1.2")}),
        ("POST", "/api/custom-nodes", {"json": manifest(inputs=[{"name": "x", "type": "nope"}])}),
        ("POST", "/api/custom-nodes", {"json": {"name": "x"}}),
        ("POST", "/api/users", {"json": {"username": "^bad^", "password": "x", "role": "boss"}}),
        ("POST", "/api/auth/login", {"data": {}}),
        ("GET", "/api/runs?limit=100000", {}),
    ]


def test_no_422_shows_a_regex_or_pydantic_wording(
    client: TestClient, alice: Account, admin: Account
) -> None:
    src = SMA.replace('dataset_ohlcv(name="btc")', 'csv_ohlcv(path="data/sample_ohlcv.csv")')
    pid = client.post(
        "/api/pipelines", json={"name": "sweep", "source": src}, headers=alice.headers
    ).json()["id"]
    seen = 0
    for method, path, kwargs in _bad_requests(pid):
        who = admin if path.startswith("/api/users") else alice
        headers = {**who.headers, **kwargs.pop("headers", {})}
        r = client.request(method, path, headers=headers, **kwargs)
        if r.status_code != 422:
            assert r.status_code in (400, 404, 409), (method, path, r.status_code, r.text)
            continue
        seen += 1
        text = r.text
        assert not FORBIDDEN.search(text), (method, path, text)
        detail = r.json()["detail"]
        message = detail if isinstance(detail, str) else detail["message"]
        assert re.match(r"^[A-Z'\"]", message) or message.startswith("invalid manifest"), message
        assert message.rstrip().endswith((".", ")", "?")), (method, path, message)
        for error in detail.get("errors", []) if isinstance(detail, dict) else []:
            assert error["msg"].endswith((".", ")")), error
    assert seen >= 20  # the sweep really met the validation of (almost) every request


# -- custom-node code checked on save (item 8, part) -------------------------------------------

PY_INDENT = "def run(inputs, params):\n    x = inputs['x']\n      return {'ema': x}\n"
JS_SYNTAX = "function run(inputs, params) {\n  const x = inputs.x;\n  return { ema: x ;\n}\n"
WAT_BAD = '(module\n  (func (export "run")\n    i32.const\n'


@pytest.mark.parametrize(
    ("language", "code", "line", "col", "words"),
    [
        (
            "python",
            PY_INDENT,
            3,
            6,
            "Python IndentationError at line 3, column 6: unexpected indent",
        ),
        (
            "javascript",
            JS_SYNTAX,
            3,
            19,
            "JavaScript SyntaxError: Unexpected token ';' at line 3, column 19",
        ),
        ("wasm", WAT_BAD, 4, 1, "the WebAssembly does not assemble at line 4, column 1"),
    ],
)
def test_code_with_a_syntax_error_is_not_saved(
    client: TestClient, alice: Account, language: str, code: str, line: int, col: int, words: str
) -> None:
    body = manifest(language=language, code=code)
    r = client.post("/api/custom-nodes", json=body, headers=alice.headers)
    assert r.status_code == 422, r.text
    errors = [e for e in r.json()["detail"]["errors"] if e["loc"] == ["code"]]
    assert len(errors) == 1, r.json()
    (error,) = errors
    assert (error["line"], error["col"]) == (line, col)
    assert error["msg"].startswith(words), error["msg"]
    assert client.get("/api/custom-nodes", headers=alice.headers).json()["total"] == 0
    # the same node with its code fixed is saved
    fixed = {
        "python": "def run(inputs, params):\n    x = inputs['x']\n    return {'ema': x}\n",
        "javascript": (
            "function run(inputs, params) {\n  const x = inputs.x;\n  return { ema: x };\n}\n"
            "module.exports = { run };\n"
        ),
    }
    if language in fixed:
        ok = client.post(
            "/api/custom-nodes",
            json=manifest(language=language, code=fixed[language]),
            headers=alice.headers,
        )
        assert ok.status_code == 201, ok.text


def test_a_new_version_with_broken_code_keeps_the_saved_one(
    client: TestClient, alice: Account
) -> None:
    created = client.post("/api/custom-nodes", json=manifest(), headers=alice.headers).json()
    url = f"/api/custom-nodes/{created['id']}"
    r = client.put(url, json=manifest(code=PY_INDENT), headers=alice.headers)
    assert r.status_code == 422
    assert client.get(url, headers=alice.headers).json()["version"]["version"] == "1.0.0"


def test_validation_of_a_pipeline_uses_its_owners_datasets(
    client: TestClient, alice: Account, bob: Account, admin: Account
) -> None:
    """An admin looking at alice's pipeline sees what a run of it resolves (alice's datasets);
    someone who may not see the pipeline gets 404, as for the pipeline itself."""
    assert upload(client, alice, "goog_daily", bars(3)).status_code == 201
    src = source_reading("goog_daily")
    pid = client.post(
        "/api/pipelines", json={"name": "p", "source": src}, headers=alice.headers
    ).json()["id"]

    def errors(who: Account, **extra: Any) -> Any:
        r = client.post("/api/validate", json={"source": src, **extra}, headers=who.headers)
        if r.status_code != 200:
            return r.status_code
        return [d["code"] for d in r.json()["diagnostics"] if d["severity"] == "error"]

    assert errors(admin) == ["AF209"]  # the admin has no dataset of that name
    assert errors(admin, pipeline_id=pid) == []
    assert errors(alice, pipeline_id=pid) == []
    assert errors(bob, pipeline_id=pid) == 404
    compiled = client.post(
        "/api/compile", json={"source": src, "pipeline_id": pid}, headers=admin.headers
    )
    assert compiled.status_code == 200, compiled.text
