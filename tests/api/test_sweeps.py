"""Sweeps over the API, read from sweep directories written from the contract (no Prefect):
who may see, start, cancel and resume; 422 without a sweep block; trials sorted and paged; the
heatmap; the out-of-sample curve; a crashed sweep's status."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.models.sweep import Sweep
from tests.api.conftest import Account
from tests.api.sweep_dirs import SAMPLE, SWEPT, grid, sharpe_of, write_sweep


def _pipeline(client: TestClient, who: Account, name: str, source: str) -> int:
    resp = client.post("/api/pipelines", json={"name": name, "source": source}, headers=who.headers)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _stored_sweep(client: TestClient, owner: Account, pipeline_id: int, key: str, **kw) -> int:
    """A sweep row of ``owner``'s pipeline and its directory (as the flow would write it)."""
    settings = client.app.state.settings  # type: ignore[attr-defined]
    write_sweep(settings.store_root, key, **kw)
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = Sweep(
            sweep_key=key,
            pipeline_id=pipeline_id,
            version=1,
            owner_id=owner.id,
            started_by_id=owner.id,
            status=kw.get("status", "completed"),
            method="grid",
            objective="maximize result.sharpe",
            walkforward=kw.get("walkforward", False),
            ir_hash="0" * 64,
        )
        session.add(row)
        session.commit()
        return row.id or 0


@pytest.fixture
def swept(client: TestClient, alice: Account) -> tuple[int, int]:
    """Alice's swept pipeline and a finished sweep of it: (pipeline id, sweep id)."""
    pid = _pipeline(client, alice, "sma_sweep", SWEPT)
    return pid, _stored_sweep(client, alice, pid, "20261205-120000-000-aaaaaa")


def test_observers_may_not_start_a_sweep(
    client: TestClient, alice: Account, observer: Account
) -> None:
    pid = _pipeline(client, alice, "sma_sweep", SWEPT)
    resp = client.post(f"/api/pipelines/{pid}/sweeps", json={}, headers=observer.headers)
    assert resp.status_code == 403
    assert resp.json()["detail"].startswith("Observers can read but not change anything")


def test_a_version_without_a_sweep_block_is_422_with_a_sentence(
    client: TestClient, alice: Account
) -> None:
    pid = _pipeline(client, alice, "plain", SAMPLE)
    resp = client.post(f"/api/pipelines/{pid}/sweeps", json={}, headers=alice.headers)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "has no sweep block" in detail and detail.endswith(".")


def test_another_users_pipeline_cannot_be_swept(
    client: TestClient, alice: Account, bob: Account
) -> None:
    pid = _pipeline(client, alice, "sma_sweep", SWEPT)
    assert client.post(f"/api/pipelines/{pid}/sweeps", headers=bob.headers).status_code == 404


def test_without_prefect_a_sweep_does_not_start_and_says_why(
    client: TestClient, alice: Account
) -> None:
    pid = _pipeline(client, alice, "sma_sweep", SWEPT)
    resp = client.post(f"/api/pipelines/{pid}/sweeps", json={}, headers=alice.headers)
    assert resp.status_code == 503
    assert "Prefect" in resp.json()["detail"]


def test_who_sees_a_sweep(
    client: TestClient,
    alice: Account,
    bob: Account,
    observer: Account,
    admin: Account,
    swept: tuple[int, int],
) -> None:
    _, sid = swept
    for who in (alice, observer, admin):
        resp = client.get(f"/api/sweeps/{sid}", headers=who.headers)
        assert resp.status_code == 200, resp.text
        assert client.get("/api/sweeps", headers=who.headers).json()["total"] == 1
    assert client.get(f"/api/sweeps/{sid}", headers=bob.headers).status_code == 404
    assert client.get(f"/api/sweeps/{sid}/trials", headers=bob.headers).status_code == 404
    assert client.get("/api/sweeps", headers=bob.headers).json() == {"items": [], "total": 0}


def test_observers_and_strangers_may_not_cancel_resume_or_open_trials(
    client: TestClient, bob: Account, observer: Account, swept: tuple[int, int]
) -> None:
    _, sid = swept
    for path in (f"/api/sweeps/{sid}/cancel", f"/api/sweeps/{sid}/resume",
                 f"/api/sweeps/{sid}/trials/1/run"):  # fmt: skip
        assert client.post(path, headers=observer.headers).status_code == 403
        assert client.post(path, headers=bob.headers).status_code == 404


