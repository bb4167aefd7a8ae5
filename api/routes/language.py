"""Language services for the editor: validate, compile, the node catalog."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, SettingsDep
from api.models.language import DslErrorResponse, NodeSpec, SourceRequest, ValidateResponse
from api.services.language import compile_text, node_catalog, require_ir
from dsl.ir import PipelineIR

router = APIRouter(prefix="/api", tags=["language"])


@router.post("/validate", response_model=ValidateResponse)
def validate(body: SourceRequest, _user: CurrentUser, settings: SettingsDep) -> ValidateResponse:
    """Diagnostics, outline and (when it compiles) the IR; always 200."""
    return compile_text(body.source, settings).to_response()


@router.post(
    "/compile",
    response_model=PipelineIR,
    responses={422: {"model": DslErrorResponse, "description": "the source has errors"}},
)
def compile_pipeline(body: SourceRequest, _user: CurrentUser, settings: SettingsDep) -> PipelineIR:
    """The IR, or 422 with diagnostics."""
    return require_ir(compile_text(body.source, settings))


@router.get("/nodes", response_model=list[NodeSpec])
def nodes(_user: CurrentUser) -> list[NodeSpec]:
    """The node catalog."""
    return list(node_catalog())
