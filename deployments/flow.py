"""The flow every Alpha Forge deployment runs: the one pipeline flow.

There is one flow definition, :func:`flows.pipeline.pipeline_flow` (one ``RunSpec`` parameter,
run id derived from the flow run when the spec has none, extra node modules, cancellation
hooks); deployments reference it by module path. The names here are what deployments and the
API import.
"""

from __future__ import annotations

from flows.pipeline import EXTRA_NODE_MODULES_ENV, pipeline_flow, run_id_for

__all__ = ["ENTRYPOINT", "EXTRA_NODE_MODULES_ENV", "pipeline_flow", "run_id_for"]

# A module path (no colon): Prefect imports it instead of copying code from storage.
ENTRYPOINT = "flows.pipeline.pipeline_flow"
