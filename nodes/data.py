"""Reading and validating OHLCV bars into the canonical frame, at the door.

The canonical frame: a ``DatetimeIndex`` named ``ts`` in UTC (nanoseconds), float64 columns
``open, high, low, close, volume`` and, when the file has one, a string column ``symbol``. A file
without a volume column (or with only blanks in it) is accepted: its ``volume`` is all NaN
(:func:`volume_missing`); a volume column with some values must have all of them. Rows
keep the file's order: nothing is dropped, reordered or repaired. Bad data raises
:class:`~nodes.errors.DataError` with a stable ``kind``, the file and the row.

Row numbers are what a user sees: for a CSV file the 1-based line number in an editor (the header
is line 1, the first bar line 2; one record per line is assumed, as OHLCV files have); for Parquet
and in-memory frames the 1-based position of the row among the data rows.

Used by the loader nodes and by the web API's dataset upload.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nodes.base import OHLCV_COLUMNS
from nodes.errors import DataError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = [
    "PRICE_COLUMNS",
    "TIMESTAMP_ALIASES",
    "VOLUME_MISSING_NOTE",
    "check_timezone",
    "file_sha256",
    "filter_range",
    "iter_ohlcv_csv",
    "read_ohlcv_csv",
    "read_ohlcv_parquet",
    "require_volume",
    "select_symbol",
    "validate_ohlcv",
    "volume_missing",
]

TIMESTAMP_ALIASES: tuple[str, ...] = ("ts", "timestamp", "date", "datetime", "time")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")

PathOrBuffer = str | Path | IO[bytes] | IO[str]
# A UTC offset after a time of day: "...09:30Z", "...09:30:00.5+02:00", "...0930 -0500".
_OFFSET_RE = r"\d:?\d{2}(?::?\d{2}(?:\.\d*)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"


def check_timezone(timezone: str) -> ZoneInfo:
    """The IANA time zone called ``timezone``; raises ``DataError`` (``BAD_TIMEZONE``)."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError("BAD_TIMEZONE", f"unknown time zone {timezone!r}") from None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (the dataset version in artifact keys and run records)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_ohlcv_csv(
    path_or_buffer: PathOrBuffer, *, source: str | None = None, timezone: str = "UTC"
) -> pd.DataFrame:
    """Read and validate an OHLCV CSV file into the canonical frame.

    ``source`` names the file in error messages (default: the path). Naive timestamps are taken
    to be in ``timezone`` and converted to UTC. Error rows are 1-based line numbers as an editor
    shows them (header = line 1). Trailing blank lines are ignored; a blank line between bars is
    an error. Raises :class:`DataError`.
    """
    src = _source_name(path_or_buffer, source)
    _check_exists(path_or_buffer, src)
    if not isinstance(path_or_buffer, str | Path):
        path_or_buffer = io.BytesIO(_read_bytes(path_or_buffer))
    try:
        with warnings.catch_warnings():
            # pandas only warns (and drops fields) when the first bar has more fields than the
            # header; without index_col=False it would silently turn column 1 into the index.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(
                path_or_buffer,
                dtype=_csv_dtypes(path_or_buffer),
                skip_blank_lines=False,
                index_col=False,
                encoding="utf-8-sig",  # spreadsheet exports often start with a byte-order mark
            )
    except pd.errors.ParserWarning:
        row = _first_long_row(path_or_buffer)
        msg = "the row has more fields than the header"
        raise DataError("MALFORMED_CSV", msg, source=src, row=row) from None
    except pd.errors.EmptyDataError:
        raise DataError("EMPTY", "the file is empty", source=src) from None
    except pd.errors.ParserError as exc:
        match = re.search(r"line (\d+)", str(exc))
        row = int(match.group(1)) if match else None
        msg = _first_line(str(exc)).removeprefix("Error tokenizing data. C error: ")
        raise DataError("MALFORMED_CSV", msg, source=src, row=row) from None
    except UnicodeDecodeError as exc:
        raise DataError("MALFORMED_CSV", f"not UTF-8 text ({exc.reason})", source=src) from None
    return validate_ohlcv(_trim_trailing_blank(raw), src, timezone=timezone, first_row=2)


