"""`alphaforge ticks ...`: order-book (tick) datasets in the catalog: import exchange
recordings, generate a synthetic book, list and show them.

Catalog and namespace as for ``alphaforge data`` (``--catalog``, ``--namespace`` or ``--owner``,
``--json``). A bad file leaves with exit code 2 and one line ``error: FILE:LINE: KIND: what``;
unknown names and versions exit 2 with the catalog's message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.data import _CATALOG, _JSON, _NAMESPACE, _console, _latest, _open
from nodes.errors import DataError

if TYPE_CHECKING:
    from catalog import Catalog, VersionInfo
    from catalog.ticks.summary import TickSummary

__all__ = ["ticks_group"]

FORMATS = ("binance-futures", "binance-trades-csv", "tardis")
EXIT_INVALID = 2


@click.group(name="ticks")
def ticks_group() -> None:
    """Order-book (tick) datasets: import recordings, generate a synthetic book, list, show."""


def _fail(message: str) -> click.exceptions.Exit:
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(EXIT_INVALID)


def _bad_data(exc: DataError) -> click.exceptions.Exit:
    """A converter's DataError as ``FILE:LINE: KIND: what`` (the form editors jump to)."""
    if exc.source is None:
        return _fail(str(exc))
    where = f"{exc.source}, row {exc.row}: " if exc.row is not None else f"{exc.source}: "
    what = str(exc).removeprefix(where)
    line = f":{exc.row}" if exc.row is not None else ""
    return _fail(f"{exc.source}{line}: {what}")


def _convert(fmt: str, files: list[Path], symbol: str | None, snapshot: Path | None) -> Any:
    from catalog.ticks import binance, tardis

    if snapshot is not None and fmt != "binance-futures":
        raise click.UsageError("--snapshot goes with --format binance-futures only")
    if fmt == "binance-futures":
        return binance.convert_stream(files, snapshot=snapshot, symbol=symbol)
    if fmt == "binance-trades-csv":
        return binance.convert_trades_csv(files, symbol=symbol)
    return tardis.convert(files, symbol=symbol)


def _file_source(path: Path, fmt: str) -> dict[str, Any]:
    raw = path.read_bytes()
    return {
        "file": path.name,
        "format": fmt,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
    }


@ticks_group.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", required=True, type=click.Choice(FORMATS), help="The files' layout."
)
@click.option("--name", required=True, help="Dataset name (letters, digits, _ and -).")
@click.option("--symbol", help="Keep this symbol only (names the trades CSV's symbol).")
@click.option(
    "--snapshot",
    type=click.Path(path_type=Path),
    help="binance-futures: a REST depth snapshot (/fapi/v1/depth JSON) that opens the book.",
)
@click.option("--tick-size", type=float, help="Price increment (kept with the version).")
@click.option("--lot-size", type=float, help="Quantity increment (kept with the version).")
@click.option("--message", default="", help="What this version is (kept with it).")
@_NAMESPACE
@_CATALOG
@_JSON
def ticks_import(
    files: tuple[Path, ...],
    fmt: str,
    name: str,
    symbol: str | None,
    snapshot: Path | None,
    tick_size: float | None,
    lot_size: float | None,
    message: str,
    namespace: str | None,
    catalog_url: str | None,
    as_json: bool,
) -> None:
    """Convert FILES (plain or gzip; in the order given) to order-book events and store them
    as a new version of tick dataset NAME."""
    for path in (*files, *([snapshot] if snapshot else [])):
        if not path.is_file():
            raise _fail(f"{path}: no such file")
    cat, ns = _open(catalog_url, namespace)
    try:
        converted = _convert(fmt, list(files), symbol, snapshot)
        sources = [_file_source(p, fmt) for p in files]
        if snapshot is not None:
            sources.append({**_file_source(snapshot, fmt), "role": "snapshot"})
        before = _latest(cat, ns, name)
        info = cat.import_ticks(
            ns,
            name,
            converted["events"],
            tick_size=tick_size,
            lot_size=lot_size,
            sources=sources,
            message=message,
        )
    except DataError as exc:
        raise _bad_data(exc) from None
    _stored(cat, info, before, {"skipped": converted["skipped"]}, as_json)


def _stored(
    cat: Catalog, info: VersionInfo, before: str | None, extra: dict[str, Any], as_json: bool
) -> None:
    """Print what an import or a generation stored."""
    from catalog.ticks.summary import tick_summary

    summary = tick_summary(cat.manifest(info.version))
    unchanged = before == info.version
    if as_json:
        out = {**info.to_json(), **extra, "ticks": summary.to_json()}
        click.echo(json.dumps({**out, "catalog": cat.url, "unchanged": unchanged}))
        return
    out_ = _console()
    what = "unchanged (the same events as the latest version)" if unchanged else "imported"
    out_.print(f"{what}: {info.namespace}/{info.name}@{info.short()}")
    depth = sum(s.depth for s in summary.symbols)
    trades = sum(s.trades for s in summary.symbols)
    out_.print(
        f"  {summary.events:,} events ({depth:,} book rows, {trades:,} trades), "
        f"{len(summary.symbols)} symbol(s), {_span(summary.start, summary.end)}"
    )
    if extra.get("skipped"):
        out_.print(f"  skipped {extra['skipped']:,} other message(s)")
    out_.print(f"  in {cat.url}")


