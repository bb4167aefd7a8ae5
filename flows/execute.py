"""One node of a run, Prefect aside: cache lookup, runner, artifact commit, events.

The Prefect task in :mod:`flows.pipeline` is a thin wrapper around :func:`execute_job`, so this
is testable (and reusable by sweeps' in-process executor) without a Prefect server.
"""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from dsl.ir import NodeIR
from flows.artifacts import ArtifactStore
from flows.catalog import catalog_source
from flows.events import NodeEvent, publish
from flows.record import utc_now, write_json
from flows.settings import current_settings
from nodes.errors import AlphaForgeError
from runners.base import NodeResult, Runner
from runners.docker.runner import SandboxUnavailable
from runners.registry import RunnerContext, runner_for
from runners.registry import code_fingerprint as registered_code_fingerprint
from runners.userrunners import cancel_user_runners, release_user_runners, shared_user_runner

__all__ = [
    "NodeJob",
    "cancel_user_runners",
    "execute_job",
    "release_user_runners",
    "sandbox_record",
    "shared_user_runner",
]

# (level, message): the task sends these to Prefect's run logger.
LogFn = Callable[[str, str], None]


class NodeJob(BaseModel):
    """Everything a task needs to run one node; JSON-serialisable (a Prefect task parameter).

    ``inputs`` maps an input port to ``[[upstream_key, upstream_port], ...]`` — the artifacts it
    reads, in binding order; the column selection stays in the node's bindings.
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    run_dir: str
    node: NodeIR
    key: str
    cacheable: bool
    use_cache: bool = True
    inputs: dict[str, list[tuple[str, str]]]
    store_url: str
    store_cache_dir: str
    base_dir: str
    datasets: dict[str, str] = {}
    confine_paths: bool = False
    custom_nodes_dir: str | None = None
    code_fingerprint: str | None = None
    # The spec's runner choice for this node's runtime: auto | docker | process.
    runner_choice: str = "auto"
    # the run's MLflow store, where predict finds registered models
    mlflow_uri: str | None = None
    # the run's dataset catalog and namespace (RunSpec.catalog_url / catalog_namespace)
    catalog_url: str | None = None
    catalog_namespace: str | None = None

    def code(self) -> str | None:
        """The fingerprint of the node's code (the one its key was computed with), or None
        when it could not be taken (the node is then uncacheable and fails on its own)."""
        if self.code_fingerprint is not None:
            return self.code_fingerprint
        try:
            return registered_code_fingerprint(self.node)
        except Exception:  # the runner reports the real problem
            return None

    def store(self) -> ArtifactStore:
        """The run's artifact store."""
        return ArtifactStore(self.store_url, cache_dir=Path(self.store_cache_dir))

    def runner(self) -> Runner:
        """The runner registered for the node's runtime (``runners.registry``): built-ins
        in-process, custom nodes in the sandbox (the process-wide user-code runner of this run;
        raises SandboxUnavailable without one)."""
        ctx = RunnerContext(
            run_id=self.run_id,
            base_dir=Path(self.base_dir),
            datasets={k: Path(v) for k, v in self.datasets.items()},
            confine_paths=self.confine_paths,
            custom_nodes_dir=Path(self.custom_nodes_dir) if self.custom_nodes_dir else None,
            runner_choice=self.runner_choice,
            mlflow_uri=self.mlflow_uri,
            catalog=catalog_source(current_settings(), self.catalog_url, self.catalog_namespace),
        )
        return runner_for(ctx, self.node)


def execute_job(job: NodeJob, log: LogFn) -> NodeResult:
    """Run (or fetch from the cache) one node, record its result and publish its events."""
    node = job.node
    publish(NodeEvent(job.run_id, node.id, node.type, "started"))
    t0 = time.perf_counter()
    try:
        store = job.store()
        if job.use_cache and job.cacheable and store.has(job.key):
            result = NodeResult(status="cached", output_paths=store.output_paths(job.key))
            result.logs.append(f"[{node.id}] cache hit {job.key[:16]} ({node.type})")
        else:
            result = _compute(job, store)
    except Exception as exc:  # the store, not the node: same reporting rules
        tb = "".join(traceback.format_exception(exc)).rstrip()
        msg = str(exc) if isinstance(exc, AlphaForgeError) else f"{type(exc).__name__}: {exc}"
        result = NodeResult(
            status="failed",
            logs=[f"[{node.id}] {tb}", f"[{node.id}] failed: {msg}"],
            error=f"node {node.id!r}: {msg}",
            error_kind=type(exc).__name__,
        )
    result.usage["elapsed_s"] = round(time.perf_counter() - t0, 6)
    for line in result.logs:
        if result.status == "failed" and "Traceback" in line:
            log("ERROR", line)
        else:  # a node warns with a "warning: ..." log line (NodeContext.log)
            log("WARNING" if "] warning: " in line else "INFO", line)
    write_json(
        _result_path(job.run_dir, node.id),
        {
            "node": node.id,
            "type": node.type,
            "key": job.key,
            "code_fingerprint": job.code(),
            "finished_at": utc_now(),
        }
        | result.to_json(),
    )
    publish(
        NodeEvent(
            job.run_id,
            node.id,
            node.type,
            result.status,
            duration_s=result.usage["elapsed_s"],
            error=result.error,
        )
    )
    return result


def _compute(job: NodeJob, store: ArtifactStore) -> NodeResult:
    node = job.node
    input_paths: dict[str, list[str]] = {}
    for port, refs in job.inputs.items():
        input_paths[port] = [store.output_paths(key)[up_port] for key, up_port in refs]
    paths = {
        port: (refs if isinstance(node.inputs[port], tuple) else refs[0])
        for port, refs in input_paths.items()
    }
    try:
        runner = job.runner()
    except SandboxUnavailable as exc:
        msg = f"node {node.id!r} not run: {exc}"
        return NodeResult(
            status="failed",
            logs=[f"[{node.id}] {msg}"],
            error=msg,
            error_kind="SANDBOX_UNAVAILABLE",
        )
    staging = store.staging_dir()
    result = runner.run(node, paths, output_dir=staging)
    if not result.ok:
        shutil.rmtree(staging, ignore_errors=True)
        return result
    manifest = {
        "key": job.key,
        "node_type": node.type,
        "node_version": node.version,
        "runtime": node.runtime,
        "code_hash": node.code_hash,
        "code_fingerprint": job.code(),
        "params": node.params,
        "created_at": utc_now(),
        "run_id": job.run_id,
        "outputs": {
            port: {"file": Path(p).name, "type": node.outputs.get(port)}
            for port, p in result.output_paths.items()
        },
    }
    result.output_paths = store.commit(job.key, staging, manifest)
    result.logs.append(f"[{node.id}] computed in {result.usage.get('wall_s', 0):.3f}s")
    return result


def _result_path(run_dir: str, node_id: str) -> Path:
    return Path(run_dir) / "nodes" / f"{node_id}.json"


def sandbox_record(results: list[tuple[str, NodeResult]]) -> dict[str, Any] | None:
    """``run.json``'s ``sandbox``: ``{runner, images: {language: digest}}`` over the custom
    nodes that ran in a sandbox (``(runtime, result)`` pairs); None when none did."""
    runner: str | None = None
    images: dict[str, str] = {}
    for runtime, result in results:
        name = result.usage.get("runner")
        if runtime == "builtin" or name is None:
            continue
        runner = runner if runner == "process" else str(name)
        digest = result.usage.get("image_digest")
        if isinstance(digest, str) and digest:
            images[runtime] = digest
    if runner is None:
        return None
    return {"runner": runner, "images": images}
