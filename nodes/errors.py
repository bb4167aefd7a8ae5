"""The one exception base of Alpha Forge, and the node layer's errors.

Every layer raises a subclass of :class:`AlphaForgeError`; only ``api/`` turns them into HTTP
errors and only the CLI into exit codes. It lives in ``nodes`` because that is the lowest layer:
everything else may import it.
"""

from __future__ import annotations

from typing import Any

from nodes.codes import check_error_class


class AlphaForgeError(Exception):
    """Base of every error Alpha Forge raises on purpose.

    A subclass that sets its own ``code`` must be registered for it in ``nodes/codes.py``
    (checked when the class is defined); subclasses that do not set one share their parent's.
    """

    code: str = "AF000"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            check_error_class(f"{cls.__module__}.{cls.__qualname__}", cls.__dict__["code"])

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class NodeError(AlphaForgeError):
    """A node could not produce its outputs (bad params, bad inputs, a failed computation)."""

    code = "AF500"


class UnknownNodeTypeError(NodeError):
    """A node type is not in the registry; the message suggests close matches."""

    code = "AF101"

    def __init__(self, name: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"unknown node type {name!r}{hint}")
        self.name = name
        self.suggestions = suggestions


class DataError(NodeError):
    """Input data failed validation at the door: says which file and which row.

    ``kind`` is a stable name (``MISSING_COLUMNS``, ``UNPARSEABLE_TIMESTAMP``, ``UNSORTED``,
    ``DUPLICATE_TIMESTAMP``, ``NAN_PRICE``, ``NON_POSITIVE_PRICE``, ``HIGH_BELOW_LOW``, ...).
    """

    code = "AF600"

    def __init__(
        self, kind: str, message: str, *, source: str | None = None, row: int | None = None
    ) -> None:
        where = ""
        if source is not None:
            where = f"{source}"
            if row is not None:
                where += f", row {row}"
            where += ": "
        super().__init__(f"{where}{kind}: {message}")
        self.kind = kind
        self.source = source
        self.row = row
