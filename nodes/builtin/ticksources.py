"""Nodes that produce ``ticks`` (order-book events, :mod:`nodes.ticks`): ``tick_data`` reads a
catalog tick dataset at an exact version; ``synthetic_book`` generates a seeded book
(:mod:`nodes.synthbook`) for examples and tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from nodes.base import Node, Params, Port, PortType, register, split_dataset_reference
from nodes.builtin.catalogdata import _FULL_VERSION, _utc_bound
from nodes.builtin.loaders import _RangeParams
from nodes.errors import DataError, NodeError
from nodes.synthbook import DEFAULT_START_NS, BookSpec, generate

__all__ = ["SyntheticBook", "SyntheticBookParams", "TickData", "TickDataParams"]


class TickDataParams(_RangeParams):
    """Params of ``tick_data``."""

    name: str = Field(
        min_length=1,
        description='The tick dataset, optionally at a version: "btc_book" (the latest) or '
        '"btc_book@3f2a9c" (a version hash or a unique prefix of it).',
    )
    version: str | None = Field(
        None,
        description="The exact version (64 hex digits). The compiler fills it in from the name.",
    )
    symbol: str | None = Field(
        None,
        min_length=1,
        description="The symbol (asset) to read; may be left out when the "
        "dataset holds one symbol.",
    )

    @field_validator("name")
    @classmethod
    def _reference(cls, value: str) -> str:
        split_dataset_reference(value)
        return value

    @field_validator("version")
    @classmethod
    def _full_hash(cls, value: str | None) -> str | None:
        if value is not None and not _FULL_VERSION.match(value):
            raise ValueError("version must be a full version hash: 64 lower-case hex digits")
        return value


@register
class TickData(Node):
    """One symbol's order-book events from a catalog tick dataset, at an exact version.

    Like ``dataset``: the compiler pins the version in the IR. With ``start``, the events open
    with a snapshot of the book as it stood then (replayed from the dataset's start)."""

    name = "tick_data"
    category = "data"
    summary = "Order-book events (ticks) of a catalog tick dataset, at an exact version"
    outputs = (Port("ticks", PortType.TICKS, "one symbol's events in hftbacktest's layout"),)
    params_model = TickDataParams
    positional_param = "name"

    def _version(self, params: TickDataParams) -> str:
        if params.version is not None:
            return params.version
        if self.ctx.catalog is None:
            raise NodeError("no dataset catalog is set up for this run: tick_data(...) reads it")
        name, version = split_dataset_reference(params.name)
        return self.ctx.catalog.resolve(name, version)

    def run(self, inputs: Mapping[str, Any], params: TickDataParams) -> dict[str, Any]:
        """Read the symbol's events of the version in the range."""
        if self.ctx.catalog is None:
            raise NodeError("no dataset catalog is set up for this run: tick_data(...) reads it")
        name, _ = split_dataset_reference(params.name)
        version = self._version(params)
        source = f"tick dataset {name!r} version {version[:12]}"
        found = self.ctx.catalog.read_ticks(
            version,
            symbols=[params.symbol] if params.symbol else None,
            start=_utc_bound(params.start, end=False),
            end=_utc_bound(params.end, end=True),
        )
        if params.symbol is None and len(found) != 1:
            raise DataError(
                "SYMBOL_REQUIRED",
                f"it holds {len(found)} symbols: give symbol= one of {', '.join(sorted(found))}",
                source=source,
            )
        symbol, events = next(iter(found.items()))
        if len(events) == 0:
            raise DataError("EMPTY", "no events in the range asked for", source=source)
        self.ctx.log(f"{source}: {len(events)} events of {symbol}")
        return {"ticks": events}

    def fingerprint(self, params: TickDataParams) -> str:
        """``catalog:<version hash>``: the data's identity."""
        return f"catalog:{self._version(params)}"


class SyntheticBookParams(Params):
    """Params of ``synthetic_book`` (the model: :mod:`nodes.synthbook`, docs/ticks.md)."""

    seed: int = Field(0, ge=0, description="Random seed: the same seed gives the same events.")
    symbol: str = Field("SYN", min_length=1, description="The symbol the events carry.")
    start_ns: int = Field(DEFAULT_START_NS, ge=0, description="First event (ns since epoch).")
    duration_s: float = Field(60.0, gt=0, le=86_400.0, description="Seconds of events.")
    mid: float = Field(100.0, gt=0, description="Starting mid price.")
    tick_size: float = Field(0.01, gt=0, description="Price increment.")
    lot_size: float = Field(0.1, gt=0, description="Quantity increment.")
    depth: int = Field(10, ge=1, le=200, description="Price levels per side.")
    limit_rate: float = Field(40.0, ge=0, description="Limit orders per second.")
    cancel_rate: float = Field(30.0, ge=0, description="Cancels per second.")
    trade_rate: float = Field(5.0, ge=0, description="Market orders (trades) per second.")
    volatility: float = Field(2e-4, ge=0, description="Mid's log volatility per sqrt(second).")
    latency_ns: int = Field(1_000_000, ge=0, description="Feed latency (local - exchange), ns.")
    jitter_ns: int = Field(200_000, ge=0, description="Mean extra latency (exponential), ns.")


@register
class SyntheticBook(Node):
    """A seeded synthetic L2 order book: random-walk mid, Poisson limit orders, cancels and
    trades around it, an initial snapshot, feed latency. For examples and tests."""

    name = "synthetic_book"
    category = "data"
    summary = "A seeded synthetic order book (ticks) for examples and tests"
    outputs = (Port("ticks", PortType.TICKS, "the book's events in hftbacktest's layout"),)
    params_model = SyntheticBookParams

    def run(self, inputs: Mapping[str, Any], params: SyntheticBookParams) -> dict[str, Any]:
        """Generate the events."""
        try:
            events = generate(BookSpec(**params.model_dump()))
        except ValueError as exc:
            raise NodeError(f"synthetic_book: {exc}") from None
        self.ctx.log(f"synthetic_book seed {params.seed}: {len(events)} events")
        return {"ticks": events}
