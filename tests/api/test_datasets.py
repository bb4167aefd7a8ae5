"""Datasets: CSV upload validated at the door, Parquet under generated keys, preview, delete."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.services.datasets import dataset_paths
from api.settings import ApiSettings
from tests.api.conftest import Account

HEADER = "timestamp,open,high,low,close,volume\n"


def bars(n: int = 5) -> str:
    rows = [
        f"2024-01-{day:02d},{100 + day},{102 + day},{99 + day},{101 + day},{1000 * day}\n"
        for day in range(1, n + 1)
    ]
    return HEADER + "".join(rows)


def upload(
    client: TestClient, who: Account, name: str, csv: str | bytes, filename: str = "bars.csv"
) -> Any:
    data = csv.encode() if isinstance(csv, str) else csv
    return client.post(
        "/api/datasets",
        data={"name": name},
        files={"file": (filename, data, "text/csv")},
        headers=who.headers,
    )


@pytest.mark.sqlite_too
def test_upload_stores_validated_parquet_under_a_generated_key(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    csv = bars(5)
    r = upload(client, alice, "btc", csv, filename="../../etc/evil.csv")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["name"] == "btc" and ds["rows"] == 5
    assert ds["columns"] == ["ts", "open", "high", "low", "close", "volume"]
    assert ds["start"].startswith("2024-01-01T00:00:00")
    assert ds["end"].startswith("2024-01-05T00:00:00")
    assert ds["sha256"] == hashlib.sha256(csv.encode()).hexdigest()
    stored = list(api_settings.datasets_dir.iterdir())
    assert len(stored) == 1
    assert stored[0].suffix == ".parquet" and "evil" not in stored[0].name
    frame = pd.read_parquet(stored[0])
    assert list(frame["close"]) == [102.0, 103.0, 104.0, 105.0, 106.0]
    assert client.get(f"/api/datasets/{ds['id']}", headers=alice.headers).json() == ds
    assert client.get("/api/datasets", headers=alice.headers).json() == {"items": [ds], "total": 1}


def test_preview_returns_the_first_rows(client: TestClient, alice: Account) -> None:
    ds = upload(client, alice, "btc", bars(5)).json()
    r = client.get(f"/api/datasets/{ds['id']}/preview?limit=2", headers=alice.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["columns"] == ds["columns"]
    assert len(body["rows"]) == 2
    assert body["rows"][0][0].startswith("2024-01-01T00:00:00")
    assert body["rows"][0][1:] == [101.0, 103.0, 100.0, 102.0, 1000.0]
    big = client.get(f"/api/datasets/{ds['id']}/preview?limit=5000", headers=alice.headers)
    assert big.status_code == 422


@pytest.mark.parametrize(
    ("csv", "kind", "row"),
    [
        (bars(3).replace("2024-01-02,", "yesterday,"), "UNPARSEABLE_TIMESTAMP", 3),
        (bars(4).replace(",105,102,", ",97,102,"), "HIGH_BELOW_LOW", 4),
        (bars(3).replace("2024-01-03", "2024-01-01"), "UNSORTED", 4),
        (bars(3).replace(",1000\n", ",-5\n"), "NEGATIVE_VOLUME", 2),
        ("timestamp,open,high,low\n2024-01-01,1,2,0.5\n", "MISSING_COLUMNS", None),
        (HEADER, "EMPTY", None),
    ],
)
def test_invalid_csv_is_422_with_kind_and_row(
    client: TestClient, alice: Account, csv: str, kind: str, row: int | None
) -> None:
    r = upload(client, alice, "bad", csv)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert (detail["kind"], detail["row"]) == (kind, row)
    assert kind in detail["message"]
    assert client.get("/api/datasets", headers=alice.headers).json()["total"] == 0


def test_upload_over_the_limit_is_413(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    csv = bars(5) * (api_settings.max_upload_bytes // len(bars(5)) + 1)
    assert api_settings.max_upload_bytes < len(csv) < api_settings.max_upload_bytes + 1024
    r = upload(client, alice, "huge", csv)
    assert r.status_code == 413
    assert not api_settings.datasets_dir.exists() or not any(api_settings.datasets_dir.iterdir())


def test_duplicate_and_invalid_names(client: TestClient, alice: Account) -> None:
    assert upload(client, alice, "btc", bars()).status_code == 201
    assert upload(client, alice, "btc", bars()).status_code == 409
    assert upload(client, alice, "../x", bars()).status_code == 422
    assert upload(client, alice, "", bars()).status_code == 422


@pytest.mark.sqlite_too
def test_delete_hides_the_dataset_and_frees_its_name(client: TestClient, alice: Account) -> None:
    ds = upload(client, alice, "btc", bars()).json()
    url = f"/api/datasets/{ds['id']}"
    assert client.delete(url, headers=alice.headers).status_code == 204
    assert client.get(url, headers=alice.headers).status_code == 404
    assert client.get(f"{url}/preview", headers=alice.headers).status_code == 404
    assert client.delete(url, headers=alice.headers).status_code == 404
    assert upload(client, alice, "btc", bars()).status_code == 201


def test_someone_elses_dataset_is_404(client: TestClient, alice: Account, bob: Account) -> None:
    ds = upload(client, alice, "btc", bars()).json()
    url = f"/api/datasets/{ds['id']}"
    for method, path in (("GET", url), ("GET", f"{url}/preview"), ("DELETE", url)):
        assert client.request(method, path, headers=bob.headers).status_code == 404
    assert client.get("/api/datasets", headers=bob.headers).json()["total"] == 0
    assert upload(client, bob, "btc", bars()).status_code == 201  # names are per owner


def test_observers_read_datasets_but_cannot_upload_or_delete(
    client: TestClient, alice: Account, observer: Account
) -> None:
    ds = upload(client, alice, "btc", bars()).json()
    assert client.get(f"/api/datasets/{ds['id']}", headers=observer.headers).status_code == 200
    assert upload(client, observer, "mine", bars()).status_code == 403
    r = client.delete(f"/api/datasets/{ds['id']}", headers=observer.headers)
    assert r.status_code == 403


def test_dataset_paths_map_an_owners_names_to_parquet_files(
    client: TestClient, alice: Account, bob: Account, api_settings: ApiSettings
) -> None:
    upload(client, alice, "btc", bars())
    eth = upload(client, alice, "eth", bars()).json()
    upload(client, bob, "sol", bars())
    client.delete(f"/api/datasets/{eth['id']}", headers=alice.headers)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        paths = dataset_paths(session, api_settings, alice.id)
    assert set(paths) == {"btc"}
    assert isinstance(paths["btc"], Path) and paths["btc"].is_file()
    assert paths["btc"].parent == api_settings.datasets_dir
