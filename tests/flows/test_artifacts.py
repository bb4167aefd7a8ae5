"""The content-addressed artifact store: keys before the run, atomic commits, remote URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.ir import NodeIR, PipelineIR
from flows.artifacts import ArtifactStore, compute_keys
from tests.flows.testnodes import crossover_ir


def _no_fingerprint(_node: NodeIR) -> str | None:
    return None


def _with_params(ir: PipelineIR, node_id: str, **params: object) -> PipelineIR:
    nodes = tuple(
        n.model_copy(update={"params": {**n.params, **params}}) if n.id == node_id else n
        for n in ir.nodes
    )
    return ir.model_copy(update={"nodes": nodes})


def test_keys_are_stable_and_computed_for_the_whole_ir(test_nodes) -> None:
    ir = crossover_ir()
    a = compute_keys(ir, _no_fingerprint, salt="run-1")
    b = compute_keys(PipelineIR.from_json(ir.to_json()), _no_fingerprint, salt="run-2")
    assert a.keys == b.keys
    assert set(a.keys) == set(ir.node_ids()) and len(set(a.keys.values())) == len(ir.nodes)


def test_a_param_change_rekeys_the_node_and_its_downstream_only(test_nodes) -> None:
    ir = crossover_ir()
    before = compute_keys(ir, _no_fingerprint, salt="s").keys
    after = compute_keys(_with_params(ir, "slow", scale=0.5), _no_fingerprint, salt="s").keys
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"slow", "signal", "result"}


def test_the_fingerprint_and_the_selected_column_are_part_of_the_key(test_nodes) -> None:
    ir = crossover_ir()
    base = compute_keys(ir, _no_fingerprint, salt="s").keys
    fp = compute_keys(ir, lambda n: "abc" if n.id == "data" else None, salt="s").keys
    assert all(base[k] != fp[k] for k in base)
    fast = ir.node("fast")
    binding = fast.inputs["series"].model_copy(update={"column": "open"})
    moved = ir.model_copy(
        update={
            "nodes": tuple(
                n.model_copy(update={"inputs": {"series": binding}}) if n.id == "fast" else n
                for n in ir.nodes
            )
        }
    )
    keys = compute_keys(moved, _no_fingerprint, salt="s").keys
    assert keys["data"] == base["data"] and keys["fast"] != base["fast"]


def test_a_node_whose_fingerprint_fails_is_uncacheable_with_its_downstream(test_nodes) -> None:
    def fingerprint(node: NodeIR) -> str | None:
        if node.id == "slow":
            raise FileNotFoundError("gone.csv")
        return None

    plan = compute_keys(crossover_ir(), fingerprint, salt="run-1")
    assert plan.cacheable == {
        "data": True,
        "fast": True,
        "slow": False,
        "signal": False,
        "result": False,
    }
    assert plan.fingerprint_errors == {"slow": "gone.csv"}
    other = compute_keys(crossover_ir(), fingerprint, salt="run-2")
    assert other.keys["slow"] != plan.keys["slow"] and other.keys["fast"] == plan.keys["fast"]


def _stage(store: ArtifactStore, text: str) -> Path:
    staging = store.staging_dir()
    (staging / "value.json").write_text(text)
    return staging


def _manifest() -> dict[str, object]:
    return {"outputs": {"value": {"file": "value.json", "type": "metrics"}}}


def test_commit_publishes_atomically_and_the_first_writer_wins(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    key = "ab" * 32
    assert not store.has(key)
    paths = store.commit(key, _stage(store, '{"a": 1}'), _manifest())
    assert store.has(key) and Path(paths["value"]).read_text() == '{"a": 1}'
    again = store.commit(key, _stage(store, '{"a": 2}'), _manifest())
    assert Path(again["value"]).read_text() == '{"a": 1}'
    assert list((tmp_path / "store" / ".staging").iterdir()) == []


def test_an_uncommitted_staging_dir_is_not_a_cache_entry(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    _stage(store, "{}")
    assert not store.has("cd" * 32)


def test_a_remote_fsspec_store_uploads_and_fetches_through_a_local_cache(tmp_path: Path) -> None:
    import fsspec

    url = f"memory://af-test-{tmp_path.name}"
    writer = ArtifactStore(url, cache_dir=tmp_path / "cache-a")
    key = "ef" * 32
    writer.commit(key, _stage(writer, '{"b": 2}'), _manifest())
    fs = fsspec.filesystem("memory")
    assert fs.exists(f"/af-test-{tmp_path.name}/ef/{key}/_manifest.json")
    reader = ArtifactStore(url, cache_dir=tmp_path / "cache-b")
    assert reader.has(key)
    assert Path(reader.output_paths(key)["value"]).read_text() == '{"b": 2}'
    assert (tmp_path / "cache-b").exists()


def test_a_remote_store_needs_a_cache_dir() -> None:
    from flows.artifacts import StoreError

    with pytest.raises(StoreError):
        ArtifactStore("memory://somewhere")


# ---- code fingerprints in the key -----------------------------------------------------------


def test_the_code_fingerprint_is_part_of_the_key_and_recorded_in_the_plan(test_nodes) -> None:
    ir = crossover_ir()
    real = compute_keys(ir, _no_fingerprint, salt="s")
    assert set(real.code_fingerprints) == set(ir.node_ids())
    changed = compute_keys(
        ir,
        _no_fingerprint,
        salt="s",
        code_fingerprint=lambda n: "edited" if n.id == "fast" else real.code_fingerprints[n.id],
    )
    assert changed.keys["data"] == real.keys["data"] and changed.keys["slow"] == real.keys["slow"]
    assert {k for k in real.keys if real.keys[k] != changed.keys[k]} == {
        "fast",
        "signal",
        "result",
    }


def test_a_node_whose_code_cannot_be_fingerprinted_is_uncacheable(test_nodes) -> None:
    ir = crossover_ir()
    odd = ir.model_copy(
        update={
            "nodes": tuple(
                n.model_copy(update={"type": "t_vanished"}) if n.id == "signal" else n
                for n in ir.nodes
            )
        }
    )
    plan = compute_keys(odd, _no_fingerprint, salt="run-1")
    assert plan.cacheable["signal"] is False and plan.cacheable["result"] is False
    assert plan.cacheable["fast"] is True
    assert "t_vanished" in plan.fingerprint_errors["signal"]
    assert "signal" not in plan.code_fingerprints
