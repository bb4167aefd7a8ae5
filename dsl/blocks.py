"""Checking the ``walkforward(...)`` line and the ``stream { ... }`` block."""

from __future__ import annotations

from typing import Any

from dsl import tree as t
from dsl.binder import Binder
from dsl.diagnostics import did_you_mean
from dsl.ir import SinkIR, StreamIR, WalkForwardIR
from dsl.source import Reporter, Span
from dsl.streamspec import SINKS, SOURCES, Spec, check_params, interval_text

WALKFORWARD_ARGS = ("train", "test", "step", "anchored", "embargo")


def check_walkforward(wf: t.WalkForward, rep: Reporter) -> WalkForwardIR | None:
    """``walkforward(train=2y, test=6M[, step=6M][, anchored=true][, embargo=5d])``; step
    defaults to test; the embargo (none by default) is a gap after each training window whose
    bars neither train nor test."""
    durations: dict[str, t.Lit] = {}
    anchored = False
    ok = True
    for arg in wf.args:
        if arg.key is None:
            rep.report("AF312", "walkforward takes key=value arguments", arg.span)
            ok = False
        elif arg.key not in WALKFORWARD_ARGS:
            rep.report(
                "AF312",
                f"walkforward has no setting `{arg.key}` (train, test, step, anchored, embargo)",
                arg.key_span or arg.span,
                suggestions=did_you_mean(arg.key, WALKFORWARD_ARGS),
            )
            ok = False
        elif arg.key == "anchored":
            if not (isinstance(arg.value, t.Lit) and arg.value.kind == "bool"):
                rep.report("AF312", "`anchored` takes true or false", arg.value.span)
                ok = False
            else:
                anchored = bool(arg.value.value)
        elif isinstance(arg.value, t.Lit) and arg.value.kind == "duration":
            if arg.value.seconds == 0:
                rep.report("AF312", f"`{arg.key}` must be longer than zero", arg.value.span)
                ok = False
            durations[arg.key] = arg.value
        else:
            rep.report("AF312", f"`{arg.key}` takes a duration such as 2y or 6M", arg.value.span)
            ok = False
    for need in ("train", "test"):
        if need not in durations and not any(a.key == need for a in wf.args):
            rep.report("AF312", f"walkforward needs `{need}=`", wf.span)
            ok = False
    if not ok:
        return None
    train, test = durations["train"], durations["test"]
    step = durations.get("step", test)
    embargo = durations.get("embargo")
    return WalkForwardIR(
        train=train.text,
        test=test.text,
        step=step.text,
        train_seconds=train.seconds or 0,
        test_seconds=test.seconds or 0,
        step_seconds=step.seconds or 0,
        anchored=anchored,
        embargo=embargo.text if embargo is not None else None,
        embargo_seconds=(embargo.seconds or 0) if embargo is not None else 0,
    )


