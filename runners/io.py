"""Reading and writing port values as files, by port type.

Tables (``ohlcv``, ``frame``, ``equity``, ``orders``, ``trades``) and series (``series``,
``signal``) are Parquet, keeping the ``ts`` index; a series is stored as a one-column table with a
marker in the schema metadata so it reads back as a series with its name. A series of several
symbols (a wide frame, :mod:`nodes.panel`) is stored as a table with a ``wide`` marker naming
its symbols (and its bars, where they are not its non-NaN cells) and reads back equal.
``metrics`` are JSON (NaN and infinity refused); a ``model`` is a model file
(:mod:`nodes.modelfile`: JSON and numpy arrays in a zip, never a pickle); ``ticks`` are a tick
file (:mod:`nodes.tickfile`: an ``.npz`` read with ``allow_pickle=False``, its dtype checked field
by field).
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes import modelfile, panel, tickfile, ticks
from nodes.base import PortForm, PortType, port_info, types_of_form
from nodes.errors import DataError
from nodes.lazy import lazy_module
from runners.base import RunnerError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")
    pa = lazy_module("pyarrow", globals(), "pa")
    pq = lazy_module("pyarrow.parquet", globals(), "pq")

__all__ = ["check_value", "file_name", "read_value", "write_value"]

# Storage by form (nodes.base.PORT_TYPES): tables and series Parquet, metrics JSON, models a
# model file.
_SERIES_TYPES = types_of_form(PortForm.SERIES)
_TABLE_TYPES = types_of_form(PortForm.TABLE)
_SUFFIX = {
    PortForm.TABLE: "parquet",
    PortForm.SERIES: "parquet",
    PortForm.METRICS: "json",
    PortForm.OBJECT: "afmodel",
    PortForm.EVENTS: "npz",
}
_META_KEY = b"alphaforge"


def file_name(port: str, port_type: PortType | str) -> str:
    """The file an output port is stored in: ``<port>.<parquet|json|afmodel|npz>``."""
    return f"{port}.{_SUFFIX[port_info(port_type).form]}"


def write_value(value: Any, port_type: PortType | str, path: Path) -> None:
    """Write ``value`` (already checked with :func:`check_value`) to ``path``."""
    form = port_info(port_type).form
    if form == PortForm.METRICS:
        path.write_text(json.dumps(value, sort_keys=True, allow_nan=False, default=_json_scalar))
    elif form == PortForm.OBJECT:
        modelfile.save(value, path)
    elif form == PortForm.EVENTS:
        tickfile.save(value, path)
    elif form == PortForm.SERIES and isinstance(value, pd.DataFrame):
        _write_wide(value, path)
    elif form == PortForm.SERIES:
        name = value.name
        frame = value.rename("value").to_frame()
        table = pa.Table.from_pandas(frame, preserve_index=True)
        meta = dict(table.schema.metadata or {})
        meta[_META_KEY] = json.dumps({"kind": "series", "name": name}, default=str).encode()
        pq.write_table(table.replace_schema_metadata(meta), path)
    else:
        value.to_parquet(path, index=True)


def read_value(path: str | Path) -> Any:
    """Read a value written by :func:`write_value` (the format follows the file's suffix)."""
    p = Path(path)
    if not p.exists():
        raise RunnerError(f"artifact {p} does not exist")
    if p.suffix == ".json":
        return json.loads(p.read_text())
    if p.suffix == ".afmodel":
        return modelfile.load(p)
    if p.suffix == ".npz":
        try:
            return tickfile.load(p)
        except DataError as exc:
            raise RunnerError(f"artifact {p}: {exc}") from None
    table = pq.read_table(p)
    frame = table.to_pandas()
    raw = (table.schema.metadata or {}).get(_META_KEY)
    marker = json.loads(raw) if raw is not None else {}
    if marker.get("kind") == "series":
        series = frame["value"]
        series.name = marker.get("name")
        return series
    if marker.get("kind") == "wide":
        return _read_wide(frame, marker)
    return frame


def _write_wide(value: pd.DataFrame, path: Path) -> None:
    """A wide series (ts × symbol, :mod:`nodes.panel`): the columns stored by position (a
    symbol may be called anything, ``ts`` too), their names and which cells are bars (when
    that is not simply the non-NaN cells) in the marker."""
    symbols = [str(c) for c in value.columns]
    frame = value.set_axis([f"c{i}" for i in range(len(symbols))], axis=1)
    frame.attrs = {}  # what the marker keeps; pyarrow would try to put attrs in JSON
    table = pa.Table.from_pandas(frame, preserve_index=True)
    cells = panel.bars(value)
    marker: dict[str, Any] = {"kind": "wide", "symbols": symbols}
    name = value.attrs.get(panel.NAME_ATTR)
    if name is not None:
        marker["name"] = str(name)
    if not np.array_equal(cells, value.notna().to_numpy()):
        marker["bars"] = base64.b64encode(np.packbits(cells, axis=None).tobytes()).decode()
    meta = dict(table.schema.metadata or {})
    meta[_META_KEY] = json.dumps(marker).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)


