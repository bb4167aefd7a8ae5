"""Deployed stream pipelines through the API (``/api/streams``): deploy from text or from a
saved pipeline (a text that does not compile is a 422 with the diagnostics' lines and
columns), start, stop, a new text and delete with the instances' permissions (observers see,
developers act on their own, admins on all), and the engine's work seen through it (status,
who runs it, last events, sink health) with the stream reconciler on the same database."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from live.leases import engine_id_for
from live.stream.reconciler import StreamReconciler
from live.stream.store import StreamStore
from tests.api.conftest import Account
from tests.deployments.fixtures import wait_for
from tests.live.stream_deploy_support import folder as data_folder

TEXT = """pipeline api_signals

data = csv_ohlcv(path="data/sample_ohlcv.csv")
fast = sma(data.close, window=5)

stream {
    source = replay(speed=50, start=100)
    emit fast.value to csv_append(path="out/fast.csv")
}
"""


def _deploy(client: TestClient, who: Account, **body: object) -> dict:
    resp = client.post("/api/streams", json={"text": TEXT} | body, headers=who.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_deploy_refuses_what_does_not_compile_with_line_and_column(
    client: TestClient, alice: Account
) -> None:
    bad = TEXT.replace("sma(", "smaa(")
    resp = client.post("/api/streams", json={"text": bad}, headers=alice.headers)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    (first, *_) = [d for d in detail["diagnostics"] if d["severity"] == "error"]
    assert (first["line"], first["col"]) == (4, 8) and "smaa" in first["message"]
    assert "first at 4:8" in detail["message"]
    batch = 'pipeline batch\ndata = csv_ohlcv(path="data/x.csv")\n'
    resp = client.post("/api/streams", json={"text": batch}, headers=alice.headers)
    assert resp.status_code == 422 and "no stream" in resp.json()["detail"]
    both = client.post("/api/streams", json={"text": TEXT, "pipeline_id": 1},
                       headers=alice.headers)  # fmt: skip
    assert both.status_code == 422
    assert client.get("/api/streams", headers=alice.headers).json() == []


def test_a_saved_pipeline_is_deployed_and_names_are_unique_per_owner(
    client: TestClient, alice: Account, bob: Account
) -> None:
    saved = client.post("/api/pipelines", json={"name": "api_signals", "source": TEXT},
                        headers=alice.headers)  # fmt: skip
    assert saved.status_code == 201, saved.text
    pid = saved.json()["id"]
    dep = _deploy(client, alice, text=None, pipeline_id=pid)
    assert dep["name"] == "api_signals" and dep["pipeline_id"] == pid and dep["text"] == TEXT
    assert dep["desired"] == "stopped" and dep["status"] == "stopped" and dep["deployed"]
    again = client.post("/api/streams", json={"pipeline_id": pid}, headers=alice.headers)
    assert again.status_code == 422 and "already have" in again.json()["detail"]
    other = client.post("/api/streams", json={"pipeline_id": pid}, headers=bob.headers)
    assert other.status_code == 404  # bob cannot see alice's pipeline
    assert _deploy(client, bob)["name"] == "api_signals"  # his own name space


def test_permissions_like_instances(
    client: TestClient, alice: Account, bob: Account, admin: Account, observer: Account
) -> None:
    sid = _deploy(client, alice)["id"]
    path = f"/api/streams/{sid}"
    assert client.get(path, headers=bob.headers).status_code == 404
    seen = client.get("/api/streams", headers=observer.headers).json()
    assert [s["id"] for s in seen] == [sid] and seen[0]["can_edit"] is False
    assert client.get(path, headers=observer.headers).status_code == 200
    for action in ("start", "stop"):
        assert client.post(f"{path}/{action}", headers=observer.headers).status_code == 403
        assert client.post(f"{path}/{action}", headers=bob.headers).status_code == 404
    assert client.delete(path, headers=observer.headers).status_code == 403
    assert client.delete(path, headers=bob.headers).status_code == 404
    started = client.post(f"{path}/start", headers=admin.headers).json()
    assert started["desired"] == "running" and started["status"] == "starting"
    assert started["status_reason"] == "waiting for an engine to pick it up"
    stopped = client.post(f"{path}/stop", headers=alice.headers).json()
    assert stopped["desired"] == "stopped"
    new = TEXT.replace("window=5", "window=7")
    put = client.put(f"{path}/text", json={"text": new}, headers=alice.headers).json()
    assert put["text_version"] == 2 and [t["version"] for t in put["texts"]] == [2, 1]
    bad = client.put(f"{path}/text", json={"text": new + "oops("}, headers=alice.headers)
    assert bad.status_code == 422 and bad.json()["detail"]["diagnostics"]
    assert client.get(path, headers=alice.headers).json()["text"] == new
    assert client.delete(path, headers=admin.headers).status_code == 204
    assert client.get(path, headers=alice.headers).status_code == 404
    assert client.get("/api/streams", headers=alice.headers).json() == []
    audit = client.get("/api/audit", headers=admin.headers)
    if audit.status_code == 200:
        actions = {e["action"] for e in audit.json()["items"]}
        assert {"stream.create", "stream.start", "stream.stop", "stream.text",
                "stream.delete"} <= actions  # fmt: skip


def test_the_engines_work_is_seen_through_the_api(
    client: TestClient, alice: Account, tmp_path: Path
) -> None:
    folder = data_folder(tmp_path / "w")
    dep = _deploy(client, alice, start=True)
    path = f"/api/streams/{dep['id']}"
    reconciler = StreamReconciler(
        StreamStore(client.app.state.engine),  # type: ignore[attr-defined]
        engine_id_for("api-test"),
        state_root=tmp_path / "streams",
        base_dir=folder,
    )

    def get() -> dict:
        return client.get(path, headers=alice.headers).json()

    try:
        reconciler.reconcile()
        assert "api-test@" in get()["engine"]

        def ended() -> bool:
            reconciler.reconcile()
            return get()["status"] == "ended"

        wait_for(ended, 60, what="the replay's end")
        body = get()
        assert body["state"] == "ended" and body["bars"] == 200 and body["events"] == 200
        assert len(body["last_events"]) == 20 and body["last_events"][-1]["node"] == "fast"
        (sink,) = body["sinks"].values()
        assert sink["kind"] == "csv_append" and sink["delivered"] == 200, sink
        assert body["reporting"] is True
        client.post(f"{path}/stop", headers=alice.headers)
        reconciler.reconcile()
        assert (get()["status"], get()["status_reason"], get()["engine"]) == (
            "stopped", "stopped by its owner", None,
        )  # fmt: skip
    finally:
        reconciler.shutdown()
