"""Reading converter inputs: plain or gzip text files, line by line with line numbers."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

from nodes.errors import DataError

__all__ = ["lines", "parse_float"]


def lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text without the newline)`` of a text file, gunzipped when it starts
    with gzip's magic bytes; blank lines skipped."""
    p = Path(path)
    try:
        with open(p, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with (
            gzip.open(p, "rb") if gz else open(p, "rb") as fh,
            io.TextIOWrapper(fh, encoding="utf-8") as text,
        ):
            for n, line in enumerate(text, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield n, line
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError("UNREADABLE", f"cannot read it: {exc}", source=str(p)) from None


def parse_float(text: object, what: str, source: str, line: int) -> float:
    """A finite number from a field (DataError ``BAD_NUMBER`` naming the file and line)."""
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(
            "BAD_NUMBER", f"{what} {text!r} is not a number", source=source, row=line
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise DataError("BAD_NUMBER", f"{what} {text!r} is not finite", source=source, row=line)
    return value
