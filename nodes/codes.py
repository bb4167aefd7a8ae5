"""The one registry of Alpha Forge's codes: compiler diagnostics and error classes.

Every ``AFnnn`` a user can see is here, once, with what it means. Two kinds:

- **diagnostics** (``dsl``): problems the compiler reports at a place in a source; the
  :class:`dsl.diagnostics.Diagnostic` model refuses a code not registered here, or a severity the
  code does not allow.
- **errors**: the default ``code`` of an :class:`nodes.errors.AlphaForgeError` subclass; defining
  such a class with a code that is not registered here, or registered for another class, fails at
  import (``AlphaForgeError.__init_subclass__``).

A few codes are both: the compiler's diagnostic and the exception carrying the same problem
(AF101 unknown node type, AF401 an unresolvable ``use`` pin).

Ranges: AF0xx the source as a whole, AF1xx arguments and params, AF2xx steps and the graph,
AF3xx sweeps and walk-forward, AF4xx ``use`` pins, AF5xx stream blocks and node failures,
AF6xx input data, AF7xx runners, the artifact store and tracking, AF8xx the command line,
AF9xx the web API.

Codes are stable: never reuse a number for another meaning. ``docs/codes.md`` is generated from
this table (``python -m nodes.codes --markdown``) and a test keeps it in step;
``tests/nodes/test_codes.py`` also checks that every ``AFnnn`` written in the source tree is
registered here. It lives in ``nodes`` (the lowest layer) so every layer can use it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "info"]
Kind = Literal["diagnostic", "error"]

#: The layer that reports or raises each range (for the docs).
LAYERS: dict[str, str] = {
    "dsl": "the `.af` compiler (`alphaforge validate`, the API's validate/compile, the editor)",
    "nodes": "node execution and input data",
    "runners": "runners and sandboxes",
    "flows": "the run flow: artifact store, tracking",
    "catalog": "the dataset catalog: versions, imports, storage",
    "live": "the live side: sources, stream pipelines (`alphaforge stream`), sinks, strategies",
    "cli": "the `alphaforge` command line",
    "api": "the web API",
}


@dataclass(frozen=True)
class Code:
    """One registered code: what it means, who reports it, and how."""

    code: str
    title: str
    layer: str
    #: Severities a diagnostic with this code may have (the first is the usual one); empty for
    #: a code that is only an error class's.
    severities: tuple[Severity, ...] = ()
    #: The exception classes (``module.Class``) whose default ``code`` this is.
    raised_by: tuple[str, ...] = ()
    #: Longer explanation for the docs (optional).
    detail: str = ""
    kinds: tuple[Kind, ...] = field(init=False)

    def __post_init__(self) -> None:
        kinds: list[Kind] = []
        if self.severities:
            kinds.append("diagnostic")
        if self.raised_by:
            kinds.append("error")
        object.__setattr__(self, "kinds", tuple(kinds))

    @property
    def severity(self) -> Severity:
        """The usual severity (errors for an exception-only code)."""
        return self.severities[0] if self.severities else "error"


E: tuple[Severity, ...] = ("error",)
W: tuple[Severity, ...] = ("warning",)
I: tuple[Severity, ...] = ("info",)  # noqa: E741 - the severity letter

_TABLE: tuple[Code, ...] = (
    # -- the source as a whole ---------------------------------------------------------------
    Code(
        "AF000",
        "unclassified Alpha Forge error",
        "nodes",
        raised_by=("nodes.errors.AlphaForgeError",),
    ),
    Code(
        "AF001",
        "syntax error (with what was expected)",
        "dsl",
        ("error", "info"),
        detail="info: too many syntax errors, the parser stopped",
    ),
    Code("AF002", "source too large", "dsl", E),
    Code("AF003", "nesting too deep", "dsl", E),
    Code("AF004", "too many steps after `for` expansion", "dsl", E),
    Code("AF005", "missing `pipeline NAME` header", "dsl", E),
    Code("AF006", "invalid literal (number, string escape, date or duration)", "dsl", E),
    Code(
        "AF007",
        "misplaced or repeated top-level item (header, sweep, walkforward, stream)",
        "dsl",
        E,
    ),
    Code(
        "AF008",
        "block a run does not execute: a run executes the pipeline once",
        "dsl",
        W,
        detail="a `stream` block compiles and is checked, but `alphaforge run` and the web "
        "app's Run execute the pipeline once with its written params and ignore the block; "
        "`alphaforge stream FILE` runs it (docs/stream.md)",
    ),
    Code(
        "AF009",
        "the pipeline does not compile (carries its first error's code)",
        "dsl",
        raised_by=("dsl.compiler.DslError",),
    ),
    Code(
        "AF010",
        "a pipeline definition cannot be converted to .af text",
        "dsl",
        raised_by=("dsl.convert.ConvertError",),
    ),
    Code("AF011", "pipeline title too long", "dsl", E),
    # -- arguments and params ----------------------------------------------------------------
    Code(
        "AF101",
        "unknown node type",
        "dsl",
        E,
        raised_by=("nodes.errors.UnknownNodeTypeError",),
    ),
    Code("AF102", "unknown param or input", "dsl", E),
    Code("AF103", "missing required param or input", "dsl", E),
    Code("AF104", "wrong value type", "dsl", E),
    Code("AF105", "value out of bounds or rejected by the param's checks", "dsl", E),
    Code("AF106", "too many positional arguments", "dsl", E),
    Code("AF107", "duplicate argument", "dsl", E),
    Code("AF108", "params rejected as a whole (a cross-field rule of the node)", "dsl", E),
    # -- steps and the graph -----------------------------------------------------------------
    Code("AF201", "port type mismatch", "dsl", E),
    Code("AF202", "unknown output port or column", "dsl", E),
    Code("AF203", "unknown step", "dsl", E),
    Code("AF204", "duplicate step name", "dsl", E),
    Code("AF205", "cycle between steps", "dsl", E),
    Code("AF206", "unused step", "dsl", W),
    Code("AF207", "bad name template or loop variable", "dsl", E),
    Code(
        "AF208",
        "bad `for` loop values",
        "dsl",
        ("error", "warning"),
        detail="warning: a `for` over an empty list expands to nothing",
    ),
    Code(
        "AF209",
        "unknown dataset name in `dataset_ohlcv(name=...)`",
        "dsl",
        ("error", "warning"),
        detail="checked against the owner's datasets (the web app) or the store's (the CLI); a "
        "warning where a pipeline is saved, so it can be written before its data is uploaded",
    ),
    Code(
        "AF210",
        "a step reads `.volume` of a dataset stored without a volume column",
        "dsl",
        W,
        detail="datasets may be uploaded without volume (it is then missing); the run would fail "
        "at that step",
    ),
    Code(
        "AF211",
        "two columns a step adds would have the same name, or one its frame already has",
        "dsl",
        E,
        detail="`features`: each feature's column is named after its reference or by `names`",
    ),
    Code(
        "AF212",
        "`dataset(...)` names no catalog dataset or version",
        "dsl",
        ("error", "warning"),
        detail="the compiler resolves a catalog reference to its exact version hash (the IR's "
        "`version`); an unknown name or version, or an ambiguous version prefix, is refused "
        "with what exists (a warning where a pipeline is saved)",
    ),
    Code(
        "AF220",
        "`strategy_backtest`'s (or `tick_strategy_backtest`'s) `strategy` names no strategy "
        "module or version, or a module of the other kind",
        "dsl",
        E,
        detail="the compiler resolves the module to its exact version and writes its code into "
        "the IR; the message lists the modules that exist (on the command line a `.py` file "
        "next to the pipeline also resolves). `strategy_backtest` runs `Strategy` modules "
        "(on_tick), `tick_strategy_backtest` `TickStrategy` modules (on_step)",
    ),
    Code(
        "AF221",
        "a strategy's config key is also one of `strategy_backtest`'s own params",
        "dsl",
        E,
        detail="config keys are given as the step's keyword arguments, so they must differ from "
        "the node's params (strategy, symbol, interval, cash, fee_bps, slippage_bps, "
        "allow_short); rename the key in the module's CONFIG_SCHEMA",
    ),
    # -- sweeps and walk-forward -------------------------------------------------------------
    Code("AF301", "sweep target names no step", "dsl", E),
    Code(
        "AF302",
        "sweep target names no param of its step, or one that cannot be swept (a strategy "
        "step's `strategy`)",
        "dsl",
        E,
    ),
    Code("AF303", "empty search space", "dsl", E),
    Code("AF304", "constraints exclude every combination", "dsl", E),
    Code("AF305", "objective is not a metric", "dsl", E),
    Code("AF306", "unknown sweep method or bad sweep options", "dsl", E),
    Code(
        "AF307",
        "bad search space (unknown function, wrong arguments, not finite for a grid)",
        "dsl",
        E,
    ),
    Code("AF308", "duplicate sweep target", "dsl", E),
    Code("AF309", "constraint names a param that is neither swept nor set", "dsl", E),
    Code("AF310", "constraint cannot be evaluated", "dsl", E),
    Code("AF311", "sweep needs an objective", "dsl", E),
    Code("AF312", "bad walk-forward settings", "dsl", E),
    Code("AF313", "constraints not checked exhaustively", "dsl", I),
    Code(
        "AF314",
        "sweep too large: a grid of more than 10,000 combinations, or more than 10,000 trials",
        "dsl",
        E,
        detail="counted from the spaces' sizes without listing them (`dsl.sweeps."
        "MAX_GRID_COMBINATIONS`)",
    ),
    # -- use pins ----------------------------------------------------------------------------
    Code(
        "AF401",
        "cannot resolve a `use` pin",
        "dsl",
        E,
        raised_by=("dsl.nodespec.ResolveError",),
    ),
    Code("AF402", "the resolver refused a `use` pin", "dsl", E),
    Code("AF403", "malformed version in a `use` pin", "dsl", E),
    Code("AF404", "duplicate `use` pin", "dsl", E),
    Code("AF405", "`use` pin shadows a built-in node type", "dsl", E),
    Code("AF406", "unused `use` pin", "dsl", W),
    Code(
        "AF407",
        "the resolver warns about a `use` pin, e.g. a failed look-ahead check",
        "dsl",
        W,
    ),
    Code("AF408", "a `use` pin's language has no registered runtime", "dsl", E),
    # -- stream blocks; node failures --------------------------------------------------------
    Code(
        "AF500",
        "a node could not produce its outputs",
        "nodes",
        raised_by=("nodes.errors.NodeError",),
    ),
    Code("AF501", "stream block has no source", "dsl", E),
    Code("AF502", "stream setting repeated", "dsl", E),
    Code("AF503", "stream setting is not a duration", "dsl", E),
    Code("AF504", "stream schedule: `after` must be shorter than `every`", "dsl", E),
    Code("AF505", "stream source or sink argument is not a literal", "dsl", E),
    Code("AF506", "stream block emits nothing", "dsl", W),
    Code(
        "AF507",
        "unknown stream source or sink",
        "dsl",
        E,
        detail="sources: replay, binance, binance_futures, events; sinks: csv_append, "
        "postgres, webhook, prefect_event, trigger (docs/stream.md)",
    ),
    Code(
        "AF508",
        "stream source or sink param unknown, missing, of the wrong kind or out of range",
        "dsl",
        E,
    ),
    Code(
        "AF509",
        "stream schedule: `every` is not a whole multiple of the source's interval",
        "dsl",
        E,
    ),
    Code(
        "AF510",
        "a stream pipeline could not start or run (its source, warm-up, graph or a sink)",
        "live",
        raised_by=("live.stream.errors.StreamError",),
        detail="the message says what and where: the source that cannot be built, a gap at "
        "the warm-up's seam, a port that is not per bar, a trigger naming no running pipeline",
    ),
    Code(
        "AF511",
        "a stream deployment refused: its text does not compile, has no stream block, names a "
        "file outside the engine's workspace, or its name is invalid or taken",
        "live",
        raised_by=("live.stream.deployments.DeploymentInputError",),
        detail="a compile error carries the compiler's diagnostics, each with line and column",
    ),
    Code(
        "AF520",
        "a live bar source cannot deliver bars: the exchange refused the request, answered "
        "with an error or stayed unreachable",
        "live",
        raised_by=("live.sources.errors.SourceError",),
        detail="the message names the URL and the symbol(s)",
    ),
    # -- data ---------------------------------------------------------------------------------
    Code(
        "AF600",
        "input data failed validation (file, row and kind in the message)",
        "nodes",
        raised_by=("nodes.errors.DataError",),
    ),
    # -- runners, store, tracking ------------------------------------------------------------
    Code(
        "AF700",
        "a runner could not execute a node",
        "runners",
        raised_by=("runners.base.RunnerError",),
    ),
    Code(
        "AF710",
        "the artifact store cannot be read or written",
        "flows",
        raised_by=("flows.artifacts.StoreError",),
    ),
    Code(
        "AF711",
        "a stored run cannot be re-run as stored: the data it read changed or is gone, or its "
        "custom node code is not in this installation",
        "flows",
        raised_by=("flows.rerun.RerunError",),
        detail="the message names the node, the file or version and what to do",
    ),
    Code(
        "AF712",
        "a run bundle cannot be written, or is refused on import (tampered, unsafe member, too "
        "big, already imported)",
        "flows",
        raised_by=("flows.bundle.BundleError",),
        detail="nothing is placed in the store when an import is refused",
    ),
    Code(
        "AF720",
        "experiment tracking (MLflow) failed",
        "flows",
        raised_by=("flows.tracking.TrackingError",),
    ),
    Code(
        "AF730",
        "a sandboxed execution failed (timeout, output limit, ...)",
        "runners",
        raised_by=("runners.jobs.SandboxFailure",),
    ),
    Code(
        "AF731",
        "a node's output holds ±inf, or NaN where NaN is not allowed (a signal, a metric)",
        "runners",
        raised_by=("runners.outputcheck.NonFiniteOutput",),
        detail="kind NON_FINITE_OUTPUT; the message names the node, output, column or metric, "
        "and the first row with its timestamp",
    ),
    Code(
        "AF732",
        "a node's output holds an integer too large for a 64-bit float",
        "runners",
        raised_by=("runners.outputcheck.NumberTooLarge",),
        detail="kind NUMBER_TOO_LARGE; integers of more than 308 digits",
    ),
    Code(
        "AF733",
        "a metrics output holds a value that is not a finite number (text, true/false, a list, "
        "an object), or a name MLflow cannot record",
        "runners",
        raised_by=("runners.outputcheck.InvalidMetric",),
        detail="kind INVALID_METRIC; a metric is an integer, a float or null (undefined)",
    ),
    Code(
        "AF734",
        "a node's output has too many metrics or columns, or a name that is too long",
        "runners",
        raised_by=("runners.outputcheck.OutputSizeLimit",),
        detail="kind OUTPUT_LIMIT; at most 1,000 metrics, 1,000 columns, 250-character names",
    ),
    Code(
        "AF740",
        "the process runner is disabled by the operator",
        "runners",
        raised_by=("runners.process.ProcessRunnerDisabled",),
    ),
    Code(
        "AF750",
        "the sandbox (Docker engine or image) is unavailable",
        "runners",
        raised_by=("runners.docker.runner.SandboxUnavailable",),
    ),
    Code(
        "AF760",
        "a custom node's manifest, params or code is not acceptable",
        "runners",
        raised_by=("runners.custom.CustomNodeError",),
        detail="was AF720 (shared with tracking) before issue #8",
    ),
    Code(
        "AF770",
        "an operator's sandbox setting (ALPHAFORGE_SANDBOX_*) is outside the allowed ceilings",
        "runners",
        raised_by=("runners.caps.SandboxSettingsError",),
    ),
    Code(
        "AF780",
        "the dataset catalog cannot find, read or write a dataset (name, version, storage)",
        "catalog",
        raised_by=("catalog.errors.CatalogError",),
        detail="the message says what failed and where (the catalog URL, the name or version)",
    ),
    Code(
        "AF790",
        "an unexpected error (a bug): users get a sentence, operators the traceback",
        "flows",
        raised_by=("flows.tracebacks.UnexpectedError",),
        detail="the traceback is in the run's `operator-details.log` or the worker's log",
    ),
    # -- command line ------------------------------------------------------------------------
    Code(
        "AF801",
        "the pipeline file is missing, unreadable or does not compile",
        "cli",
        raised_by=("cli.load.InputError",),
        detail="was AF001 (shared with the syntax error) before issue #8",
    ),
    Code(
        "AF802",
        "a manifest in the `--nodes` folder is unreadable or invalid",
        "cli",
        raised_by=("cli.nodes_dir.NodesDirError",),
        detail="was AF002 (shared with source too large) before issue #8",
    ),
    Code(
        "AF803",
        "no such run (`alphaforge inspect`)",
        "cli",
        raised_by=("cli.inspect._NotFound",),
        detail="was AF002 (shared with source too large) before issue #8",
    ),
    # -- web API -----------------------------------------------------------------------------
    Code(
        "AF900",
        "a web API error with an HTTP status",
        "api",
        raised_by=("api.errors.ApiError",),
    ),
    Code(
        "AF990",
        "an unexpected server error (500): the answer has an incident id, the server log the "
        "traceback",
        "api",
        raised_by=("api.errors.ServerError",),
    ),
)


def _index(table: tuple[Code, ...]) -> dict[str, Code]:
    out: dict[str, Code] = {}
    owners: dict[str, str] = {}
    for c in table:
        if c.code in out:
            raise ValueError(f"code {c.code} is registered twice")
        if c.layer not in LAYERS:
            raise ValueError(f"code {c.code}: unknown layer {c.layer!r}")
        if not c.kinds:
            raise ValueError(f"code {c.code}: neither a diagnostic nor an error class")
        for cls in c.raised_by:
            if cls in owners:
                raise ValueError(f"{cls} is registered for {owners[cls]} and {c.code}")
            owners[cls] = c.code
        out[c.code] = c
    return out


#: Every code, by its ``AFnnn``.
CODES: dict[str, Code] = _index(_TABLE)


def get(code: str) -> Code:
    """The registered code, or ``KeyError`` naming it."""
    try:
        return CODES[code]
    except KeyError:
        raise KeyError(f"{code} is not a registered code (see nodes/codes.py)") from None


def diagnostic_codes() -> dict[str, Code]:
    """The codes the compiler may report."""
    return {k: c for k, c in CODES.items() if "diagnostic" in c.kinds}


def check_error_class(qualname: str, code: str) -> None:
    """Refuse an error class whose default ``code`` is not registered for it.

    ``qualname`` is ``module.Class``; raises ``TypeError`` saying what to register.
    """
    entry = CODES.get(code)
    if entry is None:
        raise TypeError(f"{qualname}: code {code} is not registered in nodes/codes.py")
    if qualname not in entry.raised_by:
        owner = ", ".join(entry.raised_by) or "compiler diagnostics only"
        raise TypeError(
            f"{qualname}: code {code} ({entry.title!r}) belongs to {owner}; "
            "register a new code for this class in nodes/codes.py"
        )


def check_diagnostic(code: str, severity: str) -> None:
    """Refuse a diagnostic code that is not registered, or a severity it does not allow."""
    entry = CODES.get(code)
    if entry is None or "diagnostic" not in entry.kinds:
        raise ValueError(f"{code} is not a registered diagnostic code (see nodes/codes.py)")
    if severity not in entry.severities:
        allowed = " or ".join(entry.severities)
        raise ValueError(f"{code} is reported as {allowed}, not {severity}")


def markdown() -> str:
    """``docs/codes.md``: the table of every code."""
    lines = [
        "# Diagnostic and error codes",
        "",
        "<!-- Generated by `python -m nodes.codes --markdown > docs/codes.md` from nodes/codes.py;",
        "     tests/nodes/test_codes.py fails when this file is out of date. -->",
        "",
        "Every `AFnnn` Alpha Forge shows, once. **Diagnostics** come from the `.af`",
        "compiler with a line and column (the same code in `alphaforge validate`/`run`, the",
        "API's `/api/validate` and `/api/compile`, and the editor's markers); errors stop the",
        "IR from being produced, warnings and infos do not. **Errors** are the codes of",
        "exceptions (the `code` of the exception class; the API logs it, the CLI prints the",
        "message).",
        "",
        "Codes are stable: a number is never reused for another meaning.",
        "",
        "| code | kind | severity | layer | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in _TABLE:
        kind = " + ".join(c.kinds)
        sev = ", ".join(c.severities) if c.severities else "error"
        meaning = c.title
        if c.raised_by:
            meaning += " — `" + "`, `".join(c.raised_by) + "`"
        if c.detail:
            meaning += f" ({c.detail})"
        meaning = meaning.replace("|", "\\|")
        lines.append(f"| {c.code} | {kind} | {sev} | {c.layer} | {meaning} |")
    lines += ["", "Layers:", ""]
    lines += [f"- `{name}`: {what}" for name, what in LAYERS.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - a developer's command
    if sys.argv[1:] == ["--markdown"]:
        sys.stdout.write(markdown())
    else:
        sys.stderr.write("usage: python -m nodes.codes --markdown\n")
        sys.exit(2)
