"""Share links: read-only, unauthenticated, revocable, and useless as credentials."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

import api.services.shares as share_service
from tests.api.conftest import Account
from tests.api.sources import SMA, SMA_FASTER


def pipeline(client: TestClient, who: Account) -> Any:
    r = client.post("/api/pipelines", json={"name": "sma", "source": SMA}, headers=who.headers)
    assert r.status_code == 201
    return r.json()


def share(client: TestClient, who: Account, target_id: int, kind: str = "pipeline") -> Any:
    return client.post(
        "/api/shares", json={"kind": kind, "target_id": target_id}, headers=who.headers
    )


@pytest.mark.sqlite_too
def test_shared_pipeline_is_readable_without_auth_and_shows_nothing_else(
    client: TestClient, alice: Account
) -> None:
    p = pipeline(client, alice)
    r = share(client, alice, p["id"])
    assert r.status_code == 201
    link = r.json()
    assert link["kind"] == "pipeline" and link["target_id"] == p["id"]
    assert len(link["token"]) >= 40
    assert link["url"] == f"/shared/{link['token']}"
    view = client.get(f"/api/shared/{link['token']}")
    assert view.status_code == 200
    assert view.json() == {
        "kind": "pipeline",
        "pipeline": {"name": "sma", "title": "SMA Crossover", "source": SMA, "version": 1},
        "run": None,
        "results": None,
        "analysis": None,
    }
    assert view.headers["referrer-policy"] == "no-referrer"


def test_shared_view_follows_the_latest_version(client: TestClient, alice: Account) -> None:
    p = pipeline(client, alice)
    token = share(client, alice, p["id"]).json()["token"]
    client.put(f"/api/pipelines/{p['id']}", json={"source": SMA_FASTER}, headers=alice.headers)
    shown = client.get(f"/api/shared/{token}").json()["pipeline"]
    assert shown["version"] == 2 and shown["source"] == SMA_FASTER


def test_share_token_is_not_a_credential(client: TestClient, alice: Account) -> None:
    p = pipeline(client, alice)
    token = share(client, alice, p["id"]).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    for path in ("/api/auth/me", "/api/pipelines", f"/api/pipelines/{p['id']}", "/api/shares"):
        assert client.get(path, headers=bearer).status_code == 401, path
    assert client.get(f"/api/pipelines/{p['id']}?token={token}").status_code == 401
    assert client.put(f"/api/shared/{token}", json={"source": SMA_FASTER}).status_code == 405
    assert client.delete(f"/api/shared/{token}").status_code == 405
    assert client.get(f"/api/shared/{token}/versions").status_code == 404


def test_unknown_and_revoked_links_are_404(client: TestClient, alice: Account) -> None:
    p = pipeline(client, alice)
    token = share(client, alice, p["id"]).json()["token"]
    assert client.get("/api/shared/" + "A" * 43).status_code == 404
    assert client.delete(f"/api/shares/{token}", headers=alice.headers).status_code == 204
    assert client.get(f"/api/shared/{token}").status_code == 404
    assert client.delete(f"/api/shares/{token}", headers=alice.headers).status_code == 404
    assert client.get("/api/shares", headers=alice.headers).json()["total"] == 0


def test_deleting_the_pipeline_kills_its_links(client: TestClient, alice: Account) -> None:
    p = pipeline(client, alice)
    token = share(client, alice, p["id"]).json()["token"]
    client.delete(f"/api/pipelines/{p['id']}", headers=alice.headers)
    assert client.get(f"/api/shared/{token}").status_code == 404


def test_only_owners_share_and_revoke(
    client: TestClient, alice: Account, bob: Account, observer: Account
) -> None:
    p = pipeline(client, alice)
    assert share(client, bob, p["id"]).status_code == 404
    assert share(client, alice, 9999).status_code == 404
    assert share(client, observer, p["id"]).status_code == 403
    token = share(client, alice, p["id"]).json()["token"]
    assert client.delete(f"/api/shares/{token}", headers=bob.headers).status_code == 404
    assert client.get("/api/shares", headers=bob.headers).json()["total"] == 0
    mine = client.get("/api/shares", headers=alice.headers).json()
    assert [s["token"] for s in mine["items"]] == [token]
    assert client.get(f"/api/shared/{token}").status_code == 200


def test_a_kind_without_a_handler_is_refused(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(share_service.SHARE_KINDS, "run", raising=False)
    r = share(client, alice, 1, kind="run")
    assert r.status_code == 422
    assert "run" in r.json()["detail"]
    assert share(client, alice, 1, kind="dataset").status_code == 422


def test_sharing_is_audited(client: TestClient, alice: Account, admin: Account) -> None:
    p = pipeline(client, alice)
    token = share(client, alice, p["id"]).json()["token"]
    client.delete(f"/api/shares/{token}", headers=alice.headers)
    events = client.get("/api/audit", headers=admin.headers).json()["items"]
    actions = [(e["action"], e["object_type"], e["object_id"]) for e in events[:2]]
    assert actions == [
        ("share.revoke", "pipeline", str(p["id"])),
        ("share.create", "pipeline", str(p["id"])),
    ]
    assert token not in str(events)


@pytest.mark.sqlite_too
def test_the_list_names_owner_and_target_and_can_include_revoked_links(
    client: TestClient, alice: Account, admin: Account
) -> None:
    p = pipeline(client, alice)
    first = share(client, alice, p["id"]).json()["token"]
    second = share(client, alice, p["id"]).json()["token"]
    listed = client.get("/api/shares", headers=alice.headers).json()["items"]
    assert [s["token"] for s in listed] == [second, first]  # newest first
    assert listed[0]["owner"] == "alice" and listed[0]["revoked_at"] is None
    assert listed[0]["target"] == {
        "pipeline_id": p["id"],
        "pipeline_name": "sma",
        "pipeline_title": "SMA Crossover",
        "run_id": None,
    }
    assert client.delete(f"/api/shares/{first}", headers=alice.headers).status_code == 204
    live = client.get("/api/shares", headers=alice.headers).json()
    assert [s["token"] for s in live["items"]] == [second] and live["total"] == 1
    every = client.get("/api/shares?include_revoked=true", headers=alice.headers).json()
    assert every["total"] == 2
    revoked = {s["token"]: s["revoked_at"] for s in every["items"]}
    assert revoked[second] is None and revoked[first] is not None
    # an admin sees whose links they are; a deleted pipeline leaves its links without target
    client.delete(f"/api/pipelines/{p['id']}", headers=alice.headers)
    seen = client.get("/api/shares", headers=admin.headers).json()["items"]
    assert [(s["owner"], s["target"]) for s in seen if s["token"] == second] == [("alice", None)]
