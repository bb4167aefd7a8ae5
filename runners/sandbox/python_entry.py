"""Sandbox entrypoint for Python (and, by delegation, WebAssembly) custom nodes.

Usage: ``python3 python_entry.py [--wait] JOB_DIR OUT_DIR`` (``--wait``: a pooled container).
Reads ``job.json``, ``params.json``, the inputs (Arrow IPC, as pandas objects) and the user's
code from JOB_DIR (read-only), calls the user's ``run(inputs, params)`` and writes each output
as JSON columnar to OUT_DIR/<port>.json, a ``model`` output as a model file OUT_DIR/<port>.afmodel
(alphaforge_ml.py; torch, in the image, is imported only by code that uses it).
Everything here is untrusted once user code runs: the host validates the files afterwards.

Exit codes: 0 ok, 1 the user's code failed, 2 bad outputs, 3 out of fuel (wasm), 4 out of memory,
5 an output over the output cap (a model file: said before it is written, naming the output).
Standalone: imports nothing from Alpha Forge (the image has only the runtime).
"""

import contextlib
import gc
import json
import linecache
import math
import os
import sys
import traceback

EXIT_OK, EXIT_USER, EXIT_OUTPUT, EXIT_FUEL, EXIT_MEMORY, EXIT_OUTPUT_LIMIT = 0, 1, 2, 3, 4, 5
# The last line on stdout: lets the host finish without waiting for the engine to notice the
# exit (~0.1 s). Untrusted like everything here: it can only report what an exit code could.
DONE = "@@alphaforge-done@@"
# the name the user's code runs under (tracebacks, line numbers)
USER_FILE = "node.py"


def finish(code):
    """Flush, print the completion line and exit now (no interpreter finalisation)."""
    sys.stderr.flush()
    sys.stdout.write(f"\n{DONE} {code}\n")
    sys.stdout.flush()
    os._exit(code)


def fail(code, message):
    """Say why on stderr and exit with ``code``."""
    sys.stderr.write(f"alphaforge-sandbox: {message}\n")
    finish(code)


