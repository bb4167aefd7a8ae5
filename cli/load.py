"""Loading a pipeline file for the CLI: ``.af`` text through the compiler, or IR JSON as is.

Problems with the input (a missing file, compile errors) raise :class:`InputError`, which the
CLI turns into exit code 2 after printing the diagnostics gcc-style.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.ir import PipelineIR
from nodes.errors import AlphaForgeError

__all__ = ["InputError", "Loaded", "load_pipeline"]


class InputError(AlphaForgeError):
    """The pipeline file is missing, unreadable or does not compile (CLI exit code 2)."""

    code = "AF801"


@dataclass
class Loaded:
    """A compiled pipeline and what the CLI reports about it."""

    path: Path
    ir: PipelineIR | None
    diagnostics: list[str] = field(default_factory=list)
    errors: int = 0
    warnings: int = 0
    compile_s: float = 0.0
    resolver: Any = None  # the `use` resolver it was compiled with (a LocalNodeResolver)

    @property
    def base_dir(self) -> Path:
        """Relative data paths in the pipeline resolve against the file's folder."""
        return self.path.resolve().parent


def load_pipeline(
    path: Path,
    resolver: Any = None,
    datasets: Collection[str] | None = None,
    catalog: Any = None,
) -> Loaded:
    """Compile ``path`` (``.af``) or read it as IR (``.json``); never raises for diagnostics.

    ``resolver`` (a ``dsl.nodespec.NodeResolver``) resolves ``use`` pins of custom nodes;
    ``datasets``: the dataset names ``dataset_ohlcv`` may use (None: not checked).
    ``catalog`` (a ``dsl.catalogref.DatasetResolver``) resolves ``dataset(...)`` steps to
    exact versions (None: the run resolves them). ``strategy_backtest`` steps resolve their
    ``strategy`` with :func:`strategy_resolver`.
    """
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a pipeline file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    t0 = time.perf_counter()
    if path.suffix == ".json":
        try:
            ir = PipelineIR.from_json(text)
        except ValueError as exc:
            msg = f"{path}: error: not a valid pipeline IR: {exc}"
            return Loaded(path, None, [msg], errors=1)
        return Loaded(path, ir, compile_s=time.perf_counter() - t0)
    from dsl import compile_source

    result = compile_source(
        text,
        filename=str(path),
        resolver=resolver,
        datasets=datasets,
        catalog=catalog,
        strategies=strategy_resolver(path) if "strategy_backtest" in text else None,
    )
    loaded = Loaded(
        path,
        result.ir if result.ok else None,
        compile_s=time.perf_counter() - t0,
        resolver=resolver,
    )
    for d in result.diagnostics:
        loaded.diagnostics.append(d.format(str(path)))
        severity = _severity(d)
        loaded.errors += severity == "error"
        loaded.warnings += severity == "warning"
    if not result.ok and loaded.errors == 0:
        loaded.errors = 1
        loaded.diagnostics.append(f"{path}: error: the pipeline does not compile")
    return loaded


def _severity(d: Any) -> str:
    value = getattr(d, "severity", "error")
    return str(getattr(value, "value", value))


def strategy_resolver(path: Path) -> Any:
    """How the command line resolves ``strategy_backtest``'s ``strategy``: a ``.py`` file next
    to ``path``, else a module stored in the web app's database (every live one; the same
    name under two owners is refused as ambiguous)."""
    from live.strategyrefs import FileStrategyResolver, StoreStrategyResolver

    def stored() -> Any:
        from api.db import make_engine, run_migrations
        from api.settings import ApiSettings

        engine = make_engine(ApiSettings().db_url)
        run_migrations(engine)
        return StoreStrategyResolver(engine)

    return FileStrategyResolver(path.parent, _Lazy(stored))


class _Lazy:
    """A resolver built at its first use (the database is opened only for a stored name)."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.made: Any = None

    def resolve(self, ref: str) -> Any:
        if self.made is None:
            self.made = self.make()
        return self.made.resolve(ref)
