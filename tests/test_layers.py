"""The import direction between the packages: nodes ← dsl ← runners ← flows ← deployments ← api.

Parses every module's imports (including ones inside functions) and checks each against the
allow-list in ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["nodes", "dsl", "catalog", "runners", "flows", "live", "deployments", "api", "cli"]

# What each package may import from the project (besides itself).
ALLOWED: dict[str, set[str]] = {
    "nodes": set(),
    "dsl": {"nodes.base", "nodes.errors", "nodes.codes"},
    "catalog": {"nodes"},
    "runners": {"nodes", "dsl.ir", "catalog"},
    "flows": {"dsl.ir", "runners", "catalog", "nodes.base", "nodes.errors", "nodes.codes"},
    # the live side: strategies, instances and their engine, venues, sources, stream pipelines
    "live": {"nodes", "dsl", "catalog", "runners", "flows"},
    "deployments": {"flows", "live", "dsl.ir", "nodes.errors"},
    "api": {
        "dsl",
        "flows",
        "deployments",
        "nodes.base",
        "nodes.errors",
        "nodes.codes",
        "nodes.data",
        "nodes.tickfile",  # a ticks output's one-line summary (api/services/run_outputs.py)
        "catalog",
        "live",
    },
    "cli": {"nodes", "dsl", "catalog", "runners", "flows", "live", "deployments", "api"},
}
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "nodes": {"prefect", "fastapi", "mlflow", "textx", "sqlmodel"},
    "catalog": {"prefect", "fastapi", "mlflow", "textx", "sqlmodel"},
    "dsl": {"prefect", "fastapi", "mlflow", "sqlmodel"},
    "runners": {"prefect", "fastapi", "sqlmodel"},
    "live": {"fastapi"},
    # The API never talks to Docker: sandboxes run on workers (issue 8, item 4).
    "api": {"docker"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
    return out


def _allowed(package: str, module: str) -> bool:
    top = module.split(".")[0]
    if top == package or top not in PACKAGES:
        return True
    return any(module == a or module.startswith(a + ".") for a in ALLOWED[package])


def _violations(package: str) -> list[str]:
    bad: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for lineno, module in _imports(path):
            rel = path.relative_to(ROOT)
            top = module.split(".")[0]
            if top in PACKAGES and top != package:
                # `from nodes import base` is reported as both `nodes` and `nodes.base`:
                # judge the most specific form only.
                if any(m.startswith(module + ".") for ln, m in _imports(path) if ln == lineno):
                    continue
                if not _allowed(package, module):
                    bad.append(f"{rel}:{lineno}: {package} may not import {module}")
            if top in FORBIDDEN_THIRD_PARTY.get(package, set()):
                bad.append(f"{rel}:{lineno}: {package} may not import {top}")
    return bad


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_the_architecture_allows(package: str) -> None:
    assert _violations(package) == []


def test_layer_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from flows.settings import get_settings\nimport prefect\n")
    found = [m for _, m in _imports(bad)]
    assert "flows.settings" in found
    assert not _allowed("nodes", "flows.settings")
    assert _allowed("flows", "dsl.ir")
