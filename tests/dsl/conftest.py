"""Shared fixtures of the DSL tests: a fake registry mirroring docs/builtin-nodes.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dsl import CompileResult, compile_source
from nodes.base import NodeRegistry
from tests.dsl.fakes import fake_registry


@pytest.fixture(scope="session")
def reg() -> NodeRegistry:
    """The fake registry."""
    return fake_registry()


@pytest.fixture
def compile_(reg: NodeRegistry) -> Callable[..., CompileResult]:
    """compile_source against the fake registry."""

    def run(text: str, **kw: Any) -> CompileResult:
        kw.setdefault("registry", reg)
        return compile_source(text, **kw)

    return run


HEADER = 'pipeline t "Test"\ndata = csv_ohlcv(path="a.csv")\n'
