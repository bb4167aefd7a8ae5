"""Custom nodes in pipelines: ``use`` resolution in every compile, in-use protection, the
catalog, AF407, and the manifests a run start publishes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.models.run import Run
from api.settings import ApiSettings
from dsl.ir import PipelineIR
from tests.api.conftest import Account
from tests.api.custom_node_helpers import (
    EMA_CODE,
    create_node,
    pipeline_using,
    save_node,
    verdicts,
)

__all__ = ["verdicts"]
pytestmark = pytest.mark.usefixtures("verdicts")


def _pipeline(client: TestClient, who: Account, source: str, name: str = "p") -> dict[str, Any]:
    resp = client.post("/api/pipelines", json={"name": name, "source": source}, headers=who.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _ir(client: TestClient, who: Account, source: str) -> PipelineIR:
    resp = client.post("/api/compile", json={"source": source}, headers=who.headers)
    assert resp.status_code == 200, resp.text
    return PipelineIR.model_validate(resp.json())


@pytest.mark.sqlite_too
def test_a_pipeline_using_a_custom_node_compiles_with_runtime_and_code_hash(
    client: TestClient, alice: Account
) -> None:
    node = create_node(client, alice)
    source = pipeline_using("1")
    checked = client.post("/api/validate", json={"source": source}, headers=alice.headers).json()
    assert checked["ok"], checked["diagnostics"]
    ir = _ir(client, alice, source)
    e = ir.node("e")
    assert (e.type, e.version, e.runtime) == ("my_ema", "1.0.0", "python")
    assert e.code_hash == node["version"]["code_hash"]
    assert e.params == {"span": 5}
    (pin,) = ir.uses
    assert (pin.name, pin.requested, pin.version) == ("my_ema", "1", "1.0.0")
    saved = _pipeline(client, alice, source)
    assert saved["version"]["ir_hash"] == ir.content_hash()


def test_resolution_takes_the_highest_match_and_says_which_versions_exist(
    client: TestClient, alice: Account
) -> None:
    nid = create_node(client, alice)["id"]
    for version in ("1.1.0", "1.1.5", "2.0.0-beta.1", "2.0.0"):
        save_node(client, alice, nid, code=EMA_CODE + f"# {version}\n", version=version)
    expect = {"1": "1.1.5", "^1.1": "1.1.5", "~1.0": "1.0.0", "=1.1.0": "1.1.0", "2": "2.0.0",
              "^2.0.0-beta.0": "2.0.0", "=2.0.0-beta.1": "2.0.0-beta.1"}  # fmt: skip
    for spec, version in expect.items():
        assert _ir(client, alice, pipeline_using(spec)).node("e").version == version, spec
    resp = client.post("/api/validate", json={"source": pipeline_using("3")}, headers=alice.headers)
    (diag,) = [d for d in resp.json()["diagnostics"] if d["severity"] == "error"]
    assert diag["code"] == "AF401" and diag["line"] == 3
    assert "versions: 1.0.0, 1.1.0, 1.1.5, 2.0.0-beta.1, 2.0.0" in diag["message"]


def test_unknown_nodes_and_other_owners_nodes_do_not_resolve(
    client: TestClient, alice: Account, bob: Account
) -> None:
    create_node(client, alice)
    resp = client.post("/api/pipelines", json={"name": "p", "source": pipeline_using("1")},
                       headers=bob.headers)  # fmt: skip
    assert resp.status_code == 422
    (diag,) = [d for d in resp.json()["detail"]["diagnostics"] if d["severity"] == "error"]
    assert diag["code"] == "AF401" and "no custom node called 'my_ema'" in diag["message"]
    typo = pipeline_using("1").replace("my_ema", "my_emma")
    resp = client.post("/api/validate", json={"source": typo}, headers=alice.headers).json()
    assert any("did you mean 'my_ema'" in d["message"] for d in resp["diagnostics"])


def test_every_save_path_resolves_over_the_owner_s_nodes(
    client: TestClient, alice: Account, bob: Account, admin: Account
) -> None:
    nid = create_node(client, alice)["id"]
    p = _pipeline(client, alice, pipeline_using("1"))
    # an admin editing alice's pipeline resolves over alice's nodes, not the admin's
    edited = client.put(f"/api/pipelines/{p['id']}", headers=admin.headers,
                        json={"source": pipeline_using("1") + "# edited\n"})  # fmt: skip
    assert edited.status_code == 200, edited.text
    restored = client.post(f"/api/pipelines/{p['id']}/versions/1/restore", headers=alice.headers)
    assert restored.status_code == 200 and restored.json()["version"]["number"] == 3
    # a fork belongs to the caller: the admin has no my_ema, so their copy does not compile
    fork = client.post(f"/api/pipelines/{p['id']}/fork", json={"name": "f"}, headers=admin.headers)
    assert fork.status_code == 422
    assert fork.json()["detail"]["diagnostics"][0]["code"] == "AF401"
    save_node(client, alice, nid, code=EMA_CODE + "# 1.0.1\n")
    mine = client.post(f"/api/pipelines/{p['id']}/fork", json={"name": "f"}, headers=alice.headers)
    assert mine.status_code == 201
    ir = client.get(f"/api/pipelines/{mine.json()['id']}", headers=alice.headers).json()
    assert ir["version"]["message"].startswith("Fork of p")


def test_saving_an_unchanged_source_re_resolves_its_pins(
    client: TestClient, alice: Account
) -> None:
    nid = create_node(client, alice)["id"]
    source = pipeline_using("1")
    p = _pipeline(client, alice, source)
    url = f"/api/pipelines/{p['id']}"
    same = client.put(url, json={"source": source}, headers=alice.headers).json()
    assert same["version"]["number"] == 1
    save_node(client, alice, nid, code=EMA_CODE + "# 1.0.1\n")
    again = client.put(url, json={"source": source}, headers=alice.headers).json()
    assert again["version"]["number"] == 2
    assert again["version"]["message"] == "Re-resolve custom node versions"
    assert (
        client.put(url, json={"source": source}, headers=alice.headers).json()["version"]["number"]
        == 2
    )


@pytest.mark.sqlite_too
def test_a_version_in_use_cannot_be_deleted(client: TestClient, alice: Account) -> None:
    nid = create_node(client, alice)["id"]
    save_node(client, alice, nid, code=EMA_CODE + "# 1.0.1\n")
    p = _pipeline(client, alice, pipeline_using("=1.0.0"), name="pinned")
    v = client.get(f"/api/custom-nodes/{nid}/versions/1.0.0", headers=alice.headers).json()
    assert v["in_use_by"] == [{"pipeline_id": p["id"], "pipeline_name": "pinned"}]
    listed = client.get(f"/api/custom-nodes/{nid}/versions", headers=alice.headers).json()
    assert [x["in_use_by"] for x in listed] == [[], v["in_use_by"]]
    resp = client.delete(f"/api/custom-nodes/{nid}/versions/1.0.0", headers=alice.headers)
    assert resp.status_code == 409 and "pipeline 'pinned'" in resp.json()["detail"]
    whole = client.delete(f"/api/custom-nodes/{nid}", headers=alice.headers)
    assert whole.status_code == 409 and "1.0.0" in whole.json()["detail"]
    # the pipeline's latest version moves to 1.0.1: 1.0.0 is free, 1.0.1 taken
    client.put(f"/api/pipelines/{p['id']}", json={"source": pipeline_using("=1.0.1")},
               headers=alice.headers)  # fmt: skip
    assert (
        client.delete(f"/api/custom-nodes/{nid}/versions/1.0.0", headers=alice.headers).status_code
        == 204
    )
    assert (
        client.delete(f"/api/custom-nodes/{nid}/versions/1.0.1", headers=alice.headers).status_code
        == 409
    )
    # a deleted pipeline uses nothing
    assert client.delete(f"/api/pipelines/{p['id']}", headers=alice.headers).status_code == 204
    assert client.delete(f"/api/custom-nodes/{nid}", headers=alice.headers).status_code == 204


def test_a_pending_or_running_run_keeps_its_version_in_use(
    client: TestClient, alice: Account
) -> None:
    nid = create_node(client, alice)["id"]
    p = _pipeline(client, alice, pipeline_using("=1.0.0"))
    save_node(client, alice, nid, code=EMA_CODE + "# 1.0.1\n")
    client.put(f"/api/pipelines/{p['id']}", json={"source": pipeline_using("=1.0.1")},
               headers=alice.headers)  # fmt: skip
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        run = Run(pipeline_id=p["id"], version=1, owner_id=alice.id, run_key="r-use",
                  ir_hash="h", status="running")  # fmt: skip
        session.add(run)
        session.commit()
        run_id = run.id
    resp = client.delete(f"/api/custom-nodes/{nid}/versions/1.0.0", headers=alice.headers)
    assert resp.status_code == 409 and f"run {run_id} (running)" in resp.json()["detail"]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        stored = session.get(Run, run_id)
        assert stored is not None
        stored.status = "completed"
        session.add(stored)
        session.commit()
    assert (
        client.delete(f"/api/custom-nodes/{nid}/versions/1.0.0", headers=alice.headers).status_code
        == 204
    )


def test_a_failed_look_ahead_is_an_af407_warning_at_the_use_line(
    client: TestClient, alice: Account, verdicts: dict[str, dict[str, Any]]
) -> None:
    verdicts[EMA_CODE] = {"status": "fail", "message": "output 'ema' differs at row 12"}
    node = create_node(client, alice)
    assert node["version"]["lookahead"]["status"] == "fail"
    resp = client.post("/api/validate", json={"source": pipeline_using("1")}, headers=alice.headers)
    body = resp.json()
    assert body["ok"] is True
    (warning,) = [d for d in body["diagnostics"] if d["code"] == "AF407"]
    assert warning["severity"] == "warning" and warning["line"] == 3
    assert warning["message"] == (
        "my_ema@1.0.0 failed the look-ahead check: output 'ema' differs at row 12"
    )
    listed = client.get("/api/custom-nodes", headers=alice.headers).json()["items"]
    assert listed[0]["lookahead_status"] == "fail"


def test_the_catalog_merges_the_caller_s_custom_nodes(
    client: TestClient, alice: Account, bob: Account
) -> None:
    nid = create_node(client, alice)["id"]
    save_node(client, alice, nid, code=EMA_CODE + "# 1.0.1\n")
    catalog = client.get("/api/nodes", headers=alice.headers).json()
    builtin = next(n for n in catalog if n["name"] == "sma")
    assert builtin["custom"] is False and builtin["use"] is None and builtin["runtime"] == "builtin"
    (mine,) = [n for n in catalog if n["custom"]]
    assert (mine["name"], mine["version"], mine["runtime"], mine["use"]) == (
        "my_ema", "1.0.1", "python", "my_ema@1.0.1",
    )  # fmt: skip
    assert mine["inputs"][0]["type"] == "series" and mine["outputs"][0]["name"] == "ema"
    assert mine["params_schema"]["properties"]["span"]["default"] == 10
    assert not [n for n in client.get("/api/nodes", headers=bob.headers).json() if n["custom"]]


def test_run_start_publishes_the_pinned_manifests_to_the_store(
    client: TestClient, alice: Account, admin: Account, api_settings: ApiSettings
) -> None:
    node = create_node(client, alice)
    p = _pipeline(client, alice, pipeline_using("1"))
    store = api_settings.root / "custom-nodes"
    stored = store / f"{node['version']['code_hash']}.json"
    stored.unlink()  # as on a worker whose data dir never saw the save
    api_settings.prefect_api_url = "http://127.0.0.1:9/api"  # nothing listens: the start fails
    resp = client.post(f"/api/pipelines/{p['id']}/runs", json={}, headers=alice.headers)
    assert resp.status_code == 503
    assert stored.is_file() and '"my_ema"' in stored.read_text()
    audit = client.get("/api/audit?action=run.create", headers=admin.headers).json()["items"]
    assert audit[0]["detail"]["custom_nodes"] == ["my_ema@1.0.0"]  # who ran what code


def test_run_start_refuses_a_version_whose_pinned_node_was_deleted(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    nid = create_node(client, alice)["id"]
    p = _pipeline(client, alice, pipeline_using("=1.0.0"))
    save_node(client, alice, nid, code=EMA_CODE + "# 1.0.1\n")
    client.put(f"/api/pipelines/{p['id']}", json={"source": pipeline_using("=1.0.1")},
               headers=alice.headers)  # fmt: skip
    assert (
        client.delete(f"/api/custom-nodes/{nid}/versions/1.0.0", headers=alice.headers).status_code
        == 204
    )
    api_settings.prefect_api_url = "http://127.0.0.1:9/api"
    resp = client.post(f"/api/pipelines/{p['id']}/runs", json={"version": 1}, headers=alice.headers)
    assert resp.status_code == 409
    assert "has been deleted" in resp.json()["detail"] and "version 1" in resp.json()["detail"]
