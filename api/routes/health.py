"""Liveness and readiness probes for orchestrators and load balancers (no auth, no writes).

``GET /healthz``: the process is up (200, touches nothing). ``GET /readyz``: the database, the
Prefect API and the MLflow tracking server answer (200), or 503 naming what failed
(:mod:`api.services.readiness`). Both are outside ``/api`` (the probe paths operators expect),
out of the OpenAPI schema (docs/api-contract.md describes them) and never cached.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.services.readiness import Readiness, check_readiness

# operators' probes, not the UI's API: left out of the OpenAPI schema the UI is generated from
router = APIRouter(tags=["health"], include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


class Liveness(BaseModel):
    """The process answers."""

    status: str


@router.get("/healthz", response_model=Liveness)
def healthz() -> JSONResponse:
    """Liveness: 200 while the process serves requests; checks no dependency."""
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency failed its check."}},
)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database, Prefect and MLflow (those configured) answer within the
    time-out; 503 with the same body naming what failed otherwise."""
    state = request.app.state
    readiness = await check_readiness(state.engine, state.settings)
    code = 200 if readiness.status == "ready" else 503
    return JSONResponse(readiness.model_dump(), status_code=code, headers=NO_STORE)
