"""The UI's API types are generated from the API's OpenAPI schema, and stay in step with it.

``scripts/export_ui_contracts.py`` dumps ``create_app().openapi()`` into
``ui/src/generated/openapi.json``; ``scripts/build_ui.sh`` turns it into
``ui/src/generated/api.d.ts`` with openapi-typescript; ``ui/src/lib/types.ts`` and
``ui/src/lib/customNodes.ts`` take the API shapes from there.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parents[2]
UI = ROOT / "ui"
GENERATED = UI / "src" / "generated"
REGEN = "regenerate: bash scripts/build_ui.sh (or python scripts/export_ui_contracts.py)"


def _exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "export_ui", ROOT / "scripts/export_ui_contracts.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_openapi_schema_is_the_apps() -> None:
    committed = (GENERATED / "openapi.json").read_text(encoding="utf-8")
    assert committed == _exporter().openapi_json(), REGEN


def test_the_committed_api_types_are_generated_from_the_committed_schema() -> None:
    cli = UI / "node_modules" / ".bin" / "openapi-typescript"
    assert cli.exists(), "ui/node_modules is missing: run bash scripts/build_ui.sh"
    # the same command as `npm run generate:api`, to stdout
    script = re.search(r'"generate:api": "([^"]+) -o ', (UI / "package.json").read_text())
    assert script, "ui/package.json lost its generate:api script"
    args = script[1].split()[1:]
    out = subprocess.run(
        [str(cli), *args], cwd=UI, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert out == (GENERATED / "api.d.ts").read_text(encoding="utf-8"), REGEN


def test_the_ui_takes_its_api_shapes_from_the_generated_types() -> None:
    for name in ("types.ts", "customNodes.ts"):
        text = (UI / "src" / "lib" / name).read_text(encoding="utf-8")
        assert "from '../generated/api'" in text, name
    types = (UI / "src" / "lib" / "types.ts").read_text(encoding="utf-8")
    # every interface refines a generated schema; no free-standing hand-written shape
    for m in re.finditer(r"^export interface (\w+)(.*)\{", types, re.M):
        assert "extends Omit<Out<S[" in m[2], f"types.ts: {m[1]} is written by hand"
