"""``strategy_backtest``'s ``strategy`` resolved for the compiler (dsl.strategyref).

- :func:`resolved_module` turns a module's source into the compiler's
  :class:`~dsl.strategyref.ResolvedStrategy`: its config keys and a config check with JSON
  Schema (draft 2020-12, as the instances' configs: nodes.strategycode), one
  :class:`~dsl.nodespec.ParamIssue` per problem at its field, so the editor underlines the value.
- :class:`StoreStrategyResolver` resolves ``"name"`` (the latest version) and ``"name@3"`` over
  the stored strategies a caller may read (the web app passes the user's; the command line every
  live one): the caller's own module of that name first, else the only other one.
- :class:`FileStrategyResolver` (the command line) also takes a ``.py`` file next to the
  pipeline, read when the pipeline is compiled.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from dsl.diagnostics import did_you_mean
from dsl.nodespec import IssueKind, ParamIssue
from dsl.strategyref import ResolvedStrategy, StrategyLookupError, StrategyResolver
from live.tables import Strategy, StrategyVersion
from nodes.strategycode import StrategyCodeError, read_module, validate_config

__all__ = ["FileStrategyResolver", "StoreStrategyResolver", "resolved_module"]

_BOUNDS = {
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
    "maxLength", "minItems", "maxItems", "pattern", "enum", "const",
}  # fmt: skip


def resolved_module(ref: str, code: str) -> ResolvedStrategy:
    """The compiler's view of ``code`` (kept in the IR as ``ref``); StrategyLookupError when
    the source is no strategy module."""
    try:
        module = read_module(code)
    except StrategyCodeError as exc:
        raise StrategyLookupError(f"strategy {ref!r} is not a strategy module: {exc}") from None
    schema = module.config_schema
    keys = tuple(str(k) for k in (schema.get("properties") or {}))

    def check(raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[ParamIssue]]:
        issues = _issues(schema, dict(raw))
        if issues:
            return None, issues
        return validate_config(schema, dict(raw)), []

    return ResolvedStrategy(ref=ref, code=code, config_keys=keys, check=check, kind=module.kind)


def _issues(schema: dict[str, Any], raw: dict[str, Any]) -> list[ParamIssue]:
    filled = dict(raw)
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict) and "default" in prop and name not in filled:
            filled[name] = prop["default"]
    out: list[ParamIssue] = []
    for error in Draft202012Validator(schema).iter_errors(filled):
        path = tuple(error.absolute_path)
        kind: IssueKind = "bounds" if error.validator in _BOUNDS else "type"
        field = str(path[0]) if path else None
        if error.validator == "required":
            wanted = error.validator_value if isinstance(error.validator_value, list) else []
            missing = [n for n in wanted if isinstance(n, str) and n not in filled]
            kind, field = "missing", (missing[0] if missing else None)
        elif error.validator == "additionalProperties" or field is None:
            kind = "model"
        out.append(ParamIssue(kind, field, path[1:], f"(config) {error.message}"))
    return out


class StoreStrategyResolver:
    """Stored modules (see the module doc): ``user_id`` the caller (their own name first),
    ``visible`` extra WHERE clauses on :class:`~live.tables.Strategy` (None: every live one)."""

    def __init__(
        self,
        db: Engine | Session,
        user_id: int | None = None,
        visible: Sequence[Any] | None = None,
    ) -> None:
        self.db = db
        self.user_id = user_id
        self.visible = list(visible) if visible is not None else None

    def resolve(self, ref: str) -> ResolvedStrategy:
        """The module ``ref`` names (see the module doc)."""
        name, _, version_text = ref.partition("@")
        with self._session() as session:
            where = self.visible or [col(Strategy.deleted_at).is_(None)]
            rows = session.exec(select(Strategy).where(*where)).all()
            named = [s for s in rows if s.name == name]
            mine = [s for s in named if s.owner_id == self.user_id]
            chosen = mine or named
            if not chosen:
                known = sorted({s.name for s in rows})
                shown = ", ".join(known[:12]) if known else "none yet: save one first"
                raise StrategyLookupError(
                    f"no strategy module {name!r} (modules: {shown})",
                    did_you_mean(name, known),
                )
            if len(chosen) > 1:
                raise StrategyLookupError(
                    f"{len(chosen)} strategy modules are called {name!r}; copy the one you "
                    "mean under a name of your own"
                )
            strategy = chosen[0]
            version = strategy.latest_version
            if version_text:
                if not version_text.isdigit():
                    raise StrategyLookupError(
                        f"strategy {ref!r}: a version is a number (e.g. {name}@"
                        f"{strategy.latest_version})"
                    )
                version = int(version_text)
            row = session.exec(
                select(StrategyVersion)
                .where(col(StrategyVersion.strategy_id) == strategy.id)
                .where(col(StrategyVersion.version) == version)
            ).first()
            if row is None:
                raise StrategyLookupError(
                    f"strategy {name!r} has no version {version} (versions 1 to "
                    f"{strategy.latest_version})"
                )
            return resolved_module(f"{name}@{version}", row.code)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        if isinstance(self.db, Session):
            yield self.db  # the caller's: not closed here
            return
        with Session(self.db) as session:
            yield session


class FileStrategyResolver:
    """A ``.py`` file relative to ``base_dir`` (the pipeline's folder), else ``stored``."""

    def __init__(self, base_dir: Path, stored: StrategyResolver | None = None) -> None:
        self.base_dir = base_dir
        self.stored = stored

    def resolve(self, ref: str) -> ResolvedStrategy:
        """The file's module, or the stored one (StrategyLookupError saying which failed)."""
        if ref.endswith(".py"):
            path = (self.base_dir / ref).resolve()
            if not path.is_file():
                near = did_you_mean(Path(ref).name, [p.name for p in path.parent.glob("*.py")])
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise StrategyLookupError(f"strategy {ref!r}: no such file {path}{hint}")
            try:
                code = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise StrategyLookupError(f"strategy {ref!r}: cannot read {path}: {exc}") from None
            return resolved_module(ref, code)
        if self.stored is None:
            raise StrategyLookupError(
                f"strategy {ref!r}: name a .py file next to the pipeline, or save the module "
                "with `alphaforge strategy save` (no database is configured)"
            )
        return self.stored.resolve(ref)
