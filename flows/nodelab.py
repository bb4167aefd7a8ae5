"""The node lab: test-run a custom node on the bundled sample, and its look-ahead check.

Both run the node in the same sandbox as a pipeline (``runners.docker.user_code_runner``) and
save nothing. They run on a worker, never in the API process: :func:`node_test_run_flow` and
:func:`lookahead_flow` are the flows of the ``nodelab`` deployments (JSON parameters: the
manifest with its code as JSON, params, rows; the sample bars are the worker's own). Each
writes its outcome (:func:`lab_outcome`) as JSON into the artifact store the API reads, under a
key the API chose (:func:`write_result` / :func:`read_result`), and kills its containers when
its flow run is cancelled. The inputs come from the bundled sample
(``examples/data/sample_ohlcv.csv``, or ``ALPHAFORGE_SAMPLE_OHLCV``), per input port type
(docs/custom-nodes.md):

- ``ohlcv`` → the bars, ``series`` → close, ``signal`` → the sign of the 5-bar close change,
  ``frame`` → the bars without volume, ``equity`` → a frame whose ``equity`` column is close
  scaled to start at 10,000.

:func:`test_run` returns the test-run route's body; :func:`check_lookahead` the ``Lookahead``
object (:mod:`runners.lookahead`). Both raise :class:`SandboxUnavailable` when no sandbox can run
user code (the API answers 503).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger
from prefect.context import get_run_context

from dsl.ir import InputBinding, NodeIR
from flows.customnodes import kill_run_containers
from flows.startguard import stop_if_cancelled_before_start
from flows.tracebacks import LAB_POINTER, scrub_entries, unexpected
from nodes.base import PortType
from runners.base import NodeResult
from runners.custom import CustomNodeManifest, ManifestCatalog
from runners.io import read_value, write_value
from runners.lookahead import (
    changed_bars,
    combine,
    lookahead_error,
    lookahead_plan,
    lookahead_skipped,
)

__all__ = [
    "LOOKAHEAD_FLOW",
    "LOOKAHEAD_ROWS",
    "PREVIEW_ROWS",
    "TEST_RUN_FLOW",
    "check_lookahead",
    "lab_outcome",
    "load_sample",
    "lookahead_flow",
    "node_test_run_flow",
    "preview",
    "read_result",
    "sample_inputs",
    "sample_path",
    "test_run",
    "write_result",
]

log = logging.getLogger(__name__)

SAMPLE_ENV = "ALPHAFORGE_SAMPLE_OHLCV"
SAMPLE_RELATIVE = Path("examples") / "data" / "sample_ohlcv.csv"
PREVIEW_ROWS = 10
LOOKAHEAD_ROWS = 400
SIGNAL_LOOKBACK = 5
EQUITY_START = 10_000.0
TEST_RUN_FLOW = "alphaforge-node-test-run"
LOOKAHEAD_FLOW = "alphaforge-lookahead-check"
RESULTS_PREFIX = "nodelab"
_RESULT_KEY = re.compile(r"^[0-9a-f]{32}$")
# Lab runs whose flow run was cancelled: no new container starts for them in this process.
_ABORTED: set[str] = set()
_ABORTED_LOCK = threading.Lock()


def sample_path() -> Path:
    """The bundled sample: ``$ALPHAFORGE_SAMPLE_OHLCV``, else ``examples/data/sample_ohlcv.csv``
    next to this package's repository, else under the working directory."""
    env = os.environ.get(SAMPLE_ENV)
    candidates = [Path(env)] if env else []
    candidates += [
        Path(__file__).resolve().parents[1] / SAMPLE_RELATIVE,
        Path.cwd() / SAMPLE_RELATIVE,
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"the sample OHLCV file is missing (looked at {candidates})")


