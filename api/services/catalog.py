"""Datasets in the catalog, as the web app sees them.

Each user's datasets live in the catalog namespace ``u<user id>`` (ids never change; user names
may). A dataset row (owner, name, sharing) is what access control reads; its catalog name holds
the versions. Names that exist in a user's namespace without a row (imported with
``alphaforge data import --owner``) get one when the user lists their datasets.

Pipelines name datasets by name: :class:`OwnerDatasetResolver` resolves ``dataset("x@v")`` over
exactly the datasets the pipeline's owner may read (their own, then those shared with a team of
theirs), so the compiler writes only versions the owner may read into an IR.
"""

from __future__ import annotations

import difflib
import json
import secrets
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from api.errors import NotFound, Unprocessable
from api.models.dataset import (
    Candles,
    Dataset,
    DatasetVersionDetail,
    DatasetVersionPublic,
    SymbolRange,
)
from api.models.user import User
from api.services import audit
from api.settings import ApiSettings
from catalog import Catalog, CatalogError, VersionInfo
from dsl.catalogref import CATALOG_NODES, DatasetLookupError, floating_steps
from dsl.ir import PipelineIR
from flows.catalog import open_catalog
from nodes.base import split_dataset_reference

__all__ = [
    "OwnerDatasetResolver",
    "candles",
    "catalog_of",
    "follow_map",
    "namespace_of",
    "pin_catalog_versions",
    "sync_namespace",
    "version_detail",
    "versions",
]

MAX_CANDLES = 5000


def namespace_of(owner_id: int) -> str:
    """The catalog namespace of a user's datasets."""
    return f"u{owner_id}"


def catalog_of(settings: ApiSettings) -> Catalog:
    """The configured catalog (opened once per process and location)."""
    return open_catalog(settings)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def version_public(info: VersionInfo, latest: str | None = None) -> DatasetVersionPublic:
    """A catalog version as the API shows it."""
    return DatasetVersionPublic(
        version=info.version,
        short=info.short(),
        created_at=_utc(info.created_at),
        message=info.message,
        rows=info.rows,
        bytes=info.bytes,
        columns=list(info.columns),
        start=_utc(info.start) if info.start else None,
        end=_utc(info.end) if info.end else None,
        symbols=[
            SymbolRange(symbol=s.symbol, rows=s.rows, start=_utc(s.start), end=_utc(s.end))
            for s in info.symbols
        ],
        sources=[dict(s) for s in info.sources],
        latest=info.version == latest,
    )


def _catalog_name(dataset: Dataset) -> tuple[str, str]:
    return namespace_of(dataset.owner_id), dataset.name


def require_catalog(dataset: Dataset) -> str:
    """The dataset's latest version; 422 for a dataset uploaded before the catalog."""
    if dataset.catalog_version is None:
        raise Unprocessable(
            f"dataset {dataset.name!r} was uploaded before the catalog existed: it has no "
            "versions; upload its file again to add it to the catalog"
        )
    return dataset.catalog_version


def versions(settings: ApiSettings, dataset: Dataset) -> list[DatasetVersionPublic]:
    """The dataset's versions, newest first."""
    if dataset.catalog_version is None:
        return []
    try:
        infos = catalog_of(settings).versions(*_catalog_name(dataset))
    except CatalogError as exc:
        raise Unprocessable(str(exc)) from None
    return [version_public(i, dataset.catalog_version) for i in reversed(infos)]


def _info(settings: ApiSettings, dataset: Dataset, version: str) -> VersionInfo:
    """A version of this dataset (a unique prefix will do); 404 for another dataset's."""
    require_catalog(dataset)
    try:
        return catalog_of(settings).resolve(*_catalog_name(dataset), version)
    except CatalogError as exc:
        raise NotFound(str(exc)) from None


def version_detail(settings: ApiSettings, dataset: Dataset, version: str) -> DatasetVersionDetail:
    """A version and its validation report."""
    info = _info(settings, dataset, version)
    report = catalog_of(settings).report(info.version)
    base = version_public(info, dataset.catalog_version)
    return DatasetVersionDetail(**base.model_dump(), report=report)


