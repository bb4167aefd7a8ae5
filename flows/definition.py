"""The parts of a run's definition the IR does not hold by itself (``run.json``).

The IR pins node types, versions, params, catalog versions and custom nodes' code hashes; what
else decides a result is recorded beside it: where each data node read from (the file, the web
dataset or the catalog version, with the fingerprint taken before the run), the seeds, the
custom nodes' code hashes (their manifests stay in ``<store>/custom-nodes``), the package lock
(:mod:`flows.lock`) and the sandbox images (:func:`flows.execute.sandbox_record`).
See docs/reproducibility.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from dsl.ir import PipelineIR
from runners.inprocess import InProcessRunner

__all__ = ["SEED_PARAMS", "custom_nodes", "data_sources", "seeds"]

# Param names that hold a random seed.
SEED_PARAMS = ("seed", "random_state", "random_seed")


def seeds(ir: PipelineIR, spec_seed: int | None) -> dict[str, Any]:
    """``{"spec": <the spec's seed or None>, "nodes": {node id: {param: value}}}``."""
    nodes: dict[str, dict[str, Any]] = {}
    for node in ir.nodes:
        found = {k: v for k, v in node.params.items() if k in SEED_PARAMS}
        if found:
            nodes[node.id] = found
    return {"spec": spec_seed, "nodes": nodes}


def custom_nodes(ir: PipelineIR) -> dict[str, str]:
    """Node id -> code hash of every user-code node."""
    return {n.id: n.code_hash for n in ir.nodes if n.runtime != "builtin" and n.code_hash}


def data_sources(
    ir: PipelineIR, runner: InProcessRunner, fingerprints: Mapping[str, str | None]
) -> dict[str, dict[str, Any]]:
    """Node id -> where each node with a data fingerprint read from: ``{"file": <absolute
    path>}`` (file loaders), ``{"dataset": <name>, "file": <path>}`` (web datasets),
    ``{"catalog_version": <hash>}`` (catalog steps), or ``{}`` (a registered model, say)."""
    out: dict[str, dict[str, Any]] = {}
    ctx = runner.context()
    for node_id, fingerprint in fingerprints.items():
        node = ir.node(node_id)
        source: dict[str, Any] = {}
        if fingerprint and fingerprint.startswith("catalog:"):
            source["catalog_version"] = fingerprint.removeprefix("catalog:")
        elif node.type == "dataset_ohlcv" and node.params.get("name") in runner.datasets:
            name = node.params["name"]
            source = {"dataset": name, "file": str(runner.datasets[name])}
        elif isinstance(node.params.get("path"), str):
            with contextlib.suppress(Exception):  # the node fails on its own, saying why
                source["file"] = str(ctx.resolve_path(node.params["path"]))
        out[node_id] = source
    return out
