"""Compiler diagnostics: stable codes, severities and precise source ranges.

The same :class:`Diagnostic` feeds the CLI (gcc-style lines), the API (JSON) and the editor's
squiggles. Lines and columns are 1-based; the end is exclusive. Codes are stable: the table in
``dsl/README.md`` documents each one, and :data:`CODES` is its machine-readable twin.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["error", "warning", "info"]

#: Every diagnostic code, with the one-line title the README table shows.
CODES: dict[str, str] = {
    "AF001": "syntax error (with what was expected)",
    "AF002": "source too large",
    "AF003": "nesting too deep",
    "AF004": "too many steps after `for` expansion",
    "AF005": "missing `pipeline NAME` header",
    "AF006": "invalid literal (number, string escape, date or duration)",
    "AF007": "misplaced or repeated top-level item (header, sweep, walkforward, stream)",
    "AF101": "unknown node type",
    "AF102": "unknown param or input",
    "AF103": "missing required param or input",
    "AF104": "wrong value type",
    "AF105": "value out of bounds or rejected by the param's checks",
    "AF106": "too many positional arguments",
    "AF107": "duplicate argument",
    "AF108": "params rejected as a whole (a cross-field rule of the node)",
    "AF201": "port type mismatch",
    "AF202": "unknown output port or column",
    "AF203": "unknown step",
    "AF204": "duplicate step name",
    "AF205": "cycle between steps",
    "AF206": "unused step (warning)",
    "AF207": "bad name template or loop variable",
    "AF208": "bad `for` loop values",
    "AF301": "sweep target names no step",
    "AF302": "sweep target names no param of its step",
    "AF303": "empty search space",
    "AF304": "constraints exclude every combination",
    "AF305": "objective is not a metric",
    "AF306": "unknown sweep method or bad sweep options",
    "AF307": "bad search space (unknown function, wrong arguments, not finite for a grid)",
    "AF308": "duplicate sweep target",
    "AF309": "constraint names a param that is neither swept nor set",
    "AF310": "constraint cannot be evaluated",
    "AF311": "sweep needs an objective",
    "AF312": "bad walk-forward settings",
    "AF313": "constraints not checked exhaustively (info)",
    "AF401": "cannot resolve a `use` pin",
    "AF402": "the resolver refused a `use` pin",
    "AF403": "malformed version in a `use` pin",
    "AF404": "duplicate `use` pin",
    "AF405": "`use` pin shadows a built-in node type",
    "AF406": "unused `use` pin (warning)",
    "AF407": "the resolver warns about a `use` pin, e.g. a failed look-ahead check (warning)",
    "AF408": "a `use` pin's language has no registered runtime",
    "AF501": "stream block has no source",
    "AF502": "stream setting repeated",
    "AF503": "stream setting is not a duration",
    "AF504": "stream schedule: `after` must be shorter than `every`",
    "AF505": "stream source or sink argument is not a literal",
    "AF506": "stream block emits nothing (warning)",
}


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

    @property
    def is_error(self) -> bool:
        """True for errors (warnings and infos do not stop compilation)."""
        return self.severity == "error"

    def format(self, filename: str = "<input>") -> str:
        """gcc style: ``file:line:col: error AF123: message`` (plus the hint, indented)."""
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


def suggestion_text(suggestions: list[str]) -> str:
    """``"; did you mean `a` or `b`?"`` or the empty string."""
    if not suggestions:
        return ""
    return "; did you mean " + " or ".join(f"`{s}`" for s in suggestions) + "?"


def sort_key(d: Diagnostic) -> tuple[int, int, str]:
    """Diagnostics read top to bottom."""
    return (d.line, d.col, d.code)
