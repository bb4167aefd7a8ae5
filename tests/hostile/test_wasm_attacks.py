"""Hostile WebAssembly modules under wasmtime (fuel + memory cap) inside the Python sandbox."""

from __future__ import annotations

import pytest

from runners.custom import AdminCaps
from tests.hostile.conftest import Concurrent, Sandbox

pytestmark = pytest.mark.docker

SERIES_OUT = (("y", "series"),)


def module(run_body: str, imports: str = "") -> str:
    return (
        f"(module {imports}\n"
        '  (memory (export "memory") 1)\n'
        '  (func (export "alloc") (param i32) (result i32) (i32.const 1024))\n'
        '  (func (export "run") (param $in i32) (param $n i32) (param $out i32) (result i32)\n'
        f"    {run_body}\n"
        "    (i32.const 0)))\n"
    )


def test_wasm_memory_grow_forever_is_a_memory_limit(sandbox: Sandbox) -> None:
    grow = (
        "(loop $l (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1))"
        " (then unreachable)) (br $l))"
    )
    with Concurrent(sandbox):
        out = sandbox.run("wasm", module(grow), outputs=SERIES_OUT)
    assert out.result.error_kind == "MEMORY_LIMIT", out.log[-2000:]
    assert "'attack'" in out.result.error


def test_wasm_one_gib_grow_is_refused(sandbox: Sandbox) -> None:
    # Asking for 1 GiB at once (over the cap): memory.grow returns -1, nothing is allocated.
    grow = (
        "(if (i32.eq (memory.grow (i32.const 16384)) (i32.const -1)) (then (return (i32.const 7))))"
    )
    out = sandbox.run("wasm", module(grow), outputs=SERIES_OUT)
    assert out.result.error_kind == "USER_ERROR", out.log[-2000:]
    assert "returned status 7" in out.result.error


def test_wasm_infinite_loop_runs_out_of_fuel(sandbox: Sandbox) -> None:
    out = sandbox.run(
        "wasm",
        module("(loop $l (br $l))"),
        outputs=SERIES_OUT,
        caps=AdminCaps(wasm_fuel=50_000_000),
    )
    assert out.result.error_kind == "TIMEOUT", out.log[-2000:]
    assert "fuel" in out.result.error


def test_wasm_infinite_loop_with_ample_fuel_is_killed_at_the_wall_time(sandbox: Sandbox) -> None:
    with Concurrent(sandbox):
        out = sandbox.run(
            "wasm", module("(loop $l (br $l))"), outputs=SERIES_OUT, resources={"wall_s": 3}
        )
    assert out.result.error_kind == "TIMEOUT", out.log[-2000:]


def test_wasm_endless_logging_is_capped(sandbox: Sandbox) -> None:
    imports = '(import "env" "log" (func $log (param i32 i32)))'
    body = "(loop $l (call $log (i32.const 0) (i32.const 64)) (br $l))"
    out = sandbox.run(
        "wasm", module(body, imports), outputs=SERIES_OUT, resources={"wall_s": 4},
        caps=AdminCaps(wasm_fuel=200_000_000),
    )  # fmt: skip
    # the fuel would last ~25 s of host calls: the wall time stops it, its log stays capped
    assert out.result.error_kind == "TIMEOUT", (out.result.error, out.log[-1500:])
    assert len(out.result.logs) < 1100


def test_wasm_has_no_system_interface(sandbox: Sandbox) -> None:
    imports = (
        '(import "wasi_snapshot_preview1" "fd_write" '
        "(func $w (param i32 i32 i32 i32) (result i32)))"
    )
    out = sandbox.run("wasm", module("", imports), outputs=SERIES_OUT)
    assert out.result.error_kind == "USER_ERROR", (out.result.error, out.log[-1500:])
    assert "fd_write" in out.log


def test_wasm_out_of_bounds_access_traps(sandbox: Sandbox) -> None:
    body = "(drop (i64.load (i32.const 0x7ffffff0)))"
    out = sandbox.run("wasm", module(body), outputs=SERIES_OUT)
    assert out.result.error_kind == "USER_ERROR", (out.result.error, out.log[-1500:])
    assert "out of bounds" in out.log and "memory fault at wasm address 0x7ffffff0" in out.log
    # the message is the innermost cause and where, not the first line of wasmtime's report
    assert out.result.error == (
        "node 'attack' failed (exit 1): wasm trap: out of bounds memory access "
        "(in <wasm function 1>)"
    )
