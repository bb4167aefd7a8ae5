"""Sample .af files under cases/, each ending with the diagnostics it must produce.

Every diagnostic (code, start and end) must match exactly: nothing missing, nothing extra.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsl import CODES, compile_source
from nodes.base import NodeRegistry

CASES = Path(__file__).parent / "cases"
_EXPECT = re.compile(r"^# expect: (AF\d{3}) (\d+):(\d+)-(\d+):(\d+)$", re.M)


def _expected(text: str) -> list[tuple[str, int, int, int, int]]:
    return [(m[1], int(m[2]), int(m[3]), int(m[4]), int(m[5])) for m in _EXPECT.finditer(text)]


@pytest.mark.parametrize("path", sorted(CASES.glob("*.af")), ids=lambda p: p.stem)
def test_case_reports_exactly_the_expected_diagnostics(path: Path, reg: NodeRegistry) -> None:
    text = path.read_text()
    expected = _expected(text)
    assert expected or "# expect: nothing" in text, "case without expectations"
    result = compile_source(text, filename=path.name, registry=reg)
    got = [(d.code, d.line, d.col, d.end_line, d.end_col) for d in result.diagnostics]
    assert sorted(got) == sorted(expected), result.format(path.name)
    if any(d.is_error for d in result.diagnostics):
        assert result.ir is None
    else:
        assert result.ir is not None


def test_every_code_in_the_cases_is_documented() -> None:
    used = {code for p in CASES.glob("*.af") for code, *_ in _expected(p.read_text())}
    assert used <= set(CODES)
