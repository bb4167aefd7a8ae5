"""`alphaforge runs ...` and `alphaforge nodes ...`: stored runs and the node catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from nodes.errors import AlphaForgeError

__all__ = ["nodes_group", "runs_group"]

_SUMMARY_METRICS = ("total_return", "sharpe", "max_drawdown", "num_trades")


class _NotFound(AlphaForgeError):
    code = "AF803"


def _runs_dir(data_dir: Path | None) -> Path:
    from flows.settings import CoreSettings, get_settings

    return (CoreSettings(data_dir=data_dir) if data_dir else get_settings()).runs_dir


@click.group(name="runs")
def runs_group() -> None:
    """Stored runs (newest first)."""


def _bundle_commands() -> None:
    """``runs export`` and ``runs import`` (cli/repro.py)."""
    from cli.repro import export_command, import_command

    runs_group.add_command(export_command)
    runs_group.add_command(import_command)


_bundle_commands()


@runs_group.command(name="list")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def runs_list(data_dir: Path | None, limit: int, as_json: bool) -> None:
    """List recent runs with their status and headline metrics."""
    from flows.record import list_runs

    runs = list_runs(_runs_dir(data_dir), limit=limit)
    if as_json:
        click.echo(json.dumps([_summary(r) for r in runs], default=str))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("run id", "pipeline", "status", "started", *_SUMMARY_METRICS):
        table.add_column(col, justify="right" if col in _SUMMARY_METRICS else "left")
    for r in runs:
        m = r.metrics
        table.add_row(
            r.run_id,
            r.pipeline,
            r.status,
            str(r.started_at or "")[:19],
            *(_fmt(m.get(k)) for k in _SUMMARY_METRICS),
        )
    Console(highlight=False).print(table if runs else "no runs yet")


@runs_group.command(name="show")
@click.argument("run_id")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print run.json as stored.")
def runs_show(run_id: str, data_dir: Path | None, as_json: bool) -> None:
    """Show one run (a unique prefix of its id is enough)."""
    from flows.spec import read_run_record

    runs_dir = _runs_dir(data_dir)
    matches = sorted(p for p in runs_dir.glob(f"{run_id}*") if (p / "run.json").exists())
    if len(matches) != 1:
        what = "no run" if not matches else f"{len(matches)} runs"
        raise _NotFound(f"{what} matching {run_id!r} in {runs_dir}")
    if as_json:
        click.echo((matches[0] / "run.json").read_text(encoding="utf-8").rstrip())
        return
    record = read_run_record(matches[0])
    if record is None:
        raise _NotFound(f"{matches[0] / 'run.json'} is not a run record this version can read")
    out = Console(highlight=False)
    out.print(f"[bold]{record.run_id}[/]  {record.pipeline}  [bold]{record.status}[/]")
    for key in (
        "started_at",
        "finished_at",
        "ir_hash",
        "flow_run_id",
        "mlflow_run_id",
        "result_fingerprint",
        "error",
    ):
        if getattr(record, key):
            out.print(f"  {key:<19} {getattr(record, key)}")
    out.print(f"  {'run dir':<19} {matches[0]}")
    nodes = Table(title="nodes", header_style="bold")
    for col in ("node", "type", "state", "seconds", "error"):
        nodes.add_column(col)
    for nid, n in record.nodes.items():
        secs = n.usage.get("elapsed_s")
        nodes.add_row(nid, n.type, n.state, _fmt(secs), n.error or "")
    out.print(nodes)
    if record.metrics:
        from cli.output import print_metrics

        print_metrics(out, record.metrics, title="metrics")


@click.group(name="nodes")
def nodes_group() -> None:
    """The node catalog."""


@nodes_group.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def nodes_list(as_json: bool) -> None:
    """List node types by category."""
    from nodes.base import registry

    catalog = registry().catalog()
    if as_json:
        click.echo(json.dumps(catalog, default=str))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("category", "name", "version", "inputs", "outputs", "summary"):
        table.add_column(col)
    for spec in catalog:
        table.add_row(
            spec["category"],
            spec["name"],
            spec["version"],
            _ports(spec["inputs"]),
            _ports(spec["outputs"]),
            spec["summary"],
        )
    Console(highlight=False).print(table)


@nodes_group.command(name="show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def nodes_show(name: str, as_json: bool) -> None:
    """Show a node type: ports, params (type, default, bounds), doc."""
    from nodes.base import registry

    spec = registry().get(name).spec()  # unknown names raise with suggestions (exit 2)
    if as_json:
        click.echo(json.dumps(spec, indent=2, default=str))
        return
    out = Console(highlight=False)
    out.print(f"[bold]{spec['name']}[/] {spec['version']}  ({spec['category']})")
    if spec["doc"]:
        out.print(spec["doc"])
    out.print(f"inputs:  {_ports(spec['inputs']) or '—'}")
    out.print(f"outputs: {_ports(spec['outputs']) or '—'}")
    params = Table(title="params", header_style="bold")
    for col in ("name", "type", "default", "description"):
        params.add_column(col)
    schema = spec["params_schema"]
    required = set(schema.get("required", []))
    for pname, prop in schema.get("properties", {}).items():
        default = "required" if pname in required else json.dumps(prop.get("default"))
        params.add_row(pname, _schema_type(prop), default, prop.get("description", ""))
    out.print(params)
    if spec["metric_keys"]:
        out.print(f"metrics: {', '.join(spec['metric_keys'])}")


def _summary(r: Any) -> dict[str, Any]:
    keys = ("run_id", "pipeline", "status", "started_at", "finished_at", "metrics", "error")
    return {k: getattr(r, k) for k in keys}


def _ports(ports: list[dict[str, Any]]) -> str:
    return ", ".join(f"{p['name']}: {p['type']}{'…' if p.get('variadic') else ''}" for p in ports)


def _schema_type(prop: dict[str, Any]) -> str:
    if "type" in prop:
        bounds = [
            f"{k}={prop[k]}"
            for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
            if k in prop
        ]
        return prop["type"] + (f" ({', '.join(bounds)})" if bounds else "")
    if "anyOf" in prop:
        return " | ".join(_schema_type(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    return "any"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