def _ms(when: datetime | None) -> str:
    """A UTC time to the millisecond (ticks are finer than bars)."""
    return f"{when:%Y-%m-%d %H:%M:%S.%f}"[:-3] if when is not None else "—"


def _span(start: datetime | None, end: datetime | None) -> str:
    return f"{_ms(start)} .. {_ms(end)} UTC" if start and end else "no events"


def _short_span(start: datetime | None, end: datetime | None) -> str:
    """A range to the second, the end's date left out when it is the start's."""
    if start is None or end is None:
        return "—"
    tail = f"{end:%H:%M:%S}" if start.date() == end.date() else f"{end:%Y-%m-%d %H:%M:%S}"
    return f"{start:%Y-%m-%d %H:%M:%S} .. {tail}"


def _seconds(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h`` or ``1d`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    body, unit = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1)
    try:
        return float(body) * unit
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration (e.g. 600, 90s, 10m, 2h)") from None


def _start_ns(text: str | None) -> int | None:
    if text is None:
        return None
    import pandas as pd

    if text.isdigit():
        return int(text)
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        msg = f"{text!r} is not a time (ISO 8601, or ns since the epoch)"
        raise click.BadParameter(msg) from None
    return int((ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")).value)


# BookSpec field -> the option that sets it (its range errors name the option)
_SPEC_OPTIONS = {
    "seed": "--seed",
    "symbol": "--symbol",
    "start_ns": "--start",
    "duration_s": "--duration",
    "mid": "--mid",
    "tick_size": "--tick-size",
    "lot_size": "--lot-size",
    "depth": "--depth",
    "limit_rate": "--limit-rate",
    "cancel_rate": "--cancel-rate",
    "trade_rate": "--trade-rate",
    "volatility": "--volatility",
    "latency_ns": "--latency-ns",
    "jitter_ns": "--jitter-ns",
}


@ticks_group.command(name="generate")
@click.option("--name", required=True, help="Dataset name (letters, digits, _ and -).")
@click.option("--seed", required=True, type=click.IntRange(min=0), help="Random seed.")
@click.option("--symbol", default="SYN", show_default=True, help="The events' symbol.")
@click.option("--start", help="First event: ISO 8601 (UTC unless it says) or ns [2024-01-01].")
@click.option("--duration", default="60", show_default=True, help="Length: 600, 90s, 10m, 2h.")
@click.option("--mid", type=float, default=100.0, show_default=True, help="Starting mid.")
@click.option("--tick-size", type=float, default=0.01, show_default=True)
@click.option("--lot-size", type=float, default=0.1, show_default=True)
@click.option("--depth", type=int, default=10, show_default=True, help="Levels per side.")
@click.option("--limit-rate", type=float, default=40.0, show_default=True, help="Per second.")
@click.option("--cancel-rate", type=float, default=30.0, show_default=True, help="Per second.")
@click.option("--trade-rate", type=float, default=5.0, show_default=True, help="Per second.")
@click.option("--volatility", type=float, default=2e-4, show_default=True, help="Per sqrt(second).")
@click.option("--latency-ns", type=int, default=1_000_000, show_default=True, help="Feed.")
@click.option("--jitter-ns", type=int, default=200_000, show_default=True, help="Mean, exp.")
@click.option("--message", help="What this version is [default: the generator and seed].")
@_NAMESPACE
@_CATALOG
@_JSON
def ticks_generate(
    name: str,
    seed: int,
    symbol: str,
    start: str | None,
    duration: str,
    message: str | None,
    namespace: str | None,
    catalog_url: str | None,
    as_json: bool,
    **model: Any,
) -> None:
    """Generate a seeded synthetic order book (docs/ticks.md: random-walk mid, Poisson
    arrivals) and store it as a new version of tick dataset NAME. The same options give the
    same version."""
    from nodes.synthbook import BookSpec, generate

    start_ns = _start_ns(start)
    spec = BookSpec(
        seed=seed,
        symbol=symbol,
        duration_s=_seconds(duration),
        **({"start_ns": start_ns} if start_ns is not None else {}),
        **model,
    )
    try:
        spec.check()
    except ValueError as exc:
        field = str(exc).split()[0]
        raise _fail(f"{_SPEC_OPTIONS.get(field, field)}: {exc}") from None
    cat, ns = _open(catalog_url, namespace)
    before = _latest(cat, ns, name)
    events = generate(spec)
    source = {"generator": "synthetic_book", "params": asdict(spec)}
    info = cat.import_ticks(
        ns,
        name,
        {spec.symbol: events},
        sources=[source],
        message=message if message is not None else f"synthetic book, seed {seed}",
    )
    _stored(cat, info, before, {}, as_json)


@ticks_group.command(name="ls")
@_NAMESPACE
@_CATALOG
@_JSON
def ticks_ls(namespace: str | None, catalog_url: str | None, as_json: bool) -> None:
    """List the tick datasets of the namespace: latest version, versions, symbols, events and
    time range."""
    from rich.table import Table

    from catalog.ticks.summary import tick_summary

    cat, ns = _open(catalog_url, namespace)
    found = []
    for n in cat.names(ns):
        versions = cat.versions(ns, n)
        if versions[-1].kind == "ticks":
            found.append((versions, tick_summary(cat.manifest(versions[-1].version))))
    if as_json:
        rows = [
            {"name": v[-1].name, "versions": len(v), "latest": v[-1].to_json()}
            | {"ticks": s.to_json()}
            for v, s in found
        ]
        click.echo(json.dumps(rows))
        return
    if not found:
        _console().print(
            f"no tick datasets in {ns} ({cat.url}); add one with `alphaforge ticks "
            "import` or `alphaforge ticks generate`"
        )
        return
    title = f"tick datasets of {ns} in {cat.url}"
    table = Table(show_header=True, header_style="bold", title=title)
    for col in ("name", "latest", "versions", "symbols", "events", "range (UTC)", "imported"):
        table.add_column(col, justify="right" if col in ("versions", "events") else "left")
    for versions, s in found:
        latest = versions[-1]
        table.add_row(
            latest.name,
            latest.short(),
            str(len(versions)),
            ", ".join(x.symbol for x in s.symbols),
            f"{s.events:,}",
            _short_span(s.start, s.end),
            f"{latest.created_at:%Y-%m-%d %H:%M}",
        )
    _console().print(table)


