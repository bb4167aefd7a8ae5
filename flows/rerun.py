"""Re-running a stored run from its definition, and comparing the two.

:func:`rerun_spec` builds the spec of a re-run from what the run stored — ``ir.json`` (the IR
that ran, overrides applied, floating catalog steps already pinned), the data references and
seeds in ``run.json`` — never from the ``.af`` file on disk. Before anything runs,
:func:`check_definition` takes the data fingerprints again: a data file that changed since the
run is a :class:`RerunError` saying which node, which file and what to do; a catalog version is
content-addressed, so it reads the same bytes or is missing. The re-run reads no cache and
writes its artifacts into its own run directory (``artifacts/``), so every node's output is
freshly computed from freshly computed inputs. :func:`compare_runs` then compares the output
fingerprints node by node. See docs/reproducibility.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.ir import PipelineIR
from flows.catalog import catalog_source
from flows.lock import lock_differences
from flows.settings import CoreSettings
from flows.spec import RunRecord, RunSpec, read_run_record
from nodes.errors import AlphaForgeError

__all__ = [
    "IMPORT_FILE",
    "RUN_ARTIFACTS",
    "Comparison",
    "RerunError",
    "StoredRun",
    "check_definition",
    "compare_runs",
    "find_run",
    "rerun_settings",
    "rerun_spec",
]

# Written by `alphaforge runs import` beside run.json: where the imported data now is.
IMPORT_FILE = "imported.json"
# A re-run's own artifact store, inside its run directory.
RUN_ARTIFACTS = "artifacts"


class RerunError(AlphaForgeError):
    """A stored run cannot be re-executed as stored (its data changed, its code is missing)."""

    code = "AF711"


@dataclass
class StoredRun:
    """A run directory with its record, the IR that ran and, for an imported run, where its
    data was put (``imported.json``)."""

    run_dir: Path
    record: RunRecord
    ir: PipelineIR
    imported: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path) -> StoredRun:
        """Read a run directory (RerunError when it holds no readable run)."""
        record = read_run_record(run_dir)
        if record is None:
            raise RerunError(f"{run_dir / 'run.json'} is missing or not a run record")
        try:
            ir = PipelineIR.from_json((run_dir / "ir.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            msg = f"{run_dir / 'ir.json'} cannot be read as the run's IR: {exc}"
            raise RerunError(msg) from exc
        imported: dict[str, Any] = {}
        if (run_dir / IMPORT_FILE).is_file():
            imported = json.loads((run_dir / IMPORT_FILE).read_text(encoding="utf-8"))
        return cls(run_dir, record, ir, imported)


def find_run(runs_dir: Path, run_id: str) -> Path:
    """The directory of the run ``run_id`` names (a unique prefix is enough)."""
    matches = sorted(p for p in runs_dir.glob(f"{run_id}*") if (p / "run.json").is_file())
    exact = [p for p in matches if p.name == run_id]
    if exact:
        return exact[0]
    if len(matches) != 1:
        what = "no run" if not matches else f"{len(matches)} runs"
        raise RerunError(f"{what} matching {run_id!r} in {runs_dir}")
    return matches[0]


def rerun_settings(settings: CoreSettings, run_id: str) -> CoreSettings:
    """``settings`` with the artifact store in the re-run's own directory: no node output of
    an earlier run is read or kept in place of a fresh one."""
    store = settings.runs_dir / run_id / RUN_ARTIFACTS
    return settings.model_copy(update={"artifact_store_url": str(store)})


def rerun_spec(stored: StoredRun, settings: CoreSettings, run_id: str) -> RunSpec:
    """The spec that re-executes ``stored`` here, without the cache, as run ``run_id``."""
    summary = stored.record.spec or {}
    imported = stored.imported
    return RunSpec(
        run_id=run_id,
        ir=stored.ir,
        overrides=imported.get("overrides") or {},
        store_url=settings.store_location,
        base_dir=imported.get("base_dir") or summary.get("base_dir") or stored.record.base_dir,
        datasets=imported.get("datasets") or summary.get("datasets") or {},
        confine_paths=bool(summary.get("confine_paths", False)),
        catalog_url=None if imported else summary.get("catalog_url"),
        catalog_namespace=summary.get("catalog_namespace"),
        seed=summary.get("seed"),
        runners=summary.get("runners") or {},
        use_cache=False,
        track=True,
        trigger="cli",
        rerun_of=stored.record.run_id,
    )


def check_definition(stored: StoredRun, spec: RunSpec, settings: CoreSettings) -> None:
    """Refuse a re-run that would not read what the run read: a data fingerprint that changed
    or cannot be taken, a custom node whose code is not in this store."""
    from runners.inprocess import InProcessRunner
    from runners.nodestore import ManifestStore

    problems: list[str] = []
    manifests = ManifestStore(settings.custom_nodes_dir)
    for node_id, code_hash in _custom_nodes(stored).items():
        if not manifests.has(code_hash):
            problems.append(
                f"node {node_id!r} runs custom node code {code_hash[:12]} that is not in this "
                f"installation's store ({settings.custom_nodes_dir}): import the run's bundle "
                "(`alphaforge runs import`), which carries it"
            )
    runner = InProcessRunner(
        base_dir=settings.resolve_ref(spec.base_dir) if spec.base_dir else Path("."),
        datasets={k: settings.resolve_ref(v) for k, v in spec.datasets.items()},
        confine_paths=spec.confine_paths,
        mlflow_uri=settings.mlflow_uri,
        catalog=catalog_source(settings, spec.catalog_url, spec.catalog_namespace),
    )
    ir = spec.effective_ir()
    for node_id, entry in stored.record.datasets.items():
        expected = entry.get("fingerprint")
        source = entry.get("source") or {}
        where = source.get("file") or source.get("catalog_version") or "its data"
        try:
            now = runner.fingerprint(ir.node(node_id))
        except Exception as exc:  # the node's own error: a missing file, an unknown version
            problems.append(
                f"node {node_id!r} cannot read the data the run read ({where}): {exc}; restore "
                "it, or import the run's bundle (`alphaforge runs import`), which carries it"
            )
            continue
        if expected is not None and now != expected:
            problems.append(
                f"the data changed: node {node_id!r} read {where} with fingerprint "
                f"{_short(expected)}, which is now {_short(now)}; put back the data the run "
                "read (the run's bundle carries it: `alphaforge runs export` from an "
                "installation that still has it), or start a new run of the pipeline "
                "(`alphaforge run FILE`) to compute results on the new data"
            )
    if problems:
        raise RerunError(
            f"run {stored.record.run_id} cannot be re-run as stored: " + "; ".join(problems)
        )


@dataclass
class Comparison:
    """A re-run against its original: ``differences`` (node, port, a, b, and where the
    tables first differ when both are at hand) and ``warnings`` (environment changes that
    may, or may not, change results)."""

    original: str
    rerun: str
    differences: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when every fingerprint matched."""
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        """JSON-compatible data (``alphaforge rerun --json``)."""
        return {
            "original": self.original,
            "rerun": self.rerun,
            "identical": self.identical,
            "differences": self.differences,
            "warnings": self.warnings,
            "notes": self.notes,
        }