CSV_CHUNK_ROWS = 200_000


def iter_ohlcv_csv(
    path: str | Path,
    *,
    source: str | None = None,
    timezone: str = "UTC",
    chunk_rows: int | None = None,
    rename: dict[str, str] | None = None,
    keep_extra: bool = False,
) -> Iterator[pd.DataFrame]:
    """:func:`read_ohlcv_csv` of a file, as canonical frames of at most ``chunk_rows`` bars:
    memory grows with ``chunk_rows``, not with the file (an upload of any size).

    The same checks and row numbers: each chunk is validated with its first line's number;
    the order across chunks is checked where they meet (per symbol); blank lines are allowed
    only at the end. When a file has several errors, the one reported is the first in the
    first chunk that has one (a single-chunk file reports exactly what
    :func:`read_ohlcv_csv` does). ``chunk_rows`` defaults to :data:`CSV_CHUNK_ROWS`.
    ``rename`` renames the file's columns before the checks (the catalog's ``--symbol-col``);
    ``keep_extra`` is :func:`validate_ohlcv`'s. Raises :class:`DataError` while iterating.
    """
    src = _source_name(path, source)
    _check_exists(path, src)
    check_timezone(timezone)
    with _csv_errors(path, src):
        reader = pd.read_csv(
            path,
            dtype=_csv_dtypes(path),
            skip_blank_lines=False,
            index_col=False,
            encoding="utf-8-sig",
            chunksize=chunk_rows or CSV_CHUNK_ROWS,
        )
    last: dict[Any, tuple[int, int]] = {}  # symbol (None: no symbol column) -> (ts, row)
    held: pd.DataFrame | None = None  # blank rows at a chunk's end: an error if bars follow
    header: pd.DataFrame | None = None
    first_row = 2  # the line number of the next chunk's first row
    with reader:
        while True:
            raw = _next_chunk(reader, path, src)
            if raw is None:
                break
            if rename:
                raw = raw.rename(columns=rename)
            if header is None:
                header = raw.iloc[:0]
            if held is not None:
                first_row -= len(held)
                raw = pd.concat([held, raw], ignore_index=True)
            trimmed = _trim_trailing_blank(raw)
            held = raw.iloc[len(trimmed) :] if len(trimmed) < len(raw) else None
            if len(trimmed) == 0:
                first_row += len(raw)
                continue
            out = validate_ohlcv(
                trimmed, src, timezone=timezone, first_row=first_row, keep_extra=keep_extra
            )
            _check_chunk_order(out, last, src, first_row)
            first_row += len(raw)
            yield out
    if not last:  # no bar at all: the whole-file check says why (missing columns, empty)
        validate_ohlcv(header if header is not None else pd.DataFrame(), src, timezone=timezone)


def _next_chunk(reader: Any, path: str | Path, src: str) -> pd.DataFrame | None:
    with _csv_errors(path, src):
        try:
            return next(reader)  # type: ignore[no-any-return]
        except StopIteration:
            return None


