"""One source of truth for the language's words: the grammar, the lowering and the UI agree.

The UI's copy is generated (``ui/src/generated/language.json`` by
``scripts/export_ui_contracts.py``, run by ``scripts/build_ui.sh``); these tests fail when the
committed file drifts from Python or when a hand-kept copy creeps back into ``ui/src``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dsl import compile_source, keywords
from dsl.export import language_json, language_spec
from dsl.lower import DURATION_UNITS, KEYWORDS
from nodes.base import registry
from nodes.codes import CODES

ROOT = Path(__file__).parents[2]
GENERATED = ROOT / "ui" / "src" / "generated" / "language.json"
REGEN = "regenerate: python scripts/export_ui_contracts.py (scripts/build_ui.sh runs it)"


def _grammar_keywords() -> list[str]:
    text = (ROOT / "dsl" / "grammar" / "values.tx").read_text()
    m = re.search(r"^Keyword:\s*/\((?P<words>[a-z|]+)\)\(\?!\\w\)/", text, re.M)
    assert m, "the grammar's Keyword rule changed shape"
    return m["words"].split("|")


def test_the_grammar_reserves_exactly_the_python_keywords() -> None:
    assert _grammar_keywords() == list(keywords.KEYWORDS)
    assert frozenset(keywords.KEYWORDS) == KEYWORDS


def test_every_reserved_word_is_refused_as_a_step_name() -> None:
    for word in keywords.KEYWORDS:
        result = compile_source(f"pipeline p\n{word} = sma(1)\n")
        assert not result.ok, word
    # a contextual word is a fine name
    for word in keywords.OBJECTIVE_DIRECTIONS:
        src = f'pipeline p\nd = csv_ohlcv(path="x.csv")\n{word} = sma(d.close)\n'
        assert compile_source(src).ok, word


def test_the_spec_carries_the_catalog_and_the_codes() -> None:
    spec = language_spec()
    assert spec["nodes"] == registry().catalog()
    assert spec["duration_units"] == list(DURATION_UNITS)
    assert set(spec["codes"]) == set(CODES)
    assert spec["codes"]["AF008"]["severities"] == ["warning"]
    assert set(spec["keyword_docs"]) <= set(spec["statement_keywords"])
    json.loads(language_json())  # plain JSON


def test_the_committed_ui_copy_is_what_python_exports() -> None:
    assert GENERATED.read_text(encoding="utf-8") == language_json(), REGEN


def _ui_sources() -> list[Path]:
    out = []
    for p in (ROOT / "ui" / "src").rglob("*"):
        if p.suffix not in {".ts", ".svelte"} or "generated" in p.parts:
            continue
        if p.name.endswith(".test.ts") or "__fixtures__" in p.parts:
            continue
        out.append(p)
    return out


_ARRAY = re.compile(r"""\[\s*(?:['"][A-Za-z_]+['"]\s*,\s*)+['"][A-Za-z_]+['"]\s*,?\s*\]""")
_WORD = re.compile(r"""['"]([A-Za-z_]+)['"]""")


def test_the_ui_keeps_no_hand_written_list_of_keywords_or_node_types() -> None:
    reserved = set(keywords.KEYWORDS) | set(keywords.OBJECTIVE_DIRECTIONS)
    builtin = {spec["name"] for spec in registry().catalog()}
    for p in _ui_sources():
        for array in _ARRAY.findall(p.read_text(encoding="utf-8")):
            words = set(_WORD.findall(array))
            assert len(words & reserved) < 3, f"{p}: a keyword list: {array}"
            assert len(words & builtin) < 3, f"{p}: a node type list: {array}"


def test_the_list_detector_finds_the_old_copies() -> None:
    old_lexer = "export const KEYWORDS = [\n  'pipeline',\n  'use',\n  'for',\n] as const;"
    old_types = "const BUILTIN_TYPES = ['csv_ohlcv', 'sma', 'ema'];"
    constants = "...['true', 'false', 'none'].map(f)"
    for text in (old_lexer, old_types, constants):
        assert _ARRAY.findall(text), text
