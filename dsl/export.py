"""What the editor needs to know about the language, as one JSON document.

``language_spec()`` collects the reserved words (:mod:`dsl.keywords`), duration units, sweep
methods, the built-in node catalog (ports, params as JSON Schema) and every registered code
(:mod:`nodes.codes`). ``scripts/export_ui_contracts.py`` writes it to
``ui/src/generated/language.json`` at UI build time; the UI's lexer, completion and hovers read
that file, and ``tests/dsl/test_language_export.py`` fails when the committed copy drifts.
"""

from __future__ import annotations

import json
from typing import Any

from dsl import keywords
from dsl.lower import DURATION_UNITS
from dsl.sweeps import METHODS
from nodes.base import FRAME_LIKE, registry
from nodes.codes import CODES

#: Bumped when the document's shape changes (not its contents).
SCHEMA_VERSION = 2


def language_spec() -> dict[str, Any]:
    """The language as the editor sees it (deterministic: registry and table order)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "keywords": list(keywords.KEYWORDS),
        "statement_keywords": list(keywords.STATEMENT_KEYWORDS),
        "constants": list(keywords.CONSTANTS),
        "word_operators": list(keywords.WORD_OPERATORS),
        "objective_directions": list(keywords.OBJECTIVE_DIRECTIONS),
        "keyword_docs": dict(keywords.KEYWORD_DOCS),
        "duration_units": list(DURATION_UNITS),
        "sweep_methods": list(METHODS),
        # a reference `step.column` selects a column of the step's first output of these types
        # (dsl.binder.Binder.resolve_ref): what completion after `step.` may offer
        "frame_like_types": sorted(t.value for t in FRAME_LIKE),
        "nodes": registry().catalog(),
        "codes": {
            code: {
                "title": c.title,
                "kinds": list(c.kinds),
                "severities": list(c.severities),
                "layer": c.layer,
            }
            for code, c in sorted(CODES.items())
        },
    }


def language_json() -> str:
    """:func:`language_spec` as the committed file's text (2-space indent, trailing newline)."""
    return json.dumps(language_spec(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