def compare_runs(a: StoredRun, b: StoredRun, settings: CoreSettings) -> Comparison:
    """Compare the results of run ``a`` and run ``b`` (``b`` a re-run of ``a``, say)."""
    from flows.rundiff import output_difference

    ra, rb = a.record, b.record
    out = Comparison(ra.run_id, rb.run_id)
    if rb.status != "completed":
        status = {"what": "status", "a": ra.status, "b": rb.status, "error": rb.error}
        out.differences.append(status)
        return out
    if not ra.fingerprints:
        out.notes.append(
            f"run {ra.run_id} recorded no output fingerprints (an older record): compared the "
            "result fingerprint only"
        )
    for node_id in sorted(set(ra.fingerprints) | set(rb.fingerprints)) if ra.fingerprints else []:
        pa, pb = ra.fingerprints.get(node_id, {}), rb.fingerprints.get(node_id, {})
        for port in sorted(set(pa) | set(pb)):
            if pa.get(port) != pb.get(port):
                diff: dict[str, Any] = {
                    "what": "output",
                    "node": node_id,
                    "port": port,
                    "a": pa.get(port),
                    "b": pb.get(port),
                }
                first = output_difference(a, b, node_id, port, settings)
                if first is not None:
                    diff["first_difference"] = first
                out.differences.append(diff)
    if ra.result_fingerprint != rb.result_fingerprint:
        out.differences.append(
            {"what": "result", "a": ra.result_fingerprint, "b": rb.result_fingerprint}
        )
    out.warnings.extend(environment_warnings(ra, rb))
    return out


def environment_warnings(a: RunRecord, b: RunRecord) -> list[str]:
    """Sentences on the package lock and sandbox images of ``b`` against ``a``."""
    warnings: list[str] = []
    lock = lock_differences(a.package_lock, b.package_lock)
    if lock is not None and "unknown" not in lock:
        parts = [f"{k}: {v}" for k, v in sorted(lock.items())]
        warnings.append(
            "the installed packages differ from the original run's (" + "; ".join(parts) + ")"
        )
    elif lock is not None:
        warnings.append(f"run {a.run_id} recorded no package lock: packages not compared")
    ia = ((a.sandbox or {}).get("images")) or {}
    ib = ((b.sandbox or {}).get("images")) or {}
    for language in sorted(set(ia) | set(ib)):
        if ia.get(language) != ib.get(language) and ia.get(language) and ib.get(language):
            warnings.append(
                f"the {language} sandbox image differs from the original run's "
                f"({_short(ia.get(language))} -> {_short(ib.get(language))})"
            )
    return warnings


def _custom_nodes(stored: StoredRun) -> dict[str, str]:
    if stored.record.custom_nodes:
        return dict(stored.record.custom_nodes)
    return {n.id: n.code_hash for n in stored.ir.nodes if n.runtime != "builtin" and n.code_hash}


def _short(value: Any) -> str:
    text = str(value)
    if text.startswith("catalog:"):
        return "catalog version " + text.removeprefix("catalog:")[:12]
    return text[:12] if len(text) > 12 else text
