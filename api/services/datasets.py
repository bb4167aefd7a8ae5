"""Datasets: upload (validated at the door), Parquet storage under generated keys, preview.

A user's file name never becomes a path: the stored file is ``datasets/<random key>.parquet``.
The uploaded CSV is validated by :func:`nodes.data.read_ohlcv_csv`, whose named errors
(``DataError`` kind + row) reach the client as a 422.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlmodel import Session, col, func, select

from api.errors import ApiError, Conflict, Unprocessable
from api.models.common import Page, as_utc, utcnow
from api.models.dataset import (
    DATASET_NAME_PATTERN,
    DATASET_NAME_RULE,
    Dataset,
    DatasetPreview,
    DatasetPublic,
)
from api.models.user import User
from api.services import audit
from api.services.access import (
    Level,
    caps_for,
    edit_granted,
    get_owned,
    granted_ids,
    username_of,
    visible,
)
from api.settings import ApiSettings
from nodes.data import VOLUME_MISSING_NOTE, iter_ohlcv_csv, volume_missing

_CHUNK = 1 << 20


def notes_of(columns: list[str]) -> list[str]:
    """What a user should know about a dataset's columns (a stored dataset without volume lists
    no ``volume`` column; its Parquet file holds it as all missing)."""
    return [VOLUME_MISSING_NOTE] if "volume" not in columns else []


def check_name(name: str) -> None:
    """Refuse a name a new dataset may not have, in a sentence (422)."""
    if not re.fullmatch(DATASET_NAME_PATTERN, name):
        got = f"{name!r} is not a valid name" if name else "The name is empty"
        raise Unprocessable(
            {"message": f"{got}. {DATASET_NAME_RULE}.", "kind": "BAD_NAME", "row": None}
        )


def public(
    dataset: Dataset, session: Session | None = None, user: User | None = None
) -> DatasetPublic:
    """The dataset as the API shows it (its owner and what ``user`` may do with it, when a
    session and user are given)."""
    columns = json.loads(dataset.columns_json)
    caps = None
    if session is not None and user is not None:
        grant = bool(edit_granted(session, user, Dataset, [dataset.id or 0]))
        caps = caps_for(user, dataset, edit_grant=grant)
    return DatasetPublic(
        id=dataset.id or 0,
        name=dataset.name,
        rows=dataset.rows,
        start=as_utc(dataset.start) if dataset.start else None,
        end=as_utc(dataset.end) if dataset.end else None,
        columns=columns,
        sha256=dataset.sha256,
        created_at=as_utc(dataset.created_at),
        owner=username_of(session, dataset.owner_id) if session is not None else "",
        can_edit=caps.can_edit if caps else False,
        can_manage=caps.can_manage if caps else False,
        notes=notes_of(columns) if dataset.kind != "ticks" else [],
        version=dataset.catalog_version,
        symbols=json.loads(dataset.symbols_json) if dataset.symbols_json else [],
        versions=dataset.version_count,
        kind="ticks" if dataset.kind == "ticks" else "bars",
    )


def get_dataset(session: Session, user: User, dataset_id: int) -> Dataset:
    """The live dataset if ``user`` may see it, else NotFound."""
    return get_owned(session, user, Dataset, dataset_id, "dataset")


def storage_path(settings: ApiSettings, dataset: Dataset) -> Path:
    """Where the dataset's Parquet file lives."""
    return settings.datasets_dir / f"{dataset.storage_key}.parquet"