@lru_cache(maxsize=4)
def _load(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    index = pd.DatetimeIndex(pd.to_datetime(raw["ts"]), name="ts")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    bars = raw.drop(columns=["ts"]).astype("float64")
    bars.index = index
    return bars


def load_sample() -> pd.DataFrame:
    """The whole sample as an OHLCV frame (float columns, UTC index named ``ts``)."""
    return _load(sample_path()).copy()


def sample_inputs(
    manifest: CustomNodeManifest, start: int, stop: int, bars: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The node's inputs (port → value) over sample bars ``[start, stop)`` (of ``bars``, by
    default the sample).

    Derived values are computed on the whole sample and then cut, so a prefix window's inputs
    are exactly the first rows of a longer window's (what the look-ahead check relies on).
    """
    bars = load_sample() if bars is None else bars
    close = bars["close"]
    window = slice(start, stop)
    out: dict[str, Any] = {}
    for port in manifest.inputs:
        if port.type == PortType.OHLCV:
            out[port.name] = bars.iloc[window].copy()
        elif port.type == PortType.SERIES:
            out[port.name] = close.iloc[window].rename("close")
        elif port.type == PortType.SIGNAL:
            sig = np.sign(close - close.shift(SIGNAL_LOOKBACK)).fillna(0.0)
            out[port.name] = sig.iloc[window].rename("signal")
        elif port.type == PortType.FRAME:
            out[port.name] = bars.drop(columns=["volume"]).iloc[window].copy()
        elif port.type == PortType.EQUITY:
            c = close.iloc[window]
            out[port.name] = (c / c.iloc[0] * EQUITY_START).rename("equity").to_frame()
        else:  # the manifest validator refuses other input types
            raise ValueError(f"input {port.name!r}: no sample for a {port.type.value}")
    return out


def _json_scalar(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _model_rows(model: Any) -> dict[str, Any]:
    """A trained model as a preview's rows (ten: the preview's head): the architecture, the
    features (JSON text), the number of weights, the epochs trained and the best one's losses."""
    summary = model.summary()
    return {
        "arch": summary.get("arch"),
        "window": summary.get("window"),
        "hidden": summary.get("hidden"),
        "layers": summary.get("layers"),
        "features": json.dumps(summary.get("features")),
        "weights": int(sum(np.asarray(a).size for a in getattr(model, "state", {}).values())),
        "epochs": len(getattr(model, "history", [])),
        "best_epoch": summary.get("best_epoch"),
        "best_val_loss": summary.get("best_val_loss"),
        "train_loss_at_best": summary.get("train_loss_at_best"),
    }


def preview(value: Any, port_type: PortType | str) -> dict[str, Any]:
    """``{type, rows, columns, head, tail}``: the first and last 10 rows, ISO timestamps in a
    ``ts`` column, NaN/inf → null. Metrics are rows of ``[metric, value]``."""
    pt = PortType(port_type)
    if hasattr(value, "summary") and not isinstance(value, pd.Series | pd.DataFrame):
        value = _model_rows(value)  # a model: its summary as rows of [field, value]
    if isinstance(value, dict):
        items = [[str(k), _json_scalar(v)] for k, v in value.items()]
        return {
            "type": pt.value,
            "rows": len(items),
            "columns": ["metric", "value"],
            "head": items[:PREVIEW_ROWS],
            "tail": items[-PREVIEW_ROWS:] if len(items) > PREVIEW_ROWS else [],
        }
    frame = value.to_frame(name=value.name or "value") if isinstance(value, pd.Series) else value
    columns = ["ts"] + [str(c) for c in frame.columns]

    def rows(part: pd.DataFrame) -> list[list[Any]]:
        return [
            [_json_scalar(ts)] + [_json_scalar(v) for v in row]
            for ts, row in zip(part.index, part.itertuples(index=False, name=None), strict=True)
        ]

    return {
        "type": pt.value,
        "rows": len(frame),
        "columns": columns,
        "head": rows(frame.head(PREVIEW_ROWS)),
        "tail": rows(frame.tail(PREVIEW_ROWS)),
    }


