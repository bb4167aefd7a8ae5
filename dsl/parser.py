"""Parsing .af text with textX: size and nesting limits, syntax errors with recovery.

The metamodel is built once from ``grammar/pipeline.tx`` (which imports ``values``, ``steps``,
``sweep`` and ``stream``). On a syntax error the failing statement's lines are blanked (offsets
kept) and the text is parsed again, so one pass reports up to :data:`MAX_SYNTAX_ERRORS` errors.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textx import metamodel_from_file
from textx.exceptions import TextXSyntaxError

from dsl.lower import KEYWORDS
from dsl.source import Reporter, SourceText, Span

GRAMMAR_DIR = Path(__file__).parent / "grammar"
MAX_SOURCE_CHARS = 1_000_000
MAX_NESTING = 32
MAX_SYNTAX_ERRORS = 20

# Words that start a statement (at top level or in a block): an error where one of them was
# expected is an error of the line it occurs on, not a missing continuation of the previous one.
_STATEMENT_STARTERS = frozenset(
    [
        "pipeline",
        "use",
        "for",
        "sweep",
        "walkforward",
        "stream",
        "where",
        "objective",
        "source",
        "warmup",
        "every",
        "emit",
    ]
)
_FRIENDLY = {
    "NAME": "a name",
    "IDENT": "a name",
    "NUMBER": "a number",
    "STR": "a string",
    "DATE": "a date",
    "DURATION": "a duration",
    "BOOLKW": "true or false",
    "VERSIONSPEC": "a version (1.2, =1.2.3)",
    "CMPOP": "a comparison",
    "ADDOP": "an operator",
    "MULOP": "an operator",
    "EOF": "end of file",
}
_VALUE_START = {"a number", "a string", "a date", "a duration", "true or false", "'none'", "'['"}
_TOKEN = re.compile(r'"[^"\n]*"?|\w+|\S')


@functools.cache
def metamodel() -> Any:
    """The textX metamodel of the language (built once per process)."""
    return metamodel_from_file(str(GRAMMAR_DIR / "pipeline.tx"), autokwd=True)


@dataclass
class ParseOutcome:
    """The textX model (None if even recovery failed) and whether syntax errors were found."""

    model: Any | None
    syntax_errors: int


def check_limits(src: SourceText, rep: Reporter) -> bool:
    """Refuse sources too large or too deeply nested before parsing them (True if fine)."""
    if len(src.text) > MAX_SOURCE_CHARS:
        rep.report(
            "AF002",
            f"source is {len(src.text):,} characters; the limit is {MAX_SOURCE_CHARS:,}",
            Span(0, 1),
        )
        return False
    depth = 0
    for offset, ch in _brackets(src.text):
        depth += 1 if ch in "([{" else -1
        if depth > MAX_NESTING:
            rep.report(
                "AF003", f"nesting deeper than {MAX_NESTING} levels", Span(offset, offset + 1)
            )
            return False
    return True


def parse(src: SourceText, rep: Reporter) -> ParseOutcome:
    """Parse, reporting every syntax error found by blank-and-retry recovery."""
    text = src.text
    errors = 0
    while True:
        try:
            return ParseOutcome(metamodel().model_from_str(text), errors)
        except TextXSyntaxError as exc:
            errors += 1
            line = _explain(src, text, exc, rep)
            if errors >= MAX_SYNTAX_ERRORS:
                rep.report(
                    "AF001",
                    f"too many syntax errors; stopped after {MAX_SYNTAX_ERRORS}",
                    src.line_span(line),
                    severity="info",
                )
                return ParseOutcome(None, errors)
            blanked = _blank_statement(src, text, line)
            if blanked == text:
                return ParseOutcome(None, errors)
            text = blanked
        except RecursionError:
            rep.report("AF003", "expression nested too deeply to parse", Span(0, 1))
            return ParseOutcome(None, errors + 1)


# -- explaining an error -----------------------------------------------------------------------


def _expected(exc: TextXSyntaxError) -> list[str]:
    names: list[str] = []
    for rule in exc.expected_rules or []:
        kind = type(rule).__name__
        to_match = str(getattr(rule, "to_match", "") or "")
        if kind == "StrMatch" or (kind == "RegExMatch" and re.fullmatch(r"\w+", to_match)):
            name = f"'{to_match}'"
        elif rule.rule_name in _FRIENDLY:
            name = _FRIENDLY[rule.rule_name]
        elif kind == "RegExMatch" and "[A-Za-z_]" in to_match:
            name = "a name"
        else:
            continue
        if name not in names:
            names.append(name)
    if "a number" in names and "a string" in names:
        names = [n for n in names if n not in _VALUE_START]
        if "a name" in names:
            names.remove("a name")
        names.append("a value")
    starters = [n for n in names if n.strip("'") in _STATEMENT_STARTERS]
    if len(starters) >= 3:  # e.g. after a complete statement: say so instead of listing them
        rest = [n for n in names if n not in starters and n != "a name"]
        names = ["a new statement", *rest]
    return names


def _join(names: list[str]) -> str:
    if len(names) <= 1:
        return names[0] if names else "something else"
    return ", ".join(names[:-1]) + " or " + names[-1]


def _explain(src: SourceText, text: str, exc: TextXSyntaxError, rep: Reporter) -> int:
    """Report one syntax error precisely; returns the line the error belongs to."""
    offset = src.offset(exc.line or 1, exc.col or 1)
    while offset < len(text) and text[offset].isspace():
        offset += 1
    tok = _token_at(text, offset)
    expected = _expected(exc)
    kw = _keyword_as_name(text, offset, tok)
    if kw is None and tok is not None and text[tok.start : tok.end] in KEYWORDS:
        kw = tok if (not expected or "a name" in expected) else None
    if kw is not None:
        rep.report(
            "AF001",
            f"`{text[kw.start : kw.end]}` is a keyword and cannot be used as a name",
            kw,
            hint="rename it, e.g. with a trailing underscore",
        )
        return src.linecol(kw.start)[0]
    prev = _previous_token(text, offset)
    line_start = tok is None or text.rfind("\n", 0, offset) >= (prev.end if prev else 0)
    statement_level = any(
        e.strip("'") in _STATEMENT_STARTERS or e == "a new statement" for e in expected
    )
    if prev is not None and line_start and not statement_level:
        rep.report(
            "AF001",
            f"expected {_join(expected)} after `{text[prev.start : prev.end]}`",
            Span(prev.end, prev.end),
        )
        return src.linecol(prev.start)[0]
    if tok is None:
        rep.report(
            "AF001", f"unexpected end of file; expected {_join(expected)}", Span(offset, offset)
        )
    else:
        got = text[tok.start : tok.end]
        rep.report("AF001", f"unexpected `{got}`; expected {_join(expected)}", tok)
    return src.linecol(offset)[0]


def _token_at(text: str, offset: int) -> Span | None:
    m = _TOKEN.match(text, offset)
    return Span(m.start(), m.end()) if m else None


def _previous_token(text: str, offset: int) -> Span | None:
    """The last token before ``offset``, skipping whitespace and comments."""
    pos = offset
    while pos > 0:
        line_start = text.rfind("\n", 0, pos) + 1
        segment = _strip_comment(text[line_start:pos])
        last = None
        for last in _TOKEN.finditer(segment):  # noqa: B007
            pass
        if last is not None:
            return Span(line_start + last.start(), line_start + last.end())
        pos = line_start - 1
    return None


def _keyword_as_name(text: str, offset: int, tok: Span | None) -> Span | None:
    """A keyword used where a name goes (``for = ...``, ``f(in=1)``), if that is the error."""
    candidates = [tok] if tok else []
    prev = _previous_token(text, offset)
    if prev is not None:
        candidates.append(prev)
    for c in candidates:
        word = text[c.start : c.end]
        after = text[c.end :].lstrip(" \t")
        if word in KEYWORDS and after.startswith("=") and not after.startswith("=="):
            return c
    return None


def _strip_comment(segment: str) -> str:
    in_str = False
    for i, ch in enumerate(segment):
        if ch == '"' and (i == 0 or segment[i - 1] != "\\"):
            in_str = not in_str
        elif ch == "#" and not in_str:
            return segment[:i]
    return segment


# -- recovery ----------------------------------------------------------------------------------


def _brackets(text: str) -> Iterator[tuple[int, str]]:
    """(offset, char) of every bracket outside strings and comments."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "()[]{}":
            yield i, ch
        i += 1


