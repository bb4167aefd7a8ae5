"""Source text positions: character offsets to 1-based lines and columns, and a diagnostics sink.

Internally the compiler keeps positions as ``Span(start, end)`` character offsets into the text;
they become lines and columns only when a diagnostic or an IR span is made.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from dsl.diagnostics import Diagnostic, Severity, suggestion_text
from dsl.ir import SourceSpan


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range of character offsets ``[start, end)`` in the source."""

    start: int
    end: int

    def cover(self, other: Span) -> Span:
        """The smallest span containing both."""
        return Span(min(self.start, other.start), max(self.end, other.end))


class SourceText:
    """The text of one .af file with a line table for offset -> (line, col) conversion."""

    def __init__(self, text: str, filename: str = "<input>") -> None:
        self.text = text
        self.filename = filename
        self._line_starts = [0]
        for i, ch in enumerate(text):
            if ch == "\n":
                self._line_starts.append(i + 1)

    def linecol(self, offset: int) -> tuple[int, int]:
        """1-based (line, col) of a character offset (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        idx = bisect.bisect_right(self._line_starts, offset) - 1
        return idx + 1, offset - self._line_starts[idx] + 1

    def offset(self, line: int, col: int) -> int:
        """Character offset of a 1-based (line, col)."""
        line = max(1, min(line, len(self._line_starts)))
        return min(self._line_starts[line - 1] + col - 1, len(self.text))

    def line_span(self, line: int) -> Span:
        """The span of a 1-based line, without its newline."""
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return Span(start, len(self.text) if end < 0 else end)

    @property
    def line_count(self) -> int:
        """Number of lines (a trailing newline starts an empty last line)."""
        return len(self._line_starts)

    def source_span(self, span: Span) -> SourceSpan:
        """The IR's line/column form of a span."""
        line, col = self.linecol(span.start)
        end_line, end_col = self.linecol(max(span.end, span.start))
        return SourceSpan(line=line, col=col, end_line=end_line, end_col=end_col)


@dataclass
class Reporter:
    """Collects diagnostics for one source; every check reports here instead of raising."""

    source: SourceText
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _seen: set[tuple[object, ...]] = field(default_factory=set)

    def report(
        self,
        code: str,
        message: str,
        span: Span,
        *,
        severity: Severity = "error",
        hint: str | None = None,
        suggestions: list[str] | None = None,
    ) -> None:
        """Add a diagnostic; suggestions are appended to the message as "did you mean"."""
        sugg = list(suggestions or [])
        s = self.source.source_span(span)
        if span.end <= span.start:  # a point (e.g. after the last token): one column wide
            s = s.model_copy(update={"end_line": s.line, "end_col": s.col + 1})
        key = (code, s.line, s.col, s.end_line, s.end_col, message)
        if key in self._seen:  # a `for` body repeats its problems once per value
            return
        self._seen.add(key)
        self.diagnostics.append(
            Diagnostic(
                code=code,
                severity=severity,
                message=message + suggestion_text(sugg),
                line=s.line,
                col=s.col,
                end_line=s.end_line,
                end_col=s.end_col,
                hint=hint,
                suggestions=sugg,
            )
        )

    def warn(self, code: str, message: str, span: Span, **kw: object) -> None:
        """Add a warning."""
        self.report(code, message, span, severity="warning", **kw)  # type: ignore[arg-type]

    @property
    def has_errors(self) -> bool:
        """True once any error (not warning) has been reported."""
        return any(d.is_error for d in self.diagnostics)
