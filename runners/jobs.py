"""The data protocol between the host and a sandbox: the job directory a node reads.

Layout of a job directory (mounted read-only at ``/job``)::

    job.json               node id, language, ports, column order, limits, the code file's name
    params.json            the params, defaults filled in and checked against the schema
    code.py | code.js | code.wat | code.wasm
    inputs/<port>.arrow    Python nodes: the input as an Arrow IPC file with pandas' metadata
                           (a series as one column named "value"); job.json names the file.
                           Uncompressed, no dictionaries: the sandbox reads it with numpy
                           (runners/sandbox/arrow_ipc.py; the image has no pyarrow)
    inputs/<port>.json     JavaScript and WebAssembly nodes: the same, columnar: this JSON
                           {"name", "index": [ISO ts] (JavaScript; null for wasm), "columns":
                           [names], "rows": n, "values_file"} and inputs/<port>.f64, the
                           columns' values as little-endian float64 one column after the
                           other (NaN = missing)

Each language gets only the form it reads (writing both cost ~20 ms per 10,000 rows); Arrow IPC
rather than Parquet because reading it needs no Parquet decoder in the container (~40 ms of
imports and first-call set-up in a fresh one); raw f64 rather than JSON numbers for JavaScript
and wasm because formatting and parsing 10,000s of floats as text costs ~10 ms each way.

The output directory (``/out``, the only writable place) receives ``<port>.json`` in the same
columnar form; :mod:`runners.outputs` validates it on the host.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsl.ir import InputBinding, NodeIR
from nodes import panel
from nodes.base import PortType, port_info
from nodes.data import require_volume
from nodes.lazy import lazy_module
from runners.base import InputPaths, RunnerError
from runners.custom import CustomNodeManifest, Limits
from runners.io import read_value

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["SandboxFailure", "iso_index", "prepare_job"]

_CODE_FILE = {
    "python": "code.py",
    "javascript": "code.js",
    "wat": "code.wat",
    "wasm_base64": "code.wasm",
}


class SandboxFailure(RunnerError):
    """A sandboxed execution failed in a named way (``kind``: TIMEOUT, OUTPUT_LIMIT, ...)."""

    code = "AF730"

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def iso_index(index: pd.Index) -> list[str] | None:
    """ISO-8601 UTC strings for a DatetimeIndex (None for any other index)."""
    if not isinstance(index, pd.DatetimeIndex):
        return None
    naive_utc = index.tz_convert(None) if index.tz is not None else index
    values = naive_utc.to_numpy()
    strings: list[str] = np.datetime_as_string(values, unit="auto", timezone="UTC").tolist()
    return strings


def _select(value: Any, binding: InputBinding, node_id: str, port: str) -> Any:
    if binding.column is None:
        return value
    if not isinstance(value, pd.DataFrame) or binding.column not in value.columns:
        raise RunnerError(
            f"node {node_id!r}: input {port!r}: {binding.node}.{binding.port} has no column "
            f"{binding.column!r}"
        )
    require_volume(
        binding.column, value[binding.column], f"node {node_id!r} ({binding.node}.{binding.column})"
    )
    return value[binding.column].astype("float64")


def _numeric_columns(frame: pd.DataFrame, port_type: PortType) -> list[str]:
    numeric = [str(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c].dtype)]
    known = port_info(port_type).columns or ()  # the type's own columns first, in its order
    return [c for c in known if c in numeric] + [c for c in numeric if c not in known]


def _write_input(
    value: Any, port_type: PortType, name: str, where: Path, language: str
) -> dict[str, Any]:
    """Write one input in the form ``language`` reads; returns its job.json entry."""
    if isinstance(value, pd.Series):
        frame = value.astype("float64").rename("value").to_frame()
        columns, kind = ["value"], "series"
    elif isinstance(value, pd.DataFrame):
        frame, kind = value, "frame"
        columns = _numeric_columns(frame, port_type)
    else:
        raise RunnerError(f"input {name!r}: a sandbox takes tables and series, not {type(value)}")
    series_name = None
    if isinstance(value, pd.Series) and value.name is not None:
        series_name = str(value.name)
    extra: dict[str, Any] = {}
    if language == "python":
        file = f"{name}.arrow"
        _write_arrow(frame, where / file)
    else:
        # JSON for what is not numbers (the index, only JavaScript shows it), raw little-endian
        # f64 for the columns: read without parsing (Float64Array / wasm memory), written
        # without formatting 10,000s of floats as text.
        file, values_file = f"{name}.json", f"{name}.f64"
        data: dict[str, Any] = {
            "name": series_name,
            "index": iso_index(frame.index) if language == "javascript" else None,
            "columns": columns,
            "rows": len(frame),
            "values_file": values_file,
        }
        (where / file).write_text(json.dumps(data, allow_nan=False))
        block = frame[columns].to_numpy(dtype="<f8", na_value=np.nan)
        (where / values_file).write_bytes(block.tobytes(order="F"))  # column after column
        extra["values_file"] = values_file
    spec: dict[str, Any] = {
        "name": name,
        "type": port_type.value,
        "kind": kind,
        "columns": columns,
        "file": file,
        **extra,
    }
    if kind == "series":
        spec["series_name"] = series_name
    return spec


def _readable_in_sandbox(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in the Arrow types the sandbox's reader takes (``runners/sandbox/arrow_ipc.py``):
    numbers, booleans, times and strings as they are; categoricals as their values; anything
    else (decimals, periods, intervals, mixed objects) as strings."""
    types = pd.api.types
    changed: dict[Any, pd.Series] = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            changed[name] = col.astype(col.cat.categories.dtype)
        elif not (
            types.is_numeric_dtype(col.dtype)
            or types.is_bool_dtype(col.dtype)
            or types.is_datetime64_any_dtype(col.dtype)
            or types.is_timedelta64_dtype(col.dtype)
            or types.is_string_dtype(col)
        ):
            changed[name] = col.astype("str")
    if not changed:
        return frame
    out = frame.copy(deep=False)
    for name, col in changed.items():
        out[name] = col
    return out