def _spool(upload: IO[bytes], directory: Path) -> tuple[Path, str]:
    """Copy the upload to a file with a generated name; return it and its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".upload-{secrets.token_hex(16)}.csv"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        while chunk := upload.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return path, digest.hexdigest()


def _stamp(value: Any) -> datetime | None:
    return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()


@dataclass
class _Stored:
    rows: int = 0
    start: datetime | None = None
    end: datetime | None = None
    columns: list[str] = field(default_factory=list)


def _store_parquet(csv: Path, final: Path, source: str, timezone: str) -> _Stored:
    """Validate the spooled CSV chunk by chunk (:func:`nodes.data.iter_ohlcv_csv`) and write
    each chunk to ``final``'s Parquet file as it comes: the API's memory follows the chunk
    size, not the upload's. Nothing is left behind when a chunk fails validation."""
    partial = final.with_suffix(".parquet.partial")
    stored = _Stored()
    writer: pq.ParquetWriter | None = None
    volume = False
    try:
        for chunk in iter_ohlcv_csv(csv, source=source, timezone=timezone):
            table = pa.Table.from_pandas(chunk)
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema)
                stored.columns = ["ts", *(str(c) for c in chunk.columns)]
            writer.write_table(table)
            stored.rows += len(chunk)
            low, high = _stamp(chunk.index.min()), _stamp(chunk.index.max())
            stored.start = low if stored.start is None or low is None else min(stored.start, low)
            stored.end = high if stored.end is None or high is None else max(stored.end, high)
            volume = volume or not volume_missing(chunk)
        if writer is not None:
            writer.close()
            writer = None
        os.replace(partial, final)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    if not volume:
        stored.columns = [c for c in stored.columns if c != "volume"]
    return stored


def create(
    session: Session,
    user: User,
    settings: ApiSettings,
    *,
    name: str,
    upload: IO[bytes],
    filename: str | None,
    timezone: str = "UTC",
    symbol: str | None = None,
) -> DatasetPublic:
    """Validate the CSV upload and store it (409 on a duplicate name, 422 on bad data): as the
    Parquet file ``dataset_ohlcv`` reads and as the first catalog version of ``name`` in the
    owner's namespace, which ``dataset("name")`` reads. Bars without a symbol column are
    labelled ``symbol`` (default: the dataset's name).

    A file without a volume column is stored with volume missing (NaN) and lists no ``volume``
    column; the dataset then carries the note :data:`nodes.data.VOLUME_MISSING_NOTE`.
    """
    check_name(name)
    if session.exec(
        select(Dataset.id).where(
            Dataset.owner_id == user.id, Dataset.name == name, col(Dataset.deleted_at).is_(None)
        )
    ).first():
        raise Conflict(
            f"You already have a dataset called {name!r}; add a version to it, choose another "
            "name or delete the old dataset first."
        )
    session.commit()  # ends the read transaction: no connection held while the file is parsed
    stored = _ingest(settings, user.id or 0, name, upload, filename, timezone, symbol)
    dataset = Dataset(
        name=name,
        owner_id=user.id or 0,
        rows=stored.summary.rows,
        start=stored.summary.start,
        end=stored.summary.end,
        sha256=stored.sha256,
        storage_key=stored.key,
        columns_json=json.dumps(stored.summary.columns),
        catalog_version=stored.version,
        symbols_json=json.dumps(stored.symbols),
        version_count=stored.version_count,
    )
    session.add(dataset)
    session.flush()
    audit.record(
        session, user, "dataset.create", "dataset", dataset.id, name=name, sha256=stored.sha256,
        version=stored.version,
    )  # fmt: skip
    _commit_or_drop(session, stored.final)
    return public(dataset, session, user)


def add_version(
    session: Session,
    user: User,
    settings: ApiSettings,
    dataset_id: int,
    *,
    upload: IO[bytes],
    filename: str | None,
    timezone: str = "UTC",
    symbol: str | None = None,
    message: str = "",
) -> DatasetPublic:
    """A new catalog version of a dataset from a new file (the same file again gives the same
    version). Runs that read an older version keep pointing at it; ``dataset("name")`` reads
    the new one from now on."""
    dataset = get_owned(session, user, Dataset, dataset_id, "dataset", level=Level.EDIT)
    owner_id, name = dataset.owner_id, dataset.name
    if dataset.kind == "ticks":
        owner = username_of(session, owner_id)
        raise Unprocessable(
            f"{name!r} is a tick dataset (order-book events): add its versions with "
            f"`alphaforge ticks import ... --name {name} --owner {owner}`, not a CSV of bars"
        )
    session.commit()
    stored = _ingest(settings, owner_id, name, upload, filename, timezone, symbol, message=message)
    dataset = get_owned(session, user, Dataset, dataset_id, "dataset", level=Level.EDIT)
    old_version = dataset.catalog_version
    dataset.rows = stored.summary.rows
    dataset.start = stored.summary.start
    dataset.end = stored.summary.end
    dataset.sha256 = stored.sha256
    dataset.storage_key = stored.key
    dataset.columns_json = json.dumps(stored.summary.columns)
    dataset.catalog_version = stored.version
    dataset.symbols_json = json.dumps(stored.symbols)
    dataset.version_count = stored.version_count
    session.add(dataset)
    audit.record(
        session, user, "dataset.version", "dataset", dataset.id, name=name,
        version=stored.version, previous=old_version,
    )  # fmt: skip
    _commit_or_drop(session, stored.final)
    return public(dataset, session, user)


