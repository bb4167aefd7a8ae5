"""What differs between two stored runs: definition, data, code, results.

:func:`diff_runs` reads two run directories (``run.json``, ``ir.json``) and says, in four
sections, what differs: the **definition** (source hash, IR hash, and per node: added, removed,
type / version / params changed, inputs rewired), the **data** (each data node's fingerprint:
file hash or catalog version), the **code** (node code fingerprints, custom nodes' code hashes,
the package lock, sandbox images) and the **results** (the primary metrics side by side with
deltas, each output fingerprint equal or not and, where both tables are at hand, the first row
where they differ). No section is ever silently skipped: a record too old to hold a field says
so in ``notes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.fingerprints import first_difference
from flows.lock import lock_differences
from flows.rerun import RUN_ARTIFACTS, StoredRun
from flows.settings import CoreSettings

__all__ = ["diff_runs", "output_difference", "output_file"]


def diff_runs(a: StoredRun, b: StoredRun, settings: CoreSettings) -> dict[str, Any]:
    """The differences between run ``a`` and run ``b`` (JSON-compatible)."""
    notes: list[str] = []
    return {
        "a": a.record.run_id,
        "b": b.record.run_id,
        "definition": _definition(a, b),
        "data": _data(a, b),
        "code": _code(a, b, notes),
        "results": _results(a, b, settings, notes),
        "notes": notes,
    }


def output_difference(
    a: StoredRun, b: StoredRun, node_id: str, port: str, settings: CoreSettings
) -> dict[str, Any] | None:
    """Where the two runs' ``node_id.port`` tables first differ (None when either is gone
    from the artifact store, or they do not differ)."""
    from runners.io import read_value

    pa, pb = output_file(a, node_id, port, settings), output_file(b, node_id, port, settings)
    if pa is None or pb is None:
        return None
    found = first_difference(read_value(pa), read_value(pb))
    return found.to_json() if found is not None else None


def _definition(a: StoredRun, b: StoredRun) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("source_hash",):
        va, vb = getattr(a.record, key), getattr(b.record, key)
        if va != vb:
            out[key] = [va, vb]
    ha, hb = a.ir.content_hash(), b.ir.content_hash()
    if ha != hb:
        out["ir_hash"] = [ha, hb]
    na, nb = {n.id: n for n in a.ir.nodes}, {n.id: n for n in b.ir.nodes}
    if added := sorted(set(nb) - set(na)):
        out["nodes_added"] = {i: nb[i].type for i in added}
    if removed := sorted(set(na) - set(nb)):
        out["nodes_removed"] = {i: na[i].type for i in removed}
    changed: dict[str, dict[str, Any]] = {}
    for node_id in [n.id for n in a.ir.nodes if n.id in nb]:
        x, y = na[node_id], nb[node_id]
        what: dict[str, Any] = {}
        for attr in ("type", "version", "runtime", "code_hash"):
            if getattr(x, attr) != getattr(y, attr):
                what[attr] = [getattr(x, attr), getattr(y, attr)]
        params = {
            p: [x.params.get(p), y.params.get(p)]
            for p in sorted(set(x.params) | set(y.params))
            if x.params.get(p) != y.params.get(p)
        }
        if params:
            what["params"] = params
        ia = {port: (bd.node, bd.port, bd.column) for port, bd in x.bindings()}
        ib = {port: (bd.node, bd.port, bd.column) for port, bd in y.bindings()}
        if ia != ib:
            what["inputs"] = [_wiring(ia), _wiring(ib)]
        if what:
            changed[node_id] = what
    if changed:
        out["nodes_changed"] = changed
    return out


def _wiring(bindings: dict[str, tuple[str, str, str | None]]) -> dict[str, str]:
    return {
        port: f"{node}.{out}" + (f".{col}" if col else "")
        for port, (node, out, col) in sorted(bindings.items())
    }


def _data(a: StoredRun, b: StoredRun) -> dict[str, Any]:
    out: dict[str, Any] = {}
    da, db = a.record.datasets, b.record.datasets
    for node_id in sorted(set(da) | set(db)):
        fa = (da.get(node_id) or {}).get("fingerprint")
        fb = (db.get(node_id) or {}).get("fingerprint")
        if fa != fb:
            out[node_id] = {
                "a": fa,
                "b": fb,
                "source_a": (da.get(node_id) or {}).get("source"),
                "source_b": (db.get(node_id) or {}).get("source"),
            }
    return out


def _code(a: StoredRun, b: StoredRun, notes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fingerprints = {}
    for node_id in sorted(set(a.record.nodes) & set(b.record.nodes)):
        ca = a.record.nodes[node_id].code_fingerprint
        cb = b.record.nodes[node_id].code_fingerprint
        if ca != cb:
            fingerprints[node_id] = [ca, cb]
    if fingerprints:
        out["node_code"] = fingerprints
    ca_nodes = {n.id: n.code_hash for n in a.ir.nodes if n.code_hash}
    cb_nodes = {n.id: n.code_hash for n in b.ir.nodes if n.code_hash}
    custom = {
        i: [ca_nodes.get(i), cb_nodes.get(i)]
        for i in sorted(set(ca_nodes) | set(cb_nodes))
        if ca_nodes.get(i) != cb_nodes.get(i)
    }
    if custom:
        out["custom_nodes"] = custom
    lock = lock_differences(a.record.package_lock, b.record.package_lock)
    if lock is not None and "unknown" in lock:
        notes.append(f"run {lock['unknown']} recorded no package lock: packages not compared")
    elif lock is not None:
        out["packages"] = lock
    ia = (a.record.sandbox or {}).get("images") or {}
    ib = (b.record.sandbox or {}).get("images") or {}
    images = {
        lang: [ia.get(lang), ib.get(lang)]
        for lang in sorted(set(ia) | set(ib))
        if ia.get(lang) != ib.get(lang)
    }
    if images:
        out["sandbox_images"] = images
    return out


def _results(
    a: StoredRun, b: StoredRun, settings: CoreSettings, notes: list[str]
) -> dict[str, Any]:
    ra, rb = a.record, b.record
    metrics: dict[str, dict[str, Any]] = {}
    for key in sorted(set(ra.metrics) | set(rb.metrics)):
        va, vb = ra.metrics.get(key), rb.metrics.get(key)
        if not (_number(va) or _number(vb)):
            continue
        row: dict[str, Any] = {"a": va, "b": vb, "equal": va == vb}
        numbers = _number(va) and _number(vb)
        if numbers and isinstance(va, int | float) and isinstance(vb, int | float):
            row["delta"] = vb - va
        metrics[key] = row
    outputs: dict[str, dict[str, Any]] = {}
    if not ra.fingerprints or not rb.fingerprints:
        missing = ra.run_id if not ra.fingerprints else rb.run_id
        notes.append(f"run {missing} recorded no output fingerprints (an older record)")
    for node_id in sorted(set(ra.fingerprints) | set(rb.fingerprints)):
        pa, pb = ra.fingerprints.get(node_id, {}), rb.fingerprints.get(node_id, {})
        for port in sorted(set(pa) | set(pb)):
            row = {"a": pa.get(port), "b": pb.get(port), "equal": pa.get(port) == pb.get(port)}
            if not row["equal"] and pa.get(port) and pb.get(port):
                first = output_difference(a, b, node_id, port, settings)
                if first is not None:
                    row["first_difference"] = first
            outputs[f"{node_id}.{port}"] = row
    same = (
        ra.result_fingerprint == rb.result_fingerprint
        and ra.result_fingerprint is not None
        and all(r["equal"] for r in outputs.values())
    )
    return {
        "identical": same,
        "status": [ra.status, rb.status],
        "result_fingerprint": [ra.result_fingerprint, rb.result_fingerprint],
        "metrics": metrics,
        "outputs": outputs,
    }


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def output_file(stored: StoredRun, node_id: str, port: str, settings: CoreSettings) -> Path | None:
    """The artifact file of ``node_id.port``: in the run's own store (a re-run), else in this
    installation's artifact store under the node's recorded key."""
    from flows.artifacts import ArtifactStore

    node = stored.record.nodes.get(node_id)
    if node is None or node.key is None:
        return None
    stores = [stored.run_dir / RUN_ARTIFACTS]
    stores.append(Path(settings.artifact_store_url or settings.artifacts_dir))
    for location in stores:
        if "://" in str(location) or not location.is_dir():
            continue
        store = ArtifactStore(location)
        if store.has(node.key):
            path = store.output_paths(node.key).get(port)
            if path is not None:
                return Path(path)
    return None