def _node_ir(manifest: CustomNodeManifest, params: dict[str, Any]) -> NodeIR:
    return NodeIR(
        id=manifest.name,
        type=manifest.name,
        version=manifest.version,
        params=params,
        inputs={p.name: InputBinding(node="sample", port=p.name) for p in manifest.inputs},
        outputs={p.name: p.type.value for p in manifest.outputs},
        runtime=manifest.language,
        code_hash=manifest.code_hash(),
    )


def _lab_run_id(run_id: str | None) -> str:
    return run_id or f"nodelab-{uuid.uuid4().hex}"


def _execute(
    manifest: CustomNodeManifest, params: dict[str, Any], inputs: dict[str, Any], run_id: str
) -> tuple[NodeResult, dict[str, Any]]:
    """Run the node once in the sandbox, its container labelled ``run_id``; (result, output
    values). Raises SandboxUnavailable."""
    from runners.docker.runner import SandboxUnavailable, user_code_runner

    with _ABORTED_LOCK:
        if run_id in _ABORTED:
            raise RuntimeError(f"lab run {run_id} was cancelled")
    runner = user_code_runner(ManifestCatalog([manifest]), run_id=run_id)
    work = Path(tempfile.mkdtemp(prefix="alphaforge-nodelab-"))
    try:
        paths: dict[str, str] = {}
        types = {p.name: p.type for p in manifest.inputs}
        for port, value in inputs.items():
            path = work / f"in-{port}.parquet"
            write_value(value, types[port], path)
            paths[port] = str(path)
        result = runner.run(_node_ir(manifest, params), paths, output_dir=work / "out")
        if result.error_kind == "SANDBOX_UNAVAILABLE":
            raise SandboxUnavailable(result.error or "no sandbox is available")
        outputs = (
            {p: read_value(path) for p, path in result.output_paths.items()} if result.ok else {}
        )
        return result, outputs
    finally:
        close = getattr(runner, "close", None)
        if close is not None:
            close()
        shutil.rmtree(work, ignore_errors=True)


def test_run(
    manifest: CustomNodeManifest,
    params: dict[str, Any],
    rows: int = 300,
    *,
    run_id: str | None = None,
) -> dict:
    """Run ``manifest`` once on the last ``rows`` sample bars; the test-run route's body:

    ``{status: "completed"|"failed", error_kind, error, logs, wall_s, inputs: {port: Preview},
    outputs: {port: Preview}}``. The container is labelled ``run_id`` (default: a fresh
    ``nodelab-…`` id). Raises :class:`SandboxUnavailable` (→ 503).
    """
    total = len(load_sample())
    rows = max(1, min(int(rows), total))
    inputs = sample_inputs(manifest, total - rows, total)
    t0 = time.perf_counter()
    result, outputs = _execute(manifest, dict(params or {}), inputs, _lab_run_id(run_id))
    types = {p.name: p.type for p in manifest.inputs} | {p.name: p.type for p in manifest.outputs}
    return {
        "status": "completed" if result.ok else "failed",
        "error_kind": result.error_kind,
        "error": result.error,
        "logs": _user_logs(result.logs),
        "wall_s": round(time.perf_counter() - t0, 4),
        "inputs": {port: preview(v, types[port]) for port, v in inputs.items()},
        "outputs": {port: preview(v, types[port]) for port, v in outputs.items()},
    }


# pytest would collect a module-level ``test_*`` function imported into a test module
test_run.__test__ = False  # type: ignore[attr-defined]