def _read_wide(frame: pd.DataFrame, marker: dict[str, Any]) -> pd.DataFrame:
    out = frame.set_axis(pd.Index([str(s) for s in marker["symbols"]]), axis=1)
    if "name" in marker:
        out.attrs[panel.NAME_ATTR] = marker["name"]
    if "bars" in marker:
        packed = np.frombuffer(base64.b64decode(marker["bars"]), dtype=np.uint8)
        cells = np.unpackbits(packed, count=out.size).astype(bool).reshape(out.shape)
    else:
        cells = out.notna().to_numpy()
    return panel.set_bars(out, cells)  # always: says the frame is a wide series


def check_value(value: Any, port_type: PortType | str, where: str) -> None:
    """Refuse a value that does not have the declared port type; ``where`` names the port."""
    pt = PortType(port_type)
    if pt in _SERIES_TYPES:
        _check_series(value, pt, where)
    elif pt in _TABLE_TYPES:
        _check_table(value, pt, where)
    elif port_info(pt).form == PortForm.METRICS:
        _check_metrics(value, where)
    elif port_info(pt).form == PortForm.EVENTS:
        _check_ticks(value, where)
    elif not hasattr(value, "to_parts"):
        raise RunnerError(f"{where}: expected a model (train_torch's), got {_kind(value)}")


def _check_series(value: Any, pt: PortType, where: str) -> None:
    if isinstance(value, pd.DataFrame):
        _check_wide(value, pt, where)
        return
    if not isinstance(value, pd.Series):
        raise RunnerError(f"{where}: expected a {pt.value} (pandas Series), got {_kind(value)}")
    if not pd.api.types.is_numeric_dtype(value.dtype):
        raise RunnerError(f"{where}: a {pt.value} must be numeric, got dtype {value.dtype}")
    if pt == PortType.SIGNAL:
        _check_signal(value, where)


def _check_signal(value: pd.Series, where: str) -> None:
    if value.dtype == np.float64:  # on the array, no pandas objects: a sweep checks one a trial
        values = value.to_numpy()
        nan, outside = np.isnan(values).any(), (np.abs(values) > 1 + 1e-12).any()
    else:
        nan, outside = value.isna().any(), len(value) and (value.abs() > 1 + 1e-12).any()
    if nan:
        raise RunnerError(f"{where}: a signal may not contain NaN")
    if outside:
        raise RunnerError(f"{where}: signal values must lie in [-1, 1]")


