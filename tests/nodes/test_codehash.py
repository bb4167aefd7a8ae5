"""Code fingerprints of node types: which modules count, and what changes them."""

from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from nodes import codehash
from nodes.base import Node, NodeContext, NodeRegistry, registry
from nodes.errors import NodeError


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    codehash.clear_cache()
    yield
    codehash.clear_cache()


def test_a_nodes_closure_is_its_module_and_the_project_modules_it_calls() -> None:
    backtest = set(codehash.module_closure("nodes.builtin.backtest"))
    # _kernel is imported inside a function (where it is called), metrics at module level
    assert {"nodes.builtin._kernel", "nodes.builtin.metrics", "nodes.base"} <= backtest
    assert "nodes.builtin.indicators" not in backtest and "nodes.data" not in backtest
    assert "nodes.data" in codehash.module_closure("nodes.builtin.loaders")
    signals = set(codehash.module_closure("nodes.builtin.signals"))
    assert {"nodes.builtin.indicators", "nodes.builtin.metrics"} <= signals
    assert "nodes.builtin._kernel" not in signals
    # registry()'s `import nodes.builtin` does not pull every built-in into every closure
    assert "nodes.builtin.backtest" not in codehash.module_closure("nodes.builtin.indicators")


def test_the_fingerprint_is_the_hash_of_those_sources() -> None:
    names = codehash.module_closure("nodes.builtin.indicators")
    h = hashlib.sha256()
    for name in sorted(names):
        # import_module: a module the node imports lazily (nodes.persymbol) may not be loaded
        source = Path(importlib.import_module(name).__file__ or "").read_bytes()
        h.update(f"{name}\0{hashlib.sha256(source).hexdigest()}\n".encode())
    assert registry().get("sma").code_fingerprint() == h.hexdigest()
    assert registry().get("ema").code_fingerprint() == h.hexdigest()  # same module
    assert registry().get("backtest").code_fingerprint() != h.hexdigest()


def test_an_edited_kernel_changes_the_backtest_and_only_the_nodes_that_call_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = registry()
    types = ("backtest", "sma", "csv_ohlcv", "metrics", "threshold")
    before = {t: reg.get(t).code_fingerprint() for t in types}
    kernel = sys.modules.get("nodes.builtin._kernel")
    if kernel is None:
        import nodes.builtin._kernel as kernel
    copy = tmp_path / "_kernel.py"
    shutil.copy(kernel.__file__ or "", copy)
    with copy.open("a") as fh:
        fh.write("\n# a fix to the kernel\n")
    monkeypatch.setattr(kernel, "__file__", str(copy))
    codehash.clear_cache()
    after = {t: reg.get(t).code_fingerprint() for t in types}
    assert after["backtest"] != before["backtest"]
    assert {t: after[t] for t in types if t != "backtest"} == {
        t: before[t] for t in types if t != "backtest"
    }


def test_fingerprints_are_cached_per_process_until_code_is_reloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hash describes the code this process loaded: a file edited under a running process
    does not change it (that process still runs the old code) until the module is reloaded."""
    import nodes.builtin.metrics as metrics

    copy = tmp_path / "metrics.py"
    shutil.copy(metrics.__file__ or "", copy)
    monkeypatch.setattr(metrics, "__file__", str(copy))
    first = registry().get("metrics").code_fingerprint()
    copy.write_text(copy.read_text() + "\n# edited on disk\n")
    assert registry().get("metrics").code_fingerprint() == first
    codehash.clear_cache()  # what re-registering a reloaded node class does
    assert registry().get("metrics").code_fingerprint() != first


def test_a_reloaded_class_replaces_itself_but_another_class_cannot_take_its_name() -> None:
    reg = NodeRegistry()

    def make(module: str) -> type[Node]:
        def run(self, inputs, params):  # type: ignore[no-untyped-def]
            return {}

        cls = type("Probe", (Node,), {"name": "probe", "run": run, "__module__": module})
        return cls

    first = make("probe_mod")
    reg.register(first)
    reloaded = make("probe_mod")
    assert reg.register(reloaded) is reloaded and reg.get("probe") is reloaded
    with pytest.raises(NodeError, match="already registered"):
        reg.register(make("other_mod"))


def test_every_source_node_fingerprints_what_it_reads(tmp_path: Path) -> None:
    """A built-in with no inputs reads the outside world: it must fingerprint it, and the
    fingerprint must follow the bytes (else a changed file is served from the cache). A
    generator (synthetic_book) reads nothing but its params, which the artifact key holds."""
    reg = registry()
    generators = {"synthetic_book"}
    sources = [t for t in reg if not t.inputs and t.name not in generators]
    assert {t.name for t in sources} == {
        "csv_ohlcv", "parquet_ohlcv", "dataset_ohlcv", "dataset", "tick_data"
    }  # fmt: skip
    assert all(not t.inputs for t in reg if t.name in generators)
    for t in sources:
        assert t.fingerprint is not Node.fingerprint, t.name
    idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC", name="ts")
    bars = pd.DataFrame(
        {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0}, index=idx
    )
    bars.to_csv(tmp_path / "a.csv")
    bars.to_parquet(tmp_path / "a.parquet")
    latest = {"d": "1" * 64}

    class Catalog:  # the catalog's latest version of "d" (a new import changes it)
        def resolve(self, name: str, version: str | None = None) -> str:
            return latest[name]

        def read(self, version: str, **_: object) -> pd.DataFrame:
            raise AssertionError("fingerprint must not read the data")

    ctx = NodeContext(base_dir=tmp_path, datasets={"d": tmp_path / "a.parquet"}, catalog=Catalog())
    params = {
        "csv_ohlcv": {"path": "a.csv"},
        "parquet_ohlcv": {"path": "a.parquet"},
        "dataset_ohlcv": {"name": "d"},
        "dataset": {"name": "d"},
        "tick_data": {"name": "d"},
    }
    before = {t.name: t(ctx).fingerprint(t.validated_params(params[t.name])) for t in sources}
    bars.assign(close=1.25).to_csv(tmp_path / "a.csv")
    bars.assign(close=1.25).to_parquet(tmp_path / "a.parquet")
    latest["d"] = "2" * 64
    for t in sources:
        after = t(ctx).fingerprint(t.validated_params(params[t.name]))
        assert after != before[t.name], t.name
