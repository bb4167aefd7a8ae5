"""Converting the other pipeline forms into .af text (``alphaforge convert``).

- JSON (product requirements): ``{"pipeline": [{"id", "type", "depends_on", "params"}]}``; each
  node becomes ``id = type(dep1, dep2, key=value...)`` (a dependency ``id.port`` names one output).
- YAML (signal-generation seed): ``pipeline: - <kind>: {using, inputs, outputs, params}`` with
  optional ``expand`` (``${expand.x}`` params become ``for`` loops) and ``signal_generation``
  (becomes a ``stream`` block).

The output is meant to be read and edited: what cannot be carried over exactly is said in a
``# note:`` comment, never dropped silently. Values that cannot be written in .af (objects,
NaN) raise :class:`ConvertError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from dsl.lower import KEYWORDS
from nodes.errors import AlphaForgeError

_IDENT = re.compile(r"[A-Za-z_]\w*\Z")
_DURATION = re.compile(r"\d+[smhdwMy]\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?\Z")
_EXPAND = re.compile(r"\$\{expand\.(\w+)\}\Z")


class ConvertError(AlphaForgeError):
    """A pipeline definition could not be converted to .af text."""

    code = "AF010"


def name(raw: str) -> str:
    """A valid .af name for ``raw`` (invalid characters to ``_``, keywords get a ``_``)."""
    out = re.sub(r"\W", "_", raw.strip()) or "step"
    if not _IDENT.match(out):
        out = "n_" + out
    return out + "_" if out in KEYWORDS else out


def literal(value: Any, where: str = "value") -> str:
    """The .af literal of a JSON value (durations and dates written as such)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConvertError(f"{where}: {value} cannot be written in .af")
        return repr(value)
    if isinstance(value, str):
        if _DURATION.match(value) or _DATE.match(value):
            return value
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Sequence):
        return "[" + ", ".join(literal(v, where) for v in value) + "]"
    raise ConvertError(f"{where}: a {type(value).__name__} cannot be written as an .af value")


def _call(type_name: str, positional: Sequence[str], params: Mapping[str, Any], where: str) -> str:
    args = list(positional)
    args += [f"{name(k)}={literal(v, f'{where}.{k}')}" for k, v in params.items()]
    return f"{name(type_name)}({', '.join(args)})"


def _header(pipeline_name: str, title: str | None) -> list[str]:
    line = f"pipeline {name(pipeline_name)}"
    if title:
        line += f" {json.dumps(title, ensure_ascii=False)}"
    return [line, ""]


# -- JSON --------------------------------------------------------------------------------------


def json_to_af(data: Mapping[str, Any] | str, *, pipeline_name: str = "converted") -> str:
    """Convert the JSON pipeline form; ``depends_on`` become positional inputs, in order."""
    doc = json.loads(data) if isinstance(data, str) else data
    nodes = doc.get("pipeline") if isinstance(doc, Mapping) else None
    if not isinstance(nodes, list):
        raise ConvertError('expected {"pipeline": [ {"id", "type", ...}, ... ]}')
    lines = _header(str(doc.get("name", pipeline_name)), doc.get("title"))
    ids = {str(n.get("id")): name(str(n.get("id"))) for n in nodes if isinstance(n, Mapping)}
    for i, node in enumerate(nodes):
        if not isinstance(node, Mapping) or "id" not in node or "type" not in node:
            raise ConvertError(f"pipeline[{i}]: a node needs `id` and `type`")
        deps = [_dependency(str(d), ids) for d in node.get("depends_on") or []]
        params = node.get("params") or {}
        call = _call(str(node["type"]), deps, params, f"pipeline[{i}].params")
        lines.append(f"{ids[str(node['id'])]} = {call}")
    return "\n".join(lines) + "\n"


def _dependency(dep: str, ids: Mapping[str, str]) -> str:
    """``id`` or ``id.port`` (one output of a step with several, e.g. ``data.close``)."""
    if dep in ids:
        return ids[dep]
    head, dot, port = dep.partition(".")
    if dot and head in ids:
        return f"{ids[head]}.{name(port)}"
    return name(dep)


# -- YAML --------------------------------------------------------------------------------------


def yaml_to_af(data: Mapping[str, Any] | str, *, pipeline_name: str = "converted") -> str:
    """Convert the YAML form of the signal-generation seed."""
    doc = yaml.safe_load(data) if isinstance(data, str) else data
    if not isinstance(doc, Mapping) or not isinstance(doc.get("pipeline"), list):
        raise ConvertError("expected a mapping with a `pipeline:` list")
    lines = _header(str(doc.get("name", pipeline_name)), doc.get("title"))
    expand: Mapping[str, Any] = doc.get("expand") or {}
    steps: dict[str, str] = {}  # frame/column name -> step name
    model_ref: str | None = None
    source: str | None = None
    for i, entry in enumerate(doc["pipeline"]):
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise ConvertError(f"pipeline[{i}]: expected `- <kind>: {{using, ...}}`")
        ((kind, spec),) = entry.items()
        if not isinstance(spec, Mapping) or "using" not in spec:
            raise ConvertError(f"pipeline[{i}] ({kind}): needs `using`")
        step_lines, step, ref = _yaml_step(i, str(kind), spec, expand, steps)
        lines += step_lines
        if kind == "data" and source is None:
            source = _call(str(spec["using"]).split(".")[-1], [], spec.get("params") or {}, kind)
        if kind == "model":
            model_ref = ref or step
    generation = doc.get("signal_generation")
    if isinstance(generation, Mapping):
        lines += _stream(generation, source, model_ref)
    return "\n".join(lines) + "\n"


