"""Sandbox entrypoint for strategy modules: ``python3 -I -B strategy_entry.py JOB_DIR``.

Runs the user's JOB_DIR/strategy.py (under the file name ``strategy.py``, for tracebacks) and
serves the line protocol of runners/strategyhost.py: one JSON request per line on stdin, one
JSON reply per line on stdout, until ``stop`` or the end of stdin (the host gone).

The protocol's streams are private: stdin and stdout are duplicated to descriptors of their own
and descriptors 0 and 1 re-pointed at /dev/null and stderr, so the user's ``input()``,
``print()`` or writes to fd 1 never read a request or corrupt a reply. ``print()`` and
``sys.stderr`` writes (and ``context.log``) are captured and come back, bounded, as the reply's
``logs``. Every reply echoes the request's ``seq``.

Exit codes: 0 stopped (or stdin closed), 2 a request that is not the protocol, 4 out of memory.
Everything here is untrusted once user code runs: the host validates every reply.
Standalone: imports nothing from Alpha Forge (the image has only the runtime).
"""

import io
import json
import linecache
import os
import sys
import traceback
import types

USER_FILE = "strategy.py"
MODULE_NAME = "strategy"
MAX_REPLY_BYTES = 1 << 20  # runners/strategyhost.py MAX_REPLY_BYTES
MAX_LOG_LINES = 200  # per reply
MAX_LOG_LINE = 2000  # characters
MAX_CAPTURE = 128 * 1024  # characters captured per call (≤ 6 bytes each as JSON)
MAX_TRACEBACK = 16 * 1024
EXIT_OK, EXIT_PROTOCOL, EXIT_MEMORY = 0, 2, 4


class Capture(io.TextIOBase):
    """Where print() and sys.stderr go: text kept up to MAX_CAPTURE characters per call."""

    def __init__(self):
        self._parts = []
        self._size = 0
        self._dropped = 0

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = MAX_CAPTURE - self._size
        if room > 0:
            self._parts.append(text[:room])
            self._size += min(len(text), room)
        if len(text) > room:
            self._dropped += len(text) - max(room, 0)
        return len(text)

    def line(self, text):
        """One whole line (``context.log``)."""
        self.write(text.rstrip("\n") + "\n")

    def take(self):
        """The lines written since the last call, bounded in number and length."""
        text, dropped = "".join(self._parts), self._dropped
        self._parts, self._size, self._dropped = [], 0, 0
        lines = text.splitlines()
        out = [ln if len(ln) <= MAX_LOG_LINE else ln[:MAX_LOG_LINE] + " [...]" for ln in lines]
        if len(out) > MAX_LOG_LINES:
            extra = len(out) - MAX_LOG_LINES + 1
            out = [*out[: MAX_LOG_LINES - 1], f"[... {extra} more lines not kept]"]
        if dropped:
            out.append(f"[... {dropped} more characters not kept]")
        return out


