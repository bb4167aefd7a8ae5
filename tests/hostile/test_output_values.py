"""Values a node returns that the host must refuse by name (issue 10 item 7), in every runtime.

±inf, NaN where it is not allowed, a 4,001-digit integer and metrics that are not numbers each
end in a named failure (kind + code, runners/outputcheck.py) whose message names the node, the
output, the column or metric and what was wrong; never an exception out of the runner.
"""

from __future__ import annotations

import pytest

from runners.outputcheck import InvalidMetric, NonFiniteOutput, NumberTooLarge
from tests.hostile.conftest import Sandbox

pytestmark = pytest.mark.docker

SERIES = (("y", "series"),)
SIGNAL = (("y", "signal"),)
METRICS = (("m", "metrics"),)


def py(body: str) -> str:
    return f"import math\ndef run(inputs, params):\n    x = inputs['x']\n{body}\n"


def js(body: str) -> str:
    return f"function run(inputs, params) {{\n  const x = inputs.x;\n{body}\n}}\n"


def wasm(value: str) -> str:
    # writes `value` (an f64 expression) to row 3 of the output, x to every other row
    return (
        "(module\n"
        '  (memory (export "memory") 1)\n'
        '  (func (export "alloc") (param i32) (result i32) (i32.const 1024))\n'
        '  (func (export "run") (param $in i32) (param $n i32) (param $out i32) (result i32)\n'
        "    (local $i i32)\n"
        "    (loop $l\n"
        "      (f64.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 3)))\n"
        "        (if (result f64) (i32.eq (local.get $i) (i32.const 3))\n"
        f"          (then {value})\n"
        "          (else (f64.const 0.5))))\n"
        "      (local.set $i (i32.add (local.get $i) (i32.const 1)))\n"
        "      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))\n"
        "    (i32.const 0)))\n"
    )


BIG_PY = "10 ** 4000"  # 4,001 digits
BIG_JS = "10n ** 4000n"

CASES = [
    # (language, code, outputs, error class, words the message must hold)
    ("python", py("    return {'y': x / 0.0}"), SERIES, NonFiniteOutput, ["output 'y'", "row 0"]),
    (
        "python",
        py("    y = x * 0; y.iloc[5] = -math.inf\n    return {'y': y}"),
        SERIES,
        NonFiniteOutput,
        ["row 5 (", "-inf"],
    ),
    (
        "python",
        py("    y = x * 0; y.iloc[2] = math.nan\n    return {'y': y}"),
        SIGNAL,
        NonFiniteOutput,
        ["row 2", "use 0 for no position"],
    ),
    (
        "python",
        py(f"    return {{'m': {{'n': {BIG_PY}}}}}"),
        METRICS,
        NumberTooLarge,
        ["metric 'n'", "4,001 digits"],
    ),
    (
        "python",
        py("    return {'m': {'sharpe': math.inf}}"),
        METRICS,
        NonFiniteOutput,
        ["metric 'sharpe'", "+inf"],
    ),
    (
        "python",
        py("    return {'m': {'sharpe': math.nan}}"),
        METRICS,
        NonFiniteOutput,
        ["metric 'sharpe'", "use null"],
    ),
    (
        "python",
        py("    return {'m': {'label': 'high'}}"),
        METRICS,
        InvalidMetric,
        ["metric 'label'", "a string"],
    ),
    (
        "python",
        py("    return {'m': {'nested': {'a': 1}}}"),
        METRICS,
        InvalidMetric,
        ["metric 'nested'", "an object"],
    ),
    (
        "javascript",
        js("  return { y: Array.from(x.values, (v) => v / 0) };"),
        SERIES,
        NonFiniteOutput,
        ["output 'y'", "+inf"],
    ),
    (
        "javascript",
        js("  const y = Array.from(x.values, () => 0); y[7] = -Infinity;\n  return { y };"),
        SERIES,
        NonFiniteOutput,
        ["row 7 (", "-inf"],
    ),
    (
        "javascript",
        js("  const y = Array.from(x.values, () => 0); y[4] = NaN;\n  return { y };"),
        SIGNAL,
        NonFiniteOutput,
        ["row 4"],
    ),
    (
        "javascript",
        js(f"  return {{ m: {{ n: {BIG_JS} }} }};"),
        METRICS,
        NumberTooLarge,
        ["metric 'n'", "4,001 digits"],
    ),
    (
        "javascript",
        js(f"  const y = Array.from(x.values, () => 0); y[2] = {BIG_JS};\n  return {{ y }};"),
        SERIES,
        NumberTooLarge,
        ["row 2", "4,001 digits"],
    ),
    (
        "javascript",
        js("  return { m: { sharpe: Infinity } };"),
        METRICS,
        NonFiniteOutput,
        ["metric 'sharpe'", "+inf"],
    ),
    (
        "javascript",
        js("  return { m: { sharpe: NaN } };"),
        METRICS,
        NonFiniteOutput,
        ["metric 'sharpe'", "NaN"],
    ),
    (
        "javascript",
        js("  return { m: { label: 'high' } };"),
        METRICS,
        InvalidMetric,
        ["metric 'label'", "a string"],
    ),
    (
        "javascript",
        js("  return { m: { nested: [1, 2] } };"),
        METRICS,
        InvalidMetric,
        ["metric 'nested'", "a list"],
    ),
    (
        "wasm",
        wasm("(f64.div (f64.const 1) (f64.const 0))"),
        SERIES,
        NonFiniteOutput,
        ["output 'y'", "row 3 (", "+inf"],
    ),
    ("wasm", wasm("(f64.const -inf)"), SERIES, NonFiniteOutput, ["row 3", "-inf"]),
    ("wasm", wasm("(f64.const nan)"), SIGNAL, NonFiniteOutput, ["row 3", "use 0 for no position"]),
]


