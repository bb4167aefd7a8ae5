"""Tick (order-book) datasets through the API: imported into a user's namespace (as
`alphaforge ticks import --owner` does), listed with kind "ticks", their versions with a summary
whose figures come from the events themselves, and candles / preview / a CSV version refused
with a 422 that says why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from nodes import ticks
from nodes.synthbook import BookSpec, generate
from tests.api.conftest import Account
from tests.api.test_catalog_datasets import add_version, bars, upload, validate


def _import_book(api_settings: ApiSettings, owner_id: int, name: str) -> tuple[Any, np.ndarray]:
    from api.services.catalog import catalog_of, namespace_of

    events = generate(BookSpec(seed=5, symbol="SYN", duration_s=30.0))
    info = catalog_of(api_settings).import_ticks(
        namespace_of(owner_id), name, {"SYN": events}, message="30 s of book"
    )
    return info, np.asarray(events)


@pytest.mark.sqlite_too
def test_a_tick_dataset_is_listed_as_ticks_with_a_summary_of_its_events(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    info, events = _import_book(api_settings, alice.id, "book")
    assert upload(client, alice, "goog", bars(3)).status_code == 201
    listed = {
        d["name"]: d for d in client.get("/api/datasets", headers=alice.headers).json()["items"]
    }
    assert (listed["book"]["kind"], listed["goog"]["kind"]) == ("ticks", "bars")
    assert listed["book"]["version"] == info.version and listed["book"]["symbols"] == ["SYN"]

    ds_id = listed["book"]["id"]
    (version,) = client.get(f"/api/datasets/{ds_id}/versions", headers=alice.headers).json()
    assert version["kind"] == "ticks" and version["latest"] is True
    summary = version["ticks"]
    kinds = events["ev"] & ticks.KIND_MASK
    priced = kinds != ticks.DEPTH_CLEAR_EVENT
    (sym,) = summary["symbols"]
    assert summary["events"] == len(events) == version["rows"]
    assert sym["trades"] == int((kinds == ticks.TRADE_EVENT).sum())
    assert sym["depth"] == len(events) - sym["trades"]
    assert (sym["px_min"], sym["px_max"]) == (
        float(events["px"][priced].min()),
        float(events["px"][priced].max()),
    )
    assert (sym["tick_size"], sym["lot_size"]) == (0.01, 0.1)
    assert sym["start"].startswith("2024-01-01T00:00:00")
    assert sym["end"].startswith("2024-01-01T00:00:29")

    detail = client.get(f"/api/datasets/{ds_id}/versions/{info.version[:8]}", headers=alice.headers)
    assert detail.status_code == 200 and detail.json()["ticks"] == summary
    (bar_version,) = client.get(
        f"/api/datasets/{listed['goog']['id']}/versions", headers=alice.headers
    ).json()
    assert bar_version["kind"] == "bars" and bar_version["ticks"] is None


def test_candles_preview_and_a_csv_version_of_a_tick_dataset_are_refused(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    info, _ = _import_book(api_settings, alice.id, "book")
    (ds,) = client.get("/api/datasets", headers=alice.headers).json()["items"]
    candles = client.get(f"/api/datasets/{ds['id']}/candles?symbol=SYN", headers=alice.headers)
    assert candles.status_code == 422
    said = candles.json()["detail"]
    assert "holds order-book events (ticks), not bars: it has no candles" in said
    assert f'tick_data("book@{info.short()}")' in said
    preview = client.get(f"/api/datasets/{ds['id']}/preview", headers=alice.headers)
    assert preview.status_code == 422 and "no preview rows" in preview.json()["detail"]
    added = add_version(client, alice, ds["id"], bars(3))
    assert added.status_code == 422
    assert "alphaforge ticks import" in str(added.json()["detail"])
    again = client.get(f"/api/datasets/{ds['id']}/versions", headers=alice.headers).json()
    assert [v["version"] for v in again] == [info.version]


def test_the_editor_pins_tick_data_to_the_owners_tick_dataset(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    info, _ = _import_book(api_settings, alice.id, "book")
    client.get("/api/datasets", headers=alice.headers)  # the list adopts the CLI-imported name
    ok = validate(client, alice, 'pipeline p\nb = tick_data("book", symbol="SYN")\n')
    assert ok["ok"] is True, ok["diagnostics"]
    assert ok["ir"]["nodes"][0]["params"]["version"] == info.version
    wrong = validate(client, alice, 'pipeline p\nd = dataset("book")\nx = sma(d.close, window=2)\n')
    assert [d["code"] for d in wrong["diagnostics"]] == ["AF212"]
    assert "holds order-book events (ticks), not bars" in wrong["diagnostics"][0]["message"]
