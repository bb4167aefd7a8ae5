"""`alphaforge rerun`, `alphaforge diff`, `alphaforge runs export|import`: reproducibility.

Exit codes: 0 identical (rerun) / done; 1 the re-run differs or failed; 2 the run cannot be
re-run as stored (data changed, code missing), an unknown run, a refused bundle.
See docs/reproducibility.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

__all__ = ["diff_command", "export_command", "import_command", "rerun_command"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _settings(data_dir: Path | None) -> Any:
    from flows.settings import CoreSettings, get_settings

    return CoreSettings(data_dir=data_dir) if data_dir else get_settings()


def _stored(settings: Any, run_id: str) -> Any:
    from flows.rerun import StoredRun, find_run

    return StoredRun.load(find_run(settings.runs_dir, run_id))


@click.command(name="rerun")
@click.argument("run_id")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where runs and caches live.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")
def rerun_command(run_id: str, data_dir: Path | None, as_json: bool) -> None:
    """Re-execute RUN_ID from its stored definition (IR, data, code; no cache) as a new run,
    then compare fingerprints: prints "identical" or what differs (exit 1)."""
    import os

    from flows.record import new_run_id
    from flows.rerun import StoredRun, check_definition, compare_runs, rerun_settings, rerun_spec
    from flows.run import run_pipeline

    settings = _settings(data_dir)
    settings.apply_prefect_env()
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    original = _stored(settings, run_id)
    new_id = new_run_id()
    spec = rerun_spec(original, settings, new_id)
    check_definition(original, spec, settings)  # RerunError: exit 2 with the reason
    out = Console(stderr=as_json, highlight=False, soft_wrap=True)
    out.print(f"re-running [bold]{original.record.run_id}[/] as [bold]{new_id}[/] (no cache)")
    progress = None
    if not as_json:
        from cli.output import Progress

        progress = Progress(out, max(len(n.id) for n in spec.ir.nodes))
    t0 = time.perf_counter()
    record = run_pipeline(spec, settings=rerun_settings(settings, new_id), on_event=progress)
    rerun = StoredRun.load(settings.runs_dir / record.run_id)
    comparison = compare_runs(original, rerun, settings)
    if as_json:
        payload = comparison.to_json() | {"seconds": round(time.perf_counter() - t0, 3)}
        click.echo(json.dumps(payload, default=str))
    else:
        _print_comparison(out, comparison)
    if not comparison.identical:
        raise click.exceptions.Exit(EXIT_FAILED)


def _print_comparison(out: Console, comparison: Any) -> None:
    for warning in comparison.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    for note in comparison.notes:
        out.print(f"[dim]note:[/] {note}")
    if comparison.identical:
        out.print(f"[green]identical[/]: run {comparison.rerun} reproduces {comparison.original}")
        return
    out.print(f"[red]different[/]: run {comparison.rerun} does not reproduce {comparison.original}")
    for d in comparison.differences:
        if d["what"] == "status":
            out.print(f"  the re-run {d['b']}: {d.get('error')}")
        elif d["what"] == "result":
            out.print(f"  result fingerprint: {_short(d['a'])} -> {_short(d['b'])}")
        else:
            out.print(f"  {d['node']}.{d['port']}: {_short(d['a'])} -> {_short(d['b'])}")
            _print_first(out, d.get("first_difference"), "    ")


def _print_first(out: Console, first: dict[str, Any] | None, indent: str) -> None:
    if not first:
        return
    if first["row"] is None:
        out.print(f"{indent}columns differ: {first['a']} vs {first['b']}")
        return
    out.print(f"{indent}first difference at row {first['row']} (columns {first['columns']}):")
    out.print(f"{indent}  a: {_escape(first['a'])}")
    out.print(f"{indent}  b: {_escape(first['b'])}")


@click.command(name="diff")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where runs and caches live.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")
def diff_command(run_a: str, run_b: str, data_dir: Path | None, as_json: bool) -> None:
    """Explain what differs between RUN_A and RUN_B: definition, data, code, results."""
    from flows.rundiff import diff_runs

    settings = _settings(data_dir)
    diff = diff_runs(_stored(settings, run_a), _stored(settings, run_b), settings)
    if as_json:
        click.echo(json.dumps(diff, default=str))
        return
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"[bold]diff[/] a = {diff['a']}   b = {diff['b']}")
    _print_section(out, "definition", diff["definition"])
    _print_section(out, "data", diff["data"])
    _print_section(out, "code", diff["code"])
    _print_results(out, diff["results"])
    for note in diff["notes"]:
        out.print(f"[dim]note:[/] {note}")


def _print_section(out: Console, title: str, section: dict[str, Any]) -> None:
    if not section:
        out.print(f"[bold]{title}[/]: no difference")
        return
    out.print(f"[bold]{title}[/]:")
    for line in _lines(section, "  "):
        out.print(line)


def _lines(value: Any, indent: str) -> list[str]:
    """Nested differences as indented lines; ``[a, b]`` pairs as ``a -> b``."""
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(item, list) and len(item) == 2:
            lines.append(f"{indent}{key}: {_escape(_val(item[0]))} -> {_escape(_val(item[1]))}")
        elif isinstance(item, dict) and item:
            lines.append(f"{indent}{key}:")
            lines.extend(_lines(item, indent + "  "))
        else:
            lines.append(f"{indent}{key}: {_escape(_val(item))}")
    return lines


def _print_results(out: Console, results: dict[str, Any]) -> None:
    if results["identical"]:
        out.print("[bold]results[/]: no difference in results (every fingerprint equal)")
    else:
        out.print("[bold]results[/]: [red]the results differ[/]")
    if results["status"][0] != results["status"][1]:
        out.print(f"  status: {results['status'][0]} -> {results['status'][1]}")
    table = Table(header_style="bold")
    for col in ("metric", "a", "b", "delta"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, row in results["metrics"].items():
        delta = row.get("delta")
        mark = "" if row["equal"] else " *"
        table.add_row(key + mark, _val(row["a"]), _val(row["b"]), _val(delta) if delta else "")
    if results["metrics"]:
        out.print(table)
    for name, row in results["outputs"].items():
        state = "equal" if row["equal"] else "[red]differ[/]"
        out.print(f"  {name}: {state}  ({_short(row['a'])} / {_short(row['b'])})")
        _print_first(out, row.get("first_difference"), "    ")


@click.command(name="export")
@click.argument("run_id")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(path_type=Path),
    required=True,
    help="The bundle file to write (run.afbundle).",
)
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where runs and caches live.")
@click.option("--json", "as_json", is_flag=True)
def export_command(run_id: str, output: Path, data_dir: Path | None, as_json: bool) -> None:
    """Write RUN_ID and everything it needs to be re-run elsewhere to a bundle (tar.gz)."""
    from flows.bundle import export_bundle

    settings = _settings(data_dir)
    manifest = export_bundle(_stored(settings, run_id), settings, output)
    members = manifest["members"]
    size = output.stat().st_size
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run_id": manifest["run_id"],
                    "bundle": str(output),
                    "members": len(members),
                    "bytes": size,
                }
            )
        )
        return
    what = f"{len(members)} files, {size} bytes"
    click.echo(f"exported run {manifest['run_id']} to {output} ({what})")


@click.command(name="import")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="The installation to import into."
)
@click.option("--json", "as_json", is_flag=True)
def import_command(bundle: Path, data_dir: Path | None, as_json: bool) -> None:
    """Import a run bundle (every hash checked); then `alphaforge rerun RUN_ID` works here."""
    from flows.bundle import import_bundle

    settings = _settings(data_dir)
    run_id = import_bundle(bundle, settings)
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "run_dir": str(settings.runs_dir / run_id)}))
        return
    click.echo(f"imported run {run_id} into {settings.runs_dir / run_id}")
    click.echo(f"re-run it with: alphaforge rerun {run_id}")


def _short(value: Any) -> str:
    text = "—" if value is None else str(value)
    return text[:12] if len(text) > 16 else text


def _val(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    text = str(value)
    digest = len(text) == 64 and all(c in "0123456789abcdef" for c in text)
    return text[:16] + "…" if digest else text


def _escape(text: str | None) -> str:
    return (text or "").replace("[", r"\[")
