"""Pipelines: versions, diff, restore, fork, rename, soft delete, names, DSL errors."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Account
from tests.api.sources import BROKEN, RSI, SMA, SMA_FASTER


def create(client: TestClient, who: Account, name: str = "sma", source: str = SMA) -> Any:
    r = client.post("/api/pipelines", json={"name": name, "source": source}, headers=who.headers)
    assert r.status_code == 201, r.text
    return r.json()


def versions(client: TestClient, who: Account, pid: int) -> list[dict[str, Any]]:
    r = client.get(f"/api/pipelines/{pid}/versions", headers=who.headers)
    assert r.status_code == 200
    return r.json()


@pytest.mark.sqlite_too
def test_create_stores_version_one_with_title_from_the_header(
    client: TestClient, alice: Account
) -> None:
    p = create(client, alice)
    assert p["name"] == "sma"
    assert p["title"] == "SMA Crossover"
    assert p["owner"] == "alice"
    v = p["version"]
    assert v["number"] == 1 and v["source"] == SMA and v["author"] == "alice"
    assert len(v["ir_hash"]) == 64
    assert v["created_at"].endswith("+00:00") or v["created_at"].endswith("Z")
    assert client.get(f"/api/pipelines/{p['id']}", headers=alice.headers).json() == p


def test_list_shows_summaries_and_pages(client: TestClient, alice: Account) -> None:
    for i in range(3):
        create(client, alice, f"p{i}")
    page = client.get("/api/pipelines?offset=1&limit=1", headers=alice.headers).json()
    assert page["total"] == 3
    assert len(page["items"]) == 1
    item = page["items"][0]
    assert set(item) == {
        "id", "name", "title", "owner", "created_at", "updated_at", "latest_version", "last_run",
        "can_edit", "can_manage",
    }  # fmt: skip
    assert item["latest_version"] == 1 and item["last_run"] is None
    assert item["can_edit"] is True and item["can_manage"] is True  # alice's own
    bad = client.get("/api/pipelines?limit=0", headers=alice.headers)
    assert bad.status_code == 422


@pytest.mark.sqlite_too
def test_duplicate_name_per_owner_is_a_conflict(
    client: TestClient, alice: Account, bob: Account
) -> None:
    create(client, alice)
    r = client.post("/api/pipelines", json={"name": "sma", "source": RSI}, headers=alice.headers)
    assert r.status_code == 409
    create(client, bob)  # another owner may use the same name


def test_dsl_errors_are_422_with_diagnostics(client: TestClient, alice: Account) -> None:
    r = client.post("/api/pipelines", json={"name": "x", "source": BROKEN}, headers=alice.headers)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "line 4" in detail["message"]
    (diag,) = [d for d in detail["diagnostics"] if d["severity"] == "error"]
    assert diag["code"] == "AF101"
    assert (diag["line"], diag["col"]) == (4, 8)
    assert diag["suggestions"] == ["sma"]
    assert client.get("/api/pipelines", headers=alice.headers).json()["total"] == 0


def test_oversized_source_never_reaches_the_parser(client: TestClient, alice: Account) -> None:
    source = SMA + "#" * 21_000 + "\n"
    r = client.post("/api/pipelines", json={"name": "x", "source": source}, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["detail"]["diagnostics"][0]["code"] == "AF002"


@pytest.mark.sqlite_too
def test_update_adds_an_immutable_version_and_unchanged_source_adds_none(
    client: TestClient, alice: Account
) -> None:
    p = create(client, alice)
    url = f"/api/pipelines/{p['id']}"
    r = client.put(url, json={"source": SMA_FASTER, "message": "faster"}, headers=alice.headers)
    assert r.status_code == 200
    assert r.json()["version"]["number"] == 2
    assert r.json()["title"] == "Faster SMA"
    same = client.put(url, json={"source": SMA_FASTER, "message": "again"}, headers=alice.headers)
    assert same.status_code == 200
    assert same.json()["version"]["number"] == 2
    history = versions(client, alice, p["id"])
    assert [v["number"] for v in history] == [2, 1]
    assert [v["message"] for v in history] == ["faster", "Initial version"]
    assert history[0]["ir_hash"] != history[1]["ir_hash"]
    v1 = client.get(f"{url}/versions/1", headers=alice.headers).json()
    assert v1["source"] == SMA and v1["author"] == "alice"


def test_update_with_errors_keeps_the_latest_version(client: TestClient, alice: Account) -> None:
    p = create(client, alice)
    r = client.put(f"/api/pipelines/{p['id']}", json={"source": BROKEN}, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["detail"]["diagnostics"]
    assert len(versions(client, alice, p["id"])) == 1


def test_comment_only_change_is_a_new_version_with_the_same_ir_hash(
    client: TestClient, alice: Account
) -> None:
    p = create(client, alice)
    r = client.put(
        f"/api/pipelines/{p['id']}", json={"source": "# note\n" + SMA}, headers=alice.headers
    )
    assert r.json()["version"]["number"] == 2
    assert r.json()["version"]["ir_hash"] == p["version"]["ir_hash"]


def test_missing_version_is_404(client: TestClient, alice: Account) -> None:
    p = create(client, alice)
    assert (
        client.get(f"/api/pipelines/{p['id']}/versions/7", headers=alice.headers).status_code == 404
    )
    r = client.post(f"/api/pipelines/{p['id']}/versions/7/restore", headers=alice.headers)
    assert r.status_code == 404


def test_diff_is_a_unified_diff_between_versions(client: TestClient, alice: Account) -> None:
    p = create(client, alice)
    client.put(f"/api/pipelines/{p['id']}", json={"source": SMA_FASTER}, headers=alice.headers)
    r = client.get(
        f"/api/pipelines/{p['id']}/diff?from_version=1&to_version=2", headers=alice.headers
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["from_version"], body["to_version"]) == (1, 2)
    lines = body["unified"].splitlines()
    assert lines[0] == "--- sma@v1" and lines[1] == "+++ sma@v2"
    assert "-fast   = sma(data.close, window=10)" in lines
    assert "+fast   = sma(data.close, window=5)" in lines
    same = client.get(
        f"/api/pipelines/{p['id']}/diff?from_version=2&to_version=2", headers=alice.headers
    )
    assert same.json()["unified"] == ""
    missing = client.get(
        f"/api/pipelines/{p['id']}/diff?from_version=1&to_version=9", headers=alice.headers
    )
    assert missing.status_code == 404
    no_params = client.get(f"/api/pipelines/{p['id']}/diff", headers=alice.headers)
    assert no_params.status_code == 422


@pytest.mark.sqlite_too
def test_restore_adds_a_version_with_the_old_source(client: TestClient, alice: Account) -> None:
    p = create(client, alice)
    url = f"/api/pipelines/{p['id']}"
    client.put(url, json={"source": SMA_FASTER}, headers=alice.headers)
    r = client.post(f"{url}/versions/1/restore", headers=alice.headers)
    assert r.status_code == 200
    v = r.json()["version"]
    assert v["number"] == 3
    assert v["source"] == SMA
    assert v["message"] == "Restore version 1"
    assert v["ir_hash"] == p["version"]["ir_hash"]
    assert r.json()["title"] == "SMA Crossover"
    again = client.post(f"{url}/versions/1/restore", headers=alice.headers)
    assert again.json()["version"]["number"] == 3  # already the latest source: nothing added


def test_fork_copies_the_latest_version_into_a_new_pipeline(
    client: TestClient, alice: Account
) -> None:
    p = create(client, alice)
    client.put(f"/api/pipelines/{p['id']}", json={"source": SMA_FASTER}, headers=alice.headers)
    r = client.post(f"/api/pipelines/{p['id']}/fork", json={"name": "mine"}, headers=alice.headers)
    assert r.status_code == 201
    fork = r.json()
    assert fork["id"] != p["id"] and fork["name"] == "mine"
    assert fork["version"]["number"] == 1
    # the copy's title says it is a copy (in its `pipeline` header, nothing else changed)
    assert fork["version"]["source"] == SMA_FASTER.replace('"Faster SMA"', '"Faster SMA (copy)"')
    assert fork["title"] == "Faster SMA (copy)"
    assert fork["version"]["message"] == "Fork of sma version 2"
    clash = client.post(
        f"/api/pipelines/{p['id']}/fork", json={"name": "sma"}, headers=alice.headers
    )
    assert clash.status_code == 409


def test_admin_forks_someone_elses_pipeline_as_their_own(
    client: TestClient, alice: Account, admin: Account
) -> None:
    p = create(client, alice)
    r = client.post(f"/api/pipelines/{p['id']}/fork", json={"name": "sma"}, headers=admin.headers)
    assert r.status_code == 201
    assert r.json()["owner"] == "root"


def test_rename_and_name_clash(client: TestClient, alice: Account) -> None:
    a = create(client, alice, "a")
    create(client, alice, "b", RSI)
    url = f"/api/pipelines/{a['id']}"
    assert client.patch(url, json={"name": "b"}, headers=alice.headers).status_code == 409
    r = client.patch(url, json={"name": "c"}, headers=alice.headers)
    assert r.status_code == 200 and r.json()["name"] == "c"
    assert client.patch(url, json={"name": "c"}, headers=alice.headers).status_code == 200
    assert client.patch(url, json={"name": ""}, headers=alice.headers).status_code == 422
    assert client.patch(url, json={"name": "a\x00b"}, headers=alice.headers).status_code == 422


@pytest.mark.sqlite_too
def test_soft_delete_hides_the_pipeline_and_frees_its_name(
    client: TestClient, alice: Account
) -> None:
    p = create(client, alice)
    url = f"/api/pipelines/{p['id']}"
    r = client.delete(url, headers=alice.headers)
    assert r.status_code == 204 and r.content == b""
    assert client.get(url, headers=alice.headers).status_code == 404
    assert client.get(f"{url}/versions", headers=alice.headers).status_code == 404
    assert client.put(url, json={"source": RSI}, headers=alice.headers).status_code == 404
    assert client.delete(url, headers=alice.headers).status_code == 404
    assert client.get("/api/pipelines", headers=alice.headers).json()["total"] == 0
    again = create(client, alice)  # the name is free again
    assert again["id"] != p["id"]
    r = client.patch(f"/api/pipelines/{again['id']}", json={"name": "sma"}, headers=alice.headers)
    assert r.status_code == 200


def test_someone_elses_pipeline_is_404_for_every_route(
    client: TestClient, alice: Account, bob: Account
) -> None:
    pid = create(client, alice)["id"]
    base = f"/api/pipelines/{pid}"
    calls = [
        ("get", base, None),
        ("put", base, {"source": RSI}),
        ("patch", base, {"name": "stolen"}),
        ("delete", base, None),
        ("get", f"{base}/versions", None),
        ("get", f"{base}/versions/1", None),
        ("get", f"{base}/diff?from_version=1&to_version=1", None),
        ("post", f"{base}/versions/1/restore", None),
        ("post", f"{base}/fork", {"name": "copy"}),
    ]
    for method, url, body in calls:
        kwargs = {"json": body} if body is not None else {}
        r = client.request(method.upper(), url, headers=bob.headers, **kwargs)
        assert r.status_code == 404, (method, url, r.status_code)
    assert client.get("/api/pipelines", headers=bob.headers).json()["total"] == 0
    assert client.get(base, headers=alice.headers).json()["version"]["number"] == 1


def test_observers_read_everything_and_write_nothing(
    client: TestClient, alice: Account, observer: Account
) -> None:
    pid = create(client, alice)["id"]
    base = f"/api/pipelines/{pid}"
    assert client.get(base, headers=observer.headers).status_code == 200
    assert client.get(f"{base}/versions", headers=observer.headers).status_code == 200
    assert client.get("/api/pipelines", headers=observer.headers).json()["total"] == 1
    writes = [
        ("POST", "/api/pipelines", {"name": "o", "source": SMA}),
        ("PUT", base, {"source": RSI}),
        ("PATCH", base, {"name": "renamed"}),
        ("DELETE", base, None),
        ("POST", f"{base}/versions/1/restore", None),
        ("POST", f"{base}/fork", {"name": "copy"}),
    ]
    for method, url, body in writes:
        kwargs = {"json": body} if body is not None else {}
        r = client.request(method, url, headers=observer.headers, **kwargs)
        assert r.status_code == 403, (method, url, r.status_code)
    assert len(versions(client, alice, pid)) == 1


def test_admin_sees_and_edits_everyones_pipelines(
    client: TestClient, alice: Account, admin: Account
) -> None:
    pid = create(client, alice)["id"]
    r = client.put(f"/api/pipelines/{pid}", json={"source": SMA_FASTER}, headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["owner"] == "alice"
    assert versions(client, alice, pid)[0]["author"] == "root"


def test_every_change_is_audited(client: TestClient, alice: Account, admin: Account) -> None:
    pid = create(client, alice)["id"]
    base = f"/api/pipelines/{pid}"
    client.put(base, json={"source": SMA_FASTER}, headers=alice.headers)
    client.post(f"{base}/versions/1/restore", headers=alice.headers)
    client.post(f"{base}/fork", json={"name": "copy"}, headers=alice.headers)
    client.patch(base, json={"name": "renamed"}, headers=alice.headers)
    client.delete(base, headers=alice.headers)
    events = client.get("/api/audit?limit=50", headers=admin.headers).json()["items"]
    actions = [e["action"] for e in events if e["actor"] == "alice"]
    assert actions == [
        "pipeline.delete",
        "pipeline.rename",
        "pipeline.fork",
        "pipeline.restore",
        "pipeline.update",
        "pipeline.create",
    ]
    restore = next(e for e in events if e["action"] == "pipeline.restore")
    assert restore["object_id"] == str(pid)
    assert restore["detail"] == {"restored": 1, "version": 3}


def test_ids_out_of_range_are_422_not_500(client: TestClient, alice: Account) -> None:
    huge = 2**40
    assert client.get(f"/api/pipelines/{huge}", headers=alice.headers).status_code == 422
    assert client.get("/api/pipelines/0", headers=alice.headers).status_code == 422
    r = client.get(f"/api/pipelines/1/versions/{huge}", headers=alice.headers)
    assert r.status_code == 422
    assert client.get(f"/api/datasets/{huge}", headers=alice.headers).status_code == 422
    body = {"kind": "pipeline", "target_id": huge}
    assert client.post("/api/shares", json=body, headers=alice.headers).status_code == 422


@pytest.mark.sqlite_too
def test_list_shows_each_pipelines_newest_run_without_a_query_per_pipeline(
    client: TestClient, alice: Account
) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import event
    from sqlmodel import Session

    from api.models.run import Run

    engine = client.app.state.engine  # type: ignore[attr-defined]
    ids = [create(client, alice, f"p{i}")["id"] for i in range(3)]
    t0 = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)

    def run(pid: int, n: int, status: str, **kw: Any) -> Run:
        return Run(
            pipeline_id=pid, version=1, owner_id=alice.id, run_key=f"k{pid}-{n}", ir_hash="h",
            status=status, created_at=t0 + timedelta(minutes=n), **kw,
        )  # fmt: skip

    metrics = {"sharpe": 1.5, "total_return": 0.2, "max_drawdown": -0.1, "num_trades": 7}
    with Session(engine) as session:
        session.add(run(ids[0], 1, "completed", metrics_json=json.dumps(metrics)))
        session.add(run(ids[2], 2, "completed", metrics_json=json.dumps(metrics)))
        session.add(run(ids[0], 3, "running", started_at=t0 + timedelta(minutes=3)))
        session.add(run(ids[2], 4, "failed", finished_at=t0 + timedelta(minutes=5)))
        session.commit()

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        listed = client.get("/api/pipelines", headers=alice.headers).json()["items"]
        few = len(statements)
        for i in range(3, 8):
            pid = create(client, alice, f"p{i}")["id"]
            with Session(engine) as session:
                session.add(run(pid, 10 + i, "completed"))
                session.commit()
        statements.clear()
        many = client.get("/api/pipelines", headers=alice.headers).json()["items"]
        assert len(statements) == few, statements  # 8 pipelines cost what 3 did
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(many) == 8 and all(p["last_run"] for p in many if p["name"] != "p1")

    last = {p["id"]: p["last_run"] for p in listed}
    assert last[ids[1]] is None
    newest_of_0 = last[ids[0]]
    assert newest_of_0["pipeline_id"] == ids[0] and newest_of_0["status"] == "running"
    assert newest_of_0["trigger"] == "manual" and newest_of_0["metrics"] is None
    assert newest_of_0["started_at"].startswith("2026-01-02T09:03")
    assert set(newest_of_0) == {
        "id", "pipeline_id", "pipeline_name", "pipeline_title", "version", "status", "trigger",
        "created_at", "started_at", "finished_at", "metrics",
    }  # fmt: skip
    assert newest_of_0["pipeline_name"] == "p0"
    newest_of_2 = last[ids[2]]
    assert newest_of_2["status"] == "failed" and newest_of_2["finished_at"] is not None
    runs = client.get(f"/api/pipelines/{ids[2]}/runs", headers=alice.headers).json()["items"]
    assert newest_of_2 == runs[0]  # the same summary the pipeline's run list shows first
