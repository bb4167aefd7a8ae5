"""The outline: the steps of a file as the editor's sidebar shows them.

Available whenever the file parses, even when checks fail (and from the recovered parse when
it has syntax errors), so the outline does not vanish while the user types.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dsl import tree as t
from dsl.binder import BoundStep
from dsl.source import SourceText


class OutlineItem(BaseModel):
    """One step as the editor's outline shows it (available even when checks fail)."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    line: int
    col: int
    end_line: int
    end_col: int
    inputs: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)


def outline_of_bound(src: SourceText, b: BoundStep) -> OutlineItem:
    """The outline entry of a checked step."""
    span = src.source_span(b.step.span)
    return OutlineItem(
        id=b.step.name,
        type=b.step.call.type,
        line=span.line,
        col=span.col,
        end_line=span.end_line,
        end_col=span.end_col,
        inputs=list(b.input_refs),
        params=dict(b.raw_params),
    )


def outline_of_step(src: SourceText, step: t.Step) -> OutlineItem:
    """The outline entry of a step that was only parsed (the file has syntax errors)."""
    inputs: list[str] = []
    params: dict[str, Any] = {}
    for arg in step.call.args:
        values = arg.value.items if isinstance(arg.value, t.ListV) else (arg.value,)
        refs = [v for v in values if isinstance(v, t.RefV)]
        if refs:
            inputs.extend(r.text for r in refs)
        elif arg.key is not None:
            params[arg.key] = t.to_json(arg.value)
    span = src.source_span(step.span)
    return OutlineItem(
        id=step.name,
        type=step.call.type,
        line=span.line,
        col=span.col,
        end_line=span.end_line,
        end_col=span.end_col,
        inputs=inputs,
        params=params,
    )
