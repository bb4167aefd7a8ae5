"""Custom-node manifests at the API's door, and the things built from them without saving:
templates and catalog entries (test runs: :mod:`api.services.node_lab`, on a worker).

:func:`manifest_in_to_manifest` turns a request's :class:`ManifestIn` into a validated
``CustomNodeManifest`` or a 422 whose detail lists every problem and where
(``{message, errors: [{loc, msg}]}``): semver, port types, params schema, a built-in's name,
WebAssembly that does not assemble or validate, NUL characters.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import wasmtime
from pydantic import ValidationError

from api.errors import Unprocessable, plain_message
from api.models.custom_node import (
    CustomNodeVersion,
    Manifest,
    ManifestIn,
    NodeTemplate,
)
from api.models.language import NodeSpec, PortSpec
from api.services.node_resolution import manifest_of
from dsl.nodespec import ResolvedNode
from flows.customnodes import (
    TEMPLATE_KINDS,
    CustomNodeManifest,
    ManifestProblems,
    template,
)
from nodes.base import Port, registry

__all__ = [
    "catalog_entry",
    "manifest_in_to_manifest",
    "templates",
    "validation_detail",
]

Loc = tuple[int | str, ...]
# A problem: where, the sentence, and (for code) the line and column it points at
Problem = tuple[Loc, str] | tuple[Loc, str, dict[str, int]]
_LANGUAGES = ("python", "javascript", "wasm")
NODE_CHECK_TIMEOUT_S = 10.0


def validation_detail(errors: Sequence[Problem]) -> dict[str, Any]:
    """The 422 detail: ``{message, errors: [{loc, msg, line?, col?}]}``; the message names the
    first (a code problem carries the line and column it points at, 1-based)."""
    first_loc, first_msg = errors[0][0], errors[0][1]
    where = ".".join(map(str, first_loc)) or "manifest"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return {
        "message": f"invalid manifest: {where}: {first_msg}{more}",
        "errors": [
            {"loc": list(e[0]), "msg": e[1], **(e[2] if len(e) > 2 else {})}  # type: ignore[misc]
            for e in errors
        ],
    }


def _pydantic_errors(exc: ValidationError) -> list[Problem]:
    """A manifest's validation errors as sentences: the cross-field ``ManifestProblems`` each at
    its own place, pydantic's own through :func:`api.errors.plain_message`."""
    out: list[Problem] = []
    for e in exc.errors(include_url=False):
        problem = (e.get("ctx") or {}).get("error")
        if isinstance(problem, ManifestProblems):
            out += [((*e["loc"], *loc), msg) for loc, msg in problem.problems]
            continue
        out.append((tuple(e["loc"]), plain_message(e)))
    return out


def _at(line: int, col: int) -> dict[str, int]:
    return {"line": max(1, line), "col": max(1, col)}


def _python_syntax(code: str) -> list[Problem]:
    try:
        compile(code, "node.py", "exec", dont_inherit=True)
    except SyntaxError as exc:  # IndentationError and TabError are SyntaxErrors
        line, col = exc.lineno or 1, exc.offset or 1
        kind = type(exc).__name__
        msg = f"Python {kind} at line {line}, column {col}: {exc.msg}; fix the code and save again"
        return [(("code",), msg, _at(line, col))]
    except ValueError as exc:  # e.g. source code string cannot contain null bytes
        return [(("code",), f"the Python code cannot be compiled: {exc}", _at(1, 1))]
    return []


