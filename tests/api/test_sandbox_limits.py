"""Sandbox concurrency limits (``api.services.sandbox_limits``): per-user and global slots, a
bounded FIFO queue, a 429 sentence with ``Retry-After`` when full; the test-run route refuses
at once without running anything, and a save whose look-ahead check finds no slot is still
saved, with a ``skipped`` verdict that says why. (The flood against the real stack:
``test_lab_flood.py``.)"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.services.sandbox_limits import SandboxBusy, SandboxLimits
from api.settings import ApiSettings
from tests.api.conftest import Account, settings_for
from tests.api.custom_node_helpers import manifest


def test_slots_per_user_and_in_all_then_the_queue_then_429() -> None:
    limits = SandboxLimits(per_user=2, total=3, queue=2, queue_wait_s=5)
    a1, a2 = limits.admit(1), limits.admit(1)
    b1 = limits.admit(2)
    assert all(t.running for t in (a1, a2, b1)) and limits.running == 3
    a3 = limits.admit(1)  # alice is at her limit: she waits
    b2 = limits.admit(2)  # all slots are taken: bob waits
    assert not a3.running and not b2.running and limits.waiting == 2
    with pytest.raises(SandboxBusy) as busy:
        limits.admit(3)  # the queue is full
    assert busy.value.status_code == 429 and busy.value.retry_after == 10
    assert busy.value.detail == (
        "The sandboxes are busy: all 3 sandbox slots are in use and 2 request(s) are already "
        "waiting. Wait for a test run to finish and try again in 10 s."
    )
    b1.release()  # a slot in all frees: alice is still at her limit, so bob's turn comes
    b2.wait()
    assert b2.running and not a3.running
    a1.release()
    a3.wait()
    assert a3.running and limits.waiting == 0
    for t in (a2, a3, b2):
        t.release()
        t.release()  # idempotent
    assert limits.running == 0


def test_one_user_cannot_fill_the_queue() -> None:
    limits = SandboxLimits(per_user=1, total=4, queue=4, queue_wait_s=5)
    first = limits.admit(1)
    queued = limits.admit(1)
    with pytest.raises(SandboxBusy) as busy:
        limits.admit(1)
    assert busy.value.detail.startswith(
        "The sandboxes are busy: you already have 1 test run(s) or look-ahead check(s) running "
        "and 1 waiting, the most one user may have."
    )
    assert limits.admit(2).running  # another user still gets a slot
    first.release()
    queued.wait()
    assert queued.running


def test_a_queued_request_gives_up_after_the_wait_with_a_429() -> None:
    limits = SandboxLimits(per_user=1, total=1, queue=1, queue_wait_s=0.3)
    held = limits.admit(1)
    queued = limits.admit(2)
    t0 = time.monotonic()
    with pytest.raises(SandboxBusy) as busy:
        queued.wait()
    assert 0.25 < time.monotonic() - t0 < 2
    assert "waited 1 s in the queue and no slot became free" in busy.value.detail
    assert limits.waiting == 0
    held.release()
    assert limits.running == 0


def test_run_never_exceeds_the_limits_and_frees_every_slot() -> None:
    limits = SandboxLimits(per_user=2, total=3, queue=6, queue_wait_s=10)
    lock = threading.Lock()
    now = {"all": 0, 1: 0, 2: 0}
    peak = {"all": 0, 1: 0, 2: 0}

    def work(user: int) -> None:
        with lock:
            now["all"] += 1
            now[user] += 1
            peak["all"] = max(peak["all"], now["all"])
            peak[user] = max(peak[user], now[user])
        time.sleep(0.05)
        with lock:
            now["all"] -= 1
            now[user] -= 1

    def one(user: int) -> str:
        import asyncio

        try:
            asyncio.run(limits.run(user, lambda: work(user)))
        except SandboxBusy:
            return "busy"
        return "ran"

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(one, [1, 2] * 6))
    assert peak[1] <= 2 and peak[2] <= 2 and peak["all"] <= 3
    assert outcomes.count("ran") >= 3 and limits.running == 0 and limits.waiting == 0
    limits.close()


@pytest.fixture
def tight(db_url: str, tmp_path) -> ApiSettings:  # type: ignore[no-untyped-def]
    """No queue, one slot per user: a held slot makes the next request a 429."""
    return settings_for(db_url, tmp_path, sandbox_per_user=1, sandbox_queue=0)


def test_the_test_run_route_refuses_at_once_when_the_user_is_at_the_limit(
    tight: ApiSettings,
) -> None:
    with TestClient(create_app(tight)) as client:
        alice = _account(client, "alice")
        held = client.app.state.sandbox_limits.admit(alice.id)  # type: ignore[attr-defined]
        try:
            t0 = time.monotonic()
            resp = client.post(
                "/api/custom-nodes/test-run", json={"manifest": manifest()}, headers=alice.headers
            )
            assert time.monotonic() - t0 < 2
            assert resp.status_code == 429, resp.text
            assert resp.headers["Retry-After"] == "10"
            assert resp.json()["detail"].startswith("The sandboxes are busy: you already have 1 ")
            # a save still happens; its look-ahead verdict says the check did not run and why
            saved = client.post("/api/custom-nodes", json=manifest(), headers=alice.headers)
            assert saved.status_code == 201, saved.text
            verdict = saved.json()["version"]["lookahead"]
            assert verdict["status"] == "skipped"
            assert verdict["message"].startswith("the check did not run: The sandboxes are busy")
        finally:
            held.release()
        # with the slot free, the same request reaches the worker (none here: 503, not 429)
        resp = client.post(
            "/api/custom-nodes/test-run", json={"manifest": manifest()}, headers=alice.headers
        )
        assert resp.status_code == 503, resp.text
        events = client.get("/api/audit?action=custom_node.test_run", headers=_admin(client))
        assert events.status_code == 200, events.text
        (event,) = events.json()["items"]
        assert event["actor"] == "alice" and event["detail"]["outcome"] == "error"
        assert event["detail"]["status_code"] == 503 and event["detail"]["name"] == "my_ema"


def _account(client: TestClient, name: str, admin: bool = False) -> Account:
    from datetime import timedelta

    from sqlmodel import Session

    from api.models.user import Role, UserCreate
    from api.security import create_access_token
    from api.services.users import create_user

    settings = client.app.state.settings  # type: ignore[attr-defined]
    role = Role.ADMIN if admin else Role.DEVELOPER
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        user = create_user(session, None, UserCreate(username=name, password="pw-x" * 3, role=role))
        token = create_access_token(
            user.id or 0,
            settings.signing_key,
            timedelta(minutes=30),
            password_hash=user.password_hash,
        )
        return Account(user.id or 0, name, "", role, {"Authorization": f"Bearer {token}"})


def _admin(client: TestClient) -> dict[str, str]:
    return _account(client, "root", admin=True).headers
