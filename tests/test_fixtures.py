"""The suite's own discipline: each session-scoped fixture is one fixture.

A fixture function imported into a test module is registered again as that module's fixture, so a
"session" server imported into five modules ran as five servers until the session ended (six
Prefect servers at once were seen). Session fixtures therefore live in conftest.py files only and
are never imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _session_fixtures(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and any(
                    kw.arg == "scope" and getattr(kw.value, "value", None) == "session"
                    for kw in dec.keywords
                ):
                    names.add(node.name)
    return names


def test_session_fixtures_are_defined_in_conftest_files_and_never_imported() -> None:
    trees = {path: ast.parse(path.read_text()) for path in TESTS.rglob("*.py")}
    session: set[str] = set()
    misplaced = []
    for path, tree in trees.items():
        found = _session_fixtures(tree)
        if path.name == "conftest.py":
            session |= found
        elif found:
            misplaced.append(f"{path.relative_to(TESTS)}: {sorted(found)}")
    assert {"prefect_server", "prefect_api", "prefect_stack", "docker_engine"} <= session
    imported = [
        f"{path.relative_to(TESTS)}:{node.lineno} imports {alias.name}"
        for path, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name in session
    ]
    assert misplaced == [], f"session fixtures outside conftest.py: {misplaced}"
    assert imported == [], f"session fixtures imported (each import is one more): {imported}"
