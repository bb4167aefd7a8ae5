"""The step graph: cycles (with their path), topological order and unused steps.

Edges run from a step to the steps it reads. Forward references are allowed, so a cycle is a
real possibility and is reported with its path (``a -> b -> a``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence

from dsl.source import Span

# name -> [(dependency name, span of the reference)]
Edges = Mapping[str, Sequence[tuple[str, Span]]]


def find_cycles(order: Sequence[str], edges: Edges) -> list[tuple[list[str], Span]]:
    """Each cycle once, as (path starting and ending at the same step, span of its first ref)."""
    index = {name: i for i, name in enumerate(order)}
    sccs = _tarjan(order, edges)
    cycles: list[tuple[list[str], Span]] = []
    for comp in sccs:
        members = set(comp)
        if len(comp) == 1:
            name = comp[0]
            self_ref = next((sp for dep, sp in edges.get(name, ()) if dep == name), None)
            if self_ref is not None:
                cycles.append(([name, name], self_ref))
            continue
        start = min(comp, key=lambda n: index[n])
        path = _path_back(start, members, edges)
        span = next(sp for dep, sp in edges[path[0]] if dep == path[1])
        cycles.append((path, span))
    cycles.sort(key=lambda c: c[1].start)
    return cycles


def _path_back(start: str, members: set[str], edges: Edges) -> list[str]:
    """A simple path start -> ... -> start inside one strongly connected component."""
    parent: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for dep, _ in edges.get(node, ()):
                if dep == start:
                    back = [node]
                    while back[-1] != start:
                        back.append(parent[back[-1]])
                    return [*reversed(back), start]
                if dep in members and dep not in seen:
                    seen.add(dep)
                    parent[dep] = node
                    nxt.append(dep)
        frontier = nxt
    return [start, start]


def _tarjan(order: Sequence[str], edges: Edges) -> list[list[str]]:
    """Strongly connected components (iterative Tarjan, safe for long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in order:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            deps = [d for d, _ in edges.get(node, ()) if d in edges or d in index]
            recurse = False
            while i < len(deps):
                dep = deps[i]
                i += 1
                if dep not in index:
                    work.append((node, i))
                    work.append((dep, 0))
                    recurse = True
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index[dep])
            if recurse:
                continue
            if low[node] == index[node]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def topological_order(order: Sequence[str], deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Kahn's algorithm; ties broken by source order. Assumes no cycles."""
    position = {name: i for i, name in enumerate(order)}
    indegree = {name: 0 for name in order}
    dependents: dict[str, list[str]] = {name: [] for name in order}
    for name in order:
        for dep in set(deps.get(name, ())):
            if dep in indegree:
                indegree[name] += 1
                dependents[dep].append(name)
    ready = [(position[n], n) for n in order if indegree[n] == 0]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        out.append(name)
        for child in dependents[name]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, (position[child], child))
    return out


def unused_steps(
    order: Sequence[str], deps: Mapping[str, Iterable[str]], terminals: Iterable[str]
) -> list[str]:
    """Steps from which no terminal can be reached (in source order).

    With no terminals at all, every step that feeds nothing counts as one (nothing to warn of).
    """
    roots = set(terminals)
    if not roots:
        fed = {d for name in order for d in deps.get(name, ())}
        roots = {name for name in order if name not in fed}
    live: set[str] = set()
    frontier = [r for r in roots if r in deps or r in order]
    while frontier:
        node = frontier.pop()
        if node in live:
            continue
        live.add(node)
        frontier.extend(d for d in deps.get(node, ()) if d not in live)
    return [name for name in order if name not in live]
