"""Benchmark a web run: click ▶ Run → metrics on screen for the sample pipeline (issue 9 #11).

Starts a real ``alphaforge serve`` (throw-away data dir, admin password from
``AF_BENCH_UI_PASSWORD`` or a random one; ``ALPHAFORGE_WARM_WORKER`` passes through, so
``ALPHAFORGE_WARM_WORKER=0`` measures the plain process worker), then ``bench/web_run_timing.mjs``
logs in through headless Chromium, opens the seeded "Moving Average Crossover (Sample)" and
clicks ▶ Run :data:`RUNS` times, waiting each time for that run's metric cards. The first run
after the start is the **cold** one (target ≤ :data:`COLD_TARGET_S`); the median of the others
is the **warm** figure (target ≤ :data:`WARM_TARGET_S`).

The breakdown of each run joins three clocks of this one machine: the page's (click, POST
answered, results asked for, metrics on screen), Prefect's flow-run state history (Scheduled:
created by the API; Pending: a worker took it; Running: the engine started; Completed) and the
run's own timing marks in ``run.json`` (``at_process_s``: the flow-run process started,
``at_forked_s``: a warm process was forked for it, ``at_flow_s``: the flow body,
``at_nodes_done_s``, ``at_results_s``: metrics written, ``at_tracked_s``: MLflow done; seconds
since the API submitted the run). Needs node, /usr/bin/chromium, ``tests/e2e/node_modules`` and
``ui/dist``. Run with ``python bench/bench_web_run.py [--runs N]``; :func:`main` returns the
figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_ui import SAMPLE_NAME, _missing  # noqa: E402

WARM_TARGET_S = 3.0
COLD_TARGET_S = 10.0
RUNS = 6  # one cold, then warm ones
SCRIPT = ROOT / "bench" / "web_run_timing.mjs"

# The breakdown's steps: (label, the event that ends it). Each step lasts from the previous
# event that is known to this one.
STEPS = (
    ("POST /runs answered", "post_done"),
    ("flow run created (Scheduled)", "scheduled"),
    ("worker picked it up (Pending)", "pending"),
    ("flow-run process started", "process"),
    ("warm process forked", "forked"),
    ("engine started the flow (Running)", "running"),
    ("flow body started", "flow"),
    ("nodes done", "nodes_done"),
    ("metrics written", "results"),
    ("MLflow logged", "tracked"),
    ("Prefect state Completed", "completed"),
    ("page asked for the results", "results_asked"),
    ("metrics on screen", "visible"),
)


def _login(base: str, password: str) -> dict[str, str]:
    import httpx

    login = httpx.post(f"{base}/api/auth/login", json={"username": "admin", "password": password})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _sample_id(base: str, headers: dict[str, str]) -> int:
    import httpx

    listed = httpx.get(f"{base}/api/pipelines", headers=headers).json()["items"]
    [sample] = [p for p in listed if p["name"] == SAMPLE_NAME]
    return int(sample["id"])


def _prefect_api(serve_pid: int) -> str:
    """The API of the Prefect server ``serve`` started (its ``--port``, from /proc)."""
    from tests.serve_process import children

    for pid in children(serve_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "server" in argv and "start" in argv and "--port" in argv:
            return f"http://127.0.0.1:{argv[argv.index('--port') + 1]}/api"
    raise RuntimeError("the Prefect server of `alphaforge serve` was not found")


def _states(prefect_api: str, flow_run_id: str) -> dict[str, float]:
    """Epoch seconds of each state type the flow run went through (first occurrence)."""
    import httpx

    resp = httpx.get(f"{prefect_api}/flow_run_states/", params={"flow_run_id": flow_run_id})
    resp.raise_for_status()
    out: dict[str, float] = {}
    for state in sorted(resp.json(), key=lambda s: s["timestamp"]):
        kind = str(state["type"]).lower()
        out.setdefault(kind, datetime.fromisoformat(state["timestamp"]).timestamp())
    return out


def _record(data_dir: Path, flow_run_id: str) -> dict[str, Any]:
    for path in (data_dir / "runs").glob("*/run.json"):
        record = json.loads(path.read_text())
        if record.get("flow_run_id") == flow_run_id:
            return dict(record)
    return {}


def _events(
    run: dict[str, Any], states: dict[str, float], record: dict[str, Any]
) -> dict[str, Any]:
    """Every known event of one run, in seconds since the click."""
    click = run["click_ms"] / 1000
    events: dict[str, float] = {}
    for key in ("post_done", "results_asked", "visible"):
        if run.get(f"{key}_ms") is not None:
            events[key] = run[f"{key}_ms"] / 1000 - click
    for kind in ("scheduled", "pending", "running", "completed"):
        if kind in states:
            events[kind] = states[kind] - click
    submitted = (record.get("spec") or {}).get("submitted_at")
    timings = record.get("timings") or {}
    if submitted is not None:
        for mark in ("process", "forked", "flow", "nodes_done", "results", "tracked"):
            if f"at_{mark}_s" in timings:
                events[mark] = submitted + timings[f"at_{mark}_s"] - click
    cached = sum(1 for s in (record.get("node_states") or {}).values() if s == "cached")
    return {"events": {k: round(v, 4) for k, v in events.items()}, "cached_nodes": cached}


def _keep_logs(logs: Path) -> None:
    """The services' logs of this measurement, kept in bench/results/web_run_logs/."""
    import shutil

    target = ROOT / "bench" / "results" / "web_run_logs"
    shutil.rmtree(target, ignore_errors=True)
    if logs.is_dir():
        shutil.copytree(logs, target)


