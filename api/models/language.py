"""Request and response shapes of the language services (validate, compile, node catalog)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from dsl.ir import PipelineIR


class SourceRequest(BaseModel):
    """A pipeline source to check or compile."""

    source: str
    pipeline_id: int | None = Field(
        default=None,
        ge=1,
        description="check it as this pipeline's owner would run it (their datasets and custom "
        "nodes) rather than the caller's; 404 if the caller may not see that pipeline",
    )


class DiagnosticOut(BaseModel):
    """One compiler diagnostic (1-based line/col, end exclusive)."""

    code: str
    severity: Literal["error", "warning", "info"]
    message: str
    line: int
    col: int
    end_line: int
    end_col: int
    hint: str | None = None
    suggestions: list[str] = Field(default_factory=list)


class OutlineItem(BaseModel):
    """A step of the pipeline, for the editor's outline and graph."""

    id: str
    type: str
    line: int
    col: int
    end_line: int
    end_col: int
    inputs: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)


class ValidateResponse(BaseModel):
    """``POST /api/validate``: always 200; ``ok`` says whether the source compiles."""

    ok: bool
    diagnostics: list[DiagnosticOut]
    outline: list[OutlineItem]
    ir: PipelineIR | None
    ir_hash: str | None


class DslErrorDetail(BaseModel):
    """The ``detail`` of a 422 caused by DSL errors."""

    message: str
    diagnostics: list[DiagnosticOut]


class PortSpec(BaseModel):
    """A node type's input or output port."""

    name: str
    type: str
    doc: str = ""
    optional: bool = False
    variadic: bool = False
    columns: list[str] | None = None


class NodeSpec(BaseModel):
    """A node type as the catalog shows it."""

    name: str
    version: str
    category: str
    summary: str
    doc: str
    inputs: list[PortSpec]
    outputs: list[PortSpec]
    params_schema: dict[str, Any]
    metric_keys: list[str]
    runtime: str
    custom: bool = False
    use: str | None = Field(default=None, description='custom nodes: "name@version" to `use`')


class DslErrorResponse(BaseModel):
    """A 422 body caused by DSL errors."""

    detail: DslErrorDetail
