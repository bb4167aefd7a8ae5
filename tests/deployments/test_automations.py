"""The automations ``alphaforge deploy`` creates, on the session's real Prefect server (its
triggers and actions services run: ``prefect server start`` enables them by default).

- registered twice: one automation of each name, with the expected trigger and action;
- a pipeline flow run Running past a (test-sized) bound is cancelled by ``alphaforge-long-runs``;
- a pipeline flow run whose process is SIGKILLed goes Crashed, and ``alphaforge-crashed-runs``
  runs the crash report on the worker: the run's own record ends ``failed`` with the reason.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)

from deployments.deploy import (
    CRASH_REPORT_FLOW,
    CRASHED_AUTOMATION,
    ENGINE_FLOW,
    LONG_RUN_AUTOMATION,
    ensure_automations,
    ensure_crash_report_deployment,
    ensure_web_deployment,
    register_all,
)
from flows.crashreport import CRASH_EVENT
from flows.liveness import read_mark
from flows.record import new_run_id
from flows.spec import RunSpec, read_run_record
from tests.deployments.fixtures import STACK_GROUP, Stack, wait_for
from tests.flows.testnodes import crossover_ir

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

NAMES = (CRASHED_AUTOMATION, LONG_RUN_AUTOMATION)


@pytest.fixture
def client(prefect_stack: Stack) -> Iterator[SyncPrefectClient]:
    """A client of the stack's server; the automations are removed afterwards (the session's
    other tests must not have their runs cancelled or reported)."""
    with SyncPrefectClient(api=prefect_stack.api_url) as c:
        try:
            yield c
        finally:
            for name in NAMES:
                for automation in c.read_automations_by_name(name):
                    c.delete_automation(automation.id)


def _slow_run(client: SyncPrefectClient, store: Path, seconds: float) -> tuple[UUID, Path]:
    run_id = new_run_id()
    spec = RunSpec(ir=crossover_ir(fast_sleep=seconds), run_id=run_id, store_url=str(store),
                   track=False, trigger="test")  # fmt: skip
    flow_run = client.create_flow_run_from_deployment(
        ensure_web_deployment(client), parameters={"spec": spec.to_json()}
    )
    return flow_run.id, store / "runs" / run_id


def _state(client: SyncPrefectClient, flow_run_id: UUID):  # type: ignore[no-untyped-def]
    return client.read_flow_run(flow_run_id).state


def _raw_actions(client: SyncPrefectClient, automation_id: UUID) -> list[dict[str, Any]]:
    """The actions as the server stores them (the client's model reads an action without
    fields, such as cancel-flow-run, as do-nothing: its union is not discriminated)."""
    response = client._client.get(f"/automations/{automation_id}")
    response.raise_for_status()
    return list(response.json()["actions"])


def test_deploying_twice_leaves_one_automation_of_each_name(client: SyncPrefectClient) -> None:
    from flows.crashreport import CRASH_REPORT_FLOW as REPORT_NAME
    from live.engineflow import ENGINE_FLOW_NAME

    assert (ENGINE_FLOW, CRASH_REPORT_FLOW) == (ENGINE_FLOW_NAME, REPORT_NAME)
    first = register_all(client)
    again = register_all(client)
    assert first == again
    for name in NAMES:
        [automation] = client.read_automations_by_name(name)
        assert first[f"automation/{name}"] == str(automation.id)
        assert automation.enabled

    [crashed] = client.read_automations_by_name(CRASHED_AUTOMATION)
    trigger = crashed.trigger
    assert trigger.posture == "Reactive" and trigger.expect == {"prefect.flow-run.Crashed"}
    assert {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.alphaforge"} in [
        spec.root for spec in trigger.match_related
    ]
    [action] = crashed.actions
    assert action.type == "run-deployment"
    assert str(action.deployment_id) == first["crash-report"]
    assert action.parameters["flow_run_id"]["template"] == "{{ flow_run.id }}"
    report = client.read_deployment(action.deployment_id)
    assert report.entrypoint == "flows.crashreport.crash_report_flow"

    [long_runs] = client.read_automations_by_name(LONG_RUN_AUTOMATION)
    trigger = long_runs.trigger
    assert trigger.posture == "Proactive"
    assert trigger.after == {"prefect.flow-run.Running"}
    assert {"prefect.flow-run.Completed", "prefect.flow-run.Failed"} <= trigger.expect
    assert "prefect.flow-run.Running" not in trigger.expect
    assert trigger.within == timedelta(minutes=360)  # ALPHAFORGE_MAX_RUN_MINUTES' default
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "!alphaforge-engine"} in [
        spec.root for spec in trigger.match_related
    ]
    assert [a["type"] for a in _raw_actions(client, long_runs.id)] == ["cancel-flow-run"]
    assert [a["type"] for a in _raw_actions(client, crashed.id)] == ["run-deployment"]

    # another bound updates the same automation
    ids = ensure_automations(client, max_run=timedelta(minutes=7))
    assert str(ids[LONG_RUN_AUTOMATION]) == first[f"automation/{LONG_RUN_AUTOMATION}"]
    [updated] = client.read_automations_by_name(LONG_RUN_AUTOMATION)
    assert updated.trigger.within == timedelta(minutes=7)


@pytest.mark.usefixtures("test_nodes")
def test_a_run_past_the_bound_is_cancelled_by_the_automation(
    client: SyncPrefectClient, tmp_path: Path
) -> None:
    ensure_automations(client, max_run=timedelta(seconds=10))
    flow_run_id, _ = _slow_run(client, tmp_path, seconds=240)
    wait_for(lambda: (s := _state(client, flow_run_id)) and s.is_running(), 120,
             what="the flow run to run")  # fmt: skip
    final = wait_for(
        lambda: (s := _state(client, flow_run_id)) and s.is_final() and s,
        timeout_s=120,
        what="the automation to cancel the run",
    )
    assert final.is_cancelled(), final
    history = client.read_flow_run_states(flow_run_id)
    assert any(
        s.type.value == "CANCELLING" and "Cancelled by Automation" in (s.message or "")
        for s in history
    ), [(s.type, s.message) for s in history]


@pytest.mark.usefixtures("test_nodes")
def test_a_crashed_run_is_reported_and_its_record_ended(
    client: SyncPrefectClient, tmp_path: Path
) -> None:
    ensure_automations(client)
    flow_run_id, run_dir = _slow_run(client, tmp_path, seconds=240)
    mark = wait_for(lambda: read_mark(run_dir), 120, what="the flow-run process")
    wait_for(lambda: (r := read_run_record(run_dir)) and r.status == "running", 60,
             what="the run record")  # fmt: skip
    os.kill(mark.pid, signal.SIGKILL)  # the process dies under its run
    crashed = wait_for(
        lambda: (s := _state(client, flow_run_id)) and s.is_final() and s, 120,
        what="the flow run to end",
    )  # fmt: skip
    assert crashed.is_crashed(), crashed
    record = wait_for(
        lambda: (r := read_run_record(run_dir)) and r.status != "running" and r,
        timeout_s=120,
        what="the crash report to end the record",
    )
    assert record.status == "failed"
    assert record.error and record.error.startswith("crashed: ") and record.finished_at
    assert crashed.message and crashed.message in record.error
    # Prefect's triggers fire at least once: a crash may start more than one report
    reports = _reports(client, flow_run_id)
    assert reports
    for report in reports:
        done = wait_for(lambda r=report: (s := _state(client, r.id)) and s.is_final() and s, 60,
                        what="the report flow run")  # fmt: skip
        assert done.is_completed(), done
    wait_for(lambda: _crash_events(client, flow_run_id), 60, what="the crash event")
    # a second report of the same crash (as a repeated firing starts it) reports nothing again
    again = client.create_flow_run_from_deployment(
        ensure_crash_report_deployment(client), parameters={"flow_run_id": str(flow_run_id)}
    )
    done = wait_for(lambda: (s := _state(client, again.id)) and s.is_final() and s, 120,
                    what="the repeated report")  # fmt: skip
    assert done.is_completed(), done
    time.sleep(10)  # the event persister's batches: a second event would be stored by now
    events = _crash_events(client, flow_run_id)
    assert len(events) == 1, [(e.id, e.payload) for e in events]
    assert events[0].payload["record_ended"] is True
    assert events[0].payload["run_id"] == run_dir.name


def _reports(client: SyncPrefectClient, flow_run_id: UUID) -> list[Any]:
    return [
        run for run in client.read_flow_runs(limit=200)
        if (run.parameters or {}).get("flow_run_id") == str(flow_run_id)
    ]  # fmt: skip


def _crash_events(client: SyncPrefectClient, flow_run_id: UUID) -> list[Any]:
    page = client.read_events(
        EventFilter(
            occurred=EventOccurredFilter(since=datetime.now(UTC) - timedelta(hours=1)),
            event=EventNameFilter(name=[CRASH_EVENT]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
        ),
        limit=10,
    )
    return list(page.events)
