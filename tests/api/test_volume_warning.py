"""Issue 9's leftover: a pipeline that reads `.volume` of a dataset stored without volume gets a
warning (AF210) with line and column where the editor validates (saving is never blocked by it);
a dataset with volume, or a price column, gets none."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import Account
from tests.api.test_datasets import bars, upload
from tests.api.test_editor_rules import NO_VOLUME

SOURCE = (
    'pipeline vol "Volume filter"\n\n'
    'data   = dataset_ohlcv(name="{name}")\n'
    "avg    = sma(data.volume, window=2)\n"
    "fast   = sma(data.close, window=2)\n"
    "slow   = sma(data.close, window=3)\n"
    "sig    = crossover(fast, slow)\n"
    "result = backtest(data, sig)\n"
)


def _af210(client: TestClient, who: Account, name: str) -> tuple[bool, list[dict]]:
    body = client.post(
        "/api/validate", json={"source": SOURCE.format(name=name)}, headers=who.headers
    ).json()
    return body["ok"], [d for d in body["diagnostics"] if d["code"] == "AF210"]


def test_reading_volume_of_a_dataset_without_volume_is_a_warning_at_the_reference(
    client: TestClient, alice: Account
) -> None:
    assert upload(client, alice, "goog_daily", NO_VOLUME).status_code == 201
    assert upload(client, alice, "btc", bars(5)).status_code == 201
    ok, (warning,) = _af210(client, alice, "goog_daily")
    assert ok is True  # a warning: the pipeline still compiles and can be saved
    line = SOURCE.splitlines().index("avg    = sma(data.volume, window=2)") + 1
    assert (warning["severity"], warning["line"], warning["col"]) == ("warning", line, 14)
    assert warning["end_col"] == 14 + len("data.volume")
    assert warning["message"] == (
        '`data.volume`: the dataset "goog_daily" has no volume column (its volume is missing), '
        "so this step will fail when the pipeline runs"
    )
    assert "data.close" in warning["hint"]
    # the same dataset without `.volume`, and a dataset with volume: no warning
    ok, found = _af210(client, alice, "btc")
    assert ok is True and found == []
    src = SOURCE.format(name="goog_daily").replace("data.volume", "data.close")
    body = client.post("/api/validate", json={"source": src}, headers=alice.headers).json()
    assert [d for d in body["diagnostics"] if d["code"] == "AF210"] == []
    # a warning never blocks saving
    saved = client.post(
        "/api/pipelines",
        json={"name": "vol", "source": SOURCE.format(name="goog_daily")},
        headers=alice.headers,
    )
    assert saved.status_code == 201, saved.text
