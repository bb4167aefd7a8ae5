"""How a node meets a panel (:mod:`nodes.panel`): :func:`run_node`, what ``Node.execute`` does.

``native`` nodes get the panel as it is. ``per_symbol`` nodes run once per symbol on that
symbol's own rows: its rows of a long input, and of a wide input the cells that are its bars
(:func:`nodes.panel.bars`), so a warm-up NaN is still a bar and a gap is not. Series outputs are
put back together wide (with their bars), frame outputs long. ``none`` nodes refuse a panel with
a NodeError naming the node, the input, the symbols and ``panel_hint``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from nodes.base import Node, Port, PortType
from nodes.errors import AlphaForgeError, NodeError
from nodes.lazy import lazy_module
from nodes.panel import (
    NAME_ATTR,
    PANEL_KINDS,
    assemble_long,
    assemble_wide,
    bars,
    is_panel,
    set_bars,
    symbol_groups,
    symbols_of,
    union_index,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["run_node"]

_SERIES_TYPES = frozenset({PortType.SERIES, PortType.SIGNAL})
_ROW_TYPES = frozenset({PortType.OHLCV, PortType.FRAME})  # tables with a row per bar


def run_node(node: Node, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
    """Run ``node`` on ``inputs`` as its ``panel`` kind says (see the module doc)."""
    node_type = type(node)
    kind = node_type.panel
    if kind not in PANEL_KINDS:
        known = ", ".join(sorted(PANEL_KINDS))
        raise NodeError(f"{node_type.name}: panel kind {kind!r} is not one of {known}")
    if kind == "native":
        return node.run(inputs, params)
    found = _panel_inputs(node_type, inputs)
    if not found:
        return node.run(inputs, params)
    if kind == "none":
        port, value = found[0]
        raise NodeError(_refusal(node_type, port, value))
    return _PerSymbol(node, inputs, found).run(params)


def _items(port: Port | None, value: Any) -> list[Any]:
    if port is not None and port.variadic and isinstance(value, list | tuple):
        return list(value)
    return [value]


def _is_multi(port: Port | None, value: Any) -> bool:
    """A panel on this port: a wide frame where a series goes, a long panel where rows go."""
    if port is None or not isinstance(value, pd.DataFrame):
        return False
    if port.type in _SERIES_TYPES:
        return True
    return port.type in _ROW_TYPES and is_panel(value)


def _panel_inputs(node_type: type[Node], inputs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    found = []
    for name, value in inputs.items():
        port = node_type.input_port(name)
        found += [(name, v) for v in _items(port, value) if _is_multi(port, v)]
    return found


def _shown(symbols: Sequence[str], limit: int = 5) -> str:
    more = f", ... ({len(symbols)} in all)" if len(symbols) > limit else ""
    return ", ".join(symbols[:limit]) + more


def _refusal(node_type: type[Node], port: str, value: pd.DataFrame) -> str:
    symbols = symbols_of(value)
    hint = node_type.panel_hint or (
        'it does not take several symbols yet: keep one in the loader (symbol="...")'
    )
    return (
        f"{node_type.name} takes one symbol, but its input {port!r} holds {len(symbols)} "
        f"symbols ({_shown(symbols)}); {hint}"
    )


class _PerSymbol:
    """One per-symbol execution: the inputs cut per symbol, the outputs put back together."""

    def __init__(self, node: Node, inputs: Mapping[str, Any], found: list[tuple[str, Any]]):
        self.node, self.node_type, self.inputs = node, type(node), inputs
        self.symbols = self._common_symbols(found)
        self.longs: dict[int, tuple[dict[str, np.ndarray], pd.DataFrame]] = {}
        self.wides: dict[int, tuple[np.ndarray, pd.DataFrame]] = {}
        for name, value in inputs.items():
            port = self.node_type.input_port(name)
            for v in _items(port, value):
                self._prepare(name, port, v)
        self.index, self.rows = self._rows()
        n = len(self.index)
        # each symbol's timestamps (the index itself for a symbol with a bar at every one)
        self.stamps = {
            s: self.index if len(r) == n else self.index[r] for s, r in self.rows.items()
        }

    def _common_symbols(self, found: list[tuple[str, Any]]) -> list[str]:
        first_port, first = found[0]
        symbols = symbols_of(first)
        for port, value in found[1:]:
            other = symbols_of(value)
            if other != symbols:
                only = sorted(set(symbols) ^ set(other))
                raise NodeError(
                    f"{self.node_type.name}: inputs {first_port!r} and {port!r} hold different "
                    f"symbols (in one only: {_shown(only)}); compute them from the same panel"
                )
        return symbols

    def _prepare(self, name: str, port: Port | None, value: Any) -> None:
        if _is_multi(port, value):
            if port is not None and port.type in _SERIES_TYPES:
                self.wides[id(value)] = (value.to_numpy(dtype="float64", na_value=np.nan), value)
            else:
                syms, groups = symbol_groups(value)
                self.longs[id(value)] = (dict(zip(syms, groups, strict=True)), value)
        elif isinstance(value, pd.Series | pd.DataFrame):
            raise NodeError(
                f"{self.node_type.name}: input {name!r} holds one symbol's data while other "
                f"inputs hold {len(self.symbols)} symbols ({_shown(self.symbols)}); compute it "
                "from the same panel (select the same column of the same bars)"
            )

    def _rows(self) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
        """The timestamps outputs are placed on and each symbol's own rows among them."""
        if self.longs:
            groups, frame = next(iter(self.longs.values()))
            index = frame.index.unique().sort_values()
            return index, {s: index.get_indexer(frame.index[groups[s]]) for s in self.symbols}
        frames = [w for _, w in self.wides.values()]
        index = union_index([w.index for w in frames])
        cells = np.zeros((len(index), len(self.symbols)), dtype=bool)
        for w in frames:
            mask = bars(w)
            if not w.index.equals(index):
                pos = index.get_indexer(w.index)
                full = np.zeros_like(cells)
                full[pos] = mask
                mask = full
            cells |= mask
        return index, {s: np.flatnonzero(cells[:, j]) for j, s in enumerate(self.symbols)}

    def _cut(self, value: Any, symbol: str, j: int, stamps: pd.DatetimeIndex) -> Any:
        key = id(value)
        if key in self.longs:
            groups, frame = self.longs[key]
            return frame.take(groups[symbol])
        if key in self.wides:
            values, frame = self.wides[key]
            col = values[:, j]
            if stamps is self.index and frame.index is self.index:
                cut = col
            elif frame.index is self.index or frame.index.equals(self.index):
                cut = col[self.rows[symbol]]
            else:
                pos = frame.index.get_indexer(stamps)
                cut = np.where(pos >= 0, col[pos], np.nan)
            return pd.Series(cut, index=stamps, name=frame.attrs.get(NAME_ATTR))
        return value

    def run(self, params: Any) -> dict[str, Any]:
        series: dict[str, dict[str, pd.Series]] = {}
        tables: dict[str, dict[str, pd.DataFrame]] = {}
        logs: dict[str, list[str]] = {}
        for j, symbol in enumerate(self.symbols):
            stamps = self.stamps[symbol]
            args = {}
            for name, value in self.inputs.items():
                port = self.node_type.input_port(name)
                cut = [self._cut(v, symbol, j, stamps) for v in _items(port, value)]
                args[name] = cut if isinstance(value, list | tuple) else cut[0]
            out = self._run_one(symbol, args, params, logs)
            for port_name, v in out.items():
                kind = self._output_kind(port_name)
                (series if kind == "series" else tables).setdefault(port_name, {})[symbol] = v
        self._emit(logs)
        result: dict[str, Any] = {p: self._wide(parts) for p, parts in series.items()}
        result |= {p: assemble_long(parts) for p, parts in tables.items()}
        return result

    def _run_one(
        self, symbol: str, args: dict[str, Any], params: Any, logs: dict[str, list[str]]
    ) -> Mapping[str, Any]:
        log: Callable[[str], None] = lambda msg: logs.setdefault(msg, []).append(symbol)  # noqa: E731
        one = self.node_type(replace(self.node.ctx, log=log))
        try:
            out = one.run(args, params)
        except AlphaForgeError as exc:
            raise NodeError(f"{self.node_type.name} on symbol {symbol!r}: {exc}") from exc
        if not isinstance(out, Mapping):
            raise NodeError(f"{self.node_type.name} returned {type(out).__name__}, not a dict")
        return out

    def _output_kind(self, port_name: str) -> str:
        port = self.node_type.output_port(port_name)
        if port is not None and port.type in _SERIES_TYPES:
            return "series"
        if port is not None and port.type in _ROW_TYPES:
            return "table"
        what = port.type.value if port is not None else "undeclared"
        raise NodeError(
            f"{self.node_type.name} runs per symbol but its output {port_name!r} is {what}: "
            "only series, signals and frames can be put back together per symbol"
        )

    def _wide(self, parts: dict[str, pd.Series]) -> pd.DataFrame:
        """The per-symbol outputs on the run's timestamps (each on its own rows, the usual
        case: no search), else on the union of their timestamps."""
        out = np.full((len(self.index), len(self.symbols)), np.nan)
        cells = np.zeros(out.shape, dtype=bool)
        name = None
        for j, s in enumerate(self.symbols):
            part, rows = parts[s], self.rows[s]
            if not isinstance(part, pd.Series):
                raise NodeError(
                    f"{self.node_type.name} returned {type(part).__name__} for a series output"
                )
            if len(part) != len(rows) or not part.index.equals(self.stamps[s]):
                return assemble_wide(parts)
            out[rows, j] = part.to_numpy(dtype="float64", na_value=np.nan)
            cells[rows, j] = True
            name = part.name if name is None else name
        frame = pd.DataFrame(out, index=self.index, columns=pd.Index(self.symbols))
        if name is not None:
            frame.attrs[NAME_ATTR] = name
        return set_bars(frame, cells)

    def _emit(self, logs: dict[str, list[str]]) -> None:
        """Each distinct log line once, with the symbols that wrote it."""
        n = len(self.symbols)
        for msg, symbols in logs.items():
            who = f"all {n} symbols" if len(symbols) == n else _shown(symbols)
            self.node.ctx.log(f"{msg} ({who})")
