"""`alphaforge data ...`: import files into the dataset catalog and look at what it holds.

The catalog is ``--catalog URL``, else ``ALPHAFORGE_CATALOG_URL``, else ``catalog/`` in the
store; S3 settings come from ``ALPHAFORGE_S3_*``. The namespace is ``--namespace``, or
``--owner USER`` (that web-app user's, ``u<id>``: the import shows on their Datasets page),
else ``ALPHAFORGE_NAMESPACE``, else ``local``. Errors (bad data with file and row, unknown names)
leave with exit code 2, through the CLI's handling of AlphaForgeError.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from catalog import Catalog, VersionInfo

__all__ = ["data_group"]

_CATALOG = click.option(
    "--catalog", "catalog_url", help="Catalog URL (directory, file:// or s3://bucket/prefix)."
)


def _remember_owner(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta["alphaforge_owner"] = value


def _NAMESPACE(fn: Any) -> Any:
    """``--namespace NS`` or ``--owner USER`` (a web-app user's namespace, ``u<id>``)."""
    fn = click.option(
        "--owner",
        expose_value=False,
        callback=_remember_owner,
        help="A web-app user: their datasets' namespace (so the import shows on their "
        "Datasets page).",
    )(fn)
    return click.option("--namespace", help="Catalog namespace [default: local].")(fn)


_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")


def _open(catalog_url: str | None, namespace: str | None) -> tuple[Catalog, str]:
    from flows.catalog import open_catalog
    from flows.settings import get_settings

    settings = get_settings()
    owner = click.get_current_context().meta.get("alphaforge_owner")
    if owner is not None:
        if namespace is not None:
            raise click.UsageError("give --namespace or --owner, not both")
        from cli.datasets import web_namespace

        namespace = web_namespace(owner)
    return open_catalog(settings, catalog_url), namespace or settings.namespace


def _console(*, stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@click.group(name="data")
def data_group() -> None:
    """The dataset catalog: import files, list datasets, show versions."""


@data_group.command(name="import")
@click.argument("sources", nargs=-1, required=True)
@click.option("--name", required=True, help="Dataset name (letters, digits, _ and -).")
@click.option("--symbol-col", help="The column holding the symbol (renamed to `symbol`).")
@click.option("--symbol", help="The symbol of files without a symbol column [default: stem].")
@click.option("--timezone", default="UTC", show_default=True, help="Zone of naive timestamps.")
@click.option("--message", default="", help="What this version is (kept with it).")
@_NAMESPACE
@_CATALOG
@_JSON
def data_import(
    sources: tuple[str, ...],
    name: str,
    symbol_col: str | None,
    symbol: str | None,
    timezone: str,
    message: str,
    namespace: str | None,
    catalog_url: str | None,
    as_json: bool,
) -> None:
    """Validate and import SOURCES (CSV / Parquet files, folders, http(s) URLs) as a new
    version of dataset NAME."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    cat, ns = _open(catalog_url, namespace)
    before = _latest(cat, ns, name)
    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn())
    with Progress(*columns, TimeRemainingColumn(), console=_console(stderr=True)) as bar:
        task = bar.add_task(f"importing {name}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        info = cat.import_files(
            ns,
            name,
            list(sources),
            symbol_col=symbol_col,
            symbol=symbol,
            timezone=timezone,
            message=message,
            progress=progress,
        )
    unchanged = before == info.version
    if as_json:
        click.echo(json.dumps({**info.to_json(), "catalog": cat.url, "unchanged": unchanged}))
        return
    out = _console()
    what = "unchanged (the same data as the latest version)" if unchanged else "imported"
    out.print(f"{what}: {ns}/{name}@{info.short()}")
    out.print(
        f"  {info.rows:,} rows, {len(info.symbols)} symbol(s), {_range(info)}; "
        f"columns: {', '.join(info.columns)}"
    )
    out.print(f"  in {cat.url}")


def _latest(cat: Catalog, namespace: str, name: str) -> str | None:
    from catalog import CatalogError

    try:
        return cat.resolve(namespace, name).version
    except CatalogError:
        return None


def _range(info: VersionInfo) -> str:
    if info.start is None or info.end is None:
        return "no bars"
    return f"{_when(info.start)} .. {_when(info.end)}"


def _when(when: datetime) -> str:
    """A UTC time, as the date alone at midnight (daily bars)."""
    if (when.hour, when.minute, when.second, when.microsecond) == (0, 0, 0, 0):
        return f"{when:%Y-%m-%d}"
    return f"{when:%Y-%m-%d %H:%M}"


@data_group.command(name="ls")
@_NAMESPACE
@_CATALOG
@_JSON
def data_ls(namespace: str | None, catalog_url: str | None, as_json: bool) -> None:
    """List the datasets of the namespace with their latest version and kind (bars, or
    ticks: order-book events, see ``alphaforge ticks ls``)."""
    from rich.table import Table

    cat, ns = _open(catalog_url, namespace)
    latest = [cat.resolve(ns, n) for n in cat.names(ns)]
    if as_json:
        click.echo(json.dumps([v.to_json() for v in latest]))
        return
    if not latest:
        _console().print(f"no datasets in {ns} ({cat.url})")
        return
    table = Table(show_header=True, header_style="bold", title=f"{ns} in {cat.url}")
    for col in ("name", "kind", "latest", "rows", "symbols", "range", "imported"):
        table.add_column(col, justify="right" if col in ("rows", "symbols") else "left")
    for v in latest:
        table.add_row(
            v.name,
            "ticks" if v.kind == "ticks" else "bars",
            v.short(),
            f"{v.rows:,}",
            str(len(v.symbols)),
            _range(v),
            f"{v.created_at:%Y-%m-%d %H:%M}",
        )
    _console().print(table)
    if any(v.kind == "ticks" for v in latest):
        _console().print("  rows of a tick dataset are order-book events: `alphaforge ticks ls`")


@data_group.command(name="show")
@click.argument("ref")
@_NAMESPACE
@_CATALOG
@_JSON
def data_show(ref: str, namespace: str | None, catalog_url: str | None, as_json: bool) -> None:
    """One version of a dataset (REF is NAME or NAME@VERSION): symbols, columns, report (of
    a tick dataset: what ``alphaforge ticks show`` prints)."""
    from rich.table import Table

    cat, ns = _open(catalog_url, namespace)
    name, _, version = ref.partition("@")
    info = cat.resolve(ns, name, version or None)
    if info.kind == "ticks":  # order-book events: their own summary (cli/ticks.py)
        from cli.ticks import show_ticks

        show_ticks(cat, info, as_json)
        return
    report = cat.report(info.version)
    if as_json:
        click.echo(json.dumps({**info.to_json(), "report": report}))
        return
    out = _console()
    out.print(f"{ns}/{name}@{info.short()}  ({info.version})")
    out.print(f"  imported {info.created_at:%Y-%m-%d %H:%M} UTC  {info.message}".rstrip())
    out.print(f"  {info.rows:,} rows, {_range(info)} (UTC), {info.bytes:,} bytes of Parquet")
    out.print(f"  columns: ts, symbol, {', '.join(info.columns)}")
    table = Table(show_header=True, header_style="bold")
    for col in ("symbol", "rows", "start", "end", "largest gap", "gaps > 3x median"):
        table.add_column(col, justify="right" if col not in ("symbol",) else "left")
    gaps = report.get("gaps", {})
    for s in info.symbols:
        g = gaps.get(s.symbol, {})
        table.add_row(
            s.symbol,
            f"{s.rows:,}",
            _when(s.start),
            _when(s.end),
            _duration(g.get("largest_gap_s")),
            str(g.get("gaps_over_3x_median", "")),
        )
    out.print(table)
    files = report.get("files", [])
    out.print(f"  validated {len(files)} file(s) with {len(report.get('checks', []))} checks")
    for f in files:
        notes = f"  ({'; '.join(f['notes'])})" if f.get("notes") else ""
        out.print(f"    {f['file']}: {f['rows']:,} rows{notes}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@data_group.command(name="versions")
@click.argument("name")
@_NAMESPACE
@_CATALOG
@_JSON
def data_versions(name: str, namespace: str | None, catalog_url: str | None, as_json: bool) -> None:
    """The versions of dataset NAME, oldest first."""
    from rich.table import Table

    cat, ns = _open(catalog_url, namespace)
    versions = cat.versions(ns, name)
    if as_json:
        click.echo(json.dumps([v.to_json() for v in versions]))
        return
    table = Table(show_header=True, header_style="bold", title=f"{ns}/{name}")
    for col in ("version", "imported", "rows", "symbols", "range", "message"):
        table.add_column(col, justify="right" if col in ("rows", "symbols") else "left")
    for v in versions:
        table.add_row(
            v.short(),
            f"{v.created_at:%Y-%m-%d %H:%M}",
            f"{v.rows:,}",
            str(len(v.symbols)),
            _range(v),
            v.message,
        )
    _console().print(table)
