"""The number and size checks on what a sandbox returns, each failure with its own code.

Everything a sandbox writes is hostile data (SECURITY.md). After the JSON is parsed
(:func:`load_json`), every number must be finite and fit a 64-bit float, and every output stays
within the size limits below, before anything on the host converts, stores or logs it:

| failure | kind | code |
| --- | --- | --- |
| ±inf anywhere, NaN in a signal or a metric | ``NON_FINITE_OUTPUT`` | AF731 |
| an integer too large for a 64-bit float (e.g. 4,001 digits) | ``NUMBER_TOO_LARGE`` | AF732 |
| a metric that is not a number (a string, true/false, a list, an object), or a metric name
  MLflow cannot record | ``INVALID_METRIC`` | AF733 |
| too many metrics or frame columns, a name too long | ``OUTPUT_LIMIT`` | AF734 |

Each message is a sentence naming the node, the output, the column or metric, the row (and
its timestamp) where there is one, what was wrong and what to write instead.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from typing import TYPE_CHECKING, Any

from nodes.lazy import lazy_module
from runners.jobs import SandboxFailure

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = [
    "MAX_COLUMNS",
    "MAX_INT_DIGITS",
    "MAX_METRICS",
    "MAX_NAME_CHARS",
    "HugeInt",
    "InvalidMetric",
    "NonFiniteOutput",
    "NumberTooLarge",
    "OutputSizeLimit",
    "Where",
    "check_column_names",
    "check_finite",
    "check_metrics",
    "load_json",
    "to_floats",
]

#: Metrics one output may hold (MLflow logs 1,000 per request; a run page lists them all).
MAX_METRICS = 1000
#: Columns one frame output may hold.
MAX_COLUMNS = 1000
#: Characters in a metric or column name (MLflow's limit for a metric key).
MAX_NAME_CHARS = 250
#: Decimal digits an integer may have: every integer up to 308 digits is below 1.8e308, the
#: largest finite 64-bit float; a longer one cannot be stored as a number here.
MAX_INT_DIGITS = 308
# What MLflow accepts in a metric name (mlflow.utils.validation), in ASCII.
_METRIC_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/: ]*$")


class NonFiniteOutput(SandboxFailure):
    """An output holds ±inf, or NaN where NaN is not allowed (a signal, a metric)."""

    code = "AF731"

    def __init__(self, message: str) -> None:
        super().__init__("NON_FINITE_OUTPUT", message)


class NumberTooLarge(SandboxFailure):
    """An output holds an integer too large for a 64-bit float."""

    code = "AF732"

    def __init__(self, message: str) -> None:
        super().__init__("NUMBER_TOO_LARGE", message)


class InvalidMetric(SandboxFailure):
    """A metrics output holds something that is not a finite number, or an unusable name."""

    code = "AF733"

    def __init__(self, message: str) -> None:
        super().__init__("INVALID_METRIC", message)


class OutputSizeLimit(SandboxFailure):
    """An output has too many metrics or columns, or a name that is too long."""

    code = "AF734"

    def __init__(self, message: str) -> None:
        super().__init__("OUTPUT_LIMIT", message)


class HugeInt:
    """What the JSON parser returns for an integer of more than :data:`MAX_INT_DIGITS` digits
    (never converted: ``float()`` of it raises OverflowError, ``int()`` of 4,301+ digits
    ValueError, and either used to end in a 500)."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits


class Where:
    """Names the place of a value in a sentence: ``node 'n', output 'p', column 'c'``."""

    def __init__(self, node_id: str, port: str, part: str | None = None) -> None:
        self.node_id, self.port, self.part = node_id, port, part

    def at(self, part: str) -> Where:
        """The same output, one column or metric in."""
        return Where(self.node_id, self.port, part)

    def __str__(self) -> str:
        text = f"node {self.node_id!r}, output {self.port!r}"
        return f"{text}, {self.part}" if self.part else text


def _parse_int(text: str) -> int | HugeInt:
    digits = len(text) - text.startswith("-")
    return HugeInt(digits) if digits > MAX_INT_DIGITS else int(text)


def _parse_constant(token: str) -> float:
    # NaN, Infinity, -Infinity (what Python's json writes): parsed, then refused with where
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[token]


def load_json(raw: bytes) -> Any:
    """Parse an output file; integers too long for a float become :class:`HugeInt`.

    Raises ValueError (malformed, or too deeply nested) for the caller to name."""
    try:
        return json.loads(raw, parse_int=_parse_int, parse_constant=_parse_constant)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


def _too_large(where: Where, row: str, value: HugeInt) -> NumberTooLarge:
    return NumberTooLarge(
        f"{where}{row}: an integer of {value.digits:,} digits does not fit a 64-bit float; "
        "return numbers up to about 1.8e308 (scale the value, or return it as a float)"
    )


