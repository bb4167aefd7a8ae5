"""A strategy module's code, read without running it: its ``CONFIG_SCHEMA`` and configs.

Strategy modules are user code: they only ever run in the sandbox
(:mod:`runners.strategyhost`). What the platform needs before that — the config form, the
validation of a config a user saves — comes from the module's ``CONFIG_SCHEMA``, which must
therefore be a literal (a dict of JSON values written in the class body): it is read with
``ast.literal_eval`` from the parsed source, never by importing it.

- :func:`read_module` checks the source (Python syntax, exactly one class deriving from
  ``Strategy``, defining ``on_tick``) and returns its class name and schema; every problem is a
  :class:`StrategyCodeError` with the line.
- :func:`validate_config` checks a config against the schema (JSON Schema draft 2020-12, with
  the defaults of top-level properties filled in) and returns the config to store, or raises
  :class:`ConfigError` listing every problem by its path.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

__all__ = [
    "ConfigError",
    "StrategyCodeError",
    "StrategyModule",
    "code_hash",
    "read_module",
    "validate_config",
]

MAX_CODE_BYTES = 256 * 1024


class StrategyCodeError(ValueError):
    """The module cannot be a strategy; ``line`` where (None: the module as a whole)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


class ConfigError(ValueError):
    """A config the schema refuses; ``problems`` one sentence each, path first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class StrategyModule:
    """What the platform knows of a module without running it."""

    class_name: str
    config_schema: dict[str, Any]
    code_hash: str
    #: "bar" (a ``Strategy`` with ``on_tick``: live and strategy_backtest) or "tick" (a
    #: ``TickStrategy`` with ``on_step``: tick_strategy_backtest)
    kind: str = "bar"


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def read_module(code: str) -> StrategyModule:
    """Check ``code`` and read its strategy class's name and ``CONFIG_SCHEMA``."""
    if len(code.encode()) > MAX_CODE_BYTES:
        raise StrategyCodeError(f"the module is over {MAX_CODE_BYTES // 1024} KiB")
    try:
        tree = ast.parse(code, filename="strategy.py")
    except SyntaxError as exc:
        raise StrategyCodeError(f"syntax error: {exc.msg}", exc.lineno) from None
    classes = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and any(_base_kind(b) for b in node.bases)
    ]
    if not classes:
        raise StrategyCodeError(
            "no strategy class: define one class deriving from Strategy "
            "(from alphaforge_strategy import Strategy), or from TickStrategy for a tick "
            "strategy (from alphaforge_tick import TickStrategy)"
        )
    if len(classes) > 1:
        names = ", ".join(c.name for c in classes)
        raise StrategyCodeError(
            f"one strategy class per module, this one has {len(classes)}: {names}",
            classes[1].lineno,
        )
    cls = classes[0]
    kind = next(k for k in map(_base_kind, cls.bases) if k)
    methods = {n.name for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    needed = "on_tick(self, tick)" if kind == "bar" else "on_step(self, state)"
    if needed.split("(")[0] not in methods:
        raise StrategyCodeError(f"class {cls.name} has no {needed} method", cls.lineno)
    schema: dict[str, Any] = {}
    for node in cls.body:
        targets = _assigned_names(node)
        if "CONFIG_SCHEMA" not in targets:
            continue
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        try:
            literal = ast.literal_eval(value) if value is not None else None
        except ValueError:
            raise StrategyCodeError(
                "CONFIG_SCHEMA must be a literal dict (JSON values written out, no names or "
                "calls): the platform reads it without running the module",
                node.lineno,
            ) from None
        if not isinstance(literal, dict):
            raise StrategyCodeError("CONFIG_SCHEMA must be a dict (a JSON Schema)", node.lineno)
        schema = literal
    _check_schema(schema)
    return StrategyModule(cls.name, schema, code_hash(code), kind)


def _base_kind(base: ast.expr) -> str | None:
    """ "bar" for a ``Strategy`` base, "tick" for a ``TickStrategy`` base, else None."""
    name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
    return {"Strategy": "bar", "TickStrategy": "tick"}.get(name or "")


def _assigned_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()


def _check_schema(schema: dict[str, Any]) -> None:
    if not schema:
        return
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the top"
        raise StrategyCodeError(
            f"CONFIG_SCHEMA is not a valid JSON Schema at {where}: {exc.message}"
        ) from None
    kind = schema.get("type")
    if kind not in (None, "object"):
        raise StrategyCodeError(
            f'CONFIG_SCHEMA must describe an object (type "object"), not {kind!r}'
        )
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict) and "default" in prop:
            problems = _problems(prop, prop["default"], name)
            if problems:
                raise StrategyCodeError(f"CONFIG_SCHEMA's default for {name}: {problems[0]}")


def validate_config(schema: dict[str, Any], config: Any) -> dict[str, Any]:
    """``config`` with the schema's top-level defaults filled in; ConfigError when invalid."""
    if not isinstance(config, dict):
        raise ConfigError([f"a config is a JSON object, not {type(config).__name__}"])
    filled = copy.deepcopy(config)
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict) and "default" in prop and name not in filled:
            filled[name] = copy.deepcopy(prop["default"])
    problems = _problems(schema, filled)
    bad_numbers = [k for k, v in filled.items() if isinstance(v, float) and not math.isfinite(v)]
    problems += [f"{k}: must be a finite number" for k in bad_numbers]
    if problems:
        raise ConfigError(problems)
    return filled


def _problems(schema: dict[str, Any], value: Any, prefix: str = "") -> list[str]:
    validator = Draft202012Validator(schema)
    out = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in error.absolute_path) or prefix or "config"
        out.append(f"{path}: {error.message}")
    return out
