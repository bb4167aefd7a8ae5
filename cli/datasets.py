"""The web app's datasets as the command line sees them: names for ``dataset_ohlcv(name=...)``.

Datasets are uploaded through the web app, which records their names in its database and stores
their Parquet files in the store (``<store>/datasets/<key>.parquet``). ``alphaforge validate`` and
``alphaforge run`` read the same database (``ALPHAFORGE_DATABASE_URL``, or the SQLite file in the
data dir) so that a pipeline naming an unknown dataset is refused at validation, with the nearest
names, and a pipeline naming a known one runs on it. Read only when the pipeline uses
``dataset_ohlcv`` (the web API's modules are imported only then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["StoreDatasets", "store_datasets", "uses_datasets", "web_namespace"]


@dataclass
class StoreDatasets:
    """The live datasets in the web app's database: name -> owners -> Parquet file."""

    by_name: dict[str, dict[str, Path]] = field(default_factory=dict)
    problem: str | None = None  # why the database could not be read (then nothing is checked)

    def names(self) -> set[str]:
        """Every dataset name (of the chosen owner, when one was given)."""
        return set(self.by_name)

    def paths(self) -> dict[str, Path]:
        """name -> Parquet file, for names only one owner has (the others are ambiguous)."""
        return {n: next(iter(o.values())) for n, o in self.by_name.items() if len(o) == 1}

    def ambiguous(self, names: set[str]) -> dict[str, list[str]]:
        """Those of ``names`` that several owners have, with the owners."""
        return {n: sorted(self.by_name[n]) for n in names if len(self.by_name.get(n, {})) > 1}


def uses_datasets(text: str) -> bool:
    """Whether a pipeline's text may read a stored dataset (a cheap test before any import)."""
    return "dataset_ohlcv" in text


def store_datasets(owner: str | None = None) -> StoreDatasets:
    """The live datasets recorded by the web app (of user ``owner`` when given)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from api.settings import ApiSettings

    try:
        settings = ApiSettings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return StoreDatasets(problem=f"the web app's settings are not valid: {exc}")
    url = settings.db_url
    if url.startswith("sqlite") and not Path(url.split("///", 1)[-1]).exists():
        return StoreDatasets()  # no web app has run with this data dir: no datasets
    query = (
        "SELECT d.name, u.username, d.storage_key FROM datasets d JOIN users u "
        "ON u.id = d.owner_id WHERE d.deleted_at IS NULL"
    )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(query)).all()
    except SQLAlchemyError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StoreDatasets(problem=f"cannot read the web app's datasets: {first}")
    finally:
        engine.dispose()
    out = StoreDatasets()
    for name, username, key in rows:
        if owner is None or username == owner:
            path = settings.datasets_dir / f"{key}.parquet"
            out.by_name.setdefault(str(name), {})[str(username)] = path
    return out


def web_namespace(username: str) -> str:
    """The catalog namespace of web-app user ``username`` (``u<id>``, as the web app names
    it); a usage error when the web app's database has no such user."""
    import click
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from api.settings import ApiSettings

    url = ApiSettings().db_url
    if url.startswith("sqlite") and not Path(url.split("///", 1)[-1]).exists():
        raise click.UsageError(f"--owner {username}: no web app has run with this data dir")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT id FROM users WHERE username = :u"), {"u": username}
            ).first()
    except SQLAlchemyError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = f"--owner {username}: cannot read the web app's users: {first}"
        raise click.UsageError(msg) from None
    finally:
        engine.dispose()
    if row is None:
        raise click.UsageError(f"--owner {username}: the web app has no user {username!r}")
    return f"u{row[0]}"