def _literal_params(call: t.Call, rep: Reporter, what: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for arg in call.args:
        ref = t.contains_ref(arg.value)
        if arg.key is None or ref is not None:
            rep.report(
                "AF505",
                f"{what} `{call.type}` takes key=value literals",
                (ref.span if ref is not None else arg.span),
            )
            return None
        out[arg.key] = t.to_json(arg.value)
    return out


def _duration(value: t.Val | None, rep: Reporter, what: str) -> t.Lit | None:
    if value is None:
        return None
    if isinstance(value, t.Lit) and value.kind == "duration":
        if value.seconds == 0:
            rep.report("AF503", f"`{what}` must be longer than zero", value.span)
            return None
        return value
    rep.report("AF503", f"`{what}` takes a duration such as 30d or 1h", value.span)
    return None


def check_stream(stream: t.Stream, rep: Reporter, binder: Binder) -> StreamIR | None:
    """The stream block's IR (source, warm-up, schedule, sinks) or None after reporting."""
    errors_before = sum(d.is_error for d in rep.diagnostics)
    first: dict[str, t.StreamSetting] = {}
    for setting in stream.settings:
        if setting.kind in first:
            rep.report("AF502", f"`{setting.kind}` is set twice in the stream block", setting.span)
        else:
            first[setting.kind] = setting
    source = first.get("source")
    if source is None:
        rep.report(
            "AF501",
            "the stream block has no `source = ...`",
            Span(stream.span.start, stream.span.start + 6),
            hint='source = replay(dataset="btc_1h", speed=0)',
        )
    source_params = _literal_params(source.call, rep, "source") if source and source.call else None
    if source is not None and source.call is not None and source_params is not None:
        _check_call(source.call, source_params, SOURCES, "source", rep)
    warmup = _duration(first["warmup"].value, rep, "warmup") if "warmup" in first else None
    every = after = None
    if "every" in first:
        every = _duration(first["every"].value, rep, "every")
        after = _duration(first["every"].after, rep, "after")
        if every and after and (after.seconds or 0) >= (every.seconds or 0):
            rep.report(
                "AF504",
                f"`after {after.text}` must be shorter than `every {every.text}`",
                after.span,
            )
    sinks: list[SinkIR] = []
    for emit in stream.emits:
        resolved = binder.resolve_ref(emit.ref)
        params = _literal_params(emit.sink, rep, "sink")
        if params is not None:
            _check_call(emit.sink, params, SINKS, "sink", rep)
        if resolved is None or params is None:
            continue
        b = resolved.binding
        sinks.append(
            SinkIR(node=b.node, port=b.port, column=b.column, sink=emit.sink.type, params=params)
        )
    if not stream.emits:
        rep.warn(
            "AF506",
            "the stream block emits nothing",
            Span(stream.span.start, stream.span.start + 6),
            hint="emit step.port to csv_append(path=...)",
        )
    if every is not None and source is not None and source.call is not None and source_params:
        _check_interval(source.call, source_params, every, rep)
    if sum(d.is_error for d in rep.diagnostics) > errors_before or source is None:
        return None
    assert source.call is not None
    return StreamIR(
        source=source.call.type,
        source_params=source_params or {},
        warmup=warmup.text if warmup else None,
        warmup_seconds=warmup.seconds if warmup else None,
        every=every.text if every else None,
        every_seconds=every.seconds if every else None,
        after=after.text if after else None,
        after_seconds=after.seconds if after else None,
        sinks=tuple(sinks),
    )


def _check_call(
    call: t.Call, params: dict[str, Any], table: dict[str, Spec], what: str, rep: Reporter
) -> None:
    """AF507 for a source or sink the live side does not know, AF508 for its params."""
    spec = table.get(call.type)
    if spec is None:
        rep.report(
            "AF507",
            f"unknown stream {what} `{call.type}` (the {what}s: {', '.join(table)})",
            call.type_span,
            suggestions=did_you_mean(call.type, table),
        )
        return
    args = {a.key: a for a in call.args if a.key is not None}
    for key, message in check_params(spec, params, f"{what} `{call.type}`"):
        arg = args.get(key) if key is not None else None
        if key is None or arg is None:
            rep.report("AF508", message, call.span)
            continue
        known = sorted({*spec.params, *spec.aliases})
        unknown = key not in known
        rep.report(
            "AF508",
            message,
            (arg.key_span or arg.span) if unknown else arg.value.span,
            suggestions=did_you_mean(key, known) if unknown else None,
        )


def _check_interval(call: t.Call, params: dict[str, Any], every: t.Lit, rep: Reporter) -> None:
    """AF509 when the block's ``every`` is not a whole multiple of the source's ``interval=``
    (a stream evaluates on the source's bars that close on an ``every`` boundary)."""
    given = interval_text(params.get("interval"))
    if given is None or every.seconds is None:
        return
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    seconds = int(given[:-1]) * units[given[-1]]
    if every.seconds % seconds != 0:
        arg = next(a for a in call.args if a.key == "interval")
        rep.report(
            "AF509",
            f"`every {every.text}` is not a whole multiple of the source's {given} bars: a "
            "stream evaluates on the bars that close on an `every` boundary",
            arg.value.span,
            hint=f"every {given}",
        )
