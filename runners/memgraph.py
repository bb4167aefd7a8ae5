"""A pipeline evaluated in memory for many param variants: what a sweep's trials run on.

A sweep's trials differ only in a few params. :class:`MemoryGraph` runs the built-in nodes of
one IR in this process, without artifact files, and computes each distinct node evaluation —
the node, its effective params and the evaluations it reads — once while it can be reused:

- a node none of whose upstream (itself included) is swept is computed once for the whole
  sweep (the data, an indicator on fixed params);
- a node that depends on some swept nodes but not all is computed once per distinct value of
  those (``sma(window=w)`` once per ``w``, however many trials share it);
- a node that depends on every swept node is different in every trial: it is computed and
  dropped, never kept (the memory of a sweep does not grow with its trials).

What is kept is bounded: past ``max_bytes`` (:data:`DEFAULT_MEMO_BYTES`) the least recently
used evaluations are dropped (and computed again if asked for: the same numbers), except a
source node's own output (the data, which is the costliest to get again). An Optuna search
over an indicator's window, in a walk-forward, would otherwise keep one series per window and
fold.

:meth:`MemoryGraph.evaluate` returns the outputs of the nodes asked for; a failing node raises
:class:`TrialError` naming it. Custom (sandboxed) nodes are not evaluated here.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dsl.ir import NodeIR, PipelineIR
from runners.inprocess import InProcessRunner

__all__ = ["DEFAULT_MEMO_BYTES", "MemoryGraph", "MemoryStats", "TrialError"]

#: What a process keeps of a sweep's reusable node evaluations, at most (bytes).
DEFAULT_MEMO_BYTES = 512 * 1024 * 1024


class TrialError(Exception):
    """A node failed in a trial: ``node`` names it, the message says why."""

    def __init__(self, node: str, message: str) -> None:
        super().__init__(f"node {node!r}: {message}")
        self.node = node
        self.reason = message


@dataclass
class MemoryStats:
    """How many node evaluations were computed and how many were served from memory."""

    computed: dict[str, int] = field(default_factory=dict)
    reused: dict[str, int] = field(default_factory=dict)
    evicted: int = 0


class MemoryGraph:
    """The built-in nodes of ``ir`` evaluated in memory (see the module doc); ``swept`` names
    the nodes whose params trials override."""

    def __init__(
        self,
        ir: PipelineIR,
        runner: InProcessRunner,
        swept: Iterable[str],
        max_bytes: int = DEFAULT_MEMO_BYTES,
    ) -> None:
        self.ir = ir
        self.max_bytes = max_bytes
        self.runner = runner
        self.swept = frozenset(swept)
        self._nodes = {n.id: n for n in ir.nodes}
        custom = [n.id for n in ir.nodes if n.runtime != "builtin"]
        if custom:
            raise ValueError(
                "a sweep's trials run built-in nodes in memory; "
                f"{', '.join(repr(c) for c in custom)} run in a sandbox"
            )
        unknown = sorted(self.swept - set(self._nodes))
        if unknown:
            raise ValueError(f"swept node(s) not in the pipeline: {', '.join(unknown)}")
        self._depends: dict[str, frozenset[str]] = {}
        for node in ir.nodes:  # topological order
            deps: set[str] = {node.id} & self.swept
            for upstream in node.dependencies():
                deps |= self._depends[upstream]
            self._depends[node.id] = frozenset(deps)
        self._memo: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._pinned: set[str] = set()
        self.kept_bytes = 0
        self.stats = MemoryStats()

    def keeps(self, node_id: str) -> bool:
        """Whether the node's evaluations are kept for reuse (it does not depend on every
        swept node)."""
        return not self.swept or self._depends[node_id] != self.swept

    def evaluate(
        self,
        overrides: Mapping[str, Mapping[str, Any]],
        wanted: Iterable[str],
        *,
        until: Any = None,
        window: tuple[Any, Any] | None = None,
        windowed: Iterable[str] = (),
        ports: Mapping[str, Iterable[str]] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """The outputs of the ``wanted`` nodes with ``overrides`` (``{node: {param: value}}``)
        over the IR's params.

        Walk-forward windows: ``until`` (a timestamp) cuts every source node's (a node with no
        inputs: the data) time-indexed outputs to the bars before it, so nothing downstream can
        see a later bar; ``window`` ``(begin, end)`` cuts the time-indexed inputs of the
        ``windowed`` nodes (the backtest) to the bars in [begin, end): the indicators see the
        whole history up to ``until``, the backtest trades only the window.

        ``ports`` (``{node: [port, ...]}``) names the outputs read of some ``wanted`` nodes:
        those nodes are told so and may skip building their other outputs (the backtest's
        trades and orders tables), unless a node downstream reads them."""
        wanted = list(wanted)
        windowed = frozenset(windowed)
        needed = self._upstream_of(wanted)
        read = self._ports_read(needed, wanted, ports or {})
        keys: dict[str, str] = {}
        values: dict[str, dict[str, Any]] = {}
        for node in self.ir.nodes:
            if node.id not in needed:
                continue
            params = {**node.params, **overrides.get(node.id, {})}
            deps = node.dependencies()
            key = _key(node, params, [keys[d] for d in deps])
            outputs = read.get(node.id)
            if outputs is not None:
                key = _key(node, {"outputs": sorted(outputs)}, [key])
            if window is not None and node.id in windowed:
                key = _key(node, {"window": [str(window[0]), str(window[1])]}, [key])
            cut_key = _key(node, {"until": str(until)}, [key]) if until is not None else None
            kept_cut = self._recall(cut_key) if not deps and cut_key is not None else None
            if kept_cut is not None and cut_key is not None:
                keys[node.id] = cut_key
                values[node.id] = kept_cut
                continue
            keys[node.id] = key
            cached = self._recall(key)
            if cached is not None:
                if not deps and cut_key is not None:
                    cached = self._cut(cached, until, cut_key)
                    keys[node.id] = cut_key
                values[node.id] = cached
                self.stats.reused[node.id] = self.stats.reused.get(node.id, 0) + 1
                continue
            effective = (
                node if not overrides.get(node.id) else node.model_copy(update={"params": params})
            )
            upstream = {d: values[d] for d in deps}
            if window is not None and node.id in windowed:
                upstream = {
                    d: {p: _between(v, window[0], window[1]) for p, v in out.items()}
                    for d, out in upstream.items()
                }
            try:
                out = self.runner.compute(effective, upstream, outputs=outputs)
            except Exception as exc:
                raise TrialError(node.id, str(exc) or type(exc).__name__) from exc
            self.stats.computed[node.id] = self.stats.computed.get(node.id, 0) + 1
            if self.keeps(node.id):
                self._remember(key, out, pinned=not deps)
            if not deps and cut_key is not None:
                out = self._cut(out, until, cut_key)
                keys[node.id] = cut_key
            values[node.id] = out
        return {w: values[w] for w in wanted}

    def _cut(self, out: dict[str, Any], until: Any, key: str) -> dict[str, Any]:
        cut = {p: _between(v, None, until) for p, v in out.items()}
        self._remember(key, cut)
        return cut

    def _recall(self, key: str) -> dict[str, Any] | None:
        found = self._memo.get(key)
        if found is not None:
            self._memo.move_to_end(key)
        return found

    def _remember(self, key: str, out: dict[str, Any], pinned: bool = False) -> None:
        size = sum(_nbytes(v) for v in out.values())
        self._memo[key] = out
        self._sizes[key] = size
        self.kept_bytes += size
        if pinned:
            self._pinned.add(key)
        for old in [k for k in self._memo if k not in self._pinned]:
            if self.kept_bytes <= self.max_bytes or old == key:
                break
            del self._memo[old]
            self.kept_bytes -= self._sizes.pop(old)
            self.stats.evicted += 1

    def _ports_read(
        self, needed: set[str], wanted: list[str], ports: Mapping[str, Iterable[str]]
    ) -> dict[str, frozenset[str]]:
        """The ``wanted`` nodes whose outputs are read only in part: ``{node: ports read}``
        (the ports asked for and those a needed node downstream binds)."""
        read = {w: set(ports[w]) for w in wanted if w in ports}
        if not read:
            return {}
        for node_id in needed:
            for binding in self._nodes[node_id].inputs.values():
                for b in binding if isinstance(binding, tuple) else (binding,):
                    if b.node in read:
                        read[b.node].add(b.port)
        return {n: frozenset(p) for n, p in read.items()}

    def _upstream_of(self, wanted: list[str]) -> set[str]:
        todo, seen = list(wanted), set()
        while todo:
            node_id = todo.pop()
            if node_id in seen:
                continue
            if node_id not in self._nodes:
                raise ValueError(f"no node {node_id!r} in the pipeline")
            seen.add(node_id)
            todo.extend(self._nodes[node_id].dependencies())
        return seen


def _between(value: Any, begin: Any, end: Any) -> Any:
    """A time-indexed frame or series cut to the bars in [begin, end) (either end open when
    None); any other value unchanged."""
    index = getattr(value, "index", None)
    if index is None or not hasattr(index, "tz_localize") or not hasattr(value, "loc"):
        return value
    mask = None
    if begin is not None:
        mask = index >= begin
    if end is not None:
        below = index < end
        mask = below if mask is None else mask & below
    return value if mask is None else value[mask]


def _nbytes(value: Any) -> int:
    """The bytes of a frame's or series' data and index (an array's), else 0."""
    usage = getattr(value, "memory_usage", None)
    if callable(usage):
        total = usage(index=True, deep=False)
        return int(total.sum()) if hasattr(total, "sum") else int(total)
    return int(getattr(value, "nbytes", 0) or 0)


def _key(node: NodeIR, params: Mapping[str, Any], upstream: list[str]) -> str:
    text = json.dumps([node.id, params, upstream], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def warm_compiled_kernels() -> None:
    """Load the built-in nodes' numba-compiled kernels in this process (the backtest's cache
    load costs ≈ 1–2 s a process): a fork server calls it so its forks inherit the machine
    code. Raises what loading raises."""
    import numpy as np

    from nodes.builtin._kernel import compiled_simulate

    bars = np.full(4, 100.0)
    compiled_simulate()(bars, bars, np.array([0.0, 1.0, 0.0, 0.0]), 1e5, 0.0, 0.0, 0.0)