def test_the_sweep_page_has_the_record_and_the_best_trial(
    client: TestClient, alice: Account, swept: tuple[int, int]
) -> None:
    _, sid = swept
    body = client.get(f"/api/sweeps/{sid}", headers=alice.headers).json()
    assert body["status"] == "completed"
    assert body["params"] == ["fast.window", "slow.window"]
    assert body["n_trials"] == len(grid()) and body["done"] == len(grid())
    assert body["best_objective"] == sharpe_of(10, 50)
    assert body["record"]["best"]["params"] == {"fast.window": 10, "slow.window": 50}
    assert body["record"]["overfit"]["deflated_sharpe"] == pytest.approx(0.41)
    assert body["record"]["overfit"]["warning"]
    assert body["eta_s"] is None


def test_trials_are_sorted_and_paged(
    client: TestClient, alice: Account, swept: tuple[int, int]
) -> None:
    _, sid = swept
    url = f"/api/sweeps/{sid}/trials"
    page = client.get(url, params={"sort": "objective", "order": "desc", "limit": 3},
                      headers=alice.headers).json()  # fmt: skip
    assert page["total"] == len(grid())
    objectives = [t["objective"] for t in page["items"]]
    assert objectives == sorted(objectives, reverse=True) and len(objectives) == 3
    assert page["items"][0]["params"] == {"fast.window": 10, "slow.window": 50}
    assert {"fast.window", "slow.window", "sharpe", "max_drawdown"} <= set(page["columns"])
    # the failed trial (no objective) sorts last in either order
    last = client.get(url, params={"sort": "objective", "order": "asc", "offset": len(grid()) - 1},
                      headers=alice.headers).json()  # fmt: skip
    assert last["items"][0]["status"] == "failed" and last["items"][0]["objective"] is None
    by_param = client.get(url, params={"sort": "slow.window", "order": "desc", "limit": 50},
                          headers=alice.headers).json()  # fmt: skip
    slows = [t["params"]["slow.window"] for t in by_param["items"]]
    assert slows == sorted(slows, reverse=True)
    by_metric = client.get(url, params={"sort": "num_trades", "offset": 2, "limit": 2},
                           headers=alice.headers).json()  # fmt: skip
    assert [t["metrics"]["num_trades"] for t in by_metric["items"]] == [42.0, 44.0]


def test_sorting_by_an_unknown_column_is_a_sentence(
    client: TestClient, alice: Account, swept: tuple[int, int]
) -> None:
    _, sid = swept
    resp = client.get(f"/api/sweeps/{sid}/trials?sort=nope", headers=alice.headers)
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith("The trials cannot be sorted by 'nope'")


def test_the_heatmap_has_a_cell_per_param_pair_and_nulls_where_no_trial_ran(
    client: TestClient, alice: Account, swept: tuple[int, int]
) -> None:
    _, sid = swept
    resp = client.get(f"/api/sweeps/{sid}/heatmap",
                      params={"x": "fast.window", "y": "slow.window", "metric": "total_return"},
                      headers=alice.headers)  # fmt: skip
    assert resp.status_code == 200, resp.text
    hm = resp.json()
    assert hm["x"] == [5, 10, 20, 40] and hm["y"] == [30, 50, 100, 200]
    cell = hm["cells"][hm["y"].index(50)][hm["x"].index(10)]
    trial = next(i for i, p in enumerate(grid()) if p == {"fast.window": 10, "slow.window": 50})
    assert cell == {"value": pytest.approx(sharpe_of(10, 50) / 10), "trial": trial, "fold": None}
    empty = {"value": None, "trial": None, "fold": None}
    assert hm["cells"][hm["y"].index(30)][hm["x"].index(40)] == empty
    assert hm["max"] == pytest.approx(sharpe_of(10, 50) / 10)
    bad = client.get(f"/api/sweeps/{sid}/heatmap", params={"x": "fast.window", "y": "x.y"},
                     headers=alice.headers)  # fmt: skip
    assert bad.status_code == 422 and "not a swept parameter" in bad.json()["detail"]