def to_floats(values: list[Any], where: Where) -> np.ndarray:
    """A JSON list of numbers and nulls as float64 (null = NaN); anything else is refused."""
    kinds = set(map(type, values))
    if not kinds <= {int, float, type(None)}:  # exact types: bool is not a number here
        for i, v in enumerate(values):
            if isinstance(v, HugeInt):
                raise _too_large(where, f", row {i}", v)
            if type(v) not in (int, float, type(None)):
                raise SandboxFailure(
                    "INVALID_OUTPUT",
                    f"{where}, row {i} holds {_kind(v)}, not a number or null; return numbers "
                    "(null, NaN or None for a missing value)",
                )
    return np.array(values, dtype="float64")


def check_finite(
    values: np.ndarray, where: Where, index: pd.Index | None, *, allow_nan: bool
) -> None:
    """Refuse ±inf (and NaN unless ``allow_nan``), naming the first row and its timestamp."""
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    value = values[row]
    ts = ""
    if index is not None and row < len(index):
        stamp = index[row]
        ts = f" ({stamp.isoformat() if isinstance(stamp, pd.Timestamp) else stamp})"
    count = int(bad.sum())
    more = f" (and {count - 1:,} more row{'s' if count > 2 else ''})" if count > 1 else ""
    if math.isnan(value):
        raise NonFiniteOutput(
            f"{where}, row {row}{ts} is missing (NaN/null){more}; a signal needs a number in "
            "[-1, 1] on every row: use 0 for no position"
        )
    sign = "+" if value > 0 else "-"
    raise NonFiniteOutput(
        f"{where}, row {row}{ts} is {sign}inf{more}; outputs must be finite numbers: check "
        "for a division by zero, or use null/NaN for a missing value"
    )


def check_metrics(values: Any, where: Where) -> dict[str, float | int | None]:
    """A metrics output: at most :data:`MAX_METRICS` names MLflow accepts, each a finite real
    number (an integer or a float) or null for an undefined metric."""
    if not isinstance(values, dict):
        raise InvalidMetric(
            f"{where}: metrics must be an object of names to numbers, got {_kind(values)}"
        )
    if len(values) > MAX_METRICS:
        raise OutputSizeLimit(
            f"{where}: {len(values):,} metrics; the limit is {MAX_METRICS:,} per output"
        )
    for name, v in values.items():
        _check_metric_name(name, where)
        at = where.at(f"metric {name!r}")
        if isinstance(v, HugeInt):
            raise _too_large(at, "", v)
        if v is None or type(v) is int:
            continue
        if type(v) is float:
            if math.isnan(v):
                raise NonFiniteOutput(
                    f"{at} is NaN; a metric must be a finite number: use null (None in "
                    "Python) for a metric that is undefined"
                )
            if math.isinf(v):
                sign = "+" if v > 0 else "-"
                raise NonFiniteOutput(
                    f"{at} is {sign}inf; a metric must be a finite number (null for one that "
                    "is undefined): check for a division by zero"
                )
            continue
        hint = " (write 1 or 0)" if isinstance(v, bool) else ""
        raise InvalidMetric(
            f"{at} is {_kind(v)}{hint}; a metric must be a finite number, or null when it is "
            "undefined (text and nested values are not metrics: log them instead)"
        )
    return values


def _check_metric_name(name: str, where: Where) -> None:
    shown = repr(name[:60] + "…") if len(name) > 60 else repr(name)
    if len(name) > MAX_NAME_CHARS:
        raise OutputSizeLimit(
            f"{where}: the metric name {shown} has {len(name):,} characters; the limit is "
            f"{MAX_NAME_CHARS}"
        )
    if not _METRIC_NAME.match(name) or posixpath.normpath(name) != name:
        raise InvalidMetric(
            f"{where}: {shown} is not a usable metric name; use letters, digits, `_`, `.`, `-`, "
            "`/`, `:` and spaces, starting with a letter, digit or `_` (e.g. 'hit_rate')"
        )


def check_column_names(names: list[str], where: Where) -> None:
    """At most :data:`MAX_COLUMNS` columns, each name at most :data:`MAX_NAME_CHARS` long."""
    if len(names) > MAX_COLUMNS:
        raise OutputSizeLimit(
            f"{where}: {len(names):,} columns; the limit is {MAX_COLUMNS:,} per frame"
        )
    for name in names:
        if len(name) > MAX_NAME_CHARS:
            raise OutputSizeLimit(
                f"{where}: a column name of {len(name):,} characters ({name[:40]!r}…); the "
                f"limit is {MAX_NAME_CHARS}"
            )


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"true/false ({str(value).lower()})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "…"
        return f"a string ({shown!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__
