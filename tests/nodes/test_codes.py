"""The one registry of codes: unique, complete, enforced, and the docs table in step with it."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dsl.diagnostics import Diagnostic
from nodes import codes
from nodes.codes import CODES, Code, check_error_class
from nodes.errors import AlphaForgeError

ROOT = Path(__file__).parents[2]
#: Folders whose text is ours (generated UI files included: they must agree too).
SOURCE_DIRS = (
    "api",
    "catalog",
    "cli",
    "deployments",
    "docs",
    "dsl",
    "flows",
    "live",
    "nodes",
    "runners",
    "ui/src",
)
SUFFIXES = {".py", ".md", ".ts", ".svelte", ".json", ".tx", ".af", ".sh", ".mjs"}
LITERAL = re.compile(r"\bAF\d{3}\b")
THIS = Path(__file__).resolve()


def _files(dirs: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        for p in (ROOT / d).rglob("*"):
            if p.suffix in SUFFIXES and p.is_file() and "node_modules" not in p.parts:
                out.append(p)
    for p in ROOT.glob("*.md"):
        out.append(p)
    return out


def test_every_code_is_registered_once_with_a_layer_and_a_kind() -> None:
    assert len(CODES) == len({c.code for c in codes._TABLE})
    for code, c in CODES.items():
        assert re.fullmatch(r"AF\d{3}", code), code
        assert c.layer in codes.LAYERS and c.kinds and c.title


def test_the_index_refuses_a_duplicate_code_or_a_class_with_two_codes() -> None:
    one = Code("AF100", "x", "dsl", ("error",))
    with pytest.raises(ValueError, match="registered twice"):
        codes._index((one, Code("AF100", "y", "dsl", ("error",))))
    a = Code("AF100", "x", "cli", raised_by=("cli.X",))
    b = Code("AF101", "y", "cli", raised_by=("cli.X",))
    with pytest.raises(ValueError, match=r"cli\.X is registered for AF100 and AF101"):
        codes._index((a, b))


def test_every_af_literal_in_the_source_tree_is_registered() -> None:
    unknown: dict[str, list[str]] = {}
    for p in _files((*SOURCE_DIRS, "tests")):
        if p.resolve() == THIS:
            continue
        for code in set(LITERAL.findall(p.read_text(encoding="utf-8", errors="replace"))):
            if code not in CODES:
                unknown.setdefault(code, []).append(str(p.relative_to(ROOT)))
    assert unknown == {}


def test_every_registered_code_is_used_outside_the_registry_and_the_docs() -> None:
    used: set[str] = set()
    for p in _files(("api", "catalog", "cli", "dsl", "flows", "live", "nodes", "runners")):
        if p.suffix == ".py" and p != ROOT / "nodes" / "codes.py":
            used |= set(LITERAL.findall(p.read_text(encoding="utf-8")))
    assert sorted(set(CODES) - used) == []


def _class_codes() -> dict[str, str]:
    """``module.Class`` -> the ``code`` its body sets, for every class in our packages."""
    out: dict[str, str] = {}
    for p in _files(
        ("api", "catalog", "cli", "deployments", "dsl", "flows", "live", "nodes", "runners")
    ):
        if p.suffix != ".py":
            continue
        module = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            for stmt in node.body:
                target = value = None
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                    target, value = stmt.targets[0], stmt.value
                elif isinstance(stmt, ast.AnnAssign):
                    target, value = stmt.target, stmt.value
                if (
                    isinstance(target, ast.Name)
                    and target.id == "code"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and LITERAL.fullmatch(value.value)
                ):
                    out[f"{module}.{node.name}"] = value.value
    return out


def test_each_error_class_code_is_registered_for_that_class_and_no_other() -> None:
    found = _class_codes()
    registered = {cls: c.code for c in CODES.values() for cls in c.raised_by}
    assert found == registered
    assert len(set(found.values())) == len(found)  # one class per error code


@pytest.mark.parametrize("qualname", sorted(cls for c in CODES.values() for cls in c.raised_by))
def test_each_registered_class_exists_and_carries_its_code(qualname: str) -> None:
    module, name = qualname.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, AlphaForgeError)
    assert cls.__dict__["code"] == registered_code(qualname)


def registered_code(qualname: str) -> str:
    return next(c.code for c in CODES.values() if qualname in c.raised_by)


def test_a_class_taking_another_class_code_fails_at_definition() -> None:
    with pytest.raises(TypeError, match=r"AF720 .* belongs to flows.tracking.TrackingError"):

        class Stolen(AlphaForgeError):
            code = "AF720"

    unregistered = "AF" + "999"
    with pytest.raises(TypeError, match=rf"{unregistered} is not registered"):
        check_error_class("x.Y", unregistered)

    class Inherits(AlphaForgeError):  # no code of its own: its parent's, no registration
        pass

    assert Inherits("m").code == "AF000"


def test_a_diagnostic_needs_a_registered_code_and_an_allowed_severity() -> None:
    where: dict[str, Any] = {"message": "m", "line": 1, "col": 1, "end_line": 1, "end_col": 2}
    Diagnostic(code="AF206", severity="warning", **where)
    Diagnostic(code="AF208", severity="warning", **where)
    with pytest.raises(ValidationError, match="AF206 is reported as warning, not error"):
        Diagnostic(code="AF206", severity="error", **where)
    with pytest.raises(ValidationError, match="not a registered diagnostic code"):
        Diagnostic(code="AF" + "999", **where)
    with pytest.raises(ValidationError, match="AF700 is not a registered diagnostic code"):
        Diagnostic(code="AF700", **where)  # an error class's code, not the compiler's


def test_docs_codes_md_is_generated_from_the_registry() -> None:
    text = (ROOT / "docs" / "codes.md").read_text(encoding="utf-8")
    assert text == codes.markdown(), "regenerate: python -m nodes.codes --markdown > docs/codes.md"
    for code in CODES:
        assert f"| {code} |" in text
