"""The words of the `.af` language, once: reserved keywords, constants, contextual words.

The grammar (``grammar/values.tx``, rule ``Keyword``) spells the same list as a regular
expression (textX cannot import Python; ``tests/dsl/test_language_export.py`` fails when they
differ), the lowering refuses them as names, and the editor highlights and completes them from
``ui/src/generated/language.json`` (:func:`dsl.export.language_spec`).
"""

from __future__ import annotations

from typing import get_args

from dsl.ir import Objective

#: Words that start a statement or a block, or join its parts.
STATEMENT_KEYWORDS: tuple[str, ...] = (
    "pipeline",
    "use",
    "for",
    "in",
    "sweep",
    "where",
    "objective",
    "walkforward",
    "stream",
    "emit",
    "to",
    "every",
    "after",
)
#: Literal constants.
CONSTANTS: tuple[str, ...] = ("true", "false", "none")
#: Boolean operators of ``where`` constraints.
WORD_OPERATORS: tuple[str, ...] = ("and", "or", "not")
#: Every reserved word, in the grammar's order: never a step, param or loop name.
KEYWORDS: tuple[str, ...] = STATEMENT_KEYWORDS + CONSTANTS + WORD_OPERATORS

#: Words with a meaning in one place only (``objective maximize ...``); not reserved.
OBJECTIVE_DIRECTIONS: tuple[str, ...] = tuple(
    get_args(Objective.model_fields["direction"].annotation)
)

#: One line per keyword for completion details and hovers (editor).
KEYWORD_DOCS: dict[str, str] = {
    "pipeline": 'pipeline name "Title" — names the pipeline; one per file.',
    "use": "use node@range — pins a custom node from the registry (^range unless =exact).",
    "for": "for v in [..] { step_{v} = ... } — expands steps over a list of values.",
    "sweep": "sweep grid { ... } / sweep optuna(trials=N) { ... } — parameter search, run by "
    "`alphaforge sweep` or the web app's Sweep (a plain run uses the written params).",
    "where": "where <condition> — a constraint on sweep parameters.",
    "objective": "objective maximize|minimize step.metric — what a sweep optimises.",
    "walkforward": "walkforward(train=2y, test=6M, step=6M[, embargo=5d]) — the sweep searches "
    "each fold's training window and tests the chosen params on the window after it.",
    "stream": "stream { source = ...; warmup = 30d; every 1h after 2m; emit ... } — live / "
    "replay signal generation, run by `alphaforge stream` (a plain run ignores it: AF008).",
    "emit": "emit step.port to sink(...) — each bar's new value to csv_append, postgres, "
    "webhook, prefect_event or trigger(target=...).",
    "every": "every 1h after 2m — evaluate on the bars closing every 1h, 2m after the close.",
}