@contextmanager
def _csv_errors(path: str | Path, src: str) -> Iterator[None]:
    """pandas' errors reading a CSV as :class:`DataError` (as :func:`read_ohlcv_csv` words
    them)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            yield
    except pd.errors.ParserWarning:
        row = _first_long_row(path)
        msg = "the row has more fields than the header"
        raise DataError("MALFORMED_CSV", msg, source=src, row=row) from None
    except pd.errors.EmptyDataError:
        raise DataError("EMPTY", "the file is empty", source=src) from None
    except pd.errors.ParserError as exc:
        match = re.search(r"line (\d+)", str(exc))
        row = int(match.group(1)) if match else None
        msg = _first_line(str(exc)).removeprefix("Error tokenizing data. C error: ")
        raise DataError("MALFORMED_CSV", msg, source=src, row=row) from None
    except UnicodeDecodeError as exc:
        raise DataError("MALFORMED_CSV", f"not UTF-8 text ({exc.reason})", source=src) from None


def _check_chunk_order(
    out: pd.DataFrame, last: dict[Any, tuple[int, int]], source: str, first_row: int
) -> None:
    """Each symbol's first bar in ``out`` comes after its last bar of the chunks before (as
    :func:`_check_order` words it); then remember each symbol's last bar."""
    ts = out.index.asi8
    if "symbol" in out.columns:
        keys = out["symbol"].to_numpy(dtype=object)
        names, first = np.unique(keys, return_index=True)
        _, from_end = np.unique(keys[::-1], return_index=True)
        final = len(keys) - 1 - from_end
    else:
        names, first, final = np.array([None]), np.array([0]), np.array([len(ts) - 1])
    bad = [
        (int(pos), key)
        for key, pos in zip(names, first, strict=True)
        if key in last and ts[pos] <= last[key][0]
    ]
    if bad:
        pos, key = min(bad, key=lambda b: b[0])
        prev_ts, prev_row = last[key]
        when = pd.Timestamp(int(ts[pos]), tz="UTC")
        where = f" for symbol {key!r}" if key is not None else ""
        if ts[pos] == prev_ts:
            msg = f"{when} already appears on row {prev_row}{where}"
            raise DataError("DUPLICATE_TIMESTAMP", msg, source=source, row=first_row + pos)
        msg = f"{when} comes before the previous row's {pd.Timestamp(prev_ts, tz='UTC')}{where}"
        raise DataError("UNSORTED", msg, source=source, row=first_row + pos)
    for key, pos in zip(names, final, strict=True):
        last[key] = (int(ts[pos]), first_row + int(pos))


def read_ohlcv_parquet(
    path_or_buffer: PathOrBuffer, *, source: str | None = None, timezone: str = "UTC"
) -> pd.DataFrame:
    """Read and validate an OHLCV Parquet file into the canonical frame.

    The timestamps may be a column (one of the accepted names) or the index. Error rows are the
    1-based position of the row in the file. Raises :class:`DataError`.
    """
    src = _source_name(path_or_buffer, source)
    _check_exists(path_or_buffer, src)
    try:
        raw = pd.read_parquet(path_or_buffer)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError("MALFORMED_PARQUET", f"cannot read Parquet: {exc}", source=src) from None
    return validate_ohlcv(raw, src, timezone=timezone)


def validate_ohlcv(
    df: pd.DataFrame,
    source: str,
    *,
    timezone: str = "UTC",
    first_row: int = 1,
    keep_extra: bool = False,
) -> pd.DataFrame:
    """Validate a raw table of bars and return the canonical frame (a new frame).

    Column names are matched case-insensitively; the timestamp column may be called ``ts``,
    ``timestamp``, ``date``, ``datetime`` or ``time``, be a nameless first column (as pandas
    writes an unnamed index) or be a ``DatetimeIndex``. Other columns are not carried over,
    unless ``keep_extra`` (the catalog keeps them): then they follow, unchecked and as read,
    named as in the file (stripped). ``first_row`` is the number reported for the table's first
    row.

    ``volume`` may be absent (then all NaN). Checks, in this order, each reporting the first
    offending row: MISSING_COLUMNS /
    AMBIGUOUS_COLUMNS, EMPTY, UNPARSEABLE_TIMESTAMP (incl. a mix of naive and offset-carrying
    timestamps, and local times that do not exist in ``timezone``), UNPARSEABLE_NUMBER,
    NAN_PRICE (missing or non-finite), NAN_VOLUME, MISSING_SYMBOL, NON_POSITIVE_PRICE,
    NEGATIVE_VOLUME, HIGH_BELOW_LOW, PRICE_OUTSIDE_RANGE (open or close outside [low, high]),
    UNSORTED and DUPLICATE_TIMESTAMP (within each symbol when there is a symbol column).
    """
    tz = check_timezone(timezone)
    table = _with_ts_column(df)
    cols = _resolve_columns(table, source)
    if len(table) == 0:
        raise DataError("EMPTY", "no bars", source=source)
    ts = _parse_timestamps(table[cols["ts"]], tz, source, first_row)
    values = {c: _parse_numbers(table[cols[c]], c, source, first_row) for c in PRICE_COLUMNS}
    values["volume"] = (
        _parse_numbers(table[cols["volume"]], "volume", source, first_row)
        if "volume" in cols
        else np.full(len(table), np.nan)
    )
    symbol = None
    if "symbol" in cols:
        symbol = table[cols["symbol"]].astype("str").str.strip()
        _fail_first(symbol.isna().to_numpy(), "MISSING_SYMBOL", "no symbol", source, first_row)
    _check_values(values, source, first_row)
    _check_order(ts, symbol, source, first_row)
    out = pd.DataFrame(values, index=pd.DatetimeIndex(ts, name="ts").tz_localize("UTC"))
    if symbol is not None:
        out["symbol"] = symbol.to_numpy()
    if keep_extra:
        used = set(cols.values())
        for col in table.columns:
            if col not in used and str(col).strip() not in out.columns:
                out[str(col).strip()] = table[col].to_numpy()
    return out