@dataclass
class _Ingested:
    summary: _Stored
    sha256: str
    key: str
    final: Path
    version: str
    symbols: list[str]
    version_count: int


def _ingest(
    settings: ApiSettings,
    owner_id: int,
    name: str,
    upload: IO[bytes],
    filename: str | None,
    timezone: str,
    symbol: str | None,
    message: str = "",
) -> _Ingested:
    """Spool, validate and store the upload: its Parquet file, then a catalog version. Nothing
    is left behind when either fails (bad data: the DataError; the catalog's storage: 503)."""
    from api.services.catalog import catalog_of, namespace_of
    from catalog import CatalogError

    source = Path(filename or "upload.csv").name[:100] or "upload.csv"
    tmp, sha256 = _spool(upload, settings.datasets_dir)
    key = secrets.token_hex(16)
    final = settings.datasets_dir / f"{key}.parquet"
    # the spooled copy, named as the user's file (its stem is the symbol when none is given);
    # the catalog's report and messages name it by the user's name (``label``), not this path
    named = tmp.parent / f".import-{secrets.token_hex(16)}" / _csv_name(source)
    try:
        summary = _store_parquet(tmp, final, source, timezone)
        named.parent.mkdir()
        os.replace(tmp, named)
        try:
            info = catalog_of(settings).import_files(
                namespace_of(owner_id),
                name,
                [named],
                # the file's own symbols when it has a symbol column (a symbol given too is
                # refused, SYMBOL_CONFLICT), else the one given or the dataset's name
                symbol=symbol or (None if "symbol" in summary.columns else name),
                timezone=timezone,
                message=message or f"uploaded {source}",
                label=source,
            )
        except CatalogError as exc:
            final.unlink(missing_ok=True)
            raise ApiError(f"the dataset catalog failed: {exc}", status_code=503) from None
        except BaseException:
            final.unlink(missing_ok=True)
            raise
    finally:
        tmp.unlink(missing_ok=True)
        named.unlink(missing_ok=True)
        if named.parent.is_dir():
            named.parent.rmdir()
    count = len(catalog_of(settings).versions(namespace_of(owner_id), name))
    return _Ingested(
        summary, sha256, key, final, info.version, [x.symbol for x in info.symbols], count
    )


def _csv_name(source: str) -> str:
    """A file name for the spooled upload: the user's, as a ``.csv`` (it is read as CSV)."""
    stem = re.sub(r"[^\w.\-]", "_", source)[:100] or "upload"
    return stem if stem.lower().endswith(".csv") else f"{stem}.csv"


def _commit_or_drop(session: Session, final: Path) -> None:
    """Commit; on failure the new Parquet file goes (the catalog version stays: immutable,
    and importing the same file again finds it)."""
    try:
        session.commit()
    except Exception:
        session.rollback()
        final.unlink(missing_ok=True)
        raise


def list_datasets(session: Session, user: User, *, offset: int, limit: int) -> Page[DatasetPublic]:
    """Visible live datasets, newest first."""
    where = visible(Dataset, user)
    rows = session.exec(
        select(Dataset).where(*where).order_by(col(Dataset.id).desc()).offset(offset).limit(limit)
    ).all()
    total = session.exec(select(func.count()).select_from(Dataset).where(*where)).one()
    return Page(items=[public(d, session, user) for d in rows], total=total)


def _json_cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return value