def user_error(exc):
    """``(summary, traceback)``: the traceback from the user's first frame on, and one line
    saying what and where (``... (line N of strategy.py)``)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != USER_FILE:
        tb = tb.tb_next
    line = None
    if tb is None:
        text = "".join(traceback.format_exception_only(type(exc), exc))
        if isinstance(exc, SyntaxError) and exc.filename == USER_FILE:
            line = exc.lineno
    else:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == USER_FILE:
            line = lineno  # the innermost frame in the user's code
    where = f" (line {line} of {USER_FILE})" if line else ""
    summary = " ".join(traceback.format_exception_only(type(exc), exc)[-1].split())
    if len(text) > MAX_TRACEBACK:
        text = "[...]\n" + text[-MAX_TRACEBACK:]
    return f"{summary[:500]}{where}", text


def _jsonable(value):
    """numpy scalars and arrays as plain values, times as ISO text; anything else is an error
    saying its type."""
    item = getattr(value, "tolist", None) or getattr(value, "item", None)
    if callable(item):
        return item()
    if callable(getattr(value, "isoformat", None)):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} is not JSON (use numbers, text, lists, dicts)")


class Session:
    """The loaded module, its one Strategy subclass and the instance, across requests."""

    def __init__(self, job_dir, capture):
        import alphaforge_strategy as sdk

        self.sdk = sdk
        self.job_dir = job_dir
        self.capture = capture
        self.cls = None
        self.strategy = None
        self.context = None
        self.pending_intents = None  # a tick's intents, also when on_tick raised

    def load(self):
        """Import strategy.py once; its one Strategy subclass (TypeError for none or several)."""
        if self.cls is not None:
            return self.cls
        with open(os.path.join(self.job_dir, USER_FILE), encoding="utf-8") as fh:
            source = fh.read()
        linecache.cache[USER_FILE] = (len(source), None, source.splitlines(True), USER_FILE)
        module = types.ModuleType(MODULE_NAME)
        module.__file__ = USER_FILE
        sys.modules[MODULE_NAME] = module  # dataclasses, typing look their module up
        exec(compile(source, USER_FILE, "exec"), module.__dict__)
        found = [
            v
            for v in vars(module).values()
            if isinstance(v, type)
            and issubclass(v, self.sdk.Strategy)
            and v is not self.sdk.Strategy
            and v.__module__ == MODULE_NAME
        ]
        # a base class of the module's own subclasses is not a candidate: the leaves are
        leaves = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
        if not leaves:
            raise TypeError(
                f"{USER_FILE} defines no Strategy subclass: write `class MyStrategy(Strategy):` "
                "with `from alphaforge_strategy import Strategy`"
            )
        if len(leaves) > 1:
            names = ", ".join(sorted(c.__name__ for c in leaves))
            raise TypeError(
                f"{USER_FILE} defines several Strategy subclasses ({names}): one per file"
            )
        self.cls = leaves[0]
        return self.cls

    def describe(self, request):
        cls = self.load()
        schema = cls.CONFIG_SCHEMA
        if not isinstance(schema, dict):
            raise TypeError(f"{cls.__name__}.CONFIG_SCHEMA must be a dict (a JSON Schema)")
        doc = (cls.__doc__ or "").strip()
        return {"name": cls.__name__, "config_schema": schema, "doc": doc[:2000]}

    def init(self, request):
        cls = self.load()
        config = self.sdk.config_with_defaults(cls.CONFIG_SCHEMA, request.get("config"))
        context = self.sdk.Context(request.get("identity"), request.get("mode"), self.capture.line)
        self.context = context
        self.strategy = cls(context, config)
        return {}

    def tick(self, request):
        strategy = self._started()
        self.context._begin(request.get("tick"), request.get("account"))
        reply = {"mode_error": None}
        try:
            strategy.on_tick(dict(self.context._tick))  # theirs to change
        except self.sdk.ModeError as exc:
            reply["mode_error"] = str(exc)[:1000]
        finally:
            # with the error reply too: the orders placed before it were placed
            reply["intents"] = self.context._end()
            self.pending_intents = reply["intents"]
        return reply

    def render(self, request):
        value = self._started().render()
        widgets = value.get("widgets") if isinstance(value, dict) else None
        if not isinstance(widgets, list):
            raise TypeError(
                f"render() must return {{'widgets': [...]}}, got {type(value).__name__}"
                + (" without a 'widgets' list" if isinstance(value, dict) else "")
            )
        return {"widgets": widgets}

    def mode(self, request):
        self._started()
        self.context._set_mode(request.get("mode"))
        return {}

    def _started(self):
        if self.strategy is None:
            raise RuntimeError("the strategy is not initialised (init first)")
        return self.strategy


OPS = ("describe", "init", "tick", "render", "mode")
# what the user calls each op (error messages)
CALLS = {"describe": "loading strategy.py", "init": "init", "tick": "on_tick", "render": "render",
         "mode": "switching mode"}  # fmt: skip


def handle(session, request):
    """One request's reply (a dict); MemoryError propagates (the process then exits)."""
    op = request.get("op")
    session.pending_intents = None
    try:
        reply = {"ok": True, **getattr(session, op)(request)}
    except MemoryError:
        raise
    except BaseException as exc:  # the user's code: SystemExit and KeyboardInterrupt too
        summary, text = user_error(exc)
        if isinstance(exc, SystemExit):
            summary = (
                f"{CALLS[op]}: the strategy called sys.exit(); a strategy cannot end its sandbox"
            )
        reply = {"ok": False, "error": summary, "traceback": text}
        if op == "tick" and session.pending_intents is not None:
            reply["intents"] = session.pending_intents
    reply["logs"] = session.capture.take()
    return reply


def _dumps(value):
    return json.dumps(value, allow_nan=True, default=_jsonable, separators=(",", ":"))


def encode(reply, seq):
    """The reply as one line under MAX_REPLY_BYTES: over it, its logs go first (a tick's
    intents and outcome must arrive), then the rest becomes an error saying so."""
    reply["seq"] = seq
    what = "render()'s widgets" if "widgets" in reply else "the reply"
    try:
        data = _dumps(reply)
    except (TypeError, ValueError) as exc:
        reply = {"ok": False, "error": f"{what}: {exc}", "logs": reply.get("logs"), "seq": seq}
        data = _dumps(reply)
    if len(data) >= MAX_REPLY_BYTES and reply.get("logs"):
        dropped = len(reply["logs"])
        reply["logs"] = [f"[... {dropped} log lines not kept: the reply was over its cap]"]
        data = _dumps(reply)
    if len(data) >= MAX_REPLY_BYTES:
        data = _dumps(
            {
                "ok": False,
                "error": f"{what} came to {len(data)} bytes, over the reply cap of "
                f"{MAX_REPLY_BYTES} bytes: show less",
                "seq": seq,
            }
        )
    return data.encode("utf-8") + b"\n"


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def die(code, message):
    os.write(2, f"alphaforge-strategy: {message}\n".encode())
    os._exit(code)


def main(argv):
    job_dir = argv[1]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # alphaforge_strategy
    # the protocol's own descriptors; 0 and 1 are the user's (nothing to read, stderr)
    requests = open(os.dup(0), "rb", buffering=1 << 16)  # noqa: SIM115 (lives as the process)
    replies = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    capture = Capture()
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115
    sys.stdout = sys.stderr = capture
    session = Session(job_dir, capture)
    while True:
        line = requests.readline()
        if not line:
            return EXIT_OK  # the host closed stdin: it is gone or done
        try:
            request = json.loads(line)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            die(EXIT_PROTOCOL, f"not a request: {line[:200]!r}")
        if op == "stop":
            return EXIT_OK
        if op not in OPS:
            die(EXIT_PROTOCOL, f"unknown op {op!r}")
        try:
            reply = handle(session, request)
        except MemoryError:
            die(EXIT_MEMORY, "MemoryError: the strategy ran out of memory")
        write_all(replies, encode(reply, request.get("seq")))


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    os._exit(code)  # no finalisation: the user's threads or atexit hooks do not hold us
