"""A small reader for the Arrow IPC files the host writes as Python nodes' inputs (numpy only).

Why not pyarrow: importing it (and the ``pyarrow.compute`` that pandas then loads) costs ~0.1 s
of every fresh sandbox, a sixth of the budget for a whole execution, so the Python sandbox image
does not ship it. The host writes these files with pyarrow (``runners/jobs.py``); this module
reads that subset of the Arrow IPC *file* format (columnar format 1.0, little-endian):

- the file: ``ARROW1`` magic, encapsulated messages, a flatbuffer ``Footer`` listing the schema
  and the record batch blocks;
- uncompressed record batches, any number (they are concatenated);
- column types Null, Int (8-64 bit, signed or not), FloatingPoint (16/32/64), Bool, Utf8,
  LargeUtf8, Timestamp, Duration and Date, each with an optional validity bitmap.

Anything else (dictionaries, nested types, compressed bodies, big-endian files) is refused with
:class:`ArrowFormatError` naming what it met; the host only writes what is listed. Standalone:
runs inside the sandbox image, imports nothing from Alpha Forge.

:func:`read_table` gives the columns as numpy arrays (nulls: NaN for floats and for integers,
which become float64 as pandas does, NaT for times, None for strings and booleans) plus the
schema's metadata; :func:`read_pandas` rebuilds the DataFrame (index included) from pandas'
metadata the way ``pandas.read_feather`` does for these files.
"""

import json
import struct

import numpy as np

__all__ = ["ArrowFormatError", "read_pandas", "read_table"]

MAGIC = b"ARROW1"
_CONTINUATION = 0xFFFFFFFF

# Schema.fbs ``Type`` union
_NULL, _INT, _FLOAT, _UTF8, _BOOL, _DATE, _TIMESTAMP, _DURATION, _LARGE_UTF8 = (
    1,
    2,
    3,
    5,
    6,
    8,
    10,
    18,
    20,
)
_TYPE_NAMES = {
    0: "NONE", 1: "Null", 2: "Int", 3: "FloatingPoint", 4: "Binary", 5: "Utf8", 6: "Bool",
    7: "Decimal", 8: "Date", 9: "Time", 10: "Timestamp", 11: "Interval", 12: "List",
    13: "Struct", 14: "Union", 15: "FixedSizeBinary", 16: "FixedSizeList", 17: "Map",
    18: "Duration", 19: "LargeBinary", 20: "LargeUtf8", 21: "LargeList",
}  # fmt: skip
_TIME_UNITS = ("s", "ms", "us", "ns")
_FLOATS = {0: "<f2", 1: "<f4", 2: "<f8"}
_RECORD_BATCH = 3  # Message.fbs ``MessageHeader`` union
_NULLABLE = frozenset(
    [
        "Int8",
        "Int16",
        "Int32",
        "Int64",
        "UInt8",
        "UInt16",
        "UInt32",
        "UInt64",
        "Float32",
        "Float64",
        "boolean",
    ]
)


class ArrowFormatError(ValueError):
    """The file is not (or not the supported subset of) the Arrow IPC file format."""


class _Table:
    """One flatbuffer table: fields by index, read through its vtable."""

    __slots__ = ("buf", "pos", "vsize", "vtable")

    def __init__(self, buf, pos):
        self.buf = buf
        self.pos = pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vsize = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, i):
        at = 4 + 2 * i
        if at >= self.vsize:
            return 0
        return struct.unpack_from("<H", self.buf, self.vtable + at)[0]

    def scalar(self, i, fmt, default=0):
        off = self._field(i)
        return struct.unpack_from(fmt, self.buf, self.pos + off)[0] if off else default

    def _target(self, i):
        off = self._field(i)
        if not off:
            return None
        at = self.pos + off
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, i):
        at = self._target(i)
        return None if at is None else _Table(self.buf, at)

    def string(self, i):
        at = self._target(i)
        if at is None:
            return None
        n = struct.unpack_from("<I", self.buf, at)[0]
        return bytes(self.buf[at + 4 : at + 4 + n]).decode("utf-8")

    def tables(self, i):
        at = self._target(i)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        out = []
        for k in range(n):
            el = at + 4 + 4 * k
            out.append(_Table(self.buf, el + struct.unpack_from("<I", self.buf, el)[0]))
        return out

    def structs(self, i, fmt):
        """A vector of structs, each unpacked with ``fmt``."""
        at = self._target(i)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        size = struct.calcsize(fmt)
        return [struct.unpack_from(fmt, self.buf, at + 4 + size * k) for k in range(n)]


