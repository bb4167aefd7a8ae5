"""Run bundles refuse what is not what they say (tampered, unsafe, oversize) and place nothing;
a catalog-pinned run re-runs identically after its dataset moved on. Runs go through
``run_graph`` with the local executor (no Prefect: the CLI tests cover the flow)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dsl import compile_source
from flows.bundle import BundleError, export_bundle, import_bundle
from flows.graph import LocalExecutor, run_graph
from flows.rerun import (
    RerunError,
    StoredRun,
    check_definition,
    compare_runs,
    rerun_settings,
    rerun_spec,
)
from flows.settings import CoreSettings
from flows.spec import RunSpec

ROOT = Path(__file__).resolve().parents[2]
SMA = ROOT / "examples" / "sma_crossover.af"
CSV = ROOT / "examples" / "data" / "sample_ohlcv.csv"


def _run(spec: RunSpec, settings: CoreSettings, run_id: str) -> StoredRun:
    from flows.settings import using_settings

    with using_settings(settings):  # the nodes' catalog is this installation's
        record = run_graph(spec, executor=LocalExecutor(run_id), settings=settings, run_id=run_id)
    assert record.status == "completed", record.error
    return StoredRun.load(settings.runs_dir / run_id)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run of the sample pipeline on a copy of its data, and its bundle."""
    root = tmp_path_factory.mktemp("bundle")
    (root / "data").mkdir()
    shutil.copyfile(CSV, root / "data" / "sample_ohlcv.csv")
    settings = CoreSettings(data_dir=root / "store")
    ir = compile_source(SMA.read_text(), filename=str(SMA)).ir
    spec = RunSpec(ir=ir, base_dir=str(root), track=False, trigger="test")
    stored = _run(spec, settings, "20260101-000000-000-aaaaaa")
    bundle = root / "run.afbundle"
    export_bundle(stored, settings, bundle)
    return {"root": root, "settings": settings, "stored": stored, "bundle": bundle}


def _members(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(bundle, "r:gz") as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar]  # type: ignore[union-attr]


