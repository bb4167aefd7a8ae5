"""The .af pipeline language: grammar, compiler, diagnostics and the IR.

Public API::

    result = compile_source(text, filename="x.af")   # CompileResult(ir, diagnostics, outline)
    ir = compile_or_raise(text)                       # PipelineIR or DslError
"""

from dsl.compiler import (
    CompileResult,
    DslError,
    OutlineItem,
    compile_file,
    compile_or_raise,
    compile_source,
)
from dsl.diagnostics import CODES, Diagnostic
from dsl.nodespec import NodeResolver, NodeSpec, NoRegistryResolver, ResolvedNode, ResolveError

__all__ = [
    "CODES",
    "CompileResult",
    "Diagnostic",
    "DslError",
    "NoRegistryResolver",
    "NodeResolver",
    "NodeSpec",
    "OutlineItem",
    "ResolveError",
    "ResolvedNode",
    "compile_file",
    "compile_or_raise",
    "compile_source",
]