def _write_arrow(frame: pd.DataFrame, path: Path) -> None:
    """An Arrow IPC file with the index and pandas' metadata (what ``to_parquet`` keeps)."""
    import pyarrow as pa
    import pyarrow.feather as feather

    table = pa.Table.from_pandas(_readable_in_sandbox(frame), preserve_index=True)
    feather.write_feather(table, str(path), compression="uncompressed")


def _load_inputs(
    node_ir: NodeIR, manifest: CustomNodeManifest, input_paths: InputPaths
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for port in manifest.inputs:
        binding = node_ir.inputs.get(port.name)
        if binding is None or isinstance(binding, tuple):
            raise RunnerError(f"node {node_ir.id!r}: input {port.name!r} is not bound to one value")
        path = input_paths.get(port.name)
        if path is None:
            raise RunnerError(f"node {node_ir.id!r}: no artifact given for input {port.name!r}")
        if not isinstance(path, str):
            if len(path) != 1:
                raise RunnerError(f"node {node_ir.id!r}: input {port.name!r} takes one artifact")
            path = path[0]
        value = read_value(path)
        _refuse_panel(value, node_ir.id, port.name)
        values[port.name] = _select(value, binding, node_ir.id, port.name)
    return values


def _refuse_panel(value: Any, node_id: str, port: str) -> None:
    """Custom nodes take one symbol: a panel (long bars of several symbols) or a series of
    several symbols (a wide frame where a series was stored) is refused, naming the node."""
    multi = panel.is_panel(value)
    if not multi and isinstance(value, pd.DataFrame):
        multi = value.attrs.get(panel.BARS_ATTR) is not None  # read_value's wide frames
    if multi:
        symbols = panel.symbols_of(value)
        shown = ", ".join(symbols[:5]) + (", ..." if len(symbols) > 5 else "")
        raise RunnerError(
            f"node {node_id!r}: custom nodes take one symbol; input {port!r} holds "
            f"{len(symbols)} symbols ({shown}). Keep one symbol in the loader "
            '(symbol="...") for this node'
        )


def prepare_job(
    node_ir: NodeIR,
    manifest: CustomNodeManifest,
    input_paths: InputPaths,
    params: dict[str, Any],
    limits: Limits,
    job_dir: Path,
) -> pd.Index | None:
    """Write the job directory for one execution; returns the reference index (first input's).

    Files are world-readable and the directory is never writable by the sandbox user: the
    container mounts it read-only.
    """
    inputs_dir = job_dir / "inputs"
    inputs_dir.mkdir(parents=True)
    values = _load_inputs(node_ir, manifest, input_paths)
    specs = [
        _write_input(values[p.name], p.type, p.name, inputs_dir, manifest.language)
        for p in manifest.inputs
    ]
    fmt = manifest.code_format if manifest.language == "wasm" else manifest.language
    code_file = _CODE_FILE[fmt]
    raw = base64.b64decode(manifest.code) if fmt == "wasm_base64" else manifest.code.encode()
    (job_dir / code_file).write_bytes(raw)
    job = {
        "node_id": node_ir.id,
        "language": manifest.language,
        "code_file": code_file,
        "inputs": specs,
        "outputs": [p.model_dump(mode="json") for p in manifest.outputs],
        "param_order": list(manifest.params_schema.get("properties", {})),
        "limits": {
            "wasm_fuel": limits.wasm_fuel,
            "wasm_memory_bytes": limits.memory_mb * (1 << 20) // 2,
            "output_bytes": limits.output_bytes,
        },
    }
    (job_dir / "job.json").write_text(json.dumps(job))
    (job_dir / "params.json").write_text(json.dumps(params, allow_nan=False))
    for root, dirs, files in os.walk(job_dir):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
        del dirs[:0]
    first = values[manifest.inputs[0].name] if manifest.inputs else None
    return first.index if first is not None else None
