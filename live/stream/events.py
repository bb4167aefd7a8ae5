"""The unit a stream pipeline emits: one value of one emitted port, for one bar and symbol.

A :class:`StreamEvent` is ``{ts, symbol, pipeline, node, port, column, value, depth}``:
``ts`` the bar's open time (UTC, ISO text), ``value`` a JSON value (a number, null where the
node has no value for the bar yet, or an object for a frame row), ``depth`` the number of
``trigger`` hops that led to it (0: computed on a source's bars). Its de-duplication key is
the tuple of the fields a sink's ``dedup_key`` names (``["ts", "symbol"]`` by default).
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EVENT_FIELDS", "StreamEvent", "json_value"]

#: The fields of an event, in the order a CSV row or a table has them.
EVENT_FIELDS = ("ts", "symbol", "pipeline", "node", "port", "column", "value", "depth")

_NAMESPACE = uuid.UUID("6f1d2a7e-4f1b-4c0e-9a53-2f3a0e8c5b11")


@dataclass(frozen=True)
class StreamEvent:
    """One emitted value (see the module doc)."""

    ts: str
    symbol: str
    pipeline: str
    node: str
    port: str
    column: str | None
    value: Any
    depth: int = 0

    def key(self, fields: Sequence[str]) -> tuple[str, ...]:
        """The de-duplication key: the named fields as text (a missing column is "")."""
        return tuple("" if getattr(self, f) is None else str(getattr(self, f)) for f in fields)

    def key_id(self, fields: Sequence[str]) -> str:
        """A stable UUID of the key (a Prefect event's id, a webhook's Idempotency-Key)."""
        return str(uuid.uuid5(_NAMESPACE, "\x1f".join(self.key(fields))))

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamEvent:
        """An event from :meth:`to_json`'s form."""
        column = data.get("column")
        return cls(
            ts=str(data["ts"]),
            symbol=str(data["symbol"]),
            pipeline=str(data["pipeline"]),
            node=str(data["node"]),
            port=str(data["port"]),
            column=None if column is None else str(column),
            value=data.get("value"),
            depth=int(data.get("depth") or 0),
        )

    @property
    def number(self) -> float | None:
        """The value as a float when it is a number, else None."""
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None
        return float(v)


def json_value(value: Any) -> Any:
    """A cell as JSON: NaN and None are null, numpy scalars plain numbers, timestamps ISO."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(ValueError, AttributeError):
            value = value.item()
    if value != value:  # NaN, NaT
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, bool | int | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)
