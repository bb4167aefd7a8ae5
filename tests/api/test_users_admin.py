"""User management: admins create users with a temporary password, change roles, disable and
enable them; the last active admin is kept; everyone changes their own password; a temporary
password must be changed before anything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Account
from tests.api.sources import SMA


def login(client: TestClient, username: str, password: str) -> Any:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def bearer(token_response: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_response.json()['access_token']}"}


def new_user(client: TestClient, admin: Account, username: str, role: str, pw: str) -> Any:
    r = client.post(
        "/api/users",
        json={"username": username, "role": role, "password": pw},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.sqlite_too
def test_admin_creates_a_user_who_must_change_the_temporary_password(
    client: TestClient, admin: Account
) -> None:
    created = new_user(client, admin, "dana", "developer", "temporary-pw-1")
    assert created["role"] == "developer" and created["must_change_password"] is True
    r = login(client, "dana", "temporary-pw-1")
    assert r.status_code == 200 and r.json()["user"]["must_change_password"] is True
    auth = bearer(r)
    # everything but me / change-password is refused with a sentence saying what to do
    for method, path in (
        ("GET", "/api/pipelines"),
        ("GET", "/api/datasets"),
        ("GET", "/api/teams"),
    ):
        refused = client.request(method, path, headers=auth)
        assert refused.status_code == 403, path
        assert refused.json()["detail"].startswith("You must choose a new password")
    created_pipeline = client.post(
        "/api/pipelines", json={"name": "x", "source": SMA}, headers=auth
    )
    assert created_pipeline.status_code == 403
    assert client.get("/api/auth/me", headers=auth).json()["must_change_password"] is True
    # the new password must differ and be long enough; the current one must be right
    bad = [
        ({"current_password": "wrong-password", "new_password": "fresh-pw-123"}, "not correct"),
        ({"current_password": "temporary-pw-1", "new_password": "short"}, "too short"),
        ({"current_password": "temporary-pw-1", "new_password": "temporary-pw-1"}, "same"),
    ]
    for body, words in bad:
        r = client.post("/api/auth/password", json=body, headers=auth)
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    r = client.post(
        "/api/auth/password",
        json={"current_password": "temporary-pw-1", "new_password": "fresh-pw-123"},
        headers=auth,
    )
    assert r.status_code == 200 and r.json()["user"]["must_change_password"] is False
    # the change signs out the old token; the answer's new token is this session's
    old = client.get("/api/pipelines", headers=auth)
    assert old.status_code == 401
    assert old.json()["detail"] == "Your password was changed since you signed in: sign in again."
    fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert client.get("/api/pipelines", headers=fresh).status_code == 200
    assert login(client, "dana", "temporary-pw-1").status_code == 401
    assert login(client, "dana", "fresh-pw-123").json()["user"]["must_change_password"] is False


def test_every_user_changes_their_own_password(client: TestClient, alice: Account) -> None:
    r = client.post(
        "/api/auth/password",
        json={"current_password": alice.password, "new_password": "alice-new-pw"},
        headers=alice.headers,
    )
    assert r.status_code == 200
    assert login(client, "alice", alice.password).status_code == 401
    assert login(client, "alice", "alice-new-pw").status_code == 200
    # every session from before the change is signed out (alice's fixture token too)
    assert client.get("/api/auth/me", headers=alice.headers).status_code == 401
    anonymous = client.post(
        "/api/auth/password", json={"current_password": "x", "new_password": "y" * 10}
    )
    assert anonymous.status_code == 401


def test_creating_users_is_for_admins_with_readable_errors(
    client: TestClient, admin: Account, alice: Account, observer: Account
) -> None:
    body = {"username": "eve", "role": "developer", "password": "temporary-pw-1"}
    for who in (alice, observer):
        r = client.post("/api/users", json=body, headers=who.headers)
        assert r.status_code == 403 and r.json()["detail"] == "Only admins can do this."
        assert client.get("/api/users", headers=who.headers).status_code == 403
    cases = [
        ({**body, "username": "alice"}, 409, "The username 'alice' is taken: choose another one."),
        ({**body, "username": "bad name"}, 422, "is not a valid username"),
        ({**body, "password": "short"}, 422, "type at least 8 characters"),
    ]
    for payload, status, words in cases:
        r = client.post("/api/users", json=payload, headers=admin.headers)
        assert r.status_code == status and words in r.json()["detail"], r.text
    new_user(client, admin, "eve", "observer", "temporary-pw-1")
    listed = client.get("/api/users", headers=admin.headers).json()
    assert {u["username"]: u["role"] for u in listed["items"]} == {
        "root": "admin",
        "alice": "developer",
        "olga": "observer",
        "eve": "observer",
    }
    assert listed["total"] == 4


@pytest.mark.sqlite_too
def test_a_disabled_user_cannot_log_in_and_their_token_stops_working(
    client: TestClient, admin: Account, alice: Account
) -> None:
    assert client.get("/api/pipelines", headers=alice.headers).status_code == 200
    r = client.patch(f"/api/users/{alice.id}", json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["is_active"] is False
    refused = client.get("/api/pipelines", headers=alice.headers)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "This account is disabled: ask an admin to enable it."
    assert login(client, "alice", alice.password).status_code == 401
    r = client.patch(f"/api/users/{alice.id}", json={"is_active": True}, headers=admin.headers)
    assert r.json()["is_active"] is True
    assert client.get("/api/pipelines", headers=alice.headers).status_code == 200
    assert login(client, "alice", alice.password).status_code == 200


def test_changing_a_role_takes_effect_on_the_next_call(
    client: TestClient, admin: Account, alice: Account
) -> None:
    body = {"name": "p", "source": SMA}
    r = client.patch(f"/api/users/{alice.id}", json={"role": "observer"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["role"] == "observer"
    refused = client.post("/api/pipelines", json=body, headers=alice.headers)
    assert refused.status_code == 403 and "Observers can read" in refused.json()["detail"]
    client.patch(f"/api/users/{alice.id}", json={"role": "developer"}, headers=admin.headers)
    assert client.post("/api/pipelines", json=body, headers=alice.headers).status_code == 201
    bad = client.patch(f"/api/users/{alice.id}", json={"role": "boss"}, headers=admin.headers)
    assert bad.status_code == 422
    missing = client.patch("/api/users/999", json={"role": "observer"}, headers=admin.headers)
    assert missing.status_code == 404 and missing.json()["detail"] == "user not found"


@pytest.mark.sqlite_too
def test_the_last_active_admin_can_be_neither_disabled_nor_demoted(
    client: TestClient, admin: Account, make_user: Callable[..., Account]
) -> None:
    for body, words in (
        ({"is_active": False}, "cannot be disabled"),
        ({"role": "developer"}, "cannot be made a developer"),
    ):
        r = client.patch(f"/api/users/{admin.id}", json=body, headers=admin.headers)
        assert r.status_code == 409
        assert r.json()["detail"] == (
            f"root is the last active admin and {words}: make another user an admin first."
        )
    second = make_user(username="second-admin")
    r = client.patch(f"/api/users/{second.id}", json={"role": "admin"}, headers=admin.headers)
    assert r.status_code == 200
    # now root may step down; then second-admin is the last one
    r = client.patch(f"/api/users/{admin.id}", json={"role": "developer"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["role"] == "developer"
    assert client.get("/api/users", headers=admin.headers).status_code == 403
    r = client.patch(f"/api/users/{second.id}", json={"is_active": False}, headers=second.headers)
    assert r.status_code == 409 and "second-admin is the last active admin" in r.json()["detail"]
    # a disabled admin does not count as active
    r = client.patch(f"/api/users/{admin.id}", json={"role": "admin"}, headers=second.headers)
    r = client.patch(f"/api/users/{admin.id}", json={"is_active": False}, headers=second.headers)
    assert r.status_code == 200
    r = client.patch(f"/api/users/{second.id}", json={"role": "observer"}, headers=second.headers)
    assert r.status_code == 409


def test_an_admin_reset_password_must_be_changed_at_next_log_in(
    client: TestClient, admin: Account, alice: Account
) -> None:
    short = client.post(
        f"/api/users/{alice.id}/password", json={"password": "abc"}, headers=admin.headers
    )
    assert short.status_code == 422
    assert short.json()["detail"] == "The password is too short: type at least 8 characters."
    r = client.post(
        f"/api/users/{alice.id}/password", json={"password": "reset-pw-123"}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["must_change_password"] is True
    # alice's sessions end with the reset: she signs in with the new temporary password
    assert client.get("/api/pipelines", headers=alice.headers).status_code == 401
    token = login(client, "alice", "reset-pw-123").json()["access_token"]
    assert (
        client.get("/api/pipelines", headers={"Authorization": f"Bearer {token}"}).status_code
        == 403
    )
    assert login(client, "alice", "reset-pw-123").json()["user"]["must_change_password"] is True
    refused = client.post(
        f"/api/users/{admin.id}/password",
        json={"password": "x" * 12},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 403
