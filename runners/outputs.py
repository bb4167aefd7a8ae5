"""Validating what a sandbox left in its output directory, on the host, before anyone reads it.

The directory is untrusted: an entry that is not a regular file with one link (a symlink, a
hardlink, a FIFO, a device, a directory) is a ``SANDBOX_VIOLATION``; too many entries or bytes is
an ``OUTPUT_LIMIT``. Files are opened with ``O_NOFOLLOW`` and read up to the cap. Each declared
output is then parsed from JSON columnar, checked against its port type (series/signal length
and index equal to the first input's, a signal in [-1, 1], a frame's declared columns; finite
numbers, sizes and metrics by :mod:`runners.outputcheck`) and written as a normal artifact
with :func:`runners.io.write_value`.

A ``model`` output (Python nodes only) is the model file ``<port>.afmodel`` the entrypoint wrote
(``sandbox/alphaforge_ml.py``): read only through :mod:`nodes.modelfile` (never a pickle), held
to the output cap unpacked, checked against the architecture it names (``TorchModel.verify``)
and stored like a ``train_torch`` model, so ``predict`` and the run's MLflow logging and
registration (``flows/models.py``) take it as they take a built-in one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes import modelfile
from nodes.base import PortForm, PortType, port_info
from nodes.lazy import lazy_module
from nodes.modelfile import ModelFileError
from runners.base import RunnerError
from runners.custom import CustomNodeManifest, ManifestPort
from runners.io import check_value, file_name, write_value
from runners.jobs import SandboxFailure
from runners.outputcheck import (
    Where,
    check_column_names,
    check_finite,
    check_metrics,
    load_json,
    to_floats,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["MAX_OUTPUT_ENTRIES", "collect_outputs", "scan_output_dir"]

MAX_OUTPUT_ENTRIES = 32


def scan_output_dir(out_dir: Path, max_bytes: int, node_id: str) -> dict[str, bytes]:
    """The regular files in ``out_dir`` (name -> bytes), refusing anything else."""
    entries = list(os.scandir(out_dir))
    if len(entries) > MAX_OUTPUT_ENTRIES:
        raise SandboxFailure(
            "OUTPUT_LIMIT", f"node {node_id!r} left {len(entries)} entries in its output dir"
        )
    files: dict[str, bytes] = {}
    total = 0
    for entry in entries:
        st = os.lstat(entry.path)
        what = _refused(st)
        if what:
            raise SandboxFailure(
                "SANDBOX_VIOLATION",
                f"node {node_id!r} left {what} {entry.name!r} in its output dir; refused",
            )
        total += st.st_size
        if total > max_bytes:
            raise SandboxFailure(
                "OUTPUT_LIMIT", f"node {node_id!r} wrote more than {max_bytes} bytes of outputs"
            )
        files[entry.name] = _read_capped(Path(entry.path), max_bytes, node_id)
    return files


def _refused(st: os.stat_result) -> str | None:
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if not stat.S_ISREG(mode):
        return "a special file"
    if st.st_nlink != 1:
        return "a hardlink"
    return None


def _read_capped(path: Path, max_bytes: int, node_id: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise SandboxFailure("SANDBOX_VIOLATION", f"node {node_id!r}: {path.name} changed")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise SandboxFailure(
            "OUTPUT_LIMIT", f"node {node_id!r} wrote more than {max_bytes} bytes of outputs"
        )
    return data


def _bad(node_id: str, port: str, message: str) -> SandboxFailure:
    return SandboxFailure("INVALID_OUTPUT", f"node {node_id!r}, output {port!r}: {message}")


def _numbers(values: Any, where: Where, what: str) -> np.ndarray:
    if not isinstance(values, list):
        raise SandboxFailure("INVALID_OUTPUT", f"{where}: {what} must be a list of numbers")
    return to_floats(values, where)


def _index(
    raw: Any, n: int, reference: pd.Index | None, node_id: str, port: str, exact: bool
) -> pd.Index:
    if raw is None:
        if reference is None:
            raise _bad(node_id, port, "has no index and the node has no input to take it from")
        if n != len(reference):
            raise _bad(node_id, port, f"has {n} rows, the input has {len(reference)}")
        return reference
    if not isinstance(raw, list) or len(raw) != n or not set(map(type, raw)) <= {str}:
        raise _bad(node_id, port, "index must be a list of ISO timestamps, one per row")
    try:
        index = pd.DatetimeIndex(pd.to_datetime(raw, utc=True, format="ISO8601"), name="ts")
    except (ValueError, TypeError, OverflowError) as exc:
        raise _bad(node_id, port, f"index is not ISO timestamps: {exc}") from None
    if exact and reference is not None and not index.equals(pd.DatetimeIndex(reference)):
        raise _bad(node_id, port, "index differs from the input's index")
    return index


def _to_value(data: Any, port: ManifestPort, reference: pd.Index | None, node_id: str) -> Any:
    if not isinstance(data, dict):
        raise _bad(node_id, port.name, "is not a JSON object")
    where = Where(node_id, port.name)
    form = port_info(port.type).form
    if form == PortForm.METRICS:
        return check_metrics(data.get("values"), where)
    if form == PortForm.SERIES:
        values = _numbers(data.get("values"), where, "values")
        index = _index(data.get("index"), len(values), reference, node_id, port.name, True)
        check_finite(values, where, index, allow_nan=port.type != PortType.SIGNAL)
        return pd.Series(values, index=index, name=port.name, dtype="float64")
    columns = data.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise _bad(node_id, port.name, "a frame needs a non-empty 'columns' object")
    check_column_names(list(columns), where)
    cols = {
        str(k): _numbers(v, where.at(f"column {k!r}"), f"column {k!r}") for k, v in columns.items()
    }
    lengths = {len(v) for v in cols.values()}
    if len(lengths) != 1:
        raise _bad(node_id, port.name, "columns have different lengths")
    missing = [c for c in port.columns or () if c not in cols]
    if missing:
        raise _bad(node_id, port.name, f"lacks the declared columns {missing}")
    index = _index(data.get("index"), lengths.pop(), reference, node_id, port.name, False)
    for name, values in cols.items():
        check_finite(values, where.at(f"column {name!r}"), index, allow_nan=True)
    return pd.DataFrame(cols, index=index)


def _parsed(raw: bytes, port: ManifestPort, node_id: str) -> Any:
    try:
        return load_json(raw)
    except ValueError as exc:
        raise _bad(node_id, port.name, f"is not valid JSON: {exc}") from None


def _to_model(raw: bytes, port: ManifestPort, max_bytes: int, node_id: str) -> Any:
    """A ``model`` output: the sandbox's model file, read only through :mod:`nodes.modelfile`
    (JSON and numpy arrays, ``allow_pickle=False``; at most ``max_bytes`` unpacked), then
    checked through and through (``TorchModel.verify``: the architecture, the weights' names,
    shapes and values against the network ``predict`` rebuilds, the scaler, the history). The
    artifact is then written by the host (:func:`runners.io.write_value`), never the
    sandbox's bytes."""
    try:
        model = modelfile.loads(
            raw, name=f"its model file {port.name}.afmodel", max_bytes=max_bytes
        )
        model.verify()
    except ModelFileError as exc:
        raise _bad(node_id, port.name, str(exc)) from None
    return model