@pytest.mark.parametrize(
    ("language", "code", "outputs", "error", "words"),
    CASES,
    ids=[f"{c[0]}-{c[3].__name__}-{i}" for i, c in enumerate(CASES)],
)
def test_bad_values_are_named_errors_in_every_runtime(
    sandbox: Sandbox,
    language: str,
    code: str,
    outputs: tuple[tuple[str, str], ...],
    error: type,
    words: list[str],
) -> None:
    out = sandbox.run(language, code, outputs=outputs)
    result = out.result
    assert result.status == "failed", out.log[-2000:]
    expected = error("x")
    assert result.error_kind == expected.kind, f"{result.error_kind}: {result.error}"
    assert result.error is not None and result.error.startswith("node 'attack', output ")
    for word in words:
        assert word in result.error, result.error
    assert "Traceback" not in result.error


def test_a_python_node_that_forges_its_output_file_is_still_checked(sandbox: Sandbox) -> None:
    # The entrypoint runs in the user's process: code can replace the encoder it writes with.
    code = py(
        "    import json\n"
        "    json.dumps = lambda *a, **k: '{\"values\": {\"n\": 1' + '0' * 4000 + '}}'\n"
        "    return {'m': {'n': 1}}"
    )
    out = sandbox.run("python", code, outputs=METRICS)
    assert out.result.error_kind == "NUMBER_TOO_LARGE", out.result.error
    code = py(
        "    import json\n"
        "    json.dumps = lambda *a, **k: '{\"values\": [' + ','.join(['1e999'] * 100) + ']}'\n"
        "    return {'y': x}"
    )
    out = sandbox.run("python", code, outputs=SERIES)
    assert out.result.error_kind == "NON_FINITE_OUTPUT", out.result.error
    assert "row 0" in (out.result.error or "")


def test_finite_values_and_null_metrics_still_pass(sandbox: Sandbox) -> None:
    out = sandbox.run(
        "javascript",
        js("  return { m: { n: 3, big: 1e300, undefined: null, 'hit rate': 0.5 } };"),
        outputs=METRICS,
    )
    assert out.result.ok, out.result.error
    assert out.report == {"n": 3, "big": 1e300, "undefined": None, "hit rate": 0.5}
    out = sandbox.run("python", py("    return {'y': x.where(x > 100)}"), outputs=SERIES)
    assert out.result.ok, out.result.error  # NaN is a missing value in a series