def _yaml_step(
    i: int,
    kind: str,
    spec: Mapping[str, Any],
    expand: Mapping[str, Any],
    steps: dict[str, str],
) -> tuple[list[str], str, str | None]:
    """Lines for one YAML step, its step name and (for models) the emitted reference."""
    type_name = str(spec["using"]).split(".")[-1]
    outputs = spec.get("outputs") or {}
    columns = [str(c) for c in outputs.get("columns") or []]
    frame = outputs.get("frame")
    refs: list[str] = []
    params = dict(spec.get("params") or {})
    for key, value in (spec.get("inputs") or {}).items():
        text = str(value)
        head = text.split(".")[0]
        if head in steps:
            rest = text[len(head) :]
            refs.append(steps[head] + rest)
        else:
            params.setdefault(str(key), value)
    loops = [(k, m.group(1)) for k, v in params.items() if (m := _EXPAND.match(str(v)))]
    emitted: str | None = None
    if frame:
        step = name(str(frame))
    elif columns and "." in columns[0]:
        step, _, col = columns[0].partition(".")
        step, emitted = name(step), f"{name(step)}.{col}"
    elif columns and not loops:
        step = name(columns[0])
    elif columns:
        step = re.sub(r"[^\w{}]", "_", columns[0])
    else:
        step = f"{name(kind)}_{i}"
    for label in [str(frame)] if frame else columns:
        steps[label.split(".")[0]] = step.split(".")[0] if "{" not in step else step
    notes = [f"# {kind}: {spec['using']}"]
    if len(columns) > 1:
        notes.append(f"# note: outputs {columns} become the one step `{step}`")
    if not loops:
        call = _call(type_name, refs, params, f"pipeline[{i}].params")
        return [*notes, f"{step} = {call}"], step, emitted
    lines = notes
    indent = ""
    for key, var in loops:
        values = expand.get(var)
        if not isinstance(values, list):
            raise ConvertError(f"pipeline[{i}]: `${{expand.{var}}}` is not a list under `expand`")
        lines.append(f"{indent}for {name(key)} in {literal(values)} {{")
        indent += "    "
        params.pop(key)
    loop_args = [f"{name(k)}={name(k)}" for k, _ in loops]
    call = _call(type_name, [*refs, *loop_args], params, f"pipeline[{i}].params")
    if "{" not in step:
        step += "_" + "_".join("{" + name(k) + "}" for k, _ in loops)
    lines.append(f"{indent}{step} = {call}")
    for _ in loops:
        indent = indent[:-4]
        lines.append(f"{indent}}}")
    return lines, step, emitted


def _stream(generation: Mapping[str, Any], source: str | None, model_ref: str | None) -> list[str]:
    lines = ["", "stream {"]
    if source:
        lines.append(f"    source = {source}")
    warmup = generation.get("warmup") or {}
    if isinstance(warmup, Mapping) and "lookback_days" in warmup:
        lines.append(f"    warmup = {int(warmup['lookback_days'])}d")
    scheduling = generation.get("scheduling") or {}
    if isinstance(scheduling, Mapping) and scheduling.get("interval"):
        every = f"    every {scheduling['interval']}"
        if scheduling.get("buffer_minutes"):
            every += f" after {int(scheduling['buffer_minutes'])}m"
        lines.append(every)
    for sink in generation.get("on_prediction") or []:
        if not isinstance(sink, Mapping) or "using" not in sink:
            raise ConvertError("signal_generation.on_prediction: each sink needs `using`")
        call = _call(str(sink["using"]).split(".")[-1], [], sink.get("params") or {}, "sink")
        lines.append(f"    emit {model_ref or 'model'} to {call}")
    lines.append("}")
    return lines


def convert_text(text: str, *, pipeline_name: str = "converted") -> str:
    """Convert JSON or YAML text (JSON when it parses as JSON with a ``pipeline`` list)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return yaml_to_af(text, pipeline_name=pipeline_name)
    if isinstance(doc, Mapping) and isinstance(doc.get("pipeline"), list):
        items = doc["pipeline"]
        if all(isinstance(n, Mapping) and "id" in n for n in items):
            return json_to_af(doc, pipeline_name=pipeline_name)
    return yaml_to_af(doc, pipeline_name=pipeline_name)
