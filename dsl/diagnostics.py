"""Compiler diagnostics: stable codes, severities and precise source ranges.

The same :class:`Diagnostic` feeds the CLI (gcc-style lines), the API (JSON) and the editor's
squiggles. Lines and columns are 1-based; the end is exclusive. Codes are stable and registered
in ``nodes/codes.py`` (tabled in ``docs/codes.md``): a diagnostic with an unregistered code, or a
severity its code does not allow, is refused when it is made.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nodes.codes import check_diagnostic, diagnostic_codes

Severity = Literal["error", "warning", "info"]

#: Every diagnostic code with its one-line title: the diagnostics of the one registry
#: (``nodes/codes.py``, tabled in ``docs/codes.md``).
CODES: dict[str, str] = {code: c.title for code, c in diagnostic_codes().items()}


class Diagnostic(BaseModel):
    """One problem found in a source: where (1-based, end exclusive), what, and how to fix it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    severity: Severity = "error"
    message: str
    line: int
    col: int
    end_line: int
    end_col: int
    hint: str | None = None
    suggestions: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _registered(self) -> Diagnostic:
        check_diagnostic(self.code, self.severity)
        return self

    @property
    def is_error(self) -> bool:
        """True for errors (warnings and infos do not stop compilation)."""
        return self.severity == "error"

    def format(self, filename: str = "<input>") -> str:
        """gcc style: ``file:line:col: error AF203: message`` (plus the hint, indented)."""
        text = f"{filename}:{self.line}:{self.col}: {self.severity} {self.code}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, Any]:
        """The diagnostic as a JSON-compatible dict (what the API and the editor receive)."""
        return self.model_dump(mode="json")


def did_you_mean(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` candidates close to ``word`` (difflib), best first."""
    return difflib.get_close_matches(word, sorted(set(candidates)), n=n, cutoff=0.6)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between two words."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def nearest_by_edits(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` candidates within a few edits of ``word`` (at most 2, or a third of its
    length for long words; case differences count as one edit), nearest first."""
    limit = max(2, len(word) // 3)
    scored = sorted(
        (min(edit_distance(word, c), edit_distance(word.lower(), c.lower()) + 1), c)
        for c in set(candidates)
    )
    return [c for d, c in scored if d <= limit][:n]


def suggestion_text(suggestions: list[str]) -> str:
    """``"; did you mean `a` or `b`?"`` or the empty string."""
    if not suggestions:
        return ""
    return "; did you mean " + " or ".join(f"`{s}`" for s in suggestions) + "?"


def sort_key(d: Diagnostic) -> tuple[int, int, str]:
    """Diagnostics read top to bottom."""
    return (d.line, d.col, d.code)
