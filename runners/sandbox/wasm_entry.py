"""Sandbox entrypoint for WebAssembly custom nodes (ABI v1, see WASM_ABI.md), under wasmtime.

Called by python_entry.py. Input columns are concatenated column-major as f64 (each input port's
numeric columns in job order), outputs read back the same way, params passed as an f64 array to
the optional ``set_params`` export. Fuel bounds the instructions executed and a store limit
bounds linear memory: running out of either is reported with its own exit code.
"""

import array
import json
import os
import re
import sys

import wasmtime

EXIT_OK, EXIT_USER, EXIT_OUTPUT, EXIT_FUEL, EXIT_MEMORY = 0, 1, 2, 3, 4
PAGE = 65536
LOG_LIMIT = 1000


def _fail(code, message):
    sys.stderr.write(f"alphaforge-sandbox: {message}\n")
    sys.stderr.flush()
    return code


def trap_summary(text):
    """wasmtime's multi-line trap report in one line: the innermost cause and the function it
    happened in, e.g. ``wasm trap: out of bounds memory access (in <wasm function 1>)``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    causes = [ln.split("wasm trap: ", 1)[1] for ln in lines if "wasm trap: " in ln]
    reason = causes[-1] if causes else (lines[0] if lines else "trap")
    frame = next((m.group(1) for ln in lines if (m := _FRAME.match(ln))), None)
    where = f" (in {frame.rsplit('!', 1)[-1]})" if frame else ""
    return f"wasm trap: {reason}{where}"


_FRAME = re.compile(r"^\d+:\s+0x[0-9a-f]+ - (.+)$")


def _read_columns(job_dir, job):
    """The inputs' columns as one block of f64 bytes (each input port's columns in job order,
    column after column: the host's ``.f64`` files are already in that layout), the number of
    columns and the rows per column."""
    blocks, n_cols, n = [], 0, None
    for spec in job["inputs"]:
        with open(os.path.join(job_dir, "inputs", spec["file"]), encoding="utf-8") as fh:
            meta = json.load(fh)
        if n is not None and meta["rows"] != n:
            raise ValueError("inputs of a wasm node must have the same length")
        n = meta["rows"]
        with open(os.path.join(job_dir, "inputs", meta["values_file"]), "rb") as fh:
            block = fh.read()
        if len(block) != 8 * n * len(meta["columns"]):
            raise ValueError(f"input {spec['name']!r}: {len(block)} bytes of values")
        blocks.append(block)
        n_cols += len(meta["columns"])
    if sys.byteorder != "little":
        raise ValueError("the wasm runner needs a little-endian machine")
    return b"".join(blocks), n_cols, n or 0


def _linker(engine, logs):
    linker = wasmtime.Linker(engine)
    i32 = wasmtime.ValType.i32()

    def log(caller, ptr, length):
        if len(logs) >= LOG_LIMIT:
            return
        mem = caller.get("memory")
        raw = mem.read(caller, ptr, ptr + min(length, 4096))
        print(bytes(raw).decode("utf-8", "replace"), flush=True)
        logs.append(1)

    linker.define_func("env", "log", wasmtime.FuncType([i32, i32], []), log, access_caller=True)
    return linker


def _module(engine, job_dir, job):
    path = os.path.join(job_dir, job["code_file"])
    with open(path, "rb") as fh:
        code = fh.read()
    return wasmtime.Module(engine, code if job["code_file"].endswith(".wasm") else code.decode())


def main(job_dir, out_dir, job, params):
    """Run the module's ``run`` over the inputs and write the outputs; returns the exit code."""
    limits = job["limits"]
    mem_cap = int(limits["wasm_memory_bytes"])
    config = wasmtime.Config()
    config.consume_fuel = True
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    store.set_fuel(int(limits["wasm_fuel"]))
    store.set_limits(memory_size=mem_cap, instances=4, tables=4, memories=1)
    memory = None
    try:
        flat, n_cols, n = _read_columns(job_dir, job)
        instance = _linker(engine, []).instantiate(store, _module(engine, job_dir, job))
        ex = instance.exports(store)
        memory, alloc, run = ex["memory"], ex["alloc"], ex["run"]
        n_out = sum(
            1 if p["type"] in ("series", "signal") else len(p["columns"]) for p in job["outputs"]
        )
        in_ptr = alloc(store, 8 * n * max(n_cols, 1))
        out_ptr = alloc(store, 8 * n * max(n_out, 1))
        memory.write(store, flat, in_ptr)
        values = [float(params.get(k, "nan")) for k in job["param_order"]]  # missing: NaN
        if values and "set_params" in ex:
            p_ptr = alloc(store, 8 * len(values))
            memory.write(store, array.array("d", values).tobytes(), p_ptr)
            ex["set_params"](store, p_ptr, len(values))
        status = run(store, in_ptr, n, out_ptr)
        if status != 0:
            return _fail(EXIT_USER, f"wasm run() returned status {status}")
        out = array.array("d")
        out.frombytes(bytes(memory.read(store, out_ptr, out_ptr + 8 * n * n_out)))
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        text = str(exc)
        if "fuel" in text:
            return _fail(EXIT_FUEL, f"wasm ran out of fuel: {text.splitlines()[0]}")
        # memory.grow past the cap returns -1 (wasm semantics); a trap with the memory within
        # 1/16 of the cap is that refusal surfacing, so it is reported as the memory limit.
        if memory is not None and mem_cap - memory.data_len(store) < max(PAGE, mem_cap // 16):
            return _fail(EXIT_MEMORY, f"wasm memory limit ({mem_cap} bytes) reached: {text}")
        sys.stderr.write(f"{text}\n")  # wasmtime's report: backtrace and causes
        return _fail(EXIT_USER, trap_summary(text))
    except Exception as exc:  # bad module, missing export, bad inputs
        return _fail(EXIT_USER, f"{type(exc).__name__}: {exc}")
    _write(out_dir, job, out, n)
    return EXIT_OK


def _write(out_dir, job, out, n):
    k = 0
    for port in job["outputs"]:
        names = ["value"] if port["type"] in ("series", "signal") else port["columns"]
        columns = {}
        for name in names:
            columns[name] = [None if v != v else v for v in out[k * n : (k + 1) * n]]
            k += 1
        if port["type"] in ("series", "signal"):
            data = {"kind": "series", "values": columns["value"]}
        else:
            data = {"kind": "frame", "columns": columns}
        text = json.dumps(data)  # the one-shot (C) encoder
        with open(os.path.join(out_dir, port["name"] + ".json"), "w", encoding="utf-8") as fh:
            fh.write(text)