def _write(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _nothing_placed(data_dir: Path) -> None:
    left = (
        sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*"))
        if (data_dir.exists())
        else []
    )
    assert [p for p in left if not p.startswith("artifact")] == [], left


def test_a_bundle_lists_every_member_with_its_hash_and_imports_whole(exported, tmp_path) -> None:
    names = [m.name for m, _ in _members(exported["bundle"])]
    assert names[0] == "MANIFEST.json"
    manifest = json.loads(_members(exported["bundle"])[0][1])
    assert {"run/run.json", "run/ir.json", "data/data/sample_ohlcv.csv"} <= set(manifest["members"])
    assert set(manifest["members"]) == set(names[1:])
    settings = CoreSettings(data_dir=tmp_path / "other")
    run_id = import_bundle(exported["bundle"], settings)
    stored = StoredRun.load(settings.runs_dir / run_id)
    assert stored.record == exported["stored"].record
    spec = rerun_spec(stored, settings, "20260101-000000-001-bbbbbb")
    assert Path(spec.base_dir or "").is_relative_to(settings.store_root)
    check_definition(stored, spec, settings)  # the imported copy hashes as recorded
    with pytest.raises(BundleError, match="already in"):
        import_bundle(exported["bundle"], settings)


def _tampered_data(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    for i, (info, data) in enumerate(members):
        if info.name.startswith("data/"):
            members[i] = (info, data.replace(b"\n", b"\r\n", 1))


def _traversal(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    members.append((tarfile.TarInfo("run/../../evil.txt"), b"x"))


def _symlink(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    link = tarfile.TarInfo("run/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members.append((link, b""))


def _extra(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    members.append((tarfile.TarInfo("run/extra.txt"), b"not listed"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_tampered_data, "does not match its sha256"),
        (_traversal, "leaves the bundle's folder"),
        (_symlink, "is a symbolic link"),
        (_extra, "is not in the manifest"),
    ],
)
def test_a_changed_or_unsafe_bundle_is_refused_and_nothing_is_placed(
    exported, tmp_path, change, message
) -> None:
    members = _members(exported["bundle"])
    change(members)
    bad = _write(tmp_path / "bad.afbundle", members)
    settings = CoreSettings(data_dir=tmp_path / "target")
    with pytest.raises(BundleError, match=message):
        import_bundle(bad, settings)
    _nothing_placed(settings.root)


def test_a_consistently_rewritten_data_file_is_refused_against_the_run_record(
    exported, tmp_path
) -> None:
    # the manifest re-hashed to match the changed file: the run's own fingerprint still refuses
    members = _members(exported["bundle"])
    _tampered_data(members)
    manifest = json.loads(members[0][1])
    import hashlib

    for info, data in members[1:]:
        manifest["members"][info.name]["sha256"] = hashlib.sha256(data).hexdigest()
    members[0] = (members[0][0], json.dumps(manifest).encode())
    settings = CoreSettings(data_dir=tmp_path / "target")
    with pytest.raises(BundleError, match="fingerprint the run recorded"):
        import_bundle(_write(tmp_path / "bad.afbundle", members), settings)
    _nothing_placed(settings.root)


def test_an_oversize_member_and_a_non_bundle_are_refused(exported, tmp_path) -> None:
    settings = CoreSettings(data_dir=tmp_path / "target")
    with pytest.raises(BundleError, match="over the 1000-byte limit"):
        import_bundle(exported["bundle"], settings, max_member_bytes=1000)
    with pytest.raises(BundleError, match="total limit"):
        import_bundle(exported["bundle"], settings, max_total_bytes=5000)
    junk = tmp_path / "junk.afbundle"
    junk.write_bytes(b"not a tar")
    with pytest.raises(BundleError, match="not a run bundle"):
        import_bundle(junk, settings)
    _nothing_placed(settings.root)


@pytest.mark.slow
def test_a_catalog_pinned_run_reruns_identically_after_the_dataset_moved_on(tmp_path) -> None:
    from flows.catalog import open_catalog
    from flows.rundiff import diff_runs

    settings = CoreSettings(data_dir=tmp_path / "store")
    catalog = open_catalog(settings)
    first = catalog.import_files("local", "sample", [CSV], symbol="SMPL")
    text = SMA.read_text().replace('csv_ohlcv(path="data/sample_ohlcv.csv")', 'dataset("sample")')

    class Resolver:
        def resolve(self, name: str, version: str | None) -> str:
            return catalog.resolve("local", name, version).version

    ir = compile_source(text, filename="cat.af", catalog=Resolver()).ir
    assert ir is not None and ir.node("data").params["version"] == first.version
    # node threads read the environment's settings: the spec names this test's catalog
    where = settings.catalog_location
    spec = RunSpec(ir=ir, base_dir=str(tmp_path), track=False, trigger="test", catalog_url=where)
    original = _run(spec, settings, "20260101-000000-000-cccccc")
    assert original.record.datasets["data"]["source"] == {"catalog_version": first.version}
    # a new version of the same name: the stored run still reads the version it pinned
    changed = tmp_path / "changed.csv"
    changed.write_text("".join(CSV.read_text().splitlines(keepends=True)[:-10]))
    assert catalog.import_files("local", "sample", [changed], symbol="SMPL").version != (
        first.version
    )
    new_id = "20260101-000000-001-dddddd"
    again_spec = rerun_spec(original, settings, new_id)
    check_definition(original, again_spec, settings)
    again = _run(again_spec, rerun_settings(settings, new_id), new_id)
    comparison = compare_runs(original, again, settings)
    assert comparison.identical, comparison.to_json()
    assert again.record.fingerprints == original.record.fingerprints
    assert diff_runs(original, again, settings)["results"]["identical"] is True
    # the bundle carries the catalog version; a fresh installation re-runs it the same
    bundle = tmp_path / "cat.afbundle"
    export_bundle(original, settings, bundle)
    other = CoreSettings(data_dir=tmp_path / "other")
    run_id = import_bundle(bundle, other)
    open_catalog(other).verify(first.version)
    imported = StoredRun.load(other.runs_dir / run_id)
    third = "20260101-000000-002-eeeeee"
    third_spec = rerun_spec(imported, other, third)
    assert third_spec.catalog_url is None  # the importing installation's own catalog
    third_spec = third_spec.model_copy(update={"catalog_url": other.catalog_location})
    check_definition(imported, third_spec, other)
    rerun = _run(third_spec, rerun_settings(other, third), third)
    assert compare_runs(imported, rerun, other).identical


def test_rerun_refuses_a_run_whose_data_file_is_gone(exported, tmp_path) -> None:
    stored: StoredRun = exported["stored"]
    settings: CoreSettings = exported["settings"]
    csv = exported["root"] / "data" / "sample_ohlcv.csv"
    moved = tmp_path / "moved.csv"
    shutil.move(csv, moved)
    try:
        spec = rerun_spec(stored, settings, "20260101-000000-009-ffffff")
        with pytest.raises(RerunError, match="node 'data' cannot read the data the run read"):
            check_definition(stored, spec, settings)
    finally:
        shutil.move(moved, csv)