def candles(
    settings: ApiSettings,
    dataset: Dataset,
    *,
    symbol: str,
    version: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> Candles:
    """One symbol's bars of a version (default: the latest), the last ``limit`` in the range,
    read pruned to that symbol and range."""
    info = _info(settings, dataset, version or require_catalog(dataset))
    known = [s.symbol for s in info.symbols]
    if symbol not in known:
        close = difflib.get_close_matches(symbol, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise NotFound(f"version {info.short()} has no symbol {symbol!r}{hint}")
    try:
        bars = catalog_of(settings).read(
            info.version,
            symbols=[symbol],
            columns=["open", "high", "low", "close", "volume"],
            start=start,
            end=end,
        )
    except CatalogError as exc:
        raise Unprocessable(str(exc)) from None
    limit = max(1, min(limit, MAX_CANDLES))
    truncated = len(bars) > limit
    bars = bars.iloc[-limit:]
    volume = bars["volume"]
    return Candles(
        symbol=symbol,
        version=info.version,
        t=[int(ts.timestamp()) for ts in bars.index],
        open=bars["open"].astype(float).tolist(),
        high=bars["high"].astype(float).tolist(),
        low=bars["low"].astype(float).tolist(),
        close=bars["close"].astype(float).tolist(),
        volume=[None if v != v else float(v) for v in volume.tolist()],
        truncated=truncated,
    )


def record_version(dataset: Dataset, info: VersionInfo, count: int) -> None:
    """Point the row at its latest version (of ``count``) and show that version's summary."""
    dataset.catalog_version = info.version
    dataset.symbols_json = json.dumps([s.symbol for s in info.symbols])
    dataset.version_count = count
    dataset.rows = info.rows
    dataset.start = info.start
    dataset.end = info.end
    dataset.columns_json = json.dumps(["ts", *info.columns])


def sync_namespace(session: Session, settings: ApiSettings, user: User) -> None:
    """Rows for the names in ``user``'s namespace that have none (imported from the CLI with
    ``--owner``), and each row's latest version brought up to date."""
    try:
        names = set(catalog_of(settings).names(namespace_of(user.id or 0)))
    except CatalogError:
        return  # the catalog's storage is down: the list shows the rows as they are
    rows = {
        d.name: d
        for d in session.exec(
            select(Dataset).where(Dataset.owner_id == user.id, col(Dataset.deleted_at).is_(None))
        ).all()
    }
    changed = False
    for name in sorted(names):
        found = catalog_of(settings).versions(namespace_of(user.id or 0), name)
        latest, count = found[-1], len(found)
        row = rows.get(name)
        if row is None:
            row = Dataset(
                name=name,
                owner_id=user.id or 0,
                rows=0,
                sha256=latest.version,
                storage_key=f"catalog-{secrets.token_hex(16)}",
                columns_json="[]",
            )
            record_version(row, latest, count)
            session.add(row)
            session.flush()
            audit.record(
                session, user, "dataset.import", "dataset", row.id, name=name,
                version=latest.version,
            )  # fmt: skip
            changed = True
        elif row.catalog_version != latest.version or row.version_count != count:
            record_version(row, latest, count)
            session.add(row)
            changed = True
    if changed:
        session.commit()


class OwnerDatasetResolver:
    """Resolves ``dataset(...)`` references over the datasets ``owner_id`` may read."""

    def __init__(self, settings: ApiSettings, visible: dict[str, Dataset]) -> None:
        self.settings = settings
        self.visible = visible

    def resolve(self, name: str, version: str | None) -> str:
        """The full version hash, or :class:`DatasetLookupError` saying what exists."""
        dataset = self.visible.get(name)
        if dataset is None:
            known = sorted(n for n, d in self.visible.items() if d.catalog_version)
            shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
            where = f"your datasets: {shown}" if known else "upload one on the Datasets page first"
            raise DatasetLookupError(
                f"no dataset named {name!r} ({where})",
                difflib.get_close_matches(name, known, n=3),
            )
        if dataset.catalog_version is None:
            raise DatasetLookupError(
                f"dataset {name!r} was uploaded before the catalog: read it with "
                f'dataset_ohlcv(name="{name}"), or upload it again to use dataset(...)'
            )
        try:
            return catalog_of(self.settings).resolve(*_catalog_name(dataset), version).version
        except CatalogError as exc:
            raise DatasetLookupError(str(exc)) from None


def pin_catalog_versions(ir: PipelineIR, resolver: OwnerDatasetResolver) -> PipelineIR:
    """``ir`` with every ``dataset`` step at an exact version the owner may read now: a
    floating ``dataset("x")`` at x's latest version, a pinned one checked (422 when the
    dataset is gone, no longer shared, or has no such version)."""
    floating = {n.id for n in floating_steps(ir.nodes)}
    nodes = []
    changed = False
    for node in ir.nodes:
        if node.type not in CATALOG_NODES or node.runtime != "builtin":
            nodes.append(node)
            continue
        name, prefix = split_dataset_reference(str(node.params.get("name", "")))
        wanted = None if node.id in floating else (node.params.get("version") or prefix)
        try:
            version = resolver.resolve(name, wanted)
        except DatasetLookupError as exc:
            raise Unprocessable(f"step {node.id!r}: {exc.message}") from None
        if version != node.params.get("version"):
            node = node.model_copy(update={"params": {**node.params, "version": version}})
            changed = True
        nodes.append(node)
    return ir.model_copy(update={"nodes": tuple(nodes)}) if changed else ir


def follow_map(ir: PipelineIR, resolver: OwnerDatasetResolver) -> dict[str, str]:
    """Step id -> ``namespace/name`` of the IR's floating ``dataset("x")`` steps (the
    dataset the name resolves to for the owner now): a scheduled run moves each to the latest
    version of that dataset when it starts."""
    out: dict[str, str] = {}
    for node in floating_steps(ir.nodes):
        dataset = resolver.visible.get(str(node.params.get("name", "")))
        if dataset is not None and dataset.catalog_version is not None:
            out[node.id] = "/".join(_catalog_name(dataset))
    return out
