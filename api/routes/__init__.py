"""The API's routers, one module per entity; :data:`ROUTERS` is what ``api.main`` mounts."""

from api.routes import (
    audit,
    auth,
    custom_nodes,
    datasets,
    language,
    live,
    meta,
    models,
    pipelines,
    run_outputs,
    runs,
    schedules,
    shares,
    sweeps,
    teams,
    users,
)

ROUTERS = [
    meta.router,
    auth.router,
    users.router,
    teams.router,
    teams.grants_router,
    pipelines.router,
    language.router,
    custom_nodes.router,
    datasets.router,
    runs.pipeline_runs,
    runs.router,
    run_outputs.router,
    models.router,
    sweeps.pipeline_sweeps,
    sweeps.router,
    schedules.pipeline_schedules,
    schedules.router,
    shares.router,
    shares.public_router,
    audit.router,
    live.strategies,
    live.instances,
    live.streams,
]

__all__ = ["ROUTERS"]