def preview(settings: ApiSettings, dataset: Dataset, limit: int) -> DatasetPreview:
    """The first ``limit`` rows, read without loading the whole file (of a catalog-only
    dataset: its latest version's first symbol)."""
    if not has_file(dataset):
        return _catalog_preview(settings, dataset, limit)
    parquet = pq.ParquetFile(storage_path(settings, dataset))
    batch = next(parquet.iter_batches(batch_size=limit), None)
    columns = json.loads(dataset.columns_json)
    if batch is None:
        return DatasetPreview(columns=columns, rows=[])
    table = batch.to_pydict()
    rows = [[_json_cell(table[c][i]) for c in columns] for i in range(batch.num_rows)]
    return DatasetPreview(columns=columns, rows=rows)


def _catalog_preview(settings: ApiSettings, dataset: Dataset, limit: int) -> DatasetPreview:
    from api.services.catalog import catalog_of, refuse_ticks, require_catalog

    catalog = catalog_of(settings)
    info = catalog.info(require_catalog(dataset))
    refuse_ticks(dataset, info, "preview rows")
    first = info.symbols[0].symbol if info.symbols else None
    frame = catalog.read(info.version, symbols=[first] if first else None).head(limit)
    columns = ["ts", *(str(c) for c in frame.columns)]
    rows = [
        [_json_cell(ts.to_pydatetime()), *(_json_cell(v) for v in values)]
        for ts, values in zip(frame.index, frame.itertuples(index=False), strict=True)
    ]
    return DatasetPreview(columns=columns, rows=rows)


def delete(session: Session, settings: ApiSettings, user: User, dataset_id: int) -> None:
    """Soft delete: gone from lists and from name resolution (the catalog forgets the name);
    the files and catalog versions stay (immutable, and run records name their versions)."""
    from api.services.catalog import catalog_of, namespace_of
    from catalog import CatalogError

    dataset = get_owned(session, user, Dataset, dataset_id, "dataset", level=Level.EDIT)
    if dataset.catalog_version is not None:
        catalog = catalog_of(settings)
        try:
            if dataset.name in catalog.names(namespace_of(dataset.owner_id)):
                catalog.delete_name(namespace_of(dataset.owner_id), dataset.name)
        except CatalogError as exc:
            raise ApiError(f"the dataset catalog failed: {exc}", status_code=503) from None
    dataset.deleted_at = utcnow()
    session.add(dataset)
    audit.record(session, user, "dataset.delete", "dataset", dataset.id, name=dataset.name)
    session.commit()


def dataset_paths(session: Session, settings: ApiSettings, owner_id: int) -> dict[str, Path]:
    """``dataset name -> Parquet path`` for one owner (the runner's ``NodeContext.datasets``):
    their own live datasets, and those shared with a team of theirs under names they do not
    use themselves (the oldest such dataset for a name two teams share)."""
    return {
        name: storage_path(settings, d)
        for name, d in visible_datasets(session, owner_id).items()
        if has_file(d)
    }


def has_file(dataset: Dataset) -> bool:
    """False for a dataset imported into the catalog only (no file ``dataset_ohlcv`` reads)."""
    return not dataset.storage_key.startswith("catalog-")


def has_volume(dataset: Dataset) -> bool:
    """False for a dataset stored without a volume column (its volume is missing)."""
    return "volume" in json.loads(dataset.columns_json)


def visible_datasets(session: Session, owner_id: int) -> dict[str, Dataset]:
    """``dataset name -> Dataset`` a run of ``owner_id``'s resolves (:func:`dataset_paths`)."""
    rows = session.exec(
        select(Dataset).where(Dataset.owner_id == owner_id, col(Dataset.deleted_at).is_(None))
    ).all()
    found = {d.name: d for d in rows}
    owner = session.get(User, owner_id)
    if owner is not None:
        shared = session.exec(
            select(Dataset)
            .where(
                col(Dataset.id).in_(granted_ids(owner, "dataset")),
                col(Dataset.deleted_at).is_(None),
                Dataset.owner_id != owner_id,
            )
            .order_by(col(Dataset.id))
        ).all()
        for d in shared:
            found.setdefault(d.name, d)
    return found


def dataset_names(session: Session, settings: ApiSettings, owner_id: int) -> set[str]:
    """The names ``dataset_ohlcv(name=...)`` may use in ``owner_id``'s pipelines: exactly those
    a run of theirs resolves (:func:`dataset_paths`), so validation and runs agree."""
    return set(dataset_paths(session, settings, owner_id))