def test_the_walkforward_sweep_has_folds_and_an_out_of_sample_curve(
    client: TestClient, alice: Account
) -> None:
    pid = _pipeline(client, alice, "sma_sweep", SWEPT)
    sid = _stored_sweep(client, alice, pid, "20261205-120000-000-bbbbbb", walkforward=True)
    body = client.get(f"/api/sweeps/{sid}", headers=alice.headers).json()
    assert len(body["record"]["folds"]) == 3 and body["record"]["walkforward_efficiency"] == 0.62
    every = client.get(f"/api/sweeps/{sid}/trials", headers=alice.headers).json()
    assert every["total"] == 3 * len(grid())
    fold1 = client.get(f"/api/sweeps/{sid}/trials?fold=1&sort=objective&order=desc",
                       headers=alice.headers).json()  # fmt: skip
    assert fold1["total"] == len(grid()) and {t["fold"] for t in fold1["items"]} == {1}
    assert fold1["items"][0]["objective"] == pytest.approx(sharpe_of(10, 50) + 0.1)
    hm = client.get(f"/api/sweeps/{sid}/heatmap?x=fast.window&y=slow.window&fold=2",
                    headers=alice.headers).json()  # fmt: skip
    assert hm["max"] == pytest.approx(sharpe_of(10, 50) + 0.2)
    oos = client.get(f"/api/sweeps/{sid}/oos-equity", headers=alice.headers).json()
    assert len(oos["points"]) == 375 and {p["fold"] for p in oos["points"]} == {0, 1, 2}


def test_a_sweep_never_handed_to_prefect_is_not_running_forever(
    client: TestClient, alice: Account, swept: tuple[int, int]
) -> None:
    """The record says running, the row has no flow run and Prefect is not configured: the
    stored state stands (no Prefect: nothing can be told)."""
    pid, _ = swept
    sid = _stored_sweep(client, alice, pid, "20261205-120000-000-cccccc", status="running", done=4)
    body = client.get(f"/api/sweeps/{sid}", headers=alice.headers).json()
    assert body["status"] == "running"
    assert body["record"]["done"] == 4


def test_a_trial_that_did_not_run_cannot_be_opened(
    client: TestClient, alice: Account, swept: tuple[int, int]
) -> None:
    _, sid = swept
    resp = client.post(f"/api/sweeps/{sid}/trials/999/run", headers=alice.headers)
    assert resp.status_code == 404 and "trial 999" in resp.json()["detail"]


def test_a_resume_is_not_ended_by_the_status_sync_reading_the_last_attempts_flow_run(
    client: TestClient, alice: Account, swept: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The status sync may pass between the resume's commit (the row pending again) and the
    new flow run's: it must not read the cancelled last attempt's flow run as the new one's
    end (a CI run once saw a resumed sweep end "cancelled" at once while its flow ran on)."""
    from uuid import uuid4

    from prefect.client.schemas.objects import FlowRun
    from prefect.states import Cancelled

    from api.services import sweep_sync, sweeps
    from dsl.compiler import compile_or_raise
    from flows.spec import RunSpec
    from flows.sweepspec import SweepSpec, sweep_dir

    pid, _ = swept
    ended = Cancelled(message="Flow run was cancelled successfully.")
    old = FlowRun(id=uuid4(), flow_id=uuid4(), state=ended)
    key = "20261205-120000-000-dddddd"
    sid = _stored_sweep(client, alice, pid, key, status="cancelled", done=4,
                        flow_run_id=str(old.id))  # fmt: skip
    engine = client.app.state.engine  # type: ignore[attr-defined]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    run = RunSpec(ir=compile_or_raise(SWEPT), base_dir=".", trigger="sweep")
    spec = SweepSpec(sweep_id=key, run=run, executor="pool", workers=1)
    (sweep_dir(settings.store_root, key) / "spec.json").write_text(json.dumps(spec.to_json()))
    with Session(engine) as session:
        row = session.get(Sweep, sid)
        assert row is not None
        row.prefect_flow_run_id = str(old.id)
        session.add(row)
        session.commit()

    def read_live(
        _client: object, _key: str, flow_run_id: str | None, _settings: object, _now: object
    ) -> object:
        return old if flow_run_id == str(old.id) else None

    seen: list[tuple[str, str | None]] = []
    new = FlowRun(id=uuid4(), flow_id=uuid4())

    def create(*_args: object, **_kw: object) -> FlowRun:
        with Session(engine) as other:  # the status loop, in between the two commits
            sweep_sync.sync_active(other, None, settings)  # type: ignore[arg-type]
            row = other.get(Sweep, sid)
            assert row is not None
            seen.append((row.status, row.error))
        return new

    monkeypatch.setattr(sweep_sync, "_live", read_live)
    monkeypatch.setattr(sweeps, "create_flow_run", create)

    resumed = client.post(f"/api/sweeps/{sid}/resume", headers=alice.headers)
    assert resumed.status_code == 202, resumed.text
    assert seen == [("pending", None)], seen
    with Session(engine) as session:
        row = session.get(Sweep, sid)
        assert row is not None
        assert (row.status, row.prefect_flow_run_id) == ("pending", str(new.id))
