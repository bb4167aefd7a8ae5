"""Sandbox entrypoint for custom tick strategies: ``python3 -I -B tick_strategy_entry.py JOB_DIR``.

Runs the user's JOB_DIR/strategy.py (its one ``alphaforge_tick.TickStrategy`` subclass) and
serves a JSON-lines protocol on stdin / stdout, one request and one reply per line, every reply
echoing the request's ``seq`` (runners/tickstrategy.py is the host):

- ``{"op": "init", "config": {...}, "meta": {...}}`` → ``{"ok": true}``: the module imported,
  the class instantiated with the config (CONFIG_SCHEMA's defaults filled in), ``on_start(ctx)``.
- ``{"op": "step", "state": {...}}`` → ``{"ok": true, "intents": [...]}``: ``on_step(state)``.
- ``{"op": "stop"}`` → exit.

A failing call replies ``{"ok": false, "error": "<one line>", "traceback": "..."}``; every reply
carries the ``logs`` printed meanwhile. The streams are made private as in strategy_entry.py
(whose capture, error and framing helpers this reuses). Exit codes: 0 stopped, 2 not the
protocol, 4 out of memory. Standalone: imports nothing from Alpha Forge.
"""

import json
import linecache
import os
import sys
import types

EXIT_OK, EXIT_PROTOCOL, EXIT_MEMORY = 0, 2, 4


class Session:
    """The loaded module's strategy instance across requests."""

    def __init__(self, job_dir, capture, base):
        import alphaforge_strategy
        import alphaforge_tick

        self.sdk = alphaforge_tick
        self.defaults = alphaforge_strategy.config_with_defaults
        self.job_dir = job_dir
        self.capture = capture
        self.base = base
        self.strategy = None

    def _load(self):
        name = self.base.USER_FILE
        with open(os.path.join(self.job_dir, name), encoding="utf-8") as fh:
            source = fh.read()
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)
        module = types.ModuleType(self.base.MODULE_NAME)
        module.__file__ = name
        sys.modules[self.base.MODULE_NAME] = module
        exec(compile(source, name, "exec"), module.__dict__)
        base = self.sdk.TickStrategy
        found = [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, base) and v is not base
            and v.__module__ == self.base.MODULE_NAME
        ]  # fmt: skip
        leaves = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
        if len(leaves) != 1:
            raise TypeError(
                f"{name} must define exactly one TickStrategy subclass "
                f"(`from alphaforge_tick import TickStrategy`), found {len(leaves)}"
            )
        return leaves[0]

    def init(self, request):
        cls = self._load()
        config = self.defaults(cls.CONFIG_SCHEMA, request.get("config"))
        self.strategy = cls(config)
        ctx = self.sdk.StartContext(request.get("meta") or {}, config, self.capture.line)
        self.strategy.on_start(ctx)
        return {}

    def step(self, request):
        if self.strategy is None:
            raise RuntimeError("the strategy is not initialised (init first)")
        intents = self.strategy.on_step(request.get("state"))
        if intents is None:
            intents = []
        if not isinstance(intents, list | tuple):
            raise TypeError(
                f"on_step must return a list of submit(...) / cancel(...), "
                f"got {type(intents).__name__}"
            )
        return {"intents": list(intents)}


CALLS = {"init": "on_start", "step": "on_step"}


def handle(session, request):
    op = request["op"]
    try:
        reply = {"ok": True, **getattr(session, op)(request)}
    except MemoryError:
        raise
    except BaseException as exc:  # the user's code: SystemExit too
        summary, text = session.base.user_error(exc)
        if isinstance(exc, SystemExit):
            summary = f"{CALLS[op]}: the strategy called sys.exit()"
        reply = {"ok": False, "error": summary, "traceback": text}
    reply["logs"] = session.capture.take()
    return reply


def main(argv):
    job_dir = argv[1]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import strategy_entry as base

    requests = open(os.dup(0), "rb", buffering=1 << 16)  # noqa: SIM115 (lives as the process)
    replies = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    capture = base.Capture()
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115
    sys.stdout = sys.stderr = capture
    session = Session(job_dir, capture, base)
    while True:
        line = requests.readline()
        if not line:
            return EXIT_OK
        try:
            request = json.loads(line)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            base.die(EXIT_PROTOCOL, f"not a request: {line[:200]!r}")
        if op == "stop":
            return EXIT_OK
        if op not in CALLS:
            base.die(EXIT_PROTOCOL, f"unknown op {op!r}")
        try:
            reply = handle(session, request)
        except MemoryError:
            base.die(EXIT_MEMORY, "MemoryError: the strategy ran out of memory")
        base.write_all(replies, base.encode(reply, request.get("seq")))


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    os._exit(code)