@ticks_group.command(name="show")
@click.argument("ref")
@_NAMESPACE
@_CATALOG
@_JSON
def ticks_show(ref: str, namespace: str | None, catalog_url: str | None, as_json: bool) -> None:
    """One version of a tick dataset (REF is NAME or NAME@VERSION): per symbol its events,
    book rows and trades, first and last event, price range, tick and lot size."""
    cat, ns = _open(catalog_url, namespace)
    name, _, version = ref.partition("@")
    info = cat.resolve(ns, name, version or None)
    if info.kind != "ticks":
        raise _fail(f"{ns}/{name}@{info.short()} holds bars: see `alphaforge data show {ref}`")
    show_ticks(cat, info, as_json)


def show_ticks(cat: Catalog, info: VersionInfo, as_json: bool) -> None:
    """Print a tick version (also what ``alphaforge data show`` prints for one)."""
    from catalog.ticks.summary import tick_summary

    summary = _with_prices(cat, tick_summary(cat.manifest(info.version)))
    if as_json:
        click.echo(json.dumps({**info.to_json(), "ticks": summary.to_json()}))
        return
    out = _console()
    out.print(f"{info.namespace}/{info.name}@{info.short()}  ({info.version})  tick dataset")
    out.print(f"  imported {info.created_at:%Y-%m-%d %H:%M} UTC  {info.message}".rstrip())
    out.print(
        f"  {summary.events:,} events, {_span(summary.start, summary.end)}, "
        f"{info.bytes:,} bytes of tick files"
    )
    for s in summary.symbols:
        out.print(f"  {s.symbol}: {s.events:,} events ({s.depth:,} book rows, {s.trades:,} trades)")
        out.print(f"    {_span(s.start, s.end)}")
        prices = f"{s.px_min:g} .. {s.px_max:g}" if s.px_min is not None else "unknown"
        out.print(f"    price {prices}; tick size {_g(s.tick_size)}, lot size {_g(s.lot_size)}")
    for src in info.sources:
        if "generator" in src:
            out.print(f"  from {src['generator']} (seed {src.get('params', {}).get('seed')})")
        else:
            size = f"{src.get('bytes', 0):,} bytes"
            out.print(f"  from {src.get('file')} ({src.get('format', '?')}, {size})")
    out.print(f'  in a pipeline: tick_data("{info.name}@{info.short()}")')


def _g(value: float | None) -> str:
    return f"{value:g}" if value is not None else "?"


def _with_prices(cat: Catalog, summary: TickSummary) -> TickSummary:
    """A version imported before the manifest kept price ranges: read them from the events."""
    import dataclasses

    if all(s.px_min is not None for s in summary.symbols):
        return summary
    from catalog.ticks.store import price_range

    data = cat.read_ticks(summary.version)
    symbols = [
        dataclasses.replace(s, **price_range(data[s.symbol])) if s.px_min is None else s
        for s in summary.symbols
    ]
    return dataclasses.replace(summary, symbols=symbols)
