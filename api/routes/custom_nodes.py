"""Custom nodes (docs/custom-nodes.md): templates, CRUD, versions, diff, test run."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, ObjectId, PagingDep, SessionDep, SettingsDep, WriterUser
from api.errors import Unprocessable, plain_message
from api.models.common import Page, error_responses
from api.models.custom_node import (
    CustomNodePublic,
    CustomNodeSummary,
    ManifestIn,
    NodeDiff,
    NodeTemplate,
    NodeTestRunIn,
    NodeTestRunResult,
    NodeVersion,
)
from api.services import custom_nodes, manifests, node_lab


class ManifestError(BaseModel):
    """One problem with a manifest: where (``loc``, e.g. ``["inputs", 0, "type"]``) and what."""

    loc: list[int | str]
    msg: str


class ManifestErrorDetail(BaseModel):
    """The ``detail`` of a 422 for an invalid manifest or request."""

    message: str
    errors: list[ManifestError]


class ManifestErrorResponse(BaseModel):
    """A 422 body of these routes."""

    detail: ManifestErrorDetail


class _ContractErrors(APIRoute):
    """Request validation errors in this router's 422 shape (``{message, errors}``), so the
    editor reads one shape whether FastAPI or the manifest check refused the request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = [
                    (
                        tuple(e["loc"][1:] if e["loc"][:1] == ("body",) else e["loc"]),
                        plain_message(e),
                    )
                    for e in exc.errors()
                ]
                raise Unprocessable(manifests.validation_detail(errors)) from None

        return route


router = APIRouter(
    prefix="/api/custom-nodes",
    tags=["custom nodes"],
    route_class=_ContractErrors,
    responses={
        **error_responses(401, 403, 404),
        422: {"model": ManifestErrorResponse, "description": "invalid manifest or request"},
    },
)
_409 = error_responses(409)
Version = Annotated[
    str, Path(max_length=128, pattern=r"^[0-9A-Za-z.+-]+$", description="A semantic version.")
]
QueryVersion = Annotated[str, Query(max_length=128, pattern=r"^[0-9A-Za-z.+-]+$")]


@router.get("/templates", response_model=list[NodeTemplate])
def templates(_user: CurrentUser) -> list[NodeTemplate]:
    """The nine starting points (indicator, signal, transform per language)."""
    return manifests.templates()


@router.post(
    "/test-run",
    response_model=NodeTestRunResult,
    responses=error_responses(429, 502, 503, 504),
)
async def test_run(
    body: NodeTestRunIn,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> NodeTestRunResult:
    """Run a manifest once in the sandbox, on a worker, on the last ``rows`` sample bars;
    nothing is saved. 429 with ``Retry-After`` when the caller (or everyone) already has as
    many test runs and look-ahead checks running and waiting as allowed; 503 without a sandbox
    (or a worker), 504 when the worker took too long (the flow run is cancelled), 502 when its
    flow run failed. Audited (``custom_node.test_run``) with its outcome."""
    data = body.manifest
    manifest = manifests.manifest_in_to_manifest(
        data, data.version or "0.0.0", prefix=("manifest",), check_code=False
    )
    # No database connection while the sandbox works: the session is closed here (the user's
    # row stays readable) and a new one records the outcome.
    await run_in_threadpool(session.close)
    result = await node_lab.limited_test_run(
        request.app.state.sandbox_limits,
        request.app.state.engine,
        settings,
        user,
        manifest,
        body.params,
        body.rows,
    )
    return NodeTestRunResult.model_validate(result)


@router.get("", response_model=Page[CustomNodeSummary])
def list_nodes(
    user: CurrentUser, session: SessionDep, paging: PagingDep
) -> Page[CustomNodeSummary]:
    """Custom nodes the caller may see, newest first."""
    return custom_nodes.list_nodes(session, user, offset=paging.offset, limit=paging.limit)


@router.post(
    "", response_model=CustomNodePublic, status_code=status.HTTP_201_CREATED, responses=_409
)
def create_node(
    body: ManifestIn,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> CustomNodePublic:
    """A new custom node with its first version (look-ahead checked on the way)."""
    limits = request.app.state.sandbox_limits
    return custom_nodes.create(session, user, body, settings, limits=limits)


@router.get("/{node_id}", response_model=CustomNodePublic)
def get_node(node_id: ObjectId, user: CurrentUser, session: SessionDep) -> CustomNodePublic:
    """The node with its latest version."""
    return custom_nodes.public(session, custom_nodes.get_node(session, user, node_id), user)


@router.put("/{node_id}", response_model=CustomNodePublic, responses=_409)
def save_node(
    node_id: ObjectId,
    body: ManifestIn,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> CustomNodePublic:
    """Save a new version (nothing changes when the manifest is unchanged)."""
    limits = request.app.state.sandbox_limits
    return custom_nodes.save(session, user, node_id, body, settings, limits=limits)


@router.delete(
    "/{node_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=_409
)
def delete_node(node_id: ObjectId, user: WriterUser, session: SessionDep) -> Response:
    """Soft delete (409 while any version is in use; the name becomes free)."""
    custom_nodes.delete(session, user, node_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{node_id}/versions", response_model=list[NodeVersion])
def list_versions(node_id: ObjectId, user: CurrentUser, session: SessionDep) -> list[NodeVersion]:
    """The versions without their code, newest first."""
    return custom_nodes.list_versions(session, user, node_id)


@router.get("/{node_id}/versions/{version}", response_model=NodeVersion)
def get_version(
    node_id: ObjectId, version: Version, user: CurrentUser, session: SessionDep
) -> NodeVersion:
    """One version with its code."""
    return custom_nodes.get_version(session, user, node_id, version)


@router.delete(
    "/{node_id}/versions/{version}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_409,
)
def delete_version(
    node_id: ObjectId, version: Version, user: WriterUser, session: SessionDep
) -> Response:
    """Delete a version (409 while in use, or when it is the only one)."""
    custom_nodes.delete_version(session, user, node_id, version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{node_id}/diff", response_model=NodeDiff)
def diff_versions(
    node_id: ObjectId,
    from_version: QueryVersion,
    to_version: QueryVersion,
    user: CurrentUser,
    session: SessionDep,
) -> NodeDiff:
    """The code as a unified diff, other manifest fields as a list of changes."""
    return custom_nodes.diff(session, user, node_id, from_version, to_version)


test_run.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
