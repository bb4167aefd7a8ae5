"""``alphaforge convert``: a pipeline in the JSON or YAML form (product requirements, the
signal-generation seed) to ``.af`` text, then validated like ``alphaforge validate``.

The text is written whether or not it validates: it is meant to be read and edited (what could
not be carried over exactly is a ``# note:`` comment). Exit codes: 0 it validates, 2 the input
could not be converted or the converted pipeline has errors (listed gcc-style on stderr).
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["convert_command"]


@click.command(name="convert")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write the .af text here [default: stdout].",
)
@click.option("--name", "pipeline_name", help="The pipeline's name when FILE gives none.")
def convert_command(file: Path, output: Path | None, pipeline_name: str | None) -> None:
    """Convert FILE (JSON or YAML pipeline) to .af text and validate it."""
    import yaml

    from cli.main import EXIT_INVALID, _Exit, _fail
    from dsl import compile_source
    from dsl.convert import ConvertError, convert_text

    if not file.is_file():
        raise _fail(f"{file}: no such file", EXIT_INVALID)
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{file}: cannot read: {exc}", EXIT_INVALID) from None
    try:
        text = convert_text(source, pipeline_name=pipeline_name or _stem_name(file))
    except ConvertError as exc:
        raise _fail(f"{file}: {exc}", EXIT_INVALID) from None
    except yaml.YAMLError as exc:  # not JSON either: convert_text tries JSON first
        raise _fail(f"{file}: neither JSON nor YAML: {exc}", EXIT_INVALID) from None
    shown = str(output) if output else f"{file.stem}.af"
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    result = compile_source(text, filename=shown)
    errors = 0
    for d in result.diagnostics:
        click.echo(d.format(shown), err=True)
        errors += d.severity == "error"
    if not result.ok:
        click.echo(
            f"{shown}: converted, but it does not validate yet ({max(errors, 1)} error(s)): "
            "edit the .af text",
            err=True,
        )
        raise _Exit(EXIT_INVALID)


def _stem_name(file: Path) -> str:
    return file.stem.replace("-", "_") or "converted"