def volume_missing(bars: pd.DataFrame) -> bool:
    """True when the bars carry no volume: the file had no volume column (or only blanks), so
    the canonical frame's ``volume`` is all missing (NaN)."""
    return "volume" not in bars.columns or bool(bars["volume"].isna().all())


VOLUME_MISSING_NOTE = "no volume column: volume is missing"


def require_volume(column: str | None, values: Any, where: str) -> None:
    """Refuse to hand an all-missing ``volume`` column (``data.volume`` of bars without volume)
    to a node: it would compute on NaN. Raises ``DataError`` (``MISSING_VOLUME``)."""
    if column != "volume" or len(values) == 0 or not bool(pd.isna(values).all()):
        return
    msg = (
        f"{where} uses volume, but these bars have no volume column (volume is missing); "
        "upload the data with a volume column or use a price column such as close"
    )
    raise DataError("MISSING_VOLUME", msg)


def select_symbol(df: pd.DataFrame, symbol: str | None, source: str) -> pd.DataFrame:
    """One symbol's bars (the rows of ``symbol``, or all rows labelled with it if the data has
    no symbol column), or, without ``symbol``, every symbol's: a data set of several symbols
    then becomes a long panel (:mod:`nodes.panel`), its rows sorted by (ts, symbol).

    Raises ``UNKNOWN_SYMBOL`` for a ``symbol`` the data does not hold.
    """
    if "symbol" not in df.columns:
        if symbol is None:
            return df
        return df.assign(symbol=pd.Series(symbol, index=df.index, dtype="str"))
    if symbol is None:
        return _panel_order(df)
    keep = df["symbol"].to_numpy() == symbol
    if not keep.any():
        present = sorted(df["symbol"].unique().tolist())
        shown = ", ".join(present[:10]) + (", ..." if len(present) > 10 else "")
        raise DataError("UNKNOWN_SYMBOL", f"no bars for {symbol!r} (has: {shown})", source=source)
    return df[keep]


