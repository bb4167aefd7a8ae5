"""Shared fixtures of the DSL tests: the real built-in node types, in a registry of their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dsl import CompileResult, compile_source
from nodes.base import NodeRegistry, registry


def builtin_registry() -> NodeRegistry:
    """A fresh registry of the built-in node types (those of ``nodes.builtin``), without the
    test-only types other fixtures add to the default registry, registered through the same
    ``NodeRegistry.register`` as everywhere."""
    reg = NodeRegistry()
    for node_type in registry():
        if node_type.__module__.startswith("nodes.builtin"):
            reg.register(node_type)
    return reg


@pytest.fixture(scope="session")
def reg() -> NodeRegistry:
    """The built-in node types."""
    return builtin_registry()


@pytest.fixture
def compile_(reg: NodeRegistry) -> Callable[..., CompileResult]:
    """compile_source against the built-in node types."""

    def run(text: str, **kw: Any) -> CompileResult:
        kw.setdefault("registry", reg)
        return compile_source(text, **kw)

    return run


HEADER = 'pipeline t "Test"\ndata = csv_ohlcv(path="a.csv")\n'