def _check_wide(value: pd.DataFrame, pt: PortType, where: str) -> None:
    """A series or signal of several symbols (:mod:`nodes.panel`): by unique ascending
    timestamps, one numeric column per symbol (names unique, sorted). A wide signal holds
    target weights: NaN (no bar, no new target) is allowed, ±inf is not; its size is the
    portfolio's business (a weight of 2 is leverage), not checked here."""
    what = f"a {pt.value} of several symbols"
    index = value.index
    if not isinstance(index, pd.DatetimeIndex):
        raise RunnerError(
            f"{where}: expected a {pt.value} (pandas Series), got DataFrame (a table is {what} "
            "only when indexed by timestamps, one column per symbol)"
        )
    if not (index.is_monotonic_increasing and index.is_unique):
        raise RunnerError(f"{where}: {what} needs unique timestamps in ascending order")
    names = list(value.columns)
    if not all(isinstance(c, str) for c in names) or names != sorted(set(names)):
        raise RunnerError(f"{where}: {what} needs one column per symbol, named, unique, sorted")
    for name in names:
        if not pd.api.types.is_numeric_dtype(value[name].dtype):
            raise RunnerError(
                f"{where}: {what}: column {name!r} must be numeric, got {value[name].dtype}"
            )
    if pt == PortType.SIGNAL:
        values = value.to_numpy(dtype="float64", na_value=np.nan)
        if np.isinf(values).any():
            raise RunnerError(f"{where}: a signal's weights must be finite")


def _check_table(value: Any, pt: PortType, where: str) -> None:
    if not isinstance(value, pd.DataFrame):
        raise RunnerError(f"{where}: expected a {pt.value} table (DataFrame), got {_kind(value)}")
    info = port_info(pt)
    if info.time_indexed and not isinstance(value.index, pd.DatetimeIndex):
        raise RunnerError(f"{where}: a {pt.value} table must be indexed by timestamps")
    missing = [c for c in info.columns or () if c not in value.columns]
    if missing:
        raise RunnerError(f"{where}: {pt.value} table lacks columns {missing}")


def _check_ticks(value: Any, where: str) -> None:
    """One asset's events: a 1-d array of hftbacktest's event dtype, in replay order."""
    if not isinstance(value, np.ndarray) or value.ndim != 1:
        raise RunnerError(
            f"{where}: expected ticks (a 1-d numpy array of hftbacktest events), got {_kind(value)}"
        )
    try:
        ticks.check_dtype(value.dtype, where)
        if value.dtype != ticks.EVENT_DTYPE:
            raise DataError(
                "BAD_EVENT_DTYPE",
                "fields must be aligned as hftbacktest's event_dtype",
                source=where,
            )
        ticks.check_order(value, where)
    except DataError as exc:
        raise RunnerError(str(exc)) from None


def _check_metrics(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise RunnerError(f"{where}: expected metrics (a dict), got {_kind(value)}")
    for key, v in value.items():
        if not isinstance(key, str):
            raise RunnerError(f"{where}: metric names must be strings, got {key!r}")
        _check_metric_value(v, f"{where}: metric {key!r}", 0)


def _check_metric_value(v: Any, where: str, depth: int) -> None:
    """Numbers anywhere in a metric (built-in metrics also hold text and lists of notes) are
    finite and fit a 64-bit float: what JSON, the run record and MLflow can hold."""
    if depth > 8:
        raise RunnerError(f"{where} is nested too deeply")
    if isinstance(v, bool | str) or v is None:
        return
    if isinstance(v, int | np.integer):
        if abs(int(v)) >= 10**308:
            raise RunnerError(f"{where} is an integer too large for a 64-bit float")
    elif isinstance(v, float | np.floating):
        if not math.isfinite(float(v)):
            raise RunnerError(f"{where} is {v}; use None for undefined")
    elif isinstance(v, list | tuple):
        for item in v:
            _check_metric_value(item, where, depth + 1)
    elif isinstance(v, dict):
        for item in v.values():
            _check_metric_value(item, where, depth + 1)


def _json_scalar(value: Any) -> Any:
    # numpy scalars and timestamps inside metrics
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _kind(value: Any) -> str:
    return type(value).__name__
