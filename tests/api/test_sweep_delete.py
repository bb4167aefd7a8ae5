"""``DELETE /api/sweeps/{id}``: who may (the owner or an admin; observers 403, others 404, a team
member who may run the pipeline 403), never while it runs (409), what goes (the row, the sweep's
directory, its Optuna studies) and what stays (runs opened from its trials, other sweeps'
files and studies, the audit log)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.models.audit import AuditEvent
from api.models.run import Run
from api.models.sweep import Sweep
from api.services.sweep_delete import optuna_studies_of
from api.services.sweeps import optuna_storage
from tests.api.conftest import Account
from tests.api.sweep_dirs import SWEPT, write_sweep
from tests.api.test_teams import grant, team

KEY = "20261205-120000-000-dddddd"
OTHER = "20261205-120000-000-eeeeee"


def _pipeline(client: TestClient, who: Account) -> int:
    resp = client.post("/api/pipelines", json={"name": "sma_sweep", "source": SWEPT},
                       headers=who.headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _sweep(client: TestClient, owner: Account, pid: int, key: str, **kw: str) -> int:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    status = kw.get("status", "completed")
    write_sweep(settings.store_root, key, status=status, walkforward=True)
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = Sweep(
            sweep_key=key,
            pipeline_id=pid,
            version=1,
            owner_id=owner.id,
            started_by_id=owner.id,
            status=status,
            method=kw.get("method", "grid"),
            objective="maximize result.sharpe",
            walkforward=True,
            ir_hash="0" * 64,
        )
        session.add(row)
        session.commit()
        return row.id or 0


def _trial_run(client: TestClient, owner: Account, pid: int, sid: int) -> int:
    """A finished run opened from trial 5 of fold 1 of the sweep (as ``run_trial`` stores it)."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        run = Run(
            pipeline_id=pid,
            version=1,
            owner_id=owner.id,
            started_by_id=owner.id,
            trigger="manual",
            status="completed",
            run_key="r-from-trial",
            ir_hash="0" * 64,
            sweep_id=sid,
            sweep_trial=5,
            sweep_fold=1,
        )
        session.add(run)
        session.commit()
        return run.id or 0


def _folder(client: TestClient, key: str) -> Path:
    return client.app.state.settings.store_root / "sweeps" / key  # type: ignore[attr-defined]


def test_only_the_owner_or_an_admin_may_delete_a_sweep(
    client: TestClient, alice: Account, bob: Account, observer: Account, admin: Account,
    make_user: Callable[..., Account],
) -> None:  # fmt: skip
    pid = _pipeline(client, alice)
    sid = _sweep(client, alice, pid, KEY)
    assert client.delete(f"/api/sweeps/{sid}", headers=observer.headers).status_code == 403
    assert client.delete(f"/api/sweeps/{sid}", headers=bob.headers).status_code == 404
    # carol may run alice's pipeline through a team, but the sweep is not hers to delete
    carol = make_user(username="carol")
    assert grant(client, alice, "pipeline", pid, team(client, admin, "t", carol), "edit").is_success
    assert client.get(f"/api/sweeps/{sid}", headers=carol.headers).status_code == 200
    resp = client.delete(f"/api/sweeps/{sid}", headers=carol.headers)
    assert resp.status_code == 403
    assert resp.json()["detail"] == "Only the owner of this sweep or an admin can delete it."
    assert _folder(client, KEY).is_dir()
    assert client.get(f"/api/sweeps/{sid}", headers=alice.headers).status_code == 200
    # an admin may; then it is gone for everyone
    assert client.delete(f"/api/sweeps/{sid}", headers=admin.headers).status_code == 204
    assert client.get(f"/api/sweeps/{sid}", headers=alice.headers).status_code == 404
    assert client.delete(f"/api/sweeps/{sid}", headers=admin.headers).status_code == 404