def _root(buf, pos):
    return _Table(buf, pos + struct.unpack_from("<I", buf, pos)[0])


def _field_spec(field):
    """(name, type id, type table) of a Schema ``Field``; refuses dictionary-encoded fields."""
    name = field.string(0)
    type_id = field.scalar(2, "<B")
    if field.table(4) is not None:
        raise ArrowFormatError(f"column {name!r} is dictionary-encoded, which is not read here")
    if field.tables(5):
        raise ArrowFormatError(f"column {name!r} is nested ({_TYPE_NAMES.get(type_id)})")
    return name, type_id, field.table(3)


def _validity(body, buffer, length, null_count):
    if null_count == 0:
        return None
    offset, size = buffer
    bits = np.frombuffer(body, np.uint8, count=size, offset=offset)
    return np.unpackbits(bits, bitorder="little", count=length).astype(bool)


def _fixed(body, buffer, dtype, length):
    offset, size = buffer
    itemsize = np.dtype(dtype).itemsize
    if size < itemsize * length:
        raise ArrowFormatError("a data buffer is shorter than its column")
    return np.frombuffer(body, dtype, count=length, offset=offset)


def _column(name, type_id, type_table, node, buffers, body):
    """One column of one record batch; ``buffers`` is consumed from the front."""
    length, null_count = node
    if type_id == _NULL:
        return np.full(length, None, dtype=object)
    valid = _validity(body, buffers.pop(0), length, null_count)
    if type_id in (_UTF8, _LARGE_UTF8):
        off_type = "<i4" if type_id == _UTF8 else "<i8"
        offsets = _fixed(body, buffers.pop(0), off_type, length + 1)
        data_offset, data_size = buffers.pop(0)
        data = bytes(body[data_offset : data_offset + data_size])
        values = [data[offsets[k] : offsets[k + 1]].decode("utf-8") for k in range(length)]
        out = np.array(values, dtype=object)
        if valid is not None:
            out[~valid] = None
        return out
    if type_id == _BOOL:
        offset, size = buffers.pop(0)
        bits = np.frombuffer(body, np.uint8, count=size, offset=offset)
        values = np.unpackbits(bits, bitorder="little", count=length).astype(bool)
        if valid is None:
            return values
        out = values.astype(object)
        out[~valid] = None
        return out
    if type_id == _INT:
        width, signed = type_table.scalar(0, "<i"), type_table.scalar(1, "<?")
        if width not in (8, 16, 32, 64):
            raise ArrowFormatError(f"column {name!r} has {width}-bit integers")
        values = _fixed(body, buffers.pop(0), f"<{'i' if signed else 'u'}{width // 8}", length)
        if valid is None:
            return values.copy()
        out = values.astype("float64")
        out[~valid] = np.nan
        return out
    if type_id == _FLOAT:
        precision = type_table.scalar(0, "<h")
        values = _fixed(body, buffers.pop(0), _FLOATS[precision], length).copy()
        if valid is not None:
            values[~valid] = np.nan
        return values
    if type_id in (_TIMESTAMP, _DURATION, _DATE):
        if type_id == _DATE:  # DateUnit: DAY (int32) = 0, MILLISECOND (int64) = 1
            day = type_table.scalar(0, "<h", 1) == 0
            raw, kind = ("<i4", "datetime64[D]") if day else ("<i8", "datetime64[ms]")
        else:
            # TimeUnit: SECOND by default for a Timestamp, MILLISECOND for a Duration
            unit = _TIME_UNITS[type_table.scalar(0, "<h", 0 if type_id == _TIMESTAMP else 1)]
            raw = "<i8"
            kind = f"{'datetime64' if type_id == _TIMESTAMP else 'timedelta64'}[{unit}]"
        values = _fixed(body, buffers.pop(0), raw, length).astype("<i8").view(kind).copy()
        if valid is not None:
            values[~valid] = np.datetime64("NaT") if kind[0] == "d" else np.timedelta64("NaT")
        return values
    raise ArrowFormatError(
        f"column {name!r} has Arrow type {_TYPE_NAMES.get(type_id, type_id)}, which the Python "
        "sandbox does not read"
    )


def _timezone(type_id, type_table):
    return type_table.string(1) if type_id == _TIMESTAMP else None