def _print_breakdown(label: str, events: dict[str, float]) -> None:
    print(f"  {label}: seconds since the click (step duration in brackets)")
    previous = 0.0
    for name, key in STEPS:
        if key not in events:
            continue
        at = events[key]
        print(f"    {at:7.3f}  (+{at - previous:6.3f})  {name}")
        previous = at


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure click → metrics, cold and warm, and print the breakdown against the targets."""
    from tests.serve_process import serve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs in all (first is cold)")
    args = parser.parse_args(argv)
    missing = _missing()
    if missing:
        raise RuntimeError("bench_web_run needs: " + ", ".join(missing))
    password = os.environ.get("AF_BENCH_UI_PASSWORD") or secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp), password) as served:
        headers = _login(served.base, password)
        pipeline_id = _sample_id(served.base, headers)
        prefect_api = _prefect_api(served.proc.pid)
        proc = subprocess.run(
            [
                *("node", str(SCRIPT), "--base-url", served.base, "--user", "admin"),
                *("--pipeline-id", str(pipeline_id), "--runs", str(args.runs)),
            ],
            cwd=ROOT,
            env={**os.environ, "AF_BENCH_PASSWORD": password},
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"web_run_timing.mjs failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        runs = report["runs"]
        _keep_logs(Path(tmp) / "data" / "logs")
        for run in runs:
            run.update(
                _events(
                    run,
                    _states(prefect_api, run["flow_run_id"]),
                    _record(Path(tmp) / "data", run["flow_run_id"]),
                )
            )
    cold = runs[0]
    warm = runs[1:]
    cold_s = cold["total_ms"] / 1000
    warm_s = [r["total_ms"] / 1000 for r in warm]
    warm_median = statistics.median(warm_s) if warm_s else float("nan")
    warm_ok = bool(warm_s) and warm_median <= WARM_TARGET_S
    cold_ok = cold_s <= COLD_TARGET_S
    warm_mode = os.environ.get("ALPHAFORGE_WARM_WORKER", "") or "default (on)"
    print(f"web run, click ▶ Run → metrics on screen (sample pipeline; warm worker: {warm_mode})")
    print(
        f"  cold (first run after start): {cold_s:.2f} s "
        f"(target ≤ {COLD_TARGET_S:.0f} s: {'PASS' if cold_ok else 'FAIL'})"
    )
    print(
        f"  warm (median of {len(warm_s)}): {warm_median:.2f} s "
        f"(target ≤ {WARM_TARGET_S:.0f} s: {'PASS' if warm_ok else 'FAIL'}); "
        f"runs: {', '.join(f'{s:.2f}' for s in warm_s)} s"
    )
    _print_breakdown(
        f"cold run #{cold['run_id']} ({cold['cached_nodes']} nodes from the cache)",
        cold["events"],
    )
    if warm:
        median_run = sorted(warm, key=lambda r: r["total_ms"])[len(warm) // 2]
        _print_breakdown(
            f"median warm run #{median_run['run_id']} "
            f"({median_run['cached_nodes']} nodes from the cache)",
            median_run["events"],
        )
    print(f"  load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if report["problems"]:
        print("  page problems: " + "; ".join(report["problems"]))
    return {
        "runs": len(runs),
        "cold_s": round(cold_s, 4),
        "warm_s": [round(s, 4) for s in warm_s],
        "warm_median_s": round(warm_median, 4),
        "cold_target_s": COLD_TARGET_S,
        "warm_target_s": WARM_TARGET_S,
        "cold_meets_target": cold_ok,
        "warm_meets_target": warm_ok,
        "breakdown": {str(r["run_id"]): r["events"] for r in runs},
        "problems": report["problems"],
        "load_average_1m": round(os.getloadavg()[0], 2),
        # For run_all's table: the warm median (the cold run has its own target above).
        "figure": "web run click → metrics, warm median",
        "figure_s": round(warm_median, 4),
        "target_s": WARM_TARGET_S,
        "meets_target": warm_ok and cold_ok,
    }


if __name__ == "__main__":
    main()
