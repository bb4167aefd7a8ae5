"""Compiling pipeline sources for the API: one compile per request, limits before parsing.

Wraps :func:`dsl.compile_source`: a source over ``max_dsl_chars`` never reaches the parser (it
gets the compiler's own AF002 diagnostic), and the result is converted once into the API's
response shapes so routes and services never see compiler internals.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from api.errors import Unprocessable
from api.models.language import DiagnosticOut, NodeSpec, OutlineItem, ValidateResponse
from api.settings import ApiSettings
from dsl import compile_source
from dsl.catalogref import DatasetResolver
from dsl.compiler import DatasetSeverity
from dsl.ir import PipelineIR
from dsl.nodespec import NodeResolver
from dsl.strategyref import StrategyResolver
from nodes.base import registry

FILENAME = "pipeline.af"


@dataclass(frozen=True)
class Compiled:
    """A compile result in API terms."""

    ok: bool
    diagnostics: list[DiagnosticOut]
    outline: list[OutlineItem]
    ir: PipelineIR | None

    @property
    def ir_hash(self) -> str | None:
        """The IR's content hash (None when the source does not compile)."""
        return self.ir.content_hash() if self.ir is not None else None

    def to_response(self) -> ValidateResponse:
        """The ``/api/validate`` body."""
        return ValidateResponse(
            ok=self.ok,
            diagnostics=self.diagnostics,
            outline=self.outline,
            ir=self.ir,
            ir_hash=self.ir_hash,
        )


def _too_large(source: str, limit: int) -> Compiled:
    lines = source.count("\n") + 1
    diagnostic = DiagnosticOut(
        code="AF002",
        severity="error",
        message=f"the source is {len(source)} characters; the limit is {limit}",
        line=1,
        col=1,
        end_line=lines,
        end_col=1,
        hint="split the pipeline or raise ALPHAFORGE_MAX_DSL_CHARS",
    )
    return Compiled(ok=False, diagnostics=[diagnostic], outline=[], ir=None)


def _dump(item: Any) -> dict[str, Any]:
    return item.model_dump(mode="json") if hasattr(item, "model_dump") else dict(item)


def compile_text(
    source: str,
    settings: ApiSettings,
    resolver: NodeResolver | None = None,
    *,
    datasets: Collection[str] | None = None,
    dataset_severity: DatasetSeverity = "error",
    datasets_without_volume: Collection[str] = (),
    catalog: DatasetResolver | None = None,
    strategies: StrategyResolver | None = None,
) -> Compiled:
    """Compile ``source`` once; over-long sources are refused before parsing.

    ``resolver`` resolves ``use`` pins (the API passes the pipeline owner's custom nodes:
    :class:`api.services.node_resolution.OwnerNodeResolver`); None: no registry. ``datasets``:
    the names ``dataset_ohlcv`` may use (AF209 at ``dataset_severity`` for others);
    ``datasets_without_volume``: those stored without volume (AF210 where ``.volume`` is read).
    ``catalog``: resolves ``dataset(...)`` steps to exact versions (AF212 where it cannot).
    ``strategies``: resolves ``strategy_backtest``'s modules (AF220 where it cannot).
    """
    if len(source) > settings.max_dsl_chars:
        return _too_large(source, settings.max_dsl_chars)
    result = compile_source(
        source,
        filename=FILENAME,
        resolver=resolver,
        datasets=datasets,
        dataset_severity=dataset_severity,
        datasets_without_volume=datasets_without_volume,
        catalog=catalog,
        strategies=strategies,
    )
    diagnostics = [DiagnosticOut.model_validate(_dump(d)) for d in result.diagnostics]
    outline = [OutlineItem.model_validate(_dump(o)) for o in result.outline or []]
    ir = result.ir if result.ok else None
    return Compiled(ok=bool(result.ok), diagnostics=diagnostics, outline=outline, ir=ir)


def require_ir(compiled: Compiled) -> PipelineIR:
    """The IR, or a 422 whose detail carries every diagnostic."""
    if compiled.ok and compiled.ir is not None:
        return compiled.ir
    errors = [d for d in compiled.diagnostics if d.severity == "error"]
    first = errors[0] if errors else None
    message = (
        f"the pipeline has {len(errors)} error(s); first at line {first.line}: {first.message}"
        if first
        else "the pipeline does not compile"
    )
    raise Unprocessable(
        {
            "message": message,
            "diagnostics": [d.model_dump(mode="json") for d in compiled.diagnostics],
        }
    )


def warm_up() -> None:
    """Build the parser and the catalog now, so the first editor request is as fast as any."""
    compile_source("pipeline warm_up\n", filename=FILENAME)
    node_catalog()


@lru_cache(maxsize=1)
def node_catalog() -> tuple[NodeSpec, ...]:
    """The built-in node catalog (computed once per process: it never changes at runtime)."""
    return tuple(NodeSpec.model_validate(spec) for spec in registry().catalog())