def _javascript_syntax(code: str) -> list[Problem]:
    """``node --check`` on a temporary file (CommonJS, as the sandbox loads it); no Node.js on
    this host: no check here (a test run still reports the error)."""
    node = shutil.which("node")
    if node is None:
        return []
    with tempfile.TemporaryDirectory(prefix="af-jscheck-") as tmp:
        path = Path(tmp) / "code.cjs"
        path.write_text(code, encoding="utf-8")
        try:
            done = subprocess.run(
                [node, "--check", str(path)],
                capture_output=True,
                text=True,
                timeout=NODE_CHECK_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return []
    if done.returncode == 0:
        return []
    lines = done.stderr.splitlines()
    line, col, message = 1, 1, "the code does not parse"
    for i, text in enumerate(lines):
        found = re.match(rf"^{re.escape(str(path))}:(\d+)$", text)
        if found:
            line = int(found.group(1))
            if i + 2 < len(lines) and lines[i + 2].strip() == "^":
                col = lines[i + 2].index("^") + 1
        if re.match(r"^[A-Z][A-Za-z]*Error: ", text):
            message = text
            break
    msg = f"JavaScript {message} at line {line}, column {col}; fix the code and save again"
    return [(("code",), msg, _at(line, col))]


def _wat_position(text: str) -> dict[str, int]:
    found = re.search(r"<anon>:(\d+):(\d+)", text)
    return _at(int(found.group(1)), int(found.group(2))) if found else _at(1, 1)


def code_errors(manifest: CustomNodeManifest) -> list[Problem]:
    """Syntax errors in the node's code, at save time, in every language: Python ``compile()``,
    JavaScript ``node --check``, WAT/WebAssembly as the runner assembles and validates it."""
    if manifest.language == "python":
        return _python_syntax(manifest.code)
    if manifest.language == "javascript":
        return _javascript_syntax(manifest.code)
    return _wasm_errors(manifest)


def _nul_strings(value: Any, loc: Loc) -> Iterator[Loc]:
    if isinstance(value, str) and "\x00" in value:
        yield loc
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _nul_strings(k, (*loc, str(k)))
            yield from _nul_strings(v, (*loc, str(k)))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _nul_strings(v, (*loc, i))


def _wasm_errors(manifest: CustomNodeManifest) -> list[Problem]:
    if manifest.language != "wasm":
        return []
    try:
        binary: bytes | bytearray = (
            wasmtime.wat2wasm(manifest.code)
            if manifest.code_format == "wat"
            else base64.b64decode(manifest.code)
        )
        wasmtime.Module.validate(wasmtime.Engine(), binary)
    except wasmtime.WasmtimeError as exc:
        what = "does not assemble" if manifest.code_format == "wat" else "is not valid"
        text = str(exc).strip()
        where = _wat_position(text)
        first = text.splitlines()[0] if text else "unknown error"
        at = f" at line {where['line']}, column {where['col']}" if "<anon>:" in text else ""
        msg = f"the WebAssembly {what}{at}: {first}; fix the code and save again"
        return [(("code",), msg + f"\n{text[:500]}", where)]
    return []


def manifest_in_to_manifest(
    data: ManifestIn,
    version: str,
    *,
    fixed: tuple[str, str] | None = None,
    check_builtin: bool = False,
    prefix: Loc = (),
    check_code: bool = True,
) -> CustomNodeManifest:
    """The validated manifest of ``data`` at ``version``, or a 422 listing every problem.

    ``fixed`` = the existing node's (name, language), which a new version may not change;
    ``check_builtin`` refuses a built-in node type's name; ``prefix`` goes before each ``loc``;
    ``check_code``: refuse code with syntax errors (every save); a test run (False) reports them
    from the sandbox, as a run does. WebAssembly is always assembled and validated.
    """
    raw = data.model_dump(exclude={"message", "version"}, exclude_none=True)
    raw["version"] = version
    if "code_format" not in raw:
        raw["code_format"] = "wat" if data.language == "wasm" else "source"
    errors: list[Problem] = [
        (loc, "NUL characters are not allowed; remove them")
        for loc in _nul_strings(data.model_dump(), ())
    ]
    if fixed is not None:
        name, language = fixed
        if data.name != name:
            errors.append((("name",), f"the node is called {name!r}; a node keeps its name"))
        if data.language != language:
            errors.append((("language",), f"the node is {language}; a node keeps its language"))
    if check_builtin and data.name in registry():
        errors.append((("name",), f"{data.name!r} is the name of a built-in node"))
    manifest: CustomNodeManifest | None = None
    if not errors:
        try:
            manifest = CustomNodeManifest.model_validate(raw)
        except ValidationError as exc:
            errors += _pydantic_errors(exc)
    if manifest is not None:
        errors += code_errors(manifest) if check_code else _wasm_errors(manifest)
    if errors or manifest is None:
        raise Unprocessable(validation_detail([((*prefix, *e[0]), *e[1:]) for e in errors]))  # type: ignore[misc]
    return manifest


def _title(language: str, kind: str) -> str:
    names = {"python": "Python", "javascript": "JavaScript", "wasm": "WebAssembly"}
    return f"{names[language]} {kind}"


def templates() -> list[NodeTemplate]:
    """The nine templates (three kinds per language), for "New node"."""
    out = []
    for language in _LANGUAGES:
        for kind in TEMPLATE_KINDS:
            manifest = template(language, kind)  # type: ignore[arg-type]
            out.append(
                NodeTemplate(
                    language=language,  # type: ignore[arg-type]
                    kind=kind,
                    title=_title(language, kind),
                    manifest=Manifest.model_validate(manifest.model_dump(mode="json")),
                )
            )
    return out


def catalog_entry(name: str, row: CustomNodeVersion) -> NodeSpec:
    """A custom node's latest version as the editor's catalog shows it."""
    manifest = manifest_of(row)
    node = ResolvedNode.from_manifest(manifest)

    def ports(items: tuple[Port, ...]) -> list[PortSpec]:
        return [PortSpec.model_validate(p.to_json()) for p in items]

    return NodeSpec(
        name=name,
        version=row.version,
        category="custom",
        summary=manifest.summary,
        doc=manifest.summary,
        inputs=ports(node.inputs),
        outputs=ports(node.outputs),
        params_schema=dict(manifest.params_schema),
        metric_keys=[],
        runtime=manifest.language,
        custom=True,
        use=f"{name}@{row.version}",
    )
