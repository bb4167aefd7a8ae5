"""The in-memory graph of a sweep's trials (runners.memgraph): each distinct node evaluation is
computed once (data once, each indicator once per window, the per-trial tail every trial), and a
trial's metrics equal those of the full run path (run_graph: artifact files, the same spec with
the trial's overrides) for every trial of a grid."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from dsl.compiler import compile_or_raise
from flows.graph import LocalExecutor, run_graph
from flows.settings import CoreSettings
from flows.spec import RunSpec
from runners.inprocess import InProcessRunner
from runners.memgraph import MemoryGraph, TrialError

ROOT = Path(__file__).resolve().parents[2]
SOURCE = (ROOT / "examples" / "sma_crossover.af").read_text()


def _graph() -> MemoryGraph:
    ir = compile_or_raise(SOURCE)
    runner = InProcessRunner(base_dir=ROOT / "examples")
    return MemoryGraph(ir, runner, swept={"fast", "slow"})


def test_each_distinct_evaluation_is_computed_once_and_per_trial_nodes_are_not_kept() -> None:
    graph = _graph()
    nodes = [n.id for n in graph.ir.nodes]
    tail = [n for n in nodes if n not in ("data", "fast", "slow")]
    trials = list(itertools.product([5, 10, 20], [30, 50, 100]))
    for fast, slow in trials:
        graph.evaluate({"fast": {"window": fast}, "slow": {"window": slow}}, [nodes[-1]])
    assert graph.stats.computed["data"] == 1 and graph.stats.reused["data"] == 8
    assert graph.stats.computed["fast"] == 3 and graph.stats.computed["slow"] == 3
    assert graph.stats.reused["fast"] == 6 and graph.stats.reused["slow"] == 6
    for node in tail:  # depends on both swept windows: new in every trial, never kept
        assert graph.stats.computed[node] == 9 and node not in graph.stats.reused
        assert not graph.keeps(node)
    assert graph.keeps("data") and graph.keeps("fast")


@pytest.mark.slow
def test_trial_metrics_equal_the_full_run_path(tmp_path: Path) -> None:
    graph = _graph()
    result = next(n.id for n in graph.ir.nodes if n.type == "backtest")
    spec = RunSpec(ir=graph.ir, base_dir=str(ROOT / "examples"), track=False, use_cache=False)
    settings = CoreSettings(data_dir=tmp_path)
    for k, (fast, slow) in enumerate([(5, 30), (10, 50), (20, 100)]):
        trial = {"fast": {"window": fast}, "slow": {"window": slow}}
        mem = graph.evaluate(trial, [result])[result]["metrics"]
        # as a sweep's trial asks: metrics and equity only, without the trades and orders tables
        lean = graph.evaluate(trial, [result], ports={result: ["metrics", "equity"]})[result]
        assert set(lean) == {"metrics", "equity"}
        record = run_graph(
            spec.with_overrides(trial),
            executor=LocalExecutor(f"trial-{k}"),
            settings=settings,
            run_id=f"trial-{k}",
        )
        assert record.status == "completed", record.error
        assert mem == record.metrics, (fast, slow)  # bit for bit: the same numbers
        assert lean["metrics"] == record.metrics, (fast, slow)
        assert mem["num_trades"] > 0


def test_ports_read_by_a_downstream_node_are_still_built() -> None:
    source = SOURCE + "stats  = metrics(result.equity, result.trades, result.orders)\n"
    ir = compile_or_raise(source)
    graph = MemoryGraph(ir, InProcessRunner(base_dir=ROOT / "examples"), swept={"fast", "slow"})
    trial = {"fast": {"window": 5}, "slow": {"window": 30}}
    lean = graph.evaluate(trial, ["result"], ports={"result": ["metrics"]})["result"]
    assert set(lean) == {"metrics"}
    both = graph.evaluate(trial, ["result", "stats"], ports={"result": ["metrics"]})
    assert set(both["result"]) == {"metrics", "equity", "trades", "orders"}
    assert both["stats"]["metrics"] == both["result"]["metrics"] == lean["metrics"]
    assert lean["metrics"]["num_trades"] > 0


def test_a_failing_node_names_itself() -> None:
    graph = _graph()
    with pytest.raises(TrialError) as caught:
        graph.evaluate({"fast": {"window": 0}}, ["fast"])
    assert caught.value.node == "fast" and "window" in str(caught.value)


def test_unknown_swept_nodes_are_refused() -> None:
    ir = compile_or_raise(SOURCE)
    runner = InProcessRunner(base_dir=ROOT / "examples")
    with pytest.raises(ValueError, match="swept node"):
        MemoryGraph(ir, runner, swept={"nope"})


def test_kept_evaluations_stay_under_the_byte_budget_and_give_the_same_numbers() -> None:
    """An Optuna-like search (a new window every trial) keeps one series per window: past
    ``max_bytes`` the least recently used go (the data stays) and come back computed again."""
    ir = compile_or_raise(SOURCE)
    runner = InProcessRunner(base_dir=ROOT / "examples")
    free = MemoryGraph(ir, runner, swept={"fast", "slow"})
    trials = [(f, s) for f in range(3, 23) for s in (40, 60)]
    for fast, slow in trials:
        free.evaluate({"fast": {"window": fast}, "slow": {"window": slow}}, ["result"])
    data_bytes = free._sizes[next(iter(free._pinned))]
    series_bytes = max(v for k, v in free._sizes.items() if k not in free._pinned)
    budget = data_bytes + 6 * series_bytes
    tight = MemoryGraph(ir, runner, swept={"fast", "slow"}, max_bytes=budget)
    for fast, slow in trials + trials[:4]:  # the first windows again, after their eviction
        got = tight.evaluate({"fast": {"window": fast}, "slow": {"window": slow}}, ["result"])
        want = free.evaluate({"fast": {"window": fast}, "slow": {"window": slow}}, ["result"])
        assert got["result"]["metrics"] == want["result"]["metrics"]
        assert tight.kept_bytes <= budget
    assert free.kept_bytes > budget and tight.stats.evicted > 0
    assert tight.stats.computed["data"] == 1  # the data is never dropped
    assert tight.stats.computed["fast"] > 20  # evicted windows were computed again
