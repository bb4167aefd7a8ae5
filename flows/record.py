"""The run record: run ids, the run directory and ``run.json``.

``<store>/runs/<run_id>/`` holds ``ir.json``, ``run.json`` (a :class:`flows.spec.RunRecord`),
``metrics.json``, ``equity.parquet``, ``trades.csv``, ``run.log`` and ``nodes/<node_id>.json``
(each node's result). Run ids sort by time: ``20261121-100000-123-1a2b3c``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import tempfile
import time
import unicodedata
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from flows.spec import RunRecord

__all__ = [
    "list_runs",
    "mark",
    "new_run_id",
    "package_versions",
    "process_marks",
    "run_id_for",
    "run_name",
    "slugify",
    "utc_now",
    "write_json",
]

_PACKAGES = ("alphaforge", "numpy", "pandas", "pyarrow", "pydantic", "numba", "prefect", "mlflow")


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by start time (millisecond resolution) with a random suffix."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond // 1000:03d}-{secrets.token_hex(3)}"


def run_id_for(flow_run_id: UUID | str, expected_start: datetime) -> str:
    """The run id of a flow run started without one: sorts by time, unique by flow run."""
    hex_id = UUID(str(flow_run_id)).hex
    ms = expected_start.microsecond // 1000
    return expected_start.strftime("%Y%m%d-%H%M%S-") + f"{ms:03d}-{hex_id[:6]}"


MAX_SLUG_CHARS = 60


def slugify(text: str, max_chars: int = MAX_SLUG_CHARS) -> str:
    """``"Moving Average Crossover (Sample)"`` -> ``"moving-average-crossover-sample"``: ASCII
    lower case, digits and single dashes, at most ``max_chars`` ("pipeline" when nothing is
    left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_chars].rstrip("-") or "pipeline"


def run_name(title: str | None, name: str, run_id: str) -> str:
    """The name a run has in Prefect (flow run) and MLflow (run): ``<title slug>/<run id>``,
    e.g. ``moving-average-crossover-sample/20261121-100000-123-1a2b3c`` (the pipeline's name
    when it has no title)."""
    return f"{slugify(title or name)}/{run_id}"


def utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that shape a result (None when not installed): read once per
    process (the code a process runs does not change under it; warm flow-run processes inherit
    them from ``deployments.warm``)."""
    return dict(_package_versions())


@lru_cache(maxsize=1)
def _package_versions() -> tuple[tuple[str, str | None], ...]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return tuple(out.items())


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
    os.replace(tmp, path)


def list_runs(runs_dir: Path, limit: int | None = None) -> list[RunRecord]:
    """Run records under ``runs_dir``, newest first (directories without a readable record
    skipped)."""
    if not runs_dir.exists():
        return []
    out: list[RunRecord] = []
    for d in sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True):
        from flows.spec import read_run_record

        record = read_run_record(d)
        if record is not None:
            out.append(record)
            if limit is not None and len(out) >= limit:
                break
    return out


def process_marks(submitted_at: float | None, body_start: float) -> dict[str, float]:
    """The first timing marks of a run, in seconds since the spec was submitted (the web app's
    click, a schedule's creation): ``at_process_s`` (the flow-run process started: the
    launcher, see ``deployments.warm_launcher``), ``at_forked_s`` (a warm process was forked
    for it), ``at_flow_s`` = ``prefect_start_s`` (the flow body started). Marks that cannot be
    known (no submission time, a run in the caller's process) are left out."""
    timings: dict[str, float] = {}
    if submitted_at is None:
        return timings
    for name, env in (
        ("process", "ALPHAFORGE_PROCESS_STARTED_AT"),
        ("forked", "ALPHAFORGE_WARM_FORKED_AT"),
    ):
        try:
            when = float(os.environ.get(env, ""))
        except ValueError:
            continue
        if when >= submitted_at - 1:  # an environment inherited from an older process
            timings[f"at_{name}_s"] = round(when - submitted_at, 4)
    timings["prefect_start_s"] = timings["at_flow_s"] = round(body_start - submitted_at, 4)
    return timings


def mark(timings: dict[str, float], name: str, body_start: float) -> None:
    """Record ``at_<name>_s``: now, in seconds since submission (needs ``at_flow_s``)."""
    if "at_flow_s" in timings:
        timings[f"at_{name}_s"] = round(timings["at_flow_s"] + time.time() - body_start, 4)
