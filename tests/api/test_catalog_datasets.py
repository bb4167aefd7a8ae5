"""Datasets in the catalog through the API: uploads become versions, versions and candles are
listed, compile resolves `dataset(...)` over what the owner may read, and a run's spec pins the
exact version."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.services import runs as run_service
from api.settings import ApiSettings
from tests.api.conftest import Account

HEADER = "timestamp,open,high,low,close,volume\n"


def bars(n: int = 5, shift: float = 0.0) -> str:
    rows = [
        f"2024-01-{d:02d},{100 + d + shift},{102 + d + shift},{99 + d + shift},"
        f"{101 + d + shift},{1000 * d}\n"
        for d in range(1, n + 1)
    ]
    return HEADER + "".join(rows)


def panel_csv() -> str:
    lines = ["ts,symbol,open,high,low,close,volume\n"]
    for d in range(1, 4):
        for sym, base in (("AAA", 10.0), ("BBB", 50.0)):
            p = base + d
            lines.append(f"2024-02-{d:02d},{sym},{p},{p + 1},{p - 1},{p + 0.5},{d * 10}\n")
    return "".join(lines)


def upload(client: TestClient, who: Account, name: str, csv: str, **form: str) -> Any:
    return client.post(
        "/api/datasets",
        data={"name": name, **form},
        files={"file": ("bars.csv", csv.encode(), "text/csv")},
        headers=who.headers,
    )


def add_version(client: TestClient, who: Account, ds_id: int, csv: str, **form: str) -> Any:
    return client.post(
        f"/api/datasets/{ds_id}/versions",
        data=form,
        files={"file": ("new.csv", csv.encode(), "text/csv")},
        headers=who.headers,
    )


def validate(client: TestClient, who: Account, source: str) -> dict[str, Any]:
    r = client.post("/api/validate", json={"source": source}, headers=who.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_an_upload_is_a_catalog_version_with_its_symbol_and_report(
    client: TestClient, alice: Account
) -> None:
    r = upload(client, alice, "goog", bars(5), symbol="GOOG")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert len(ds["version"]) == 64 and ds["symbols"] == ["GOOG"] and ds["versions"] == 1
    versions = client.get(f"/api/datasets/{ds['id']}/versions", headers=alice.headers).json()
    assert [v["version"] for v in versions] == [ds["version"]]
    (v,) = versions
    assert v["latest"] is True and v["rows"] == 5 and v["message"] == "uploaded bars.csv"
    assert [(s["symbol"], s["rows"]) for s in v["symbols"]] == [("GOOG", 5)]
    detail = client.get(
        f"/api/datasets/{ds['id']}/versions/{ds['version'][:8]}", headers=alice.headers
    ).json()
    assert detail["version"] == ds["version"] and detail["report"]
    # the report names the file as the user did, never the server's spool path
    assert "datasets" not in json.dumps(detail["report"]) and "bars.csv" in json.dumps(detail)


def test_a_new_file_is_a_new_version_the_same_file_is_the_same(
    client: TestClient, alice: Account
) -> None:
    ds = upload(client, alice, "goog", bars(5)).json()
    same = add_version(client, alice, ds["id"], bars(5))
    assert same.status_code == 201, same.text
    assert same.json()["version"] == ds["version"] and same.json()["versions"] == 1
    new = add_version(client, alice, ds["id"], bars(6, shift=1.0), message="more bars").json()
    assert new["version"] != ds["version"] and new["versions"] == 2 and new["rows"] == 6
    versions = client.get(f"/api/datasets/{ds['id']}/versions", headers=alice.headers).json()
    assert [v["version"] for v in versions] == [new["version"], ds["version"]]
    assert [v["latest"] for v in versions] == [True, False]
    assert versions[0]["message"] == "more bars"


def test_bad_data_adds_no_version(client: TestClient, alice: Account) -> None:
    ds = upload(client, alice, "goog", bars(5)).json()
    bad = add_version(client, alice, ds["id"], bars(4).replace("2024-01-03,", "nope,"))
    assert bad.status_code == 422
    assert bad.json()["detail"]["kind"] == "UNPARSEABLE_TIMESTAMP"
    assert bad.json()["detail"]["row"] == 4
    after = client.get(f"/api/datasets/{ds['id']}", headers=alice.headers).json()
    assert after["version"] == ds["version"] and after["versions"] == 1


def test_candles_of_one_symbol_read_pruned_and_cut_to_the_last_bars(
    client: TestClient, alice: Account
) -> None:
    r = upload(client, alice, "pair", panel_csv())
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["symbols"] == ["AAA", "BBB"]
    r = client.get(
        f"/api/datasets/{ds['id']}/candles?symbol=BBB&limit=2", headers=alice.headers
    ).json()
    assert r["symbol"] == "BBB" and r["truncated"] is True
    assert r["close"] == [52.5, 53.5] and r["open"] == [52.0, 53.0]
    assert r["t"] == [1706832000, 1706918400]  # 2024-02-02 and -03, UTC
    cut = client.get(
        f"/api/datasets/{ds['id']}/candles?symbol=AAA&end=2024-02-01T23:00:00Z",
        headers=alice.headers,
    ).json()
    assert cut["close"] == [11.5] and cut["truncated"] is False
    missing = client.get(f"/api/datasets/{ds['id']}/candles?symbol=AAB", headers=alice.headers)
    assert missing.status_code == 404 and "AAA" in missing.json()["detail"]


def test_compile_resolves_dataset_references_over_the_owners_datasets(
    client: TestClient, alice: Account, bob: Account
) -> None:
    ds = upload(client, alice, "goog", bars(5)).json()
    src = 'pipeline p\ndata = dataset("goog")\nfast = sma(data.close, window=2)\n'
    ok = validate(client, alice, src)
    assert ok["ok"] is True
    assert ok["ir"]["nodes"][0]["params"]["version"] == ds["version"]
    # bob may not read alice's dataset: the name is unknown to him
    refused = validate(client, bob, src)
    assert [d["code"] for d in refused["diagnostics"]] == ["AF212"]
    prefix = validate(client, alice, src.replace('"goog"', f'"goog@{ds["version"][:8]}"'))
    assert prefix["ir"]["nodes"][0]["params"]["version"] == ds["version"]
    unknown = validate(client, alice, src.replace('"goog"', '"goog@ffffff"'))
    assert [d["code"] for d in unknown["diagnostics"]] == ["AF212"]


def test_a_run_spec_pins_floating_names_to_the_latest_and_keeps_pinned_ones(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    ds = upload(client, alice, "goog", bars(5)).json()
    src = (
        'pipeline p\nold = dataset("goog@{v}")\nnew = dataset("goog")\n'
        "a = sma(old.close, window=2)\nb = sma(new.close, window=2)\n"
    ).format(v=ds["version"][:10])
    compiled = validate(client, alice, src)
    ir_json = json.dumps(compiled["ir"])
    newer = add_version(client, alice, ds["id"], bars(6, shift=2.0)).json()
    from api.db import make_engine

    with Session(make_engine(api_settings.db_url)) as session:
        spec = run_service.run_spec(session, api_settings, alice.id, ir_json, "r1")
    assert spec.ir.node("old").params["version"] == ds["version"]
    assert spec.ir.node("new").params["version"] == newer["version"]
    assert spec.catalog_namespace == f"u{alice.id}"
    assert spec.catalog_url == api_settings.catalog_location
    assert spec.catalog_follow == {}  # a web run: pinned now, executed right away
    with Session(make_engine(api_settings.db_url)) as session:
        scheduled = run_service.run_spec(
            session, api_settings, alice.id, ir_json, None, trigger="schedule"
        )
    # a schedule's spec is made once: its runs move the floating step to the latest then
    assert scheduled.catalog_follow == {"new": f"u{alice.id}/goog"}


@pytest.mark.sqlite_too
def test_names_imported_from_the_cli_into_a_users_namespace_are_listed(
    client: TestClient, alice: Account, api_settings: ApiSettings, tmp_path: Any
) -> None:
    from api.services.catalog import catalog_of, namespace_of

    path = tmp_path / "MSFT.csv"
    path.write_text(bars(3))
    info = catalog_of(api_settings).import_files(namespace_of(alice.id), "imported", [path])
    listed = client.get("/api/datasets", headers=alice.headers).json()["items"]
    assert [(d["name"], d["version"], d["symbols"]) for d in listed] == [
        ("imported", info.version, ["MSFT"])
    ]
    preview = client.get(f"/api/datasets/{listed[0]['id']}/preview", headers=alice.headers)
    assert preview.status_code == 200 and len(preview.json()["rows"]) == 3
    # a catalog-only dataset is not a dataset_ohlcv file
    src = 'pipeline p\ndata = dataset_ohlcv(name="imported")\nx = sma(data.close, window=2)\n'
    assert "AF209" in [d["code"] for d in validate(client, alice, src)["diagnostics"]]


def test_shared_datasets_resolve_for_team_members_and_observers_cannot_add_versions(
    client: TestClient, admin: Account, alice: Account, bob: Account, observer: Account
) -> None:
    from tests.api.test_teams import grant, team

    team_id = team(client, admin, "quants", bob, observer)
    ds = upload(client, alice, "goog", bars(5)).json()
    grant(client, alice, "dataset", ds["id"], team_id, "read")
    src = 'pipeline p\ndata = dataset("goog")\nfast = sma(data.close, window=2)\n'
    assert validate(client, bob, src)["ir"]["nodes"][0]["params"]["version"] == ds["version"]
    assert (
        client.get(f"/api/datasets/{ds['id']}/versions", headers=observer.headers).status_code
        == 200
    )
    assert add_version(client, bob, ds["id"], bars(6)).status_code == 403
    assert add_version(client, observer, ds["id"], bars(6)).status_code == 403


def test_a_symbol_for_a_file_with_a_symbol_column_is_refused_and_nothing_is_kept(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    r = upload(client, alice, "pair", panel_csv(), symbol="XYZ")
    assert r.status_code == 422
    assert r.json()["detail"]["kind"] == "SYMBOL_CONFLICT"
    assert "bars.csv" in r.json()["detail"]["message"]
    assert client.get("/api/datasets", headers=alice.headers).json()["total"] == 0
    assert not [p for p in api_settings.datasets_dir.iterdir() if not p.name.startswith(".")]
    assert not any(api_settings.datasets_dir.glob(".import-*"))