def collect_outputs(
    out_dir: Path,
    manifest: CustomNodeManifest,
    reference: pd.Index | None,
    max_bytes: int,
    node_id: str,
    dest: Path,
) -> dict[str, str]:
    """Validate the sandbox's outputs and write them as artifacts under ``dest``."""
    files = scan_output_dir(out_dir, max_bytes, node_id)
    dest.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for port in manifest.outputs:
        is_model = port_info(port.type).form == PortForm.OBJECT
        raw = files.get(f"{port.name}.{'afmodel' if is_model else 'json'}")
        if raw is None:
            raise _bad(node_id, port.name, "was not produced")
        try:
            if is_model:
                value = _to_model(raw, port, max_bytes, node_id)
            else:
                value = _to_value(_parsed(raw, port, node_id), port, reference, node_id)
            check_value(value, port.type, f"output {port.name!r} of node {node_id!r}")
            path = dest / file_name(port.name, port.type)
            write_value(value, port.type, path)
        except (SandboxFailure, OSError):
            raise  # named already; or the host's disk, not the node's data
        except RunnerError as exc:  # check_value's sentence names the node and the output
            raise SandboxFailure("INVALID_OUTPUT", str(exc)) from None
        except Exception as exc:
            # hostile data that got past the checks above: a named failure, never a 500
            raise _bad(
                node_id, port.name, f"cannot be stored ({type(exc).__name__}: {exc})"
            ) from None
        paths[port.name] = str(path)
    return paths
