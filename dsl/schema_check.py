"""A small JSON Schema checker for custom nodes' params (no third-party dependency).

Understands what params schemas use: ``type`` (also lists), ``properties``, ``required``,
``additionalProperties`` (false by default, like built-in params models), ``default``,
``enum``/``const``, ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``,
``minLength``/``maxLength``, ``items``, ``minItems``/``maxItems`` and ``anyOf``/``oneOf``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsl.nodespec import ParamIssue

_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def check_schema(
    schema: Mapping[str, Any], raw: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, list[ParamIssue]]:
    """Validate params against an object schema; returns (params with defaults, issues)."""
    from dsl.nodespec import ParamIssue

    props: Mapping[str, Any] = schema.get("properties", {})
    issues: list[ParamIssue] = []
    if not schema.get("additionalProperties", False):
        issues += [ParamIssue("unknown", k, (), "unknown param") for k in raw if k not in props]
    issues += [
        ParamIssue("missing", k, (), "field required")
        for k in schema.get("required", [])
        if k not in raw
    ]
    out: dict[str, Any] = {k: v["default"] for k, v in props.items() if "default" in v}
    for key, value in raw.items():
        if key not in props:
            out[key] = value
            continue
        problem = _check(props[key], value, ())
        if problem is not None:
            kind, path, message = problem
            issues.append(ParamIssue(kind, key, path, message))
        out[key] = value
    return (None, issues) if issues else (out, [])


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return False
    return isinstance(value, _TYPES.get(name, (object,)))


def _check(
    schema: Mapping[str, Any], value: Any, path: tuple[int | str, ...]
) -> tuple[Any, tuple[int | str, ...], str] | None:
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        results = [_check(s, value, path) for s in options]
        if any(r is None for r in results):
            return None
        return next((r for r in results if r and r[0] == "bounds"), results[0])
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, n) for n in names):
            return "type", path, f"input should be of type {' or '.join(names)}"
    if "const" in schema and value != schema["const"]:
        return "type", path, f"input should be {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        allowed = " or ".join(repr(v) for v in schema["enum"])
        return "type", path, f"input should be {allowed}"
    return _bounds(schema, value, path)


def _bounds(
    schema: Mapping[str, Any], value: Any, path: tuple[int | str, ...]
) -> tuple[Any, tuple[int | str, ...], str] | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        checks = [
            ("minimum", lambda b: value >= b, "greater than or equal to"),
            ("exclusiveMinimum", lambda b: value > b, "greater than"),
            ("maximum", lambda b: value <= b, "less than or equal to"),
            ("exclusiveMaximum", lambda b: value < b, "less than"),
        ]
        for key, ok, words in checks:
            if key in schema and not ok(schema[key]):
                return "bounds", path, f"input should be {words} {schema[key]}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return "bounds", path, f"string should have at least {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return "bounds", path, f"string should have at most {schema['maxLength']} characters"
    if isinstance(value, list | tuple):
        if len(value) < schema.get("minItems", 0):
            return "bounds", path, f"list should have at least {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return "bounds", path, f"list should have at most {schema['maxItems']} items"
        if "items" in schema:
            for i, item in enumerate(value):
                found = _check(schema["items"], item, (*path, i))
                if found is not None:
                    return found
    return None
