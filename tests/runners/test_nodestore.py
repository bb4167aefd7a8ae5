"""The on-disk manifest store: content-addressed by code hash, tamper-evident."""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.custom import CustomNodeError, template
from runners.nodestore import ManifestStore


def test_put_get_round_trip_and_idempotent(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "custom-nodes")
    manifest = template("python", "indicator")
    h = store.put(manifest)
    assert h == manifest.code_hash()
    assert store.has(h)
    assert store.path(h) == tmp_path / "custom-nodes" / f"{h}.json"
    mtime = store.path(h).stat().st_mtime_ns
    assert store.put(manifest) == h
    assert store.path(h).stat().st_mtime_ns == mtime  # unchanged content: not rewritten
    assert store.get(h) == manifest
    assert [p.name for p in (tmp_path / "custom-nodes").iterdir()] == [f"{h}.json"]


def test_missing_and_malformed_hashes(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    assert not store.has("0" * 64)
    assert not store.has("../etc/passwd")
    with pytest.raises(CustomNodeError, match="not a code hash"):
        store.path("../../x")
    with pytest.raises(CustomNodeError, match=r"'n1'.*no custom node code"):
        store.get("0" * 64, "n1")
    with pytest.raises(CustomNodeError, match="no custom node code"):
        store.get(None, "n1")


def test_a_tampered_or_broken_file_is_refused(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    a, b = template("python", "indicator"), template("javascript", "indicator")
    ha = store.put(a)
    store.path(ha).write_text(b.model_dump_json())  # someone swapped the code
    with pytest.raises(CustomNodeError, match="does not match its hash"):
        store.get(ha, "n")
    store.path(ha).write_text("{not json")
    with pytest.raises(CustomNodeError, match="unreadable"):
        store.get(ha, "n")


def test_catalog_reads_through_and_caches(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    manifest = template("wasm", "signal")
    h = store.put(manifest)
    catalog = store.catalog()
    assert catalog.get(h, "n") == manifest
    store.path(h).unlink()
    assert catalog.get(h, "n") == manifest  # kept in memory once read
    with pytest.raises(CustomNodeError):
        catalog.get("f" * 64, "n")
