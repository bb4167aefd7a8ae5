"""Registers the .af grammar as a textX language (``textx list-languages`` shows it).

The language is exposed through the ``textx_languages`` entry point in pyproject.toml, so textX
tooling (``textx check file.af``, editor plug-ins) finds the grammar without knowing our code.
"""

from __future__ import annotations

from typing import Any

from textx import language

from dsl.parser import metamodel


@language("alphaforge", "*.af")
def alphaforge_lang() -> Any:
    """The Alpha Forge pipeline language (one pipeline per file)."""
    return metamodel()