def _blank_statement(src: SourceText, text: str, line: int) -> str:
    """Blank the statement around ``line`` (keeping offsets and block braces balanced)."""
    line_starts = [src.offset(ln, 1) for ln in range(1, src.line_count + 1)]
    depth_at: dict[int, int] = {}
    depth = 0
    brackets = list(_brackets(text))
    bi = 0
    for ln, start in enumerate(line_starts, 1):
        while bi < len(brackets) and brackets[bi][0] < start:
            depth += 1 if brackets[bi][1] in "([" else -1 if brackets[bi][1] in ")]" else 0
            bi += 1
        depth_at[ln] = depth
    first = line
    while first > 1 and depth_at.get(first, 0) > 0:
        first -= 1
    region = Span(line_starts[first - 1], src.line_span(line).end)
    chars = list(text)
    keep: set[int] = set()
    braces = [(o, c) for o, c in brackets if c in "{}" and region.start <= o < region.end]
    opens: list[int] = []
    unmatched_closers: list[int] = []
    for o, c in braces:
        if c == "{":
            opens.append(o)
        elif opens:
            opens.pop()
        else:
            unmatched_closers.append(o)
    keep.update(unmatched_closers)
    if opens:  # blank the closers of blocks opened in the region
        need = len(opens)
        level = 0
        for o, c in brackets:
            if o < region.end or c not in "{}":
                continue
            if c == "{":
                level += 1
            elif level:
                level -= 1
            else:
                chars[o] = " "
                need -= 1
                if not need:
                    break
    for i in range(region.start, region.end):
        if chars[i] != "\n" and i not in keep:
            chars[i] = " "
    return "".join(chars)
