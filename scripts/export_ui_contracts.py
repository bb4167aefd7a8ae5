"""Write the contracts the web UI is built from, generated from the Python sources.

- ``ui/src/generated/language.json``: the `.af` language as the editor sees it — reserved
  words, duration units, sweep methods, the built-in node catalog and every diagnostic/error
  code (:func:`dsl.export.language_spec`).
- ``ui/src/generated/openapi.json``: the web API's OpenAPI schema (``create_app().openapi()``,
  no server, no database connection); ``scripts/build_ui.sh`` then turns it into
  ``ui/src/generated/api.d.ts`` with openapi-typescript.

    python scripts/export_ui_contracts.py          # write the files (build_ui.sh does this)
    python scripts/export_ui_contracts.py --check  # exit 1 naming each file that is stale

Run from the repository root with the repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "ui" / "src" / "generated"


def openapi_json() -> str:
    """The API's OpenAPI document, as the committed file's text."""
    from api.main import create_app
    from api.settings import ApiSettings

    # The schema must not depend on who runs this: default settings, no ALPHAFORGE_* from the
    # environment, a throw-away data dir (settings keep a secret key there).
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.upper().startswith("ALPHAFORGE_")}
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            schema = create_app(ApiSettings(data_dir=Path(data_dir))).openapi()
    finally:
        os.environ.update(saved)
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def contracts() -> dict[Path, str]:
    """File -> the text it must have."""
    from dsl.export import language_json

    return {OUT / "language.json": language_json(), OUT / "openapi.json": openapi_json()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for path, text in contracts().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"{path} is stale: run python scripts/export_ui_contracts.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
