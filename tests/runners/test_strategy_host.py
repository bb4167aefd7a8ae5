"""The strategy host's protocol and the strategy SDK, through the process host (the same
entrypoint as the Docker sandbox, run as a local subprocess): init / tick / render, intents,
observe mode's refusals, prints that cannot corrupt the protocol, the user's errors with their
line, bad modules, bad widgets, and crashes (timeout, memory, exit, forged replies).
The same in the real sandbox: tests/hostile/test_strategy_sandbox.py."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from runners.custom import AdminCaps, Limits
from runners.process import ALLOW_ENV, ProcessRunnerDisabled
from runners.sandbox import ENTRY_DIR
from runners.strategyhost import (
    MAX_REPLY_BYTES,
    ProcessStrategyHost,
    StrategyCrashed,
    StrategyError,
    new_slot,
    strategy_host,
)

ROOT = Path(__file__).resolve().parents[2]
SMA = (ROOT / "examples" / "strategies" / "sma_cross.py").read_text()
IDENTITY = {"id": "inst-1", "strategy_type": "t", "account": "paper", "market": "BTCUSDT"}
ACCOUNT = {"cash": 1000.0, "positions": {"BTCUSDT": 0.0}, "open_orders": []}
HEAD = (
    "from alphaforge_strategy import Strategy, ModeError, metric, line_chart, table, log_widget\n"
)


@pytest.fixture(autouse=True)
def _process_runner_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "1")


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Any]:
    """Makes process hosts (work dirs under tmp_path); stops every one afterwards."""
    made: list[ProcessStrategyHost] = []

    def make(code: str, **kw: Any) -> ProcessStrategyHost:
        kw.setdefault("limits", Limits.default(AdminCaps()))
        host = ProcessStrategyHost(code, instance_id="inst-1", work_root=tmp_path / "w", **kw)
        made.append(host)
        return host

    yield make
    for host in made:
        host.stop()
    work = tmp_path / "w"
    assert not work.exists() or not any(work.iterdir()), "a job directory was left behind"


def module(body: str) -> str:
    return HEAD + textwrap.dedent(body)


def bar(i: int, price: float, symbol: str = "BTCUSDT") -> dict[str, Any]:
    ts = (pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=i)).isoformat()
    return {"symbol": symbol, "ts": ts, "interval": "1h", "open": price, "high": price,
            "low": price, "close": price, "volume": 1.0, "price": price}  # fmt: skip


def prices(n: int = 60) -> list[float]:
    return [100 + 10 * math.sin(i / 4) + i * 0.05 for i in range(n)]


def expected_crosses(closes: list[float], fast: int, slow: int) -> list[tuple[int, str]]:
    """(bar index, side) of each crossover, computed independently with pandas."""
    s = pd.Series(closes)
    above = (s.rolling(fast).mean() > s.rolling(slow).mean())[slow - 1 :]
    flips = above.ne(above.shift()) & above.shift().notna()
    return [(int(i), "buy" if above[i] else "sell") for i in above.index[flips]]


# -- the SMA example through the protocol ---------------------------------------------------------


def test_the_sma_example_places_an_order_at_each_crossover(hosts: Any) -> None:
    host = hosts(SMA)
    assert host.start(IDENTITY, {"fast": 3, "slow": 8, "qty": 0.5}, "active") == []
    closes, position, placed = prices(), 0.0, []
    for i, close in enumerate(closes):
        reply = host.tick(bar(i, close), {**ACCOUNT, "positions": {"BTCUSDT": position}})
        assert reply.error is None and reply.mode_error is None, reply
        for intent in reply.intents:
            assert intent["op"] == "place" and intent["symbol"] == "BTCUSDT"
            assert intent["type"] == "market" and intent["limit_price"] is None
            placed.append((i, intent["side"]))
            position += intent["qty"] if intent["side"] == "buy" else -intent["qty"]
            assert reply.logs == [
                f"{intent['side']} {intent['qty']:g} at {close} (placed {intent['client_id']})"
            ] or reply.logs[0].startswith(intent["side"])
    crosses = expected_crosses(closes, 3, 8)
    # a sell only when long: the first cross down before any buy places nothing
    want, long = [], False
    for i, side in crosses:
        if side == "buy" or long:
            want.append((i, side))
            long = side == "buy"
    assert len(want) >= 3
    assert placed == want
    widgets = host.render()
    s = pd.Series(closes)
    by_label = {w["label"]: w for w in widgets if w["type"] == "metric"}
    assert by_label["Fast SMA"]["value"] == pytest.approx(s[-3:].mean())
    assert by_label["Slow SMA"]["value"] == pytest.approx(s[-8:].mean())
    assert by_label["Trades"]["value"] == len(want)
    chart = next(w for w in widgets if w["type"] == "line_chart" and w["label"] == "Slow SMA")
    assert len(chart["points"]) == len(closes) - 7
    assert chart["points"][0] == [bar(7, 0)["ts"], pytest.approx(s[:8].mean())]
    trades = next(w for w in widgets if w["type"] == "table")
    assert [row[1] for row in trades["rows"]] == [side for _, side in want]


def test_schema_defaults_fill_the_config_and_describe_reads_the_class(hosts: Any) -> None:
    host = hosts(SMA)
    described = host.describe()
    assert described["name"] == "SmaCross"
    assert described["config_schema"]["properties"]["slow"]["default"] == 20
    host.start(IDENTITY, {"qty": 2}, "active")
    closes = prices(40)
    intents = [it for i, c in enumerate(closes) for it in host.tick(bar(i, c), ACCOUNT).intents]
    buys = [i for i, side in expected_crosses(closes, 5, 20) if side == "buy"]
    assert [it["qty"] for it in intents if it["side"] == "buy"] == [2.0] * len(buys)


def test_observe_mode_runs_the_same_logic_and_records_refused_orders(hosts: Any) -> None:
    active, observe = hosts(SMA), hosts(SMA)
    active.start(IDENTITY, {"fast": 3, "slow": 8, "qty": 1}, "active")
    observe.start(IDENTITY, {"fast": 3, "slow": 8, "qty": 1}, "observe")
    for i, close in enumerate(prices()):
        a, o = active.tick(bar(i, close), ACCOUNT), observe.tick(bar(i, close), ACCOUNT)
        assert [x["side"] for x in a.intents] == [x["side"] for x in o.intents]
        for placed, refused in zip(a.intents, o.intents, strict=True):
            assert "refused" not in placed
            assert refused["refused"] == (
                f"observe mode: orders are recorded, never placed: {refused['side']} 1 "
                "BTCUSDT at market"
            )
        assert o.mode_error is None  # the example catches ModeError itself
        assert all(line.endswith("(observed)") for line in o.logs)


def test_a_mode_error_escaping_on_tick_is_reported_and_the_host_lives(hosts: Any) -> None:
    host = hosts(
        module("""
        class Eager(Strategy):
            def on_tick(self, tick):
                self.context.place_order("buy", 1.5, type="limit", limit_price=99.5)
                self.state["after"] = True  # never reached in observe mode
        """)
    )
    host.start(IDENTITY, {}, "observe")
    reply = host.tick(bar(0, 100.0), ACCOUNT)
    message = "observe mode: orders are recorded, never placed: buy 1.5 BTCUSDT limit 99.5"
    assert reply.mode_error == message
    assert reply.error is None
    [intent] = reply.intents
    assert intent["refused"] == message and intent["limit_price"] == 99.5
    host.set_mode("active")
    reply = host.tick(bar(1, 100.0), ACCOUNT)
    assert reply.mode_error is None and "refused" not in reply.intents[0]
    assert host.alive


# -- the context -----------------------------------------------------------------------------------


def test_the_context_answers_from_the_tick_and_the_account(hosts: Any) -> None:
    host = hosts(
        module("""
        class Reader(Strategy):
            def init(self):
                try:
                    self.context.get_cash()
                except RuntimeError as exc:
                    print("init:", exc)
                return {}

            def on_tick(self, tick):
                c = self.context
                first = c.place_order("BUY", 2)
                c.cancel_order("old-1")
                print(c.now(), c.get_price(), c.get_price("ETHUSDT"), c.get_cash(),
                      c.get_position(), c.get_position("ETHUSDT"))
                print([o["client_id"] for o in c.get_orders()], first)
                print(c.identity["market"])
                c.get_price("DOGE")
        """)
    )
    logs = host.start(IDENTITY, {}, "active")
    assert logs == [
        "init: get_cash: the market and the account are known from the first tick on "
        "(init runs before any tick)"
    ]
    account = {
        "cash": 250.5,
        "positions": {"BTCUSDT": 0.25, "ETHUSDT": 3},
        "open_orders": [{"client_id": "old-1", "side": "sell", "qty": 1.0}],
        "prices": {"ETHUSDT": 2000.0},
    }
    reply = host.tick(bar(5, 123.0), account)
    assert reply.logs[0] == f"{bar(5, 0)['ts']} 123.0 2000.0 250.5 0.25 3.0"
    client_id = reply.intents[0]["client_id"]
    assert reply.logs[1] == f"['old-1', '{client_id}'] {client_id}"
    assert reply.logs[2] == "BTCUSDT"
    assert reply.intents == [
        {"op": "place", "client_id": client_id, "symbol": "BTCUSDT", "side": "buy", "qty": 2.0,
         "type": "market", "limit_price": None},
        {"op": "cancel", "client_id": "old-1"},
    ]  # fmt: skip
    # the error came after the orders: they come back with it
    assert reply.error == (
        "ValueError: get_price: no price for 'DOGE'; this instance's ticks are for 'BTCUSDT' "
        "(line 19 of strategy.py)"
    )
    second = host.tick(bar(6, 124.0), account)
    assert second.intents[0]["client_id"] != client_id


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ('"hold", 1', "side must be 'buy' or 'sell', got 'hold'"),
        ('"buy", 0', "qty must be above 0, got 0"),
        ('"buy", float("nan")', "qty must be a finite number, got nan"),
        ('"buy", "1"', "qty must be a number, got '1'"),
        ('"buy", 1, type="stop"', "type must be 'market' or 'limit', got 'stop'"),
        ('"buy", 1, type="limit"', "a limit order needs a limit_price"),
        ('"buy", 1, limit_price=5', "a market order takes no limit_price"),
        ('"sell", 1, type="limit", limit_price=-2', "limit_price must be above 0, got -2"),
    ],
)
def test_a_bad_order_is_a_clear_value_error(hosts: Any, call: str, message: str) -> None:
    host = hosts(module(f"class Bad(Strategy):\n    def on_tick(self, tick):\n        "
                        f"self.context.place_order({call})\n"))  # fmt: skip
    host.start(IDENTITY, {}, "observe")  # validated before the mode is: same in both modes
    reply = host.tick(bar(0, 1.0), ACCOUNT)
    assert reply.error == f"ValueError: place_order: {message} (line 4 of strategy.py)"
    assert reply.intents == [] and reply.mode_error is None


# -- output that must not corrupt the protocol -----------------------------------------------------


def test_prints_and_writes_to_stdout_never_corrupt_the_protocol(hosts: Any) -> None:
    host = hosts(
        module("""
        import os, sys

        class Noisy(Strategy):
            def init(self):
                print("loading")
                return {}

            def on_tick(self, tick):
                print('{"ok": true, "seq": 1}')
                sys.stdout.write("no newline")
                sys.stderr.write("to stderr\\n")
                os.write(1, b'{"ok": false}\\n')
                sys.__stdout__.write("dunder\\n")
                sys.__stdout__.flush()
                try:
                    input()
                except EOFError:
                    self.context.log("stdin is empty")
                self.context.place_order("buy", 1)
        """)
    )
    assert host.start(IDENTITY, {}, "active") == ["loading"]
    for i in range(3):
        reply = host.tick(bar(i, 10.0), ACCOUNT)
        assert reply.error is None
        assert reply.logs == ['{"ok": true, "seq": 1}', "no newlineto stderr", "stdin is empty"]
        assert [x["side"] for x in reply.intents] == ["buy"]
    assert host.alive


def test_logs_are_bounded(hosts: Any) -> None:
    host = hosts(module("""
        class Chatty(Strategy):
            def on_tick(self, tick):
                for i in range(1000):
                    print(i)
                print("x" * 5000)
        """))  # fmt: skip
    host.start(IDENTITY, {}, "active")
    logs = host.tick(bar(0, 1.0), ACCOUNT).logs
    assert len(logs) == 200
    assert logs[:3] == ["0", "1", "2"]
    assert logs[-1] == "[... 802 more lines not kept]"


# -- the user's errors -----------------------------------------------------------------------------


def test_an_exception_in_on_tick_names_the_users_line_and_the_host_lives(hosts: Any) -> None:
    host = hosts(
        module("""
        class Fragile(Strategy):
            def on_tick(self, tick):
                self.context.place_order("sell", 1)
                self.helper(tick)

            def helper(self, tick):
                return tick["price"] / 0
        """)
    )
    host.start(IDENTITY, {}, "active")
    reply = host.tick(bar(0, 1.0), ACCOUNT)
    assert reply.error == "ZeroDivisionError: float division by zero (line 9 of strategy.py)"
    assert 'File "strategy.py", line 6, in on_tick' in reply.traceback
    assert 'return tick["price"] / 0' in reply.traceback
    assert "strategy_entry" not in reply.traceback
    assert [x["side"] for x in reply.intents] == ["sell"]
    assert host.tick(bar(1, 1.0), ACCOUNT).error is not None  # still answering
    assert host.alive


def test_errors_in_init_and_render_are_strategy_errors(hosts: Any) -> None:
    code = module("""
        class Picky(Strategy):
            def init(self):
                print("checking")
                if self.config.get("window", 0) < 2:
                    raise ValueError("window must be at least 2")
                return {}

            def render(self):
                return {"widgets": [metric("n", 1), {"type": "pie", "value": 3}]}
        """)
    with pytest.raises(StrategyError) as failed:
        hosts(code).start(IDENTITY, {"window": 1}, "active")
    assert str(failed.value) == ("ValueError: window must be at least 2 (line 7 of strategy.py)")
    assert failed.value.logs == ["checking"]
    assert 'raise ValueError("window must be at least 2")' in failed.value.traceback
    host = hosts(code)
    host.start(IDENTITY, {"window": 5}, "active")
    with pytest.raises(StrategyError, match=r"widget 1 has type 'pie'; known types: metric,"):
        host.render()
    assert host.alive


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("x = 1\n", "strategy.py defines no Strategy subclass"),
        (module("class A(Strategy): pass\nclass B(Strategy): pass\n"),
         r"several Strategy subclasses \(A, B\): one per file"),
        (module("class A(Strategy):\n    def on_tick(self, tick)\n        pass\n"),
         r"SyntaxError: expected ':' \(line 3 of strategy.py\)"),
        (module("import requests_that_are_not_there\n"),
         r"ModuleNotFoundError: No module named 'requests_that_are_not_there' \(line 2"),
        (module("class A(Strategy):\n    CONFIG_SCHEMA = [1]\n"),
         "CONFIG_SCHEMA must be a dict"),
    ],
)  # fmt: skip
def test_a_bad_module_is_a_clear_error(hosts: Any, code: str, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        hosts(code).start(IDENTITY, {}, "active")


def test_an_intermediate_base_class_is_not_a_second_strategy(hosts: Any) -> None:
    host = hosts(module("""
        class Base(Strategy):
            def on_tick(self, tick):
                self.context.log(type(self).__name__)

        class Concrete(Base):
            pass
        """))  # fmt: skip
    host.start(IDENTITY, {}, "active")
    assert host.tick(bar(0, 1.0), ACCOUNT).logs == ["Concrete"]


# -- widgets ---------------------------------------------------------------------------------------


def test_widget_helpers_build_what_the_host_accepts(hosts: Any) -> None:
    host = hosts(module("""
        import math
        import pandas as pd

        class Ui(Strategy):
            def render(self):
                s = pd.Series([1.0, math.nan, 3.0],
                              index=pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC"))
                return {"widgets": [
                    metric("PnL", 12.5), metric("warming", math.nan), metric("n", 3),
                    line_chart("close", s), line_chart("xy", [(1, 2), (2, None)]),
                    table(["a", "b"], [[1, "x"], [math.inf, s.index[0]]], label="t"),
                    log_widget(["one", 2]),
                ]}
        """))  # fmt: skip
    host.start(IDENTITY, {}, "active")
    assert host.render() == [
        {"type": "metric", "label": "PnL", "value": 12.5},
        {"type": "metric", "label": "warming", "value": None},
        {"type": "metric", "label": "n", "value": 3},
        {"type": "line_chart", "label": "close",
         "points": [["2024-01-01T00:00:00+00:00", 1.0], ["2024-01-03T00:00:00+00:00", 3.0]]},
        {"type": "line_chart", "label": "xy", "points": [[1, 2.0]]},
        {"type": "table", "columns": ["a", "b"],
         "rows": [[1, "x"], [None, "2024-01-01T00:00:00+00:00"]], "label": "t"},
        {"type": "log", "lines": ["one", "2"]},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("widgets", "message"),
    [
        ('[{"type": "line_chart", "label": "c", "points": [[1, float("nan")]]}]',
         r"widget 0 \(line_chart\): point 0 has y nan: a finite number"),
        ('[{"type": "line_chart", "label": "c", "points": [[i, i] for i in range(5001)]}]',
         r"widget 0 \(line_chart\): points has 5001 entries, over 5000"),
        ('[{"type": "metric", "label": "m", "value": {"a": 1}}]',
         r"widget 0 \(metric\): value is a dict"),
        ('[{"type": "table", "columns": ["a"], "rows": [[1, 2]]}]',
         r"widget 0 \(table\): row 0 must be a list of 1 cells, got 2"),
        ('[metric("m", 1)] * 51', r"widgets has 51 entries, over 50"),
        ('[log_widget(["x" * 1000] * 2000)]', r"over the reply cap of 1048576 bytes"),
        ('[{"type": "metric", "label": "m", "value": {1, 2}}]',
         r"render\(\)'s widgets: a set is not JSON"),
    ],
)  # fmt: skip
def test_bad_widgets_are_refused_with_where(hosts: Any, widgets: str, message: str) -> None:
    host = hosts(module(f"class W(Strategy):\n    def render(self):\n"
                        f"        return {{'widgets': {widgets}}}\n"))  # fmt: skip
    host.start(IDENTITY, {}, "active")
    with pytest.raises(StrategyError, match=message):
        host.render()
    assert host.alive


def test_render_must_return_the_widgets_dict(hosts: Any) -> None:
    host = hosts(module("class W(Strategy):\n    def render(self):\n        return []\n"))
    host.start(IDENTITY, {}, "active")
    with pytest.raises(StrategyError, match=r"render\(\) must return \{'widgets': \[...\]\}, got"):
        host.render()


# -- crashes ---------------------------------------------------------------------------------------


def test_a_tick_over_its_timeout_kills_the_strategy(hosts: Any) -> None:
    host = hosts(module("class Spin(Strategy):\n    def on_tick(self, tick):\n"
                        "        while True:\n            pass\n"), tick_timeout_s=1.0)  # fmt: skip
    host.start(IDENTITY, {}, "active")
    with pytest.raises(StrategyCrashed, match=r"^on_tick took longer than 1 s; the sandbox"):
        host.tick(bar(0, 1.0), ACCOUNT)
    assert not host.alive
    assert host.box.proc.poll() is not None
    with pytest.raises(StrategyCrashed, match="on_tick took longer"):
        host.render()  # dead: every call says why


def test_running_out_of_memory_names_the_limit(hosts: Any) -> None:
    limits = Limits.default(AdminCaps(memory_mb=256))
    host = hosts(
        module("class Hog(Strategy):\n    def on_tick(self, tick):\n"
               "        self.state['x'] = bytearray(1 << 30)\n"),
        limits=limits,
    )  # fmt: skip
    host.start(IDENTITY, {}, "active")
    with pytest.raises(StrategyCrashed, match=r"out of memory: .* memory limit of 256 MiB"):
        host.tick(bar(0, 1.0), ACCOUNT)


def test_a_process_that_exits_is_a_crash_with_its_code(hosts: Any) -> None:
    host = hosts(module("import os\nclass Quit(Strategy):\n    def on_tick(self, tick):\n"
                        "        os.write(2, b'bye\\n')\n        os._exit(3)\n"))  # fmt: skip
    host.start(IDENTITY, {}, "active")
    with pytest.raises(StrategyCrashed, match="exited with code 3: bye"):
        host.tick(bar(0, 1.0), ACCOUNT)


def test_sys_exit_is_an_error_not_an_exit(hosts: Any) -> None:
    host = hosts(module("import sys\nclass Quit(Strategy):\n    def on_tick(self, tick):\n"
                        "        sys.exit(0)\n"))  # fmt: skip
    host.start(IDENTITY, {}, "active")
    reply = host.tick(bar(0, 1.0), ACCOUNT)
    assert reply.error == (
        "on_tick: the strategy called sys.exit(); a strategy cannot end its sandbox"
    )
    assert host.alive


def test_a_forged_reply_on_the_protocols_descriptor_is_a_crash(hosts: Any) -> None:
    """Code that finds the private reply descriptor can only break its own instance."""
    host = hosts(
        module("""
        import os, stat

        class Forger(Strategy):
            def on_tick(self, tick):
                for fd in range(3, 64):
                    try:
                        if stat.S_ISFIFO(os.fstat(fd).st_mode):
                            os.write(fd, b'{"ok": true, "seq": 99, "intents": []}\\n')
                    except OSError:
                        pass
        """)
    )
    host.start(IDENTITY, {}, "active")
    with pytest.raises(StrategyCrashed, match="bad reply: not the reply to request 2"):
        host.tick(bar(0, 1.0), ACCOUNT)
    assert not host.alive


# -- the host's own contract -----------------------------------------------------------------------


def test_stop_is_idempotent_and_later_calls_say_stopped(hosts: Any) -> None:
    host = hosts(SMA)
    host.start(IDENTITY, {}, "active")
    host.stop()
    host.stop()
    assert not host.alive and host.box.proc.poll() is not None
    with pytest.raises(StrategyCrashed, match="stopped"):
        host.tick(bar(0, 1.0), ACCOUNT)


def test_bad_arguments_are_refused_before_anything_runs(hosts: Any) -> None:
    with pytest.raises(ValueError, match="the module's code is empty"):
        hosts("  \n")
    host = hosts(SMA)
    with pytest.raises(ValueError, match="mode is observe or active, got 'off'"):
        host.start(IDENTITY, {}, "off")
    with pytest.raises(ValueError, match="docker, process or auto"):
        strategy_host(SMA, instance_id="i", choice="kubernetes")


def test_the_process_host_refuses_unless_the_operator_enabled_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ALLOW_ENV)
    with pytest.raises(ProcessRunnerDisabled, match=ALLOW_ENV):
        strategy_host(SMA, instance_id="i", choice="process")


def test_the_guide_shows_the_example_file_as_it_is() -> None:
    guide = (ROOT / "docs" / "strategies.md").read_text()
    shown = guide.split("```python\n", 1)[1].split("```", 1)[0]
    assert shown == SMA[SMA.index("from alphaforge_strategy") :]


def test_both_image_builds_carry_the_strategy_files() -> None:
    """The offline build (its content hash covers ENTRY_FILES: a change rebuilds the image) and
    the production Dockerfile both put the entrypoint and the SDK in /opt/alphaforge."""
    build = (ROOT / "infra" / "build_sandbox_images.sh").read_text()
    entry_files = build.split("ENTRY_FILES=(", 1)[1].split(")", 1)[0].split()
    dockerfile = (ROOT / "infra" / "Dockerfile.sandbox-python").read_text()
    for name in ("strategy_entry.py", "alphaforge_strategy.py"):
        assert name in entry_files
        assert f"runners/sandbox/{name}" in dockerfile


def test_an_oversized_reply_drops_its_logs_before_its_intents() -> None:
    sys.path.insert(0, str(ENTRY_DIR))
    try:
        import strategy_entry
    finally:
        sys.path.remove(str(ENTRY_DIR))
    intents = [{"op": "cancel", "client_id": f"c{i}"} for i in range(100)]
    reply = {"ok": True, "intents": intents, "logs": ["\x01" * 1000] * 200, "mode_error": None}
    line = strategy_entry.encode(reply, 7)
    assert len(line) < MAX_REPLY_BYTES and line.endswith(b"\n")
    got = json.loads(line)
    assert got["intents"] == intents and got["seq"] == 7 and got["ok"] is True
    assert got["logs"] == ["[... 200 log lines not kept: the reply was over its cap]"]


def test_job_directories_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    left = tmp_path / f"strategy-{int(dead.stdout)}-abc"
    live = tmp_path / f"strategy-{os.getpid()}-def"
    other = tmp_path / "exec-123"
    for path in (left, live, other):
        (path / "job").mkdir(parents=True)
    slot = new_slot(tmp_path)
    assert slot.name.startswith(f"strategy-{os.getpid()}-") and slot.is_dir()
    assert not left.exists() and live.exists() and other.exists()