def report_user_error(exc):
    """The traceback from the user's first frame on (the runtime's own frames say nothing to
    them), then one summary line with where it happened: the host's error message."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != USER_FILE:
        tb = tb.tb_next
    line = None
    if tb is None:
        # no frame of the user's: a syntax error (the offending line with its caret says it
        # all), no run(), or outputs the runtime cannot convert (its message says which)
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        if isinstance(exc, SyntaxError) and exc.filename == USER_FILE:
            line = exc.lineno
    else:
        traceback.print_exception(type(exc), exc, tb)
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == USER_FILE:
            line = lineno  # the innermost frame in the user's code
    where = f" (line {line} of the node's code)" if line else ""
    summary = " ".join(traceback.format_exception_only(type(exc), exc)[-1].split())
    sys.stderr.write(f"alphaforge-sandbox: {summary[:300]}{where}\n")
    sys.stderr.flush()


def read_frame(path):
    """An input file (Arrow IPC with pandas' metadata, what the host writes for Python) as a
    DataFrame, read with arrow_ipc.py: the image has no pyarrow (its import alone is ~0.1 s)."""
    import arrow_ipc

    return arrow_ipc.read_pandas(path)


def load_inputs(job_dir, job):
    """Input port name -> pandas Series / DataFrame (nodes/base.py's representations)."""
    inputs = {}
    for spec in job["inputs"]:
        name = spec.get("file") or spec["name"] + ".arrow"
        frame = read_frame(os.path.join(job_dir, "inputs", name))
        if spec["kind"] == "series":
            series = frame["value"].astype("float64")
            series.name = spec.get("series_name")
            inputs[spec["name"]] = series
        else:
            inputs[spec["name"]] = frame
    return inputs


def _floats(values):
    """Floats with NaN as None (JSON null); numeric pandas values converted in one go."""
    dtype = getattr(values, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", "") in "fiub":
        import numpy as np

        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        out = arr.tolist()
        if np.isnan(arr).any():
            out = [None if v != v else v for v in out]
        return out
    out = []
    for v in values:
        f = float(v)
        out.append(None if math.isnan(f) else f)
    return out


def _index(index, reference):
    """ISO strings for a DatetimeIndex; None (the host then takes the first input's index, which
    it holds already) when it equals ``reference``, or for any other index."""
    import numpy as np
    import pandas as pd

    if reference is not None and (index is reference or index.equals(reference)):
        return None
    if isinstance(index, pd.DatetimeIndex):
        naive_utc = index.tz_convert(None) if index.tz is not None else index
        return np.datetime_as_string(naive_utc.to_numpy(), timezone="UTC").tolist()
    return None


def to_columnar(value, port, reference=None):
    """A pandas value as the JSON columnar form the host validates (``reference``: the first
    input's index)."""
    import pandas as pd

    if port["type"] == "metrics":
        if not isinstance(value, dict):
            raise TypeError(f"output {port['name']!r} must be a dict, got {type(value).__name__}")
        return {"kind": "metrics", "values": value}
    if port["type"] in ("series", "signal"):
        if not isinstance(value, pd.Series):
            value = pd.Series(value, dtype="float64")
        return {"kind": "series", "index": _index(value.index, reference), "values": _floats(value)}
    if not isinstance(value, pd.DataFrame):
        raise TypeError(f"output {port['name']!r} must be a DataFrame, got {type(value).__name__}")
    columns = {str(c): _floats(value[c].astype("float64")) for c in value.columns}
    return {"kind": "frame", "index": _index(value.index, reference), "columns": columns}


def runtime_loaded():
    """The runtime (numpy, pandas, pyarrow) is imported: keep its objects out of future
    collections and turn the collector back on for the user's code (``main`` turned it off:
    importing pandas with it on costs ~0.05 s of collections over objects that live forever)."""
    gc.freeze()
    gc.enable()


def run_python(job_dir, job, params):
    """Execute the user's Python ``run(inputs, params)``; returns its outputs dict and the first
    input's index (what the host compares outputs with), None without inputs."""
    inputs = load_inputs(job_dir, job)
    runtime_loaded()
    path = os.path.join(job_dir, job["code_file"])
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    namespace = {"__name__": "alphaforge_node", "__file__": USER_FILE}
    # the traceback shows the user's own lines (the source is not a file linecache can open)
    linecache.cache[USER_FILE] = (len(source), None, source.splitlines(True), USER_FILE)
    # optimize=0: the interpreter runs with -OO (the runtime loads faster without docstrings),
    # the user's code keeps its asserts and docstrings
    exec(compile(source, USER_FILE, "exec", optimize=0), namespace)
    run = namespace.get("run")
    if not callable(run):
        raise TypeError("the node's code defines no run(inputs, params) function")
    reference = next((v.index for v in inputs.values()), None)
    outputs = run(inputs, params)
    if not isinstance(outputs, dict):
        raise TypeError(f"run() returned {type(outputs).__name__}, not a dict of outputs")
    return outputs, reference


def model_file(value, port, reference, cap=None):
    """A ``model`` output (the dict describing a trained network) as a model file's bytes:
    JSON and numpy arrays, never a pickle (alphaforge_ml.py; imported only for such an
    output). The training saw the inputs up to the first input's last timestamp: that is its
    ``seen_until`` unless the dict says otherwise. A file over ``cap`` (the node's output cap)
    is refused before it is written, naming the output (the host checks again)."""
    import alphaforge_ml

    last = reference[-1] if reference is not None and len(reference) else None
    try:
        data = alphaforge_ml.model_file(value, port["name"], default_seen_until=last)
    except alphaforge_ml.ModelOutputError as exc:  # names the output and what is wrong
        fail(EXIT_OUTPUT, str(exc))
    if cap is not None and len(data) > cap:
        fail(
            EXIT_OUTPUT_LIMIT,
            f"output {port['name']!r}: its model file is {len(data)} bytes, over the output "
            f"cap of {cap} bytes; a node asks for more with resources.output_mb (up to the "
            "operator's cap)",
        )
    return data


def write_outputs(out_dir, job, outputs, convert, reference=None):
    """Write each declared output as OUT_DIR/<port>.json (a model as OUT_DIR/<port>.afmodel);
    a missing one is an error."""
    for port in job["outputs"]:
        if port["name"] not in outputs:
            fail(EXIT_OUTPUT, f"output {port['name']!r} was not produced")
        if port["type"] == "model":
            cap = job.get("limits", {}).get("output_bytes")
            data = model_file(outputs[port["name"]], port, reference, cap)
            with open(os.path.join(out_dir, port["name"] + ".afmodel"), "wb") as fh:
                fh.write(data)
            continue
        data = convert(outputs[port["name"]], port)
        # dumps, not dump: only the one-shot encoder is the C one (~5x faster on 10k values)
        text = json.dumps(data, allow_nan=True)
        with open(os.path.join(out_dir, port["name"] + ".json"), "w", encoding="utf-8") as fh:
            fh.write(text)


def warm_up():
    """Pooled mode: load the runtime and run the data path once on a tiny in-memory frame, so
    the lazy imports and first-call set-up of reading and writing are paid before ``go``."""
    import importlib

    for name in ("numpy", "pandas", "arrow_ipc", "wasmtime"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(Exception):
        import numpy as np
        import pandas as pd
        from arrow_ipc import _as_pandas

        stamps = np.array([0, 60_000_000, 120_000_000], dtype="<i8").view("datetime64[us]")
        index = pd.Index(_as_pandas(pd, stamps, "UTC"), name="ts")
        frame = pd.DataFrame({"value": np.array([1.0, np.nan, 3.0])}, index=index)
        series = frame["value"].astype("float64")
        port = {"name": "warm", "type": "series"}
        json.dumps(to_columnar(series, port), allow_nan=True)
    with contextlib.suppress(Exception):
        import wasmtime

        config = wasmtime.Config()
        config.consume_fuel = True
        wasmtime.Module(wasmtime.Engine(config), "(module)")


def wait_for_job(job_dir, out_dir):
    """Pooled mode: load the runtime, say ``.ready``, block until the host writes ``go``."""
    warm_up()
    runtime_loaded()
    gc.disable()  # the job's own imports, if any, until runtime_loaded again
    open(os.path.join(out_dir, ".ready"), "w").close()
    with open(os.path.join(job_dir, "go"), "rb") as fh:
        if fh.read(2) != b"go":
            fail(EXIT_USER, "pooled container released without a job")


def main(argv):
    """Run the job in argv[1] (after ``--wait``: once released), outputs to argv[2]."""
    os.dup2(1, 2)  # one stream: the traceback always precedes the completion line
    # and in the order printed: print() lines, logging and the traceback interleave as written
    sys.stdout.reconfigure(line_buffering=True)
    gc.disable()  # until the runtime is loaded (runtime_loaded)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # arrow_ipc, wasm_entry
    if argv[1] == "--wait":
        argv = [argv[0], *argv[2:]]
        wait_for_job(argv[1], argv[2])
    job_dir, out_dir = argv[1], argv[2]
    with open(os.path.join(job_dir, "job.json"), encoding="utf-8") as fh:
        job = json.load(fh)
    with open(os.path.join(job_dir, "params.json"), encoding="utf-8") as fh:
        params = json.load(fh)
    if job["language"] == "wasm":
        import wasm_entry

        runtime_loaded()
        return wasm_entry.main(job_dir, out_dir, job, params)
    try:
        outputs, reference = run_python(job_dir, job, params)
        write_outputs(
            out_dir, job, outputs, lambda v, port: to_columnar(v, port, reference), reference
        )
    except MemoryError:
        fail(EXIT_MEMORY, "MemoryError: the node ran out of memory")
    except Exception as exc:
        report_user_error(exc)
        return EXIT_USER
    sys.stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    # No interpreter finalisation (pyarrow/wasmtime teardown costs ~0.1-0.2 s): the outputs are
    # written and closed, and the container ends with this process anyway.
    finish(main(sys.argv))
