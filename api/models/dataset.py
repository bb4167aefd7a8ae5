"""Uploaded OHLCV datasets: validated at the door, stored as Parquet under a generated key."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey, Index, Integer, Text, text
from sqlmodel import Field, SQLModel

from api.models.common import timestamp_field

# New datasets' names (older ones may also hold '.' or start with a digit: they keep them)
DATASET_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
DATASET_NAME_MAX = 64
DATASET_NAME_RULE = (
    "Dataset names use letters, digits, '_' and '-', start with a letter, at most "
    f"{DATASET_NAME_MAX} characters, e.g. goog_daily"
)


class DatasetBase(SQLModel):
    """Fields every dataset representation shares."""

    name: str = Field(max_length=100)
    rows: int
    start: datetime | None = timestamp_field(nullable=True)
    end: datetime | None = timestamp_field(nullable=True)
    sha256: str = Field(max_length=64)


class Dataset(DatasetBase, table=True):
    """A stored dataset. ``storage_key`` names its file; users never choose a path."""

    __tablename__ = "datasets"
    __table_args__ = (
        Index(
            "uq_datasets_owner_name_live",
            "owner_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id"), nullable=False, index=True)
    )
    # the Parquet file dataset_ohlcv reads (``datasets/<key>.parquet``); a dataset imported
    # into the catalog only (``alphaforge data import --owner``) has a ``catalog-`` key, no file
    storage_key: str = Field(max_length=64, unique=True)
    columns_json: str = Field(sa_type=Text)
    # its latest catalog version (``dataset("name")`` reads it); None: uploaded before the catalog
    catalog_version: str | None = Field(default=None, max_length=64)
    symbols_json: str | None = Field(default=None, sa_type=Text)  # the latest version's symbols
    version_count: int = 0
    # what its latest version holds: "bars" (OHLCV) or "ticks" (order-book events)
    kind: str = Field(default="bars", max_length=16, sa_column_kwargs={"server_default": "bars"})
    created_at: datetime = timestamp_field()
    deleted_at: datetime | None = timestamp_field(nullable=True)


DatasetKind = Literal["bars", "ticks"]


class DatasetPublic(BaseModel):
    """A dataset as the API shows it."""

    id: int
    name: str
    rows: int
    start: datetime | None
    end: datetime | None
    columns: list[str]
    sha256: str
    created_at: datetime
    owner: str = ""
    can_edit: bool = False  # the caller may delete it
    can_manage: bool = False  # the caller may also share it with teams
    notes: list[str] = []  # e.g. "no volume column: volume is missing"
    version: str | None = None  # the latest catalog version (None: not in the catalog)
    symbols: list[str] = []  # of the latest version
    versions: int = 0  # how many catalog versions the name has
    kind: DatasetKind = "bars"  # of the latest version: bars, or ticks (order-book events)


class SymbolRange(BaseModel):
    """One symbol of a catalog version: its bars' count and time range."""

    symbol: str
    rows: int
    start: datetime
    end: datetime


class TickSymbolSummary(BaseModel):
    """One symbol of a tick version: its events (book rows and trades), first and last event
    (exchange time), price range, tick and lot size (None: not recorded)."""

    symbol: str
    events: int
    depth: int
    trades: int
    start: datetime
    end: datetime
    tick_size: float | None
    lot_size: float | None
    px_min: float | None
    px_max: float | None


class TickSummary(BaseModel):
    """What a tick (order-book) version holds, from its manifest."""

    events: int
    start: datetime | None
    end: datetime | None
    symbols: list[TickSymbolSummary]


class DatasetVersionPublic(BaseModel):
    """A catalog version of a dataset: immutable, named by the hash of its content. A tick
    version (``kind`` "ticks") counts events in ``rows`` and has a ``ticks`` summary; it has
    no candles and no preview."""

    version: str
    short: str
    created_at: datetime
    message: str
    rows: int
    bytes: int
    columns: list[str]
    start: datetime | None
    end: datetime | None
    symbols: list[SymbolRange]
    sources: list[dict[str, Any]]
    latest: bool = False
    kind: DatasetKind = "bars"
    ticks: TickSummary | None = None


class DatasetVersionDetail(DatasetVersionPublic):
    """A version with the validation report written when it was imported."""

    report: dict[str, Any]


class Candles(BaseModel):
    """Bars of one symbol of a version, for a chart: parallel arrays, times in epoch seconds."""

    symbol: str
    version: str
    t: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float | None]
    truncated: bool  # more bars exist in the range than were sent (the last ``limit`` are)


class DatasetPreview(BaseModel):
    """The first rows of a dataset."""

    columns: list[str]
    rows: list[list[Any]]


class DataErrorDetail(BaseModel):
    """Why an upload was refused: the validator's named error kind and the row."""

    message: str
    kind: str
    row: int | None