def check_lookahead(
    manifest: CustomNodeManifest,
    params: dict[str, Any] | None = None,
    *,
    run_id: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The look-ahead verdict (``Lookahead``) of the node on the last 400 sample bars: compared
    with its runs on prefixes of random lengths and on the window with the bars after a random
    row changed (:mod:`runners.lookahead`: the plan from ``seed``, random when None, and the
    verdict, which reports the seed so that a failure can be replayed).

    ``checked_rows`` is the whole run's row count, ``prefix_rows`` the failing prefix's (the
    longest one on a pass). ``error`` when the node failed on any input; ``skipped`` (without
    running) when it has no series, signal or frame output. 1 + 3 + 1 executions, two at a
    time, their containers labelled ``run_id`` (default: a fresh ``nodelab-…`` id). Raises
    :class:`SandboxUnavailable` (→ 503).
    """
    port_types = {p.name: p.type for p in manifest.outputs}
    if not any(
        t in (PortType.SERIES, PortType.SIGNAL, PortType.FRAME) for t in port_types.values()
    ):
        return lookahead_skipped()
    bars = load_sample()
    total = len(bars)
    whole_rows = min(LOOKAHEAD_ROWS, total)
    start = total - whole_rows
    plan = lookahead_plan(whole_rows, secrets.randbelow(2**31) if seed is None else int(seed))
    args = dict(params or {})
    lab_id = _lab_run_id(run_id)
    jobs = [("the whole input", whole_rows, sample_inputs(manifest, start, total, bars))]
    jobs += [
        (f"the first {n} bars", n, sample_inputs(manifest, start, start + n, bars))
        for n in plan.prefix_lengths
    ]
    changed = changed_bars(bars, start + plan.changed_from, plan.factor)
    jobs.append(
        (
            f"bars changed from row {plan.changed_from}",
            whole_rows,
            sample_inputs(manifest, start, total, changed),
        )
    )
    # Not ``with``: a termination (a cancelled flow run) must not wait for the threads, whose
    # containers its handler kills.
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lookahead")
    try:
        futures = [pool.submit(_execute, manifest, args, inputs, lab_id) for *_, inputs in jobs]
        done = [f.result() for f in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for (label, n, _), (res, _) in zip(jobs, done, strict=True):
        if not res.ok:
            return lookahead_error(
                f"the node failed on {label} ({n} bars): {res.error_kind}: {res.error}",
                whole_rows,
                n,
            ) | {"seed": plan.seed}
    outputs = [out for _, out in done]
    return combine(plan, port_types, outputs[0], outputs[1:-1], outputs[-1])


# ---- on a worker: the flows of the ``nodelab`` deployments and their results ---------------


def lab_outcome(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """What a lab flow reports: ``{ok: true, value}`` with ``work()``'s value, or ``{ok: false,
    error_kind, error}``: ``SANDBOX_UNAVAILABLE`` when no sandbox can run user code here,
    ``LAB_ERROR`` for anything else that went wrong (the traceback goes to the log)."""
    from runners.docker.runner import SandboxUnavailable

    try:
        return {"ok": True, "value": work()}
    except SandboxUnavailable as exc:
        return {"ok": False, "error_kind": "SANDBOX_UNAVAILABLE", "error": str(exc)}
    except Exception as exc:
        log.error("the node lab failed:\n%s", "".join(traceback.format_exception(exc)))
        error = unexpected("the node lab", exc, "in the worker's log")
        return {"ok": False, "error_kind": "LAB_ERROR", "error": error}


def _user_logs(lines: list[str]) -> list[str]:
    """A test run's log lines without Python tracebacks (those go to the worker's log)."""
    shown, hidden = scrub_entries(lines, LAB_POINTER)
    if hidden:
        log.info("a node lab test run's traceback:\n%s", "\n".join(hidden))
    return shown


def _result_path(store_url: str, key: str) -> tuple[Any, str]:
    import fsspec

    if not _RESULT_KEY.match(key):
        raise ValueError(f"result key {key!r} is not 32 lowercase hex digits")
    fs, base = fsspec.core.url_to_fs(store_url.removeprefix("file://"))
    return fs, f"{base.rstrip('/')}/{RESULTS_PREFIX}/{key}.json"


def write_result(store_url: str, key: str, outcome: dict[str, Any]) -> None:
    """Put ``outcome`` as ``<store>/nodelab/<key>.json`` (``key``: 32 hex digits)."""
    fs, path = _result_path(store_url, key)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, json.dumps(outcome, allow_nan=False).encode())


def read_result(store_url: str, key: str, *, remove: bool = True) -> dict[str, Any] | None:
    """The outcome under ``key`` (removed once read, unless ``remove=False``); None if absent."""
    fs, path = _result_path(store_url, key)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    if remove:
        fs.rm_file(path)
    outcome: dict[str, Any] = json.loads(data)
    return outcome


def _default_store_url() -> str:
    from flows.settings import get_settings

    settings = get_settings()
    return settings.artifact_store_url or str(settings.artifacts_dir)


def _flow_lab_id() -> str:
    flow_run = getattr(get_run_context(), "flow_run", None)
    return f"nodelab-{flow_run.id.hex}" if flow_run is not None else _lab_run_id(None)


def abort_lab_run(lab_id: str) -> int:
    """A lab run's flow run was cancelled: no new container starts for it in this process and
    every container labelled with it is killed; returns how many."""
    with _ABORTED_LOCK:
        _ABORTED.add(lab_id)
    return kill_run_containers(lab_id)


def _run_lab(
    what: str,
    work: Callable[[str], dict[str, Any]],
    result_key: str | None,
    store_url: str | None,
) -> dict[str, Any]:
    stop_if_cancelled_before_start()
    logger = get_run_logger()
    lab_id = _flow_lab_id()
    logger.info(f"[nodelab] {what} (containers labelled {lab_id})")
    try:
        outcome = lab_outcome(lambda: work(lab_id))
    except BaseException:  # a cancellation's SIGTERM, Ctrl-C: no container outlives the run
        killed = abort_lab_run(lab_id)
        logger.warning(f"[nodelab] {what} cancelled; killed {killed} container(s)")
        raise
    if not outcome["ok"]:
        logger.warning(f"[nodelab] {what}: {outcome['error_kind']}: {outcome['error']}")
    if result_key:
        write_result(store_url or _default_store_url(), result_key, outcome)
    return outcome


@flow(name=TEST_RUN_FLOW, persist_result=False, validate_parameters=True)
def node_test_run_flow(
    manifest_json: str,
    params: dict[str, Any] | None = None,
    rows: int = 300,
    result_key: str | None = None,
    store_url: str | None = None,
) -> dict[str, Any]:
    """Test-run a manifest (its JSON, code included) on the last ``rows`` sample bars of this
    worker; the outcome's ``value`` is :func:`test_run`'s body. With ``result_key`` the outcome
    is also written to ``store_url`` (default: this worker's artifact store)."""
    manifest = CustomNodeManifest.model_validate_json(manifest_json)
    return _run_lab(
        f"test run of {manifest.name}@{manifest.version} on {rows} bars",
        lambda lab_id: test_run(manifest, params or {}, rows, run_id=lab_id),
        result_key,
        store_url,
    )


@flow(name=LOOKAHEAD_FLOW, persist_result=False, validate_parameters=True)
def lookahead_flow(
    manifest_json: str,
    params: dict[str, Any] | None = None,
    result_key: str | None = None,
    store_url: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The look-ahead check of a manifest (its JSON, code included) on this worker's sample;
    the outcome's ``value`` is :func:`check_lookahead`'s verdict (``seed``: replay a check).
    ``result_key`` and ``store_url`` as for :func:`node_test_run_flow`."""
    manifest = CustomNodeManifest.model_validate_json(manifest_json)
    return _run_lab(
        f"look-ahead check of {manifest.name}@{manifest.version}",
        lambda lab_id: check_lookahead(manifest, params, run_id=lab_id, seed=seed),
        result_key,
        store_url,
    )
