"""Log-in, bearer tokens (and their tampering), users and roles."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.models.user import User
from api.security import ALGORITHM, AUDIENCE, ISSUER, create_access_token, password_stamp
from tests.api.conftest import SECRET, Account


def _claims(client: TestClient, user_id: int, **overrides: object) -> dict[str, object]:
    """Every claim a valid token of ``user_id`` has (its password stamp read from the
    database), with ``overrides``."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        user = session.get(User, user_id)
        stamp = password_stamp(user.password_hash, SECRET) if user else "none"
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": str(user_id),
        "pwd": stamp,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(overrides)
    return claims


def _me(client: TestClient, token: str) -> int:
    return client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, default=lambda d: int(d.timestamp())).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.sqlite_too
def test_login_returns_a_token_that_identifies_the_user(client: TestClient, alice: Account) -> None:
    r = client.post("/api/auth/login", json={"username": "alice", "password": alice.password})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["user"] == {
        "id": alice.id,
        "username": "alice",
        "role": "developer",
        "is_active": True,
        "must_change_password": False,
        "teams": [],
    }
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == body["user"]


def test_login_refuses_wrong_password_and_unknown_user_alike(
    client: TestClient, alice: Account
) -> None:
    wrong = client.post("/api/auth/login", json={"username": "alice", "password": "nope-nope"})
    unknown = client.post("/api/auth/login", json={"username": "zed", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_failed_login_is_audited(client: TestClient, alice: Account, admin: Account) -> None:
    client.post("/api/auth/login", json={"username": "alice", "password": "bad-password"})
    events = client.get("/api/audit?action=auth.login_failed", headers=admin.headers).json()
    assert events["total"] == 1
    assert events["items"][0]["detail"] == {"username": "alice"}


def test_routes_need_a_token(client: TestClient) -> None:
    for path in ("/api/auth/me", "/api/pipelines", "/api/datasets", "/api/nodes", "/api/config"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == "Bearer"


def test_alg_none_token_is_refused(client: TestClient, alice: Account) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(client, alice.id))}."
    assert _me(client, token) == 401


def test_a_token_with_every_claim_right_is_accepted(client: TestClient, alice: Account) -> None:
    # the control of the tampering tests below: each changes one claim of this token
    assert _me(client, jwt.encode(_claims(client, alice.id), SECRET, algorithm=ALGORITHM)) == 200


def test_a_token_without_the_password_stamp_is_refused(client: TestClient, alice: Account) -> None:
    claims = _claims(client, alice.id)
    del claims["pwd"]
    assert _me(client, jwt.encode(claims, SECRET, algorithm=ALGORITHM)) == 401


def test_token_for_another_audience_is_refused(client: TestClient, alice: Account) -> None:
    token = jwt.encode(_claims(client, alice.id, aud="someone-else"), SECRET, algorithm=ALGORITHM)
    assert _me(client, token) == 401


def test_token_from_another_issuer_is_refused(client: TestClient, alice: Account) -> None:
    token = jwt.encode(_claims(client, alice.id, iss="evil"), SECRET, algorithm=ALGORITHM)
    assert _me(client, token) == 401


def test_expired_token_is_refused(client: TestClient, alice: Account) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    token = jwt.encode(
        _claims(client, alice.id, iat=past - timedelta(hours=1), exp=past),
        SECRET,
        algorithm=ALGORITHM,
    )
    assert _me(client, token) == 401


def test_token_signed_with_another_key_is_refused(client: TestClient, alice: Account) -> None:
    token = jwt.encode(_claims(client, alice.id), "another-key-" + "x" * 40, algorithm=ALGORITHM)
    assert _me(client, token) == 401


def test_token_with_a_tampered_payload_is_refused(
    client: TestClient, alice: Account, admin: Account
) -> None:
    good = alice.headers["Authorization"].split()[1]
    header, _payload, signature = good.split(".")
    forged = f"{header}.{_b64(_claims(client, admin.id))}.{signature}"
    assert _me(client, good) == 200
    assert _me(client, forged) == 401


def test_token_without_expiry_is_refused(client: TestClient, alice: Account) -> None:
    claims = _claims(client, alice.id)
    del claims["exp"]
    assert _me(client, jwt.encode(claims, SECRET, algorithm=ALGORITHM)) == 401


def test_token_of_a_deleted_user_is_refused(client: TestClient) -> None:
    token = create_access_token(9999, SECRET, timedelta(minutes=5), password_hash="x")
    assert _me(client, token) == 401


def test_garbage_and_non_bearer_credentials_are_refused(client: TestClient) -> None:
    assert _me(client, "not.a.jwt") == 401
    r = client.get("/api/auth/me", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert r.status_code == 401


def test_admin_creates_users_who_can_log_in(client: TestClient, admin: Account) -> None:
    body = {"username": "carol", "password": "long-enough-pw", "role": "observer"}
    r = client.post("/api/users", json=body, headers=admin.headers)
    assert r.status_code == 201
    assert r.json()["role"] == "observer"
    login = client.post("/api/auth/login", json={"username": "carol", "password": body["password"]})
    assert login.status_code == 200
    assert login.json()["user"]["role"] == "observer"
    listed = client.get("/api/users", headers=admin.headers).json()
    assert {u["username"] for u in listed["items"]} == {"root", "carol"}
    assert listed["total"] == 2
    assert "password_hash" not in json.dumps(listed)


def test_duplicate_username_is_a_conflict(client: TestClient, admin: Account) -> None:
    body = {"username": "root", "password": "long-enough-pw", "role": "developer"}
    assert client.post("/api/users", json=body, headers=admin.headers).status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"username": "dave", "password": "short", "role": "developer"},
        {"username": "dave", "password": "long-enough-pw", "role": "superuser"},
        {"username": "<script>", "password": "long-enough-pw", "role": "developer"},
    ],
)
def test_invalid_user_is_refused(client: TestClient, admin: Account, body: dict) -> None:
    assert client.post("/api/users", json=body, headers=admin.headers).status_code == 422