def test_the_owner_deletes_the_row_and_the_files_and_nothing_else(
    client: TestClient, alice: Account
) -> None:
    pid = _pipeline(client, alice)
    sid = _sweep(client, alice, pid, KEY)
    other = _sweep(client, alice, pid, OTHER)
    folder = _folder(client, KEY)
    assert (folder / "sweep.json").is_file() and (folder / "oos_equity.parquet").is_file()
    assert list((folder / "trials").glob("*.jsonl"))
    resp = client.delete(f"/api/sweeps/{sid}", headers=alice.headers)
    assert resp.status_code == 204 and resp.content == b""
    assert not folder.exists()
    assert [p.name for p in folder.parent.iterdir()] == [OTHER]  # nothing set aside is left
    listed = client.get("/api/sweeps", headers=alice.headers).json()
    assert [s["id"] for s in listed["items"]] == [other]
    assert client.get(f"/api/sweeps/{other}/trials", headers=alice.headers).json()["total"] > 0
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert session.get(Sweep, sid) is None
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "sweep.delete")).all()
        assert [e.object_id for e in events] == [str(sid)]


def test_a_running_or_pending_sweep_is_not_deleted(client: TestClient, alice: Account) -> None:
    pid = _pipeline(client, alice)
    for n, status in enumerate(("running", "pending")):
        key = f"20261205-120000-000-{n}fffff"
        sid = _sweep(client, alice, pid, key, status=status)
        resp = client.delete(f"/api/sweeps/{sid}", headers=alice.headers)
        assert resp.status_code == 409, resp.text
        assert resp.json()["detail"] == (
            f"This sweep is still {status}: cancel it first (or let it finish), then delete it."
        )
        assert (_folder(client, key) / "sweep.json").is_file()
        assert client.get(f"/api/sweeps/{sid}", headers=alice.headers).status_code == 200


def test_runs_opened_from_its_trials_survive_without_the_link(
    client: TestClient, alice: Account
) -> None:
    pid = _pipeline(client, alice)
    sid = _sweep(client, alice, pid, KEY)
    run_id = _trial_run(client, alice, pid, sid)
    before = client.get(f"/api/runs/{run_id}", headers=alice.headers).json()
    assert before["sweep"] == {"sweep_id": sid, "trial": 5, "fold": 1}
    assert client.delete(f"/api/sweeps/{sid}", headers=alice.headers).status_code == 204
    after = client.get(f"/api/runs/{run_id}", headers=alice.headers)
    assert after.status_code == 200, after.text
    assert after.json()["sweep"] is None
    assert {k: v for k, v in after.json().items() if k != "sweep"} == {
        k: v for k, v in before.items() if k != "sweep"
    }
    assert client.get(f"/api/pipelines/{pid}/runs", headers=alice.headers).json()["total"] == 1
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        run = session.get(Run, run_id)
        assert run is not None and (run.sweep_id, run.sweep_trial, run.sweep_fold) == (None, 5, 1)


@pytest.mark.sqlite_too
def test_an_optuna_sweeps_studies_go_and_other_sweeps_studies_stay(
    client: TestClient, alice: Account, backend: str
) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    url = optuna_storage(settings)  # PostgreSQL: the optuna schema; SQLite: the store's file
    if backend == "sqlite":
        assert url is None
        (settings.store_root / "sweeps").mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{settings.store_root / 'sweeps' / 'optuna.db'}"
    assert url is not None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mine = [f"{KEY}-fold0", f"{KEY}-fold1", f"{KEY}-fold2"]
    for name in [*mine, OTHER, f"{KEY}x"]:
        study = optuna.create_study(study_name=name, storage=url, direction="maximize")
        study.optimize(lambda t: float(t.suggest_int("fast.window", 2, 40)), n_trials=2)
    pid = _pipeline(client, alice)
    sid = _sweep(client, alice, pid, KEY, method="optuna")
    assert client.delete(f"/api/sweeps/{sid}", headers=alice.headers).status_code == 204
    left = set(optuna.get_all_study_names(storage=url))
    assert not left & set(mine)
    assert {OTHER, f"{KEY}x"} <= left
    assert len(optuna.load_study(study_name=OTHER, storage=url).trials) == 2


def test_a_sweeps_study_names_are_its_key_and_its_folds() -> None:
    names = [KEY, f"{KEY}-fold0", f"{KEY}-fold12", f"{KEY}-fold", f"{KEY}x", OTHER, f"x{KEY}"]
    assert optuna_studies_of(names, KEY) == [KEY, f"{KEY}-fold0", f"{KEY}-fold12"]