def _panel_order(df: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by (ts, symbol) (as they are when already so: no copy)."""
    if len(df) < 2:
        return df
    codes, _ = pd.factorize(df["symbol"], sort=True)
    ts = df.index.asi8
    ordered = (ts[1:] > ts[:-1]) | ((ts[1:] == ts[:-1]) & (codes[1:] > codes[:-1]))
    if ordered.all():
        return df
    return df.take(np.lexsort((codes, ts)))


def filter_range(
    df: pd.DataFrame,
    start: date | datetime | None,
    end: date | datetime | None,
    *,
    timezone: str = "UTC",
    source: str,
) -> pd.DataFrame:
    """Bars with ``start <= ts <= end`` (both optional, both inclusive).

    A date means the whole day: ``end=2020-12-31`` keeps that day's bars. Naive dates and times
    are in ``timezone``. Raises ``EMPTY`` when no bar is left.
    """
    if start is None and end is None:
        return df
    tz = check_timezone(timezone)
    mask = np.ones(len(df), dtype=bool)
    if start is not None:
        mask &= df.index >= _bound(start, tz)
    if end is not None:
        if isinstance(end, datetime):
            mask &= df.index <= _bound(end, tz)
        else:
            mask &= df.index < _bound(end + timedelta(days=1), tz)
    if not mask.any():
        raise DataError("EMPTY", f"no bars between {start} and {end}", source=source)
    return df[mask]


# -- helpers --------------------------------------------------------------------------------


def _source_name(path_or_buffer: Any, source: str | None) -> str:
    if source is not None:
        return source
    if isinstance(path_or_buffer, str | Path):
        return str(path_or_buffer)
    return str(getattr(path_or_buffer, "name", "<upload>"))


def _check_exists(path_or_buffer: Any, source: str) -> None:
    if isinstance(path_or_buffer, str | Path) and not Path(path_or_buffer).is_file():
        raise DataError("FILE_NOT_FOUND", "no such file", source=source)


def _read_bytes(buffer: Any) -> bytes:
    data = buffer.read()
    return data.encode("utf-8") if isinstance(data, str) else data


def _csv_dtypes(path_or_buffer: str | Path | io.BytesIO) -> Any:
    """``dtype`` for reading the CSV: text for every column except the OHLCV ones.

    The OHLCV columns are left to the C parser, which converts a column of plain numbers
    exactly (correctly rounded, as ``float()``) and ~20x faster than text then
    ``pd.to_numeric`` (1M bars: 0.2 s instead of 4 s); a column with anything else in it comes
    back as text and :func:`_parse_numbers` finds and names the bad row as before. Timestamps
    and symbols stay text (``"20240131"`` is a date, ``"007"`` a symbol, not numbers). Reads
    only the header; if even that fails, everything is text and the full read raises the error.
    """
    numeric = {name.lower() for name in OHLCV_COLUMNS}
    try:
        header = pd.read_csv(path_or_buffer, nrows=0, index_col=False, encoding="utf-8-sig")
    except Exception:  # the full read below reports it, with the row
        return str
    finally:
        if isinstance(path_or_buffer, io.BytesIO):
            path_or_buffer.seek(0)
    return {c: str for c in header.columns if str(c).strip().lower() not in numeric}


def _first_long_row(path_or_buffer: str | Path | io.BytesIO) -> int | None:
    """Line number of the first record with more fields than the header (error path only)."""
    if isinstance(path_or_buffer, io.BytesIO):
        path_or_buffer.seek(0)
        data = path_or_buffer.read()
    else:
        data = Path(path_or_buffer).read_bytes()
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    width = len(next(reader, []))
    for record in reader:
        if len(record) > width:
            return reader.line_num
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _trim_trailing_blank(raw: pd.DataFrame) -> pd.DataFrame:
    filled = raw.notna().any(axis=1).to_numpy()
    last = int(np.flatnonzero(filled)[-1]) + 1 if filled.any() else 0
    return raw.iloc[:last]


def _with_ts_column(df: pd.DataFrame) -> pd.DataFrame:
    lowered = {str(c).strip().lower() for c in df.columns}
    if isinstance(df.index, pd.DatetimeIndex) and not lowered & set(TIMESTAMP_ALIASES):
        return df.reset_index(names=df.index.name or "ts")
    return df.reset_index(drop=True)


def _resolve_columns(df: pd.DataFrame, source: str) -> dict[str, Any]:
    by_name: dict[str, list[Any]] = {}
    for col in df.columns:
        by_name.setdefault(str(col).strip().lower(), []).append(col)
    found: dict[str, Any] = {}
    ts_cols = [c for alias in TIMESTAMP_ALIASES for c in by_name.get(alias, [])]
    if len(ts_cols) > 1:
        msg = f"several timestamp columns {ts_cols}; keep one of {list(TIMESTAMP_ALIASES)}"
        raise DataError("AMBIGUOUS_COLUMNS", msg, source=source)
    if ts_cols:
        found["ts"] = ts_cols[0]
    elif len(df.columns) and str(df.columns[0]) in ("", "Unnamed: 0"):
        found["ts"] = df.columns[0]  # a CSV written from a frame with an unnamed time index
    for name in (*OHLCV_COLUMNS, "symbol"):
        cols = by_name.get(name, [])
        if len(cols) > 1:
            raise DataError("AMBIGUOUS_COLUMNS", f"several {name!r} columns {cols}", source=source)
        if cols:
            found[name] = cols[0]
    missing = [n for n in ("ts", *PRICE_COLUMNS) if n not in found]  # volume is optional
    if missing:
        need = ["ts (or timestamp/date/datetime/time)" if m == "ts" else m for m in missing]
        have = ", ".join(map(str, df.columns)) or "none"
        msg = f"missing column(s) {', '.join(need)}; the file has: {have}"
        raise DataError("MISSING_COLUMNS", msg, source=source)
    return found


def _fail_first(bad: np.ndarray, kind: str, message: str, source: str, first_row: int) -> None:
    if bad.any():
        pos = int(np.argmax(bad))
        raise DataError(kind, message, source=source, row=first_row + pos)


def _parse_timestamps(col: pd.Series, tz: ZoneInfo, source: str, first_row: int) -> np.ndarray:
    """UTC nanosecond timestamps of a column of strings or datetimes."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        parsed = pd.DatetimeIndex(col)
    elif pd.api.types.is_datetime64_dtype(col.dtype):
        parsed = _localize(pd.DatetimeIndex(col), tz, source, first_row)
    elif pd.api.types.is_numeric_dtype(col.dtype):
        msg = "timestamps are numbers; write them as ISO 8601 text (2024-01-31T09:30:00Z)"
        raise DataError("UNPARSEABLE_TIMESTAMP", msg, source=source, row=first_row)
    else:
        text = col.astype("str").str.strip()
        missing = text.isna() | (text == "")
        msg = "empty timestamp"
        _fail_first(missing.to_numpy(), "UNPARSEABLE_TIMESTAMP", msg, source, first_row)
        aware = _has_offset(text)
        mixed = aware != aware[0]
        msg = "mixes timestamps with and without a UTC offset"
        _fail_first(mixed, "UNPARSEABLE_TIMESTAMP", msg, source, first_row)
        parsed = _parse_text(text, bool(aware[0]), source, first_row)
        if not aware[0]:
            parsed = _localize(parsed, tz, source, first_row)
    return parsed.tz_convert("UTC").as_unit("ns").to_numpy(dtype="datetime64[ns]")


def _has_offset(text: pd.Series) -> np.ndarray:
    """Which (stripped, non-missing) timestamp texts end with a UTC offset.

    On Arrow-backed text (pandas' default ``str``) through Arrow's vectorised regex: pandas
    would run Python's ``re`` once per row (1M bars: 4-6 s, against 0.05 s).
    """
    arrow = getattr(text.array, "__arrow_array__", None)
    if arrow is not None:
        import pyarrow.compute as pc

        found = pc.match_substring_regex(arrow(), _OFFSET_RE)
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
    return text.str.contains(_OFFSET_RE, regex=True).to_numpy(dtype=bool)


def _parse_text(text: pd.Series, aware: bool, source: str, first_row: int) -> pd.DatetimeIndex:
    best: pd.DatetimeIndex | None = None
    for fmt in ("ISO8601", None):
        attempt = pd.DatetimeIndex(pd.to_datetime(text, format=fmt, errors="coerce", utc=aware))
        if best is None or attempt.isna().sum() < best.isna().sum():
            best = attempt
        if not best.isna().any():
            return best
    assert best is not None
    pos = int(np.argmax(best.isna()))
    msg = f"cannot read {text.iloc[pos]!r} as a timestamp (use ISO 8601, e.g. 2024-01-31 09:30)"
    raise DataError("UNPARSEABLE_TIMESTAMP", msg, source=source, row=first_row + pos)


def _localize(
    naive: pd.DatetimeIndex, tz: ZoneInfo, source: str, first_row: int
) -> pd.DatetimeIndex:
    try:
        return naive.tz_localize(tz, ambiguous="infer", nonexistent="raise")
    except Exception:  # ambiguous or nonexistent wall-clock times: find the first one
        marked = naive.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        pos = int(np.argmax(marked.isna())) if marked.isna().any() else 0
        msg = f"{naive[pos]} is not a unique local time in {tz.key} (a daylight-saving change)"
        raise DataError("UNPARSEABLE_TIMESTAMP", msg, source=source, row=first_row + pos) from None


def _parse_numbers(col: pd.Series, name: str, source: str, first_row: int) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    text = col.astype("str").str.strip()
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    blank = (text.isna() | (text == "")).to_numpy()
    unparseable = np.isnan(numbers) & ~blank & ~text.str.lower().isin(["nan", "na", "null"])
    if unparseable.any():
        pos = int(np.argmax(unparseable))
        msg = f"{name} {text.iloc[pos]!r} is not a number"
        raise DataError("UNPARSEABLE_NUMBER", msg, source=source, row=first_row + pos)
    return numbers


def _check_values(values: dict[str, np.ndarray], source: str, first_row: int) -> None:
    o, h, lo, c, v = (values[k] for k in OHLCV_COLUMNS)
    for name in PRICE_COLUMNS:
        msg = f"{name} is missing or not finite"
        _fail_first(~np.isfinite(values[name]), "NAN_PRICE", msg, source, first_row)
    if not np.isnan(v).all():  # no volume at all is allowed (see volume_missing); gaps are not
        msg = "volume is missing or not finite (leave the whole volume column out if there is none)"
        _fail_first(~np.isfinite(v), "NAN_VOLUME", msg, source, first_row)
    for name in PRICE_COLUMNS:
        msg = f"{name} is zero or negative"
        _fail_first(values[name] <= 0, "NON_POSITIVE_PRICE", msg, source, first_row)
    _fail_first(v < 0, "NEGATIVE_VOLUME", "volume is negative", source, first_row)
    _fail_first(h < lo, "HIGH_BELOW_LOW", "high is below low", source, first_row)
    outside = (o > h) | (o < lo) | (c > h) | (c < lo)
    msg = "open or close lies outside [low, high]"
    _fail_first(outside, "PRICE_OUTSIDE_RANGE", msg, source, first_row)


def _check_order(ts: np.ndarray, symbol: pd.Series | None, source: str, first_row: int) -> None:
    """First row whose timestamp is not after the previous row's (of the same symbol)."""
    if symbol is None:
        order = np.arange(len(ts))
    else:
        order = np.argsort(symbol.to_numpy(dtype=object), kind="stable")
    t = ts[order].view("int64")
    same = np.ones(len(t) - 1, dtype=bool) if symbol is None else _same_neighbours(symbol, order)
    step = np.diff(t)
    bad_rows = order[1:][same & (step <= 0)]
    if len(bad_rows) == 0:
        return
    pos = int(bad_rows.min())
    prev_pos = int(order[np.flatnonzero(order == pos)[0] - 1])
    when = pd.Timestamp(ts[pos], tz="UTC")
    where = f" for symbol {symbol.iloc[pos]!r}" if symbol is not None else ""
    if ts[pos] == ts[prev_pos]:
        msg = f"{when} already appears on row {first_row + prev_pos}{where}"
        raise DataError("DUPLICATE_TIMESTAMP", msg, source=source, row=first_row + pos)
    msg = f"{when} comes before the previous row's {pd.Timestamp(ts[prev_pos], tz='UTC')}{where}"
    raise DataError("UNSORTED", msg, source=source, row=first_row + pos)


def _same_neighbours(symbol: pd.Series, order: np.ndarray) -> np.ndarray:
    sym = symbol.to_numpy(dtype=object)[order]
    return sym[1:] == sym[:-1]


def _bound(when: date | datetime, tz: ZoneInfo) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(tz)
    return stamp.tz_convert("UTC")