def test_only_admins_manage_users(
    client: TestClient, make_user: Callable[..., Account], alice: Account, observer: Account
) -> None:
    body = {"username": "eve", "password": "long-enough-pw", "role": "admin"}
    for who in (alice, observer):
        assert client.post("/api/users", json=body, headers=who.headers).status_code == 403
        assert client.get("/api/users", headers=who.headers).status_code == 403
        assert client.get("/api/audit", headers=who.headers).status_code == 403


def test_repeated_failed_logins_are_throttled_with_retry_after(
    client: TestClient, alice: Account, bob: Account
) -> None:
    wrong = {"username": "alice", "password": "wrong-password"}
    statuses = [client.post("/api/auth/login", json=wrong).status_code for _ in range(5)]
    assert statuses == [401] * 5
    # the sixth attempt is refused before the password is even looked at: the right one too
    right = client.post("/api/auth/login", json={"username": "alice", "password": alice.password})
    assert right.status_code == 429
    assert "Too many failed log-ins for this account" in right.json()["detail"]
    assert 1 <= int(right.headers["retry-after"]) <= 300
    # another account from the same address still logs in
    other = client.post("/api/auth/login", json={"username": "bob", "password": bob.password})
    assert other.status_code == 200


def test_login_throttle_window_slides_and_success_clears_the_count() -> None:
    from api.errors import TooManyRequests
    from api.services.login_throttle import IP_FACTOR, LoginThrottle

    now = [1000.0]
    throttle = LoginThrottle(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        throttle.check("10.0.0.1", "Alice")
        throttle.failed("10.0.0.1", "Alice")
    with pytest.raises(TooManyRequests) as info:
        throttle.check("10.0.0.1", "alice")  # usernames compare case-insensitively
    assert info.value.retry_after == 60
    throttle.check("10.0.0.2", "alice")  # another address is not blocked for the account
    now[0] += 30
    with pytest.raises(TooManyRequests) as info:
        throttle.check("10.0.0.1", "alice")
    assert info.value.retry_after == 30
    now[0] += 31  # the failures left the window
    throttle.check("10.0.0.1", "alice")
    throttle.failed("10.0.0.1", "alice")
    throttle.succeeded("10.0.0.1", "alice")
    throttle.check("10.0.0.1", "alice")
    # one address spraying many accounts hits the per-address allowance
    for i in range(3 * IP_FACTOR):
        throttle.failed("10.0.0.9", f"user{i}")
    with pytest.raises(TooManyRequests, match="this address"):
        throttle.check("10.0.0.9", "someone-new")
