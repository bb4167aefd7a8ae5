"""The grammar is registered as a textX language, so textX tooling can check .af files."""

from __future__ import annotations

from pathlib import Path

from textx import language_descriptions, metamodel_for_language

ROOT = Path(__file__).resolve().parents[2]


def test_alphaforge_is_a_registered_textx_language_for_af_files() -> None:
    desc = language_descriptions()["alphaforge"]
    assert desc.pattern == "*.af"


def test_registered_metamodel_parses_the_sample_pipeline() -> None:
    model = metamodel_for_language("alphaforge").model_from_file(
        str(ROOT / "examples" / "sma_crossover.af")
    )
    header, *steps = model.items
    # The raw literal, quotes included: the compiler unescapes strings, not the grammar.
    assert header.name == "sma_crossover"
    assert header.title.value == '"Moving Average Crossover (Sample)"'
    assert [s.name for s in steps] == ["data", "fast", "slow", "signal", "result"]