def read_table(path):
    """``(names, columns, timezones, metadata)``: the columns as numpy arrays, each column's
    time zone (or None) and the schema's key/value metadata."""
    with open(path, "rb") as fh:
        buf = memoryview(fh.read())
    if len(buf) < 18 or bytes(buf[:6]) != MAGIC or bytes(buf[-6:]) != MAGIC:
        raise ArrowFormatError(f"{path}: not an Arrow IPC file (no ARROW1 magic)")
    footer_size = struct.unpack_from("<i", buf, len(buf) - 10)[0]
    footer_at = len(buf) - 10 - footer_size
    if footer_size <= 0 or footer_at < 8:
        raise ArrowFormatError(f"{path}: the footer size is out of range")
    footer = _root(buf, footer_at)
    schema = footer.table(1)
    if schema is None:
        raise ArrowFormatError(f"{path}: the footer has no schema")
    if schema.scalar(0, "<h") != 0:
        raise ArrowFormatError(f"{path}: big-endian Arrow files are not read here")
    fields = [_field_spec(f) for f in schema.tables(1)]
    metadata = {kv.string(0): kv.string(1) for kv in schema.tables(2)}
    if footer.structs(2, "<qi4xq"):
        raise ArrowFormatError(f"{path}: dictionary batches are not read here")
    parts = [[] for _ in fields]
    for offset, meta_len, body_len in footer.structs(3, "<qi4xq"):
        pos = offset
        if struct.unpack_from("<I", buf, pos)[0] == _CONTINUATION:
            pos += 4
        pos += 4  # the flatbuffer's size
        message = _root(buf, pos)
        if message.scalar(1, "<B") != _RECORD_BATCH:
            raise ArrowFormatError(f"{path}: a block is not a record batch")
        batch = message.table(2)
        if batch.table(3) is not None:
            raise ArrowFormatError(f"{path}: compressed record batches are not read here")
        body = buf[offset + meta_len : offset + meta_len + body_len]
        nodes = batch.structs(1, "<qq")
        buffers = [tuple(b) for b in batch.structs(2, "<qq")]
        if len(nodes) != len(fields):
            raise ArrowFormatError(
                f"{path}: a record batch has {len(nodes)} columns, the schema {len(fields)}"
            )
        for k, (name, type_id, type_table) in enumerate(fields):
            parts[k].append(_column(name, type_id, type_table, nodes[k], buffers, body))
    columns = []
    for (name, type_id, type_table), chunks in zip(fields, parts, strict=True):
        if not chunks:  # no record batch at all: an empty column of the right type
            chunks = [_column(name, type_id, type_table, (0, 0), [(0, 0)] * 3, b"")]
        columns.append(chunks[0] if len(chunks) == 1 else np.concatenate(chunks))
    names = [f[0] for f in fields]
    zones = [_timezone(t, tt) for _, t, tt in fields]
    return names, columns, zones, metadata


def _as_pandas(pd, values, tz):
    if tz is not None:
        return pd.DatetimeIndex(values).tz_localize("UTC").tz_convert(tz)
    return values


def read_pandas(path):
    """The DataFrame the host wrote (its index from pandas' metadata, if the file has it)."""
    import pandas as pd

    names, columns, zones, metadata = read_table(path)
    meta = json.loads(metadata.get("pandas") or "{}")
    by_field = {c.get("field_name"): c for c in meta.get("columns") or []}
    index_cols = meta.get("index_columns") or []
    index_fields = [c for c in index_cols if isinstance(c, str)]
    data = {}
    for name, values, tz in zip(names, columns, zones, strict=True):
        if name in index_fields:
            continue
        column = by_field.get(name, {})
        label = column.get("name", name)
        kind = column.get("numpy_type") or ""
        if kind in _NULLABLE:  # pandas' nullable dtypes (Int64, boolean, ...) come back as such
            values = pd.array(values, dtype=kind)
        data[label] = _as_pandas(pd, values, tz)
    position = {name: k for k, name in enumerate(names)}
    index = None
    if len(index_cols) == 1 and isinstance(index_cols[0], str) and index_cols[0] in position:
        k = position[index_cols[0]]
        label = by_field.get(index_cols[0], {}).get("name")
        index = pd.Index(_as_pandas(pd, columns[k], zones[k]), name=label)
    elif len(index_cols) == 1 and isinstance(index_cols[0], dict):
        spec = index_cols[0]
        if spec.get("kind") == "range":
            index = pd.RangeIndex(spec["start"], spec["stop"], spec["step"], name=spec.get("name"))
    elif index_cols:
        arrays = [columns[position[c]] for c in index_fields]
        labels = [by_field.get(c, {}).get("name") for c in index_fields]
        index = pd.MultiIndex.from_arrays(arrays, names=labels)
    return pd.DataFrame(data, index=index)
