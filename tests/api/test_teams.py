"""Teams: admins manage them; owners share pipelines, datasets and custom nodes with a team for
read or edit; observers stay read-only whatever their team is granted; share-link expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.models.share import Share
from tests.api.conftest import Account
from tests.api.custom_node_helpers import EMA_CODE, create_node, manifest, pipeline_using, verdicts
from tests.api.sources import SMA, SMA_FASTER

__all__ = ["verdicts"]

CSV = b"ts,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1.5,2.5,1,2,12\n"


def team(client: TestClient, admin: Account, name: str, *members: Account) -> int:
    r = client.post("/api/teams", json={"name": name}, headers=admin.headers)
    assert r.status_code == 201, r.text
    team_id: int = r.json()["id"]
    for m in members:
        r = client.put(f"/api/teams/{team_id}/members/{m.id}", headers=admin.headers)
        assert r.status_code == 200
    return team_id


def pipeline(client: TestClient, who: Account, name: str = "sma") -> Any:
    r = client.post("/api/pipelines", json={"name": name, "source": SMA}, headers=who.headers)
    assert r.status_code == 201, r.text
    return r.json()


def grant(
    client: TestClient, who: Account, kind: str, target: int, team_id: int, access: str
) -> Any:
    return client.put(
        f"/api/grants/{kind}/{target}/{team_id}", json={"access": access}, headers=who.headers
    )


def names(client: TestClient, who: Account, path: str) -> list[str]:
    return [x["name"] for x in client.get(path, headers=who.headers).json()["items"]]


def test_admins_manage_teams_and_everyone_lists_them(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    team_id = team(client, admin, "Research EU", alice, bob)
    listed = client.get("/api/teams", headers=alice.headers).json()
    assert [(t["name"], [m["username"] for m in t["members"]]) for t in listed] == [
        ("Research EU", ["alice", "bob"])
    ]
    me = client.get("/api/auth/me", headers=bob.headers).json()
    assert me["teams"] == ["Research EU"]
    r = client.delete(f"/api/teams/{team_id}/members/{bob.id}", headers=admin.headers)
    assert [m["username"] for m in r.json()["members"]] == ["alice"]
    again = client.delete(f"/api/teams/{team_id}/members/{bob.id}", headers=admin.headers)
    assert again.status_code == 404
    assert again.json()["detail"] == "that user is not a member of this team"
    # only admins change teams; names are checked with sentences
    r = client.post("/api/teams", json={"name": "mine"}, headers=alice.headers)
    assert r.status_code == 403
    r = client.put(f"/api/teams/{team_id}/members/{bob.id}", headers=alice.headers)
    assert r.status_code == 403
    dup = client.post("/api/teams", json={"name": "Research EU"}, headers=admin.headers)
    assert dup.status_code == 409
    assert (
        dup.json()["detail"] == "A team called 'Research EU' already exists: choose another name."
    )
    bad = client.post("/api/teams", json={"name": "<b>x</b>"}, headers=admin.headers)
    assert bad.status_code == 422 and "is not a valid team name" in bad.json()["detail"]
    assert client.delete(f"/api/teams/{team_id}", headers=admin.headers).status_code == 204
    assert client.get("/api/teams", headers=alice.headers).json() == []


@pytest.mark.sqlite_too
def test_a_read_grant_shows_the_pipeline_to_members_only_and_refuses_changes(
    client: TestClient,
    admin: Account,
    alice: Account,
    bob: Account,
    make_user: Callable[..., Account],
) -> None:
    carol = make_user(username="carol")  # in no team
    team_id = team(client, admin, "quants", bob)
    p = pipeline(client, alice)
    assert names(client, bob, "/api/pipelines") == []
    assert client.get(f"/api/pipelines/{p['id']}", headers=bob.headers).status_code == 404
    r = grant(client, alice, "pipeline", p["id"], team_id, "read")
    assert r.status_code == 200
    assert [(g["team"], g["access"]) for g in r.json()] == [("quants", "read")]
    listed = client.get("/api/pipelines", headers=bob.headers).json()["items"]
    assert [(x["name"], x["owner"], x["can_edit"], x["can_manage"]) for x in listed] == [
        ("sma", "alice", False, False)
    ]
    shown = client.get(f"/api/pipelines/{p['id']}", headers=bob.headers).json()
    assert shown["version"]["source"] == SMA and shown["can_edit"] is False
    assert client.get(f"/api/pipelines/{p['id']}/versions", headers=bob.headers).status_code == 200
    assert names(client, carol, "/api/pipelines") == []
    assert client.get(f"/api/pipelines/{p['id']}", headers=carol.headers).status_code == 404
    # reading is not changing: a sentence says why
    save = client.put(f"/api/pipelines/{p['id']}", json={"source": SMA_FASTER}, headers=bob.headers)
    assert save.status_code == 403
    assert save.json()["detail"] == (
        "You can read this pipeline through a team but not change it: ask its owner for edit "
        "access."
    )
    run = client.post(f"/api/pipelines/{p['id']}/runs", json={}, headers=bob.headers)
    assert run.status_code == 403
    schedules = f"/api/pipelines/{p['id']}/schedules"
    assert client.get(schedules, headers=bob.headers).status_code == 200
    refused = client.post(schedules, json={"interval_seconds": 3600}, headers=bob.headers)
    assert refused.status_code == 403 and "through a team" in refused.json()["detail"]
    # a member may fork it into a pipeline of their own
    fork = client.post(f"/api/pipelines/{p['id']}/fork", json={"name": "mine"}, headers=bob.headers)
    assert fork.status_code == 201 and fork.json()["owner"] == "bob"


@pytest.mark.sqlite_too
def test_an_edit_grant_allows_saving_but_not_renaming_deleting_sharing_or_granting(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    team_id = team(client, admin, "quants", bob)
    other_team = team(client, admin, "others")
    p = pipeline(client, alice)
    assert grant(client, alice, "pipeline", p["id"], team_id, "edit").status_code == 200
    item = client.get("/api/pipelines", headers=bob.headers).json()["items"][0]
    assert (item["can_edit"], item["can_manage"]) == (True, False)
    saved = client.put(
        f"/api/pipelines/{p['id']}", json={"source": SMA_FASTER}, headers=bob.headers
    )
    assert saved.status_code == 200
    assert saved.json()["version"]["number"] == 2 and saved.json()["version"]["author"] == "bob"
    assert saved.json()["owner"] == "alice"
    restore = client.post(f"/api/pipelines/{p['id']}/versions/1/restore", headers=bob.headers)
    assert restore.status_code == 200 and restore.json()["version"]["number"] == 3
    only_owner = "Only the owner of this pipeline or an admin can rename, delete or share it."
    refused = [
        client.patch(f"/api/pipelines/{p['id']}", json={"name": "x"}, headers=bob.headers),
        client.delete(f"/api/pipelines/{p['id']}", headers=bob.headers),
        client.post(
            "/api/shares", json={"kind": "pipeline", "target_id": p["id"]}, headers=bob.headers
        ),
        grant(client, bob, "pipeline", p["id"], other_team, "read"),
        client.delete(f"/api/grants/pipeline/{p['id']}/{team_id}", headers=bob.headers),
    ]
    for r in refused:
        assert r.status_code == 403 and r.json()["detail"] == only_owner, r.text
    # edit → read downgrade, then removal, take effect at once
    grant(client, alice, "pipeline", p["id"], team_id, "read")
    r = client.put(f"/api/pipelines/{p['id']}", json={"source": SMA}, headers=bob.headers)
    assert r.status_code == 403
    r = client.delete(f"/api/grants/pipeline/{p['id']}/{team_id}", headers=alice.headers)
    assert r.status_code == 200 and r.json() == []
    assert client.get(f"/api/pipelines/{p['id']}", headers=bob.headers).status_code == 404
    gone = client.delete(f"/api/grants/pipeline/{p['id']}/{team_id}", headers=alice.headers)
    assert gone.status_code == 404
    # leaving the team ends access too
    grant(client, alice, "pipeline", p["id"], team_id, "edit")
    client.delete(f"/api/teams/{team_id}/members/{bob.id}", headers=admin.headers)
    assert names(client, bob, "/api/pipelines") == []


def test_observers_stay_read_only_whatever_their_team_is_granted(
    client: TestClient, admin: Account, alice: Account, observer: Account
) -> None:
    team_id = team(client, admin, "quants", observer)
    p = pipeline(client, alice)
    grant(client, alice, "pipeline", p["id"], team_id, "edit")
    shown = client.get(f"/api/pipelines/{p['id']}", headers=observer.headers).json()
    assert (shown["can_edit"], shown["can_manage"]) == (False, False)
    r = client.put(
        f"/api/pipelines/{p['id']}", json={"source": SMA_FASTER}, headers=observer.headers
    )
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "Observers can read but not change anything: ask an admin for the developer role."
    )
    r = grant(client, observer, "pipeline", p["id"], team_id, "read")
    assert r.status_code == 403


def test_grants_need_an_object_the_caller_manages_and_a_known_team(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    team_id = team(client, admin, "quants", bob)
    p = pipeline(client, alice)
    assert grant(client, bob, "pipeline", p["id"], team_id, "read").status_code == 404
    missing_team = grant(client, alice, "pipeline", p["id"], 9999, "read")
    assert missing_team.status_code == 404 and missing_team.json()["detail"] == "team not found"
    bad_access = grant(client, alice, "pipeline", p["id"], team_id, "own")
    assert bad_access.status_code == 422
    bad_kind = grant(client, alice, "run", p["id"], team_id, "read")
    assert bad_kind.status_code == 422
    # an admin manages anyone's grants
    assert grant(client, admin, "pipeline", p["id"], team_id, "read").status_code == 200
    assert client.get(f"/api/grants/pipeline/{p['id']}", headers=bob.headers).json()[0]["team"] == (
        "quants"
    )


def test_datasets_shared_with_a_team(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    team_id = team(client, admin, "quants", bob)
    r = client.post(
        "/api/datasets",
        data={"name": "goog"},
        files={"file": ("goog.csv", CSV, "text/csv")},
        headers=alice.headers,
    )
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["owner"] == "alice" and ds["can_manage"] is True
    assert names(client, bob, "/api/datasets") == []
    grant(client, alice, "dataset", ds["id"], team_id, "read")
    listed = client.get("/api/datasets", headers=bob.headers).json()["items"]
    assert [(d["name"], d["owner"], d["can_edit"]) for d in listed] == [("goog", "alice", False)]
    preview = client.get(f"/api/datasets/{ds['id']}/preview", headers=bob.headers)
    assert preview.status_code == 200 and len(preview.json()["rows"]) == 2
    refused = client.delete(f"/api/datasets/{ds['id']}", headers=bob.headers)
    assert (
        refused.status_code == 403 and "ask its owner for edit access" in refused.json()["detail"]
    )
    grant(client, alice, "dataset", ds["id"], team_id, "edit")
    assert client.get("/api/datasets", headers=bob.headers).json()["items"][0]["can_edit"] is True
    assert client.delete(f"/api/datasets/{ds['id']}", headers=bob.headers).status_code == 204
    assert names(client, alice, "/api/datasets") == []


@pytest.mark.sqlite_too
def test_an_expired_share_link_answers_like_a_revoked_one_and_says_it_expired(
    client: TestClient, alice: Account, api_settings: Any
) -> None:
    p = pipeline(client, alice)

    def share(**extra: Any) -> Any:
        body = {"kind": "pipeline", "target_id": p["id"], **extra}
        return client.post("/api/shares", json=body, headers=alice.headers)

    r = share(expires_in="7 days")
    assert r.status_code == 201, r.text
    link = r.json()
    expires = datetime.fromisoformat(link["expires_at"])
    assert abs((expires - datetime.now(UTC)) - timedelta(days=7)) < timedelta(minutes=1)
    assert link["expired"] is False
    assert client.get(f"/api/shared/{link['token']}").status_code == 200
    at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    assert share(expires_at=at).json()["expires_at"] is not None
    assert share().json()["expires_at"] is None  # no expiry: as before
    for extra, words in (
        ({"expires_in": "soon"}, 'type a number and a unit, such as "7 days"'),
        ({"expires_in": "0 days"}, "is not a duration"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "is in the past"),
        ({"expires_at": at, "expires_in": "7d"}, "not both"),
        ({"expires_in": "9999 weeks"}, "at most 10 years"),
    ):
        r = share(**extra)
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    # time passes: the link expires
    engine = client.app.state.engine  # type: ignore[attr-defined]
    past = datetime.now(UTC) - timedelta(minutes=5)
    with Session(engine) as session:
        row = session.exec(select(Share).where(Share.token == link["token"])).one()
        row.expires_at = past
        session.commit()
    r = client.get(f"/api/shared/{link['token']}")
    assert r.status_code == 404
    assert r.json()["detail"] == (
        f"This share link expired on {past:%Y-%m-%d %H:%M} UTC: ask its owner for a new link."
    )
    listed = client.get("/api/shares", headers=alice.headers).json()["items"]
    mine = next(s for s in listed if s["token"] == link["token"])
    assert mine["expired"] is True
    # a revoked link still says only "not found"
    client.delete(f"/api/shares/{link['token']}", headers=alice.headers)
    assert client.get(f"/api/shared/{link['token']}").json()["detail"] == "share link not found"


def test_runs_of_a_member_read_datasets_shared_with_their_team_own_names_first(
    client: TestClient, admin: Account, alice: Account, bob: Account, api_settings: Any
) -> None:
    from api.services.datasets import dataset_paths

    def upload(who: Account, name: str) -> Any:
        r = client.post(
            "/api/datasets",
            data={"name": name},
            files={"file": (f"{name}.csv", CSV, "text/csv")},
            headers=who.headers,
        )
        assert r.status_code == 201, r.text
        return r.json()

    team_id = team(client, admin, "quants", bob)
    shared = upload(alice, "goog")
    same_name = upload(alice, "eurusd")
    bobs_own = upload(bob, "eurusd")
    engine = client.app.state.engine  # type: ignore[attr-defined]

    def paths() -> dict[str, str]:
        with Session(engine) as session:
            return {k: v.name for k, v in dataset_paths(session, api_settings, bob.id).items()}

    assert set(paths()) == {"eurusd"}
    grant(client, alice, "dataset", shared["id"], team_id, "read")
    grant(client, alice, "dataset", same_name["id"], team_id, "read")
    found = paths()
    assert set(found) == {"goog", "eurusd"}
    keys = {}
    with Session(engine) as session:
        from api.models.dataset import Dataset

        for d in (shared, same_name, bobs_own):
            row = session.get(Dataset, d["id"])
            assert row is not None
            keys[d["id"]] = f"{row.storage_key}.parquet"
    assert found["goog"] == keys[shared["id"]]
    assert found["eurusd"] == keys[bobs_own["id"]]  # bob's own name wins over the team's
    client.delete(f"/api/grants/dataset/{shared['id']}/{team_id}", headers=alice.headers)
    assert set(paths()) == {"eurusd"}


@pytest.mark.usefixtures("verdicts")
def test_custom_nodes_shared_with_a_team_read_then_edit(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    team_id = team(client, admin, "quants", bob)
    node = create_node(client, alice)
    assert names(client, bob, "/api/custom-nodes") == []
    assert client.get(f"/api/custom-nodes/{node['id']}", headers=bob.headers).status_code == 404
    grant(client, alice, "custom_node", node["id"], team_id, "read")
    listed = client.get("/api/custom-nodes", headers=bob.headers).json()["items"]
    assert [(n["name"], n["owner"], n["can_edit"], n["can_manage"]) for n in listed] == [
        ("my_ema", "alice", False, False)
    ]
    shown = client.get(f"/api/custom-nodes/{node['id']}", headers=bob.headers).json()
    assert shown["version"]["manifest"]["code"] == EMA_CODE and shown["can_edit"] is False
    changed = manifest(code=EMA_CODE.replace("adjust=False", "adjust=True"))
    url = f"/api/custom-nodes/{node['id']}"
    refused = client.put(url, json=changed, headers=bob.headers)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "You can read this custom node through a team but not change it: ask its owner for "
        "edit access."
    )
    grant(client, alice, "custom_node", node["id"], team_id, "edit")
    saved = client.put(url, json=changed, headers=bob.headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"]["version"] == "1.0.1" and saved.json()["owner"] == "alice"
    assert (saved.json()["can_edit"], saved.json()["can_manage"]) == (True, False)
    deleted = client.delete(url, headers=bob.headers)
    assert deleted.status_code == 403
    assert deleted.json()["detail"] == (
        "Only the owner of this custom node or an admin can rename, delete or share it."
    )
    one_version = client.delete(f"{url}/versions/1.0.0", headers=bob.headers)
    assert one_version.status_code == 403


@pytest.mark.usefixtures("verdicts")
def test_members_use_a_custom_node_shared_with_their_team_own_names_first(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    team_id = team(client, admin, "quants", bob)
    node = create_node(client, alice)
    source = pipeline_using("1")
    before = client.post("/api/validate", json={"source": source}, headers=bob.headers).json()
    (diag,) = [d for d in before["diagnostics"] if d["severity"] == "error"]
    assert diag["code"] == "AF401" and "shared with a team of yours" in diag["message"]
    grant(client, alice, "custom_node", node["id"], team_id, "read")
    saved = client.post(
        "/api/pipelines", json={"name": "bobs", "source": source}, headers=bob.headers
    )
    assert saved.status_code == 201, saved.text
    ir = client.post("/api/compile", json={"source": source}, headers=bob.headers).json()
    (used,) = [n for n in ir["nodes"] if n["id"] == "e"]
    assert used["code_hash"] == node["version"]["code_hash"]
    # the pin was recorded: alice cannot delete the version bob's pipeline uses
    refused = client.delete(f"/api/custom-nodes/{node['id']}/versions/1.0.0", headers=alice.headers)
    assert refused.status_code == 409 and "bobs" in refused.json()["detail"], refused.text
    # bob's own node of the same name wins over the team's
    own = create_node(client, bob, code=EMA_CODE + "# bob's\n")
    mine = client.post("/api/compile", json={"source": source}, headers=bob.headers).json()
    (used,) = [n for n in mine["nodes"] if n["id"] == "e"]
    assert used["code_hash"] == own["version"]["code_hash"] != node["version"]["code_hash"]
