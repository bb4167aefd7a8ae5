"""Language services for the editor: validate, compile, the node catalog."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.models.language import DslErrorResponse, NodeSpec, SourceRequest, ValidateResponse
from api.services import custom_nodes
from api.services.language import node_catalog, require_ir
from api.services.pipelines import compile_for, get_pipeline
from dsl.ir import PipelineIR

router = APIRouter(prefix="/api", tags=["language"])


@router.post("/validate", response_model=ValidateResponse)
def validate(
    body: SourceRequest, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> ValidateResponse:
    """Diagnostics, outline and (when it compiles) the IR; always 200. ``use`` pins resolve
    over the caller's custom nodes."""
    owner = _owner(session, user, body)
    compiled = compile_for(session, body.source, owner, settings, dataset_severity="error")
    return compiled.to_response()


@router.post(
    "/compile",
    response_model=PipelineIR,
    responses={422: {"model": DslErrorResponse, "description": "the source has errors"}},
)
def compile_pipeline(
    body: SourceRequest, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> PipelineIR:
    """The IR, or 422 with diagnostics (``use`` pins over the caller's custom nodes)."""
    owner = _owner(session, user, body)
    compiled = compile_for(session, body.source, owner, settings, dataset_severity="error")
    return require_ir(compiled)


def _owner(session: SessionDep, user: CurrentUser, body: SourceRequest) -> int:
    """Whose datasets and custom nodes the source is checked against: the named pipeline's
    owner (an admin viewing someone's pipeline sees what a run of it resolves), else the
    caller's."""
    if body.pipeline_id is None:
        return user.id or 0
    return get_pipeline(session, user, body.pipeline_id).owner_id


@router.get("/nodes", response_model=list[NodeSpec])
def nodes(user: CurrentUser, session: SessionDep) -> list[NodeSpec]:
    """The node catalog: the built-ins, then the caller's custom nodes (latest versions,
    ``custom: true``, ``use: "name@version"``)."""
    return [*node_catalog(), *custom_nodes.catalog(session, user)]
