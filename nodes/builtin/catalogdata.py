"""``dataset``: bars of a catalog dataset at an exact, content-addressed version.

A step names a dataset (``dataset("us_equities_daily")``, or ``"us_equities_daily@3f2a9c"`` for
a version); the compiler resolves the name to the version's full hash and writes it into the IR
(``version``), so a run records, and a re-run reads, exactly the same bytes. Reads are pruned to
the symbols, columns and dates the step asks for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from nodes.base import (
    OHLCV_COLUMNS,
    DatasetSource,
    Node,
    Port,
    PortType,
    register,
    split_dataset_reference,
)
from nodes.builtin.loaders import _RangeParams
from nodes.errors import DataError, NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["CatalogDataset", "CatalogParams", "CatalogRefParams"]

_FULL_VERSION = re.compile(r"^[0-9a-f]{64}$")


class CatalogRefParams(_RangeParams):
    """What every catalog-reading node's params share: a ``name`` reference
    (``"name[@version]"``, checked) and the exact ``version`` the compiler pins (64 hex digits).
    Subclasses declare the two fields with their own descriptions."""

    @field_validator("name", check_fields=False)
    @classmethod
    def _reference(cls, value: str) -> str:
        split_dataset_reference(value)
        return value

    @field_validator("version", check_fields=False)
    @classmethod
    def _full_hash(cls, value: str | None) -> str | None:
        if value is not None and not _FULL_VERSION.match(value):
            raise ValueError("version must be a full version hash: 64 lower-case hex digits")
        return value


class CatalogParams(CatalogRefParams):
    """Params of ``dataset``."""

    name: str = Field(
        min_length=1,
        description='The dataset, optionally at a version: "us_equities_daily" (the latest) or '
        '"us_equities_daily@3f2a9c" (a version hash or a unique prefix of it).',
    )
    version: str | None = Field(
        None,
        description="The exact version (64 hex digits). The compiler fills it in from the "
        "name; give it only to pin a version by hand.",
    )
    symbols: list[str] | None = Field(
        None, min_length=1, description="Keep only these symbols (default: all of them)."
    )
    columns: list[str] | None = Field(
        None,
        min_length=1,
        description="Extra columns to read besides ts, symbol and open/high/low/close/volume "
        "(default: every column the dataset has).",
    )


@register
class CatalogDataset(Node):
    """OHLCV bars of a catalog dataset, at an exact version, pruned to what the step asks for.

    ``dataset("us_equities_daily")`` reads the latest version when the pipeline is compiled;
    ``dataset("us_equities_daily@3f2a9c")`` a given one. The compiler writes the full version
    hash into the IR, so the run records exactly which data it used and re-running the same IR
    reads the same bytes, whatever was imported since. With ``symbols``, ``start``/``end`` and
    ``columns`` only those partitions, rows and columns are read. Several symbols give a panel
    (one row per symbol and bar, sorted by time then symbol); indicators then run per symbol.
    """

    name = "dataset"
    category = "data"
    summary = "OHLCV bars of a catalog dataset, at an exact version"
    outputs = (
        Port("bars", PortType.OHLCV, "bars by UTC timestamp (and symbol, for several symbols)"),
    )
    params_model = CatalogParams
    positional_param = "name"
    panel = "native"

    def _catalog(self) -> DatasetSource:
        if self.ctx.catalog is None:
            raise NodeError(
                "no dataset catalog is set up for this run: dataset(...) reads the catalog "
                "(ALPHAFORGE_CATALOG_URL, or the store's catalog/ folder); import data with "
                "`alphaforge data import`"
            )
        return self.ctx.catalog

    def _version(self, params: CatalogParams) -> str:
        if params.version is not None:
            return params.version
        name, version = split_dataset_reference(params.name)
        return self._catalog().resolve(name, version)

    def run(self, inputs: Mapping[str, Any], params: CatalogParams) -> dict[str, Any]:
        """Read the version's pruned bars."""
        name, _ = split_dataset_reference(params.name)
        version = self._version(params)
        source = f"dataset {name!r} version {version[:12]}"
        columns = None
        if params.columns is not None:
            columns = list(dict.fromkeys([*OHLCV_COLUMNS, *params.columns]))
        bars = self._catalog().read(
            version,
            symbols=params.symbols,
            columns=columns,
            start=_utc_bound(params.start, end=False),
            end=_utc_bound(params.end, end=True),
        )
        if len(bars) == 0:
            raise DataError("EMPTY", "no bars in the range asked for", source=source)
        count = bars["symbol"].nunique() if "symbol" in bars.columns else 1
        self.ctx.log(
            f"{source}: {len(bars)} bars of {count} symbol(s) from {bars.index[0]} to "
            f"{bars.index[-1]}"
        )
        return {"bars": bars}

    def fingerprint(self, params: CatalogParams) -> str:
        """``catalog:<version hash>``: the data's identity (the run record's dataset
        version)."""
        return f"catalog:{self._version(params)}"


def _utc_bound(when: date | datetime | None, *, end: bool) -> pd.Timestamp | None:
    """An inclusive UTC bound: a date means that day's start (``start``) or its last instant
    (``end``); a naive time is UTC."""
    if when is None:
        return None
    if not isinstance(when, datetime):
        day = datetime.combine(when, time())
        stamp = pd.Timestamp(day + timedelta(days=1)) - pd.Timedelta(1, "ns") if end else None
        when = day if stamp is None else stamp
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
