"""Strategy modules in the real Docker sandbox (issue 14): one long-lived container per instance
answers many ticks under the sandbox policy (read back with ``docker inspect`` and seen from
inside); a memory bomb, an endless loop and a fork bomb in ``on_tick`` end in their named safe
outcomes; no network; ``stop()`` and crashes leave no container; an instance whose owning
process died is swept, and one whose lease is not renewed goes at the lease's end. Every
container is found by this test's own instance ids."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import NotFound

from runners.custom import AdminCaps, Limits
from runners.docker.engine import claimed_deadline, owner_label
from runners.docker.sweeper import sweep
from runners.strategyhost import DockerStrategyHost, StrategyCrashed, remove_leftover_slots
from tests.deployments.fixtures import wait_for
from tests.hostile.conftest import ROOT

pytestmark = pytest.mark.docker

SMA = (ROOT / "examples" / "strategies" / "sma_cross.py").read_text()
HEAD = "from alphaforge_strategy import Strategy\n"
ACCOUNT = {"cash": 1000.0, "positions": {}, "open_orders": []}
LIMITS = Limits.default(AdminCaps())


def bar(i: int, price: float) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "ts": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00",
            "interval": "1s", "open": price, "high": price, "low": price, "close": price,
            "volume": 1.0, "price": price}  # fmt: skip


def containers(client: Any, instance_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.api.containers(
        all=True, filters={"label": ["alphaforge.sandbox=1", f"alphaforge.strategy={instance_id}"]}
    )
    return found


def gone(client: Any, container_id: str) -> bool:
    try:
        client.api.inspect_container(container_id)
    except NotFound:
        return True
    return False


@pytest.fixture
def hosts(docker_engine: Any, tmp_path: Path) -> Iterator[Any]:
    """Makes Docker strategy hosts with fresh instance ids; afterwards every one is stopped and
    none of their containers or job directories is left."""
    made: list[DockerStrategyHost] = []

    def make(code: str, **kw: Any) -> DockerStrategyHost:
        kw.setdefault("limits", LIMITS)
        host = DockerStrategyHost(
            code,
            instance_id=f"test-{uuid.uuid4().hex[:10]}",
            client=docker_engine,
            work_root=tmp_path / "w",
            **kw,
        )
        made.append(host)
        return host

    yield make
    for host in made:
        host.stop()
        assert containers(docker_engine, host.instance_id) == []
    work = tmp_path / "w"
    assert not work.exists() or not any(work.iterdir()), "a job directory was left behind"


def test_one_container_answers_many_ticks_under_the_sandbox_policy(
    hosts: Any, docker_engine: Any
) -> None:
    host = hosts(SMA)
    host.start({"id": host.instance_id, "market": "BTCUSDT"}, {"fast": 3, "slow": 8}, "active")
    cid = host.container_id
    placed = 0
    for i in range(150):
        reply = host.tick(bar(i, 100 + 5 * ((i // 10) % 2)), ACCOUNT)  # a square wave
        assert reply.error is None, reply
        placed += len(reply.intents)
    assert placed == 7  # a buy at each rise of the square wave (a flat account sells nothing)
    assert [c["Id"] for c in containers(docker_engine, host.instance_id)] == [cid]
    attrs = docker_engine.api.inspect_container(cid)
    hc, config = attrs["HostConfig"], attrs["Config"]
    assert hc["NetworkMode"] == "none" and config["NetworkDisabled"] is True
    assert hc["ReadonlyRootfs"] is True and hc["Privileged"] is False
    assert config["User"] == "10001:10001"
    assert hc["CapDrop"] == ["ALL"] and not hc["CapAdd"]
    assert hc["Memory"] == LIMITS.memory_mb << 20 and hc["PidsLimit"] == LIMITS.pids
    assert config["OpenStdin"] is True and config["StdinOnce"] is True and not config["Tty"]
    assert {m["Destination"]: m["RW"] for m in attrs["Mounts"]} == {"/job": False, "/out": False}
    labels = config["Labels"]
    assert labels["alphaforge.owner"] == owner_label()
    assert labels["alphaforge.run_id"] == f"strategy-{host.instance_id}"
    # the lease in the name retires it (the label's deadline is a distant ceiling)
    lease = claimed_deadline([attrs["Name"]])
    assert lease is not None and time.time() < lease <= time.time() + 301
    assert float(labels["alphaforge.deadline"]) > time.time() + 365 * 86400
    widgets = host.render()
    assert next(w for w in widgets if w["label"] == "Trades")["value"] == placed


INSIDE = HEAD + textwrap.dedent("""
    import errno, os, socket

    def attempt(fn):
        try:
            fn()
            return "allowed"
        except socket.gaierror:
            return "no name resolution"
        except OSError as exc:
            return errno.errorcode.get(exc.errno, str(exc.errno))

    class Probe(Strategy):
        def on_tick(self, tick):
            status = dict(line.split(":\\t", 1) for line in open("/proc/self/status"))
            self.context.log(f"uid {os.getuid()} caps {status['CapEff'].strip()}")
            self.context.log("interfaces " + ",".join(sorted(os.listdir("/sys/class/net"))))
            self.context.log("tcp " + attempt(lambda: socket.create_connection(("1.1.1.1", 53), 2)))
            self.context.log("dns " + attempt(lambda: socket.getaddrinfo("example.com", 443)))
            self.context.log("root " + attempt(lambda: open("/opt/x", "w")))
            self.context.log("job " + attempt(lambda: open("/job/strategy.py", "a")))
            self.context.log("out " + attempt(lambda: open("/out/x", "w")))
            self.context.log("tmp " + attempt(lambda: open("/tmp/x", "w").write("ok")))
    """)


def test_from_inside_no_network_no_root_and_only_tmp_is_writable(hosts: Any) -> None:
    host = hosts(INSIDE)
    host.start({"id": host.instance_id}, {}, "active")
    reply = host.tick(bar(0, 1.0), ACCOUNT)
    assert reply.error is None, reply
    assert reply.logs == [
        "uid 10001 caps 0000000000000000",
        "interfaces lo",
        "tcp ENETUNREACH",
        "dns no name resolution",
        "root EROFS",
        "job EACCES",  # the code's file is not the sandbox user's (and the mount is read-only)
        "out EROFS",
        "tmp allowed",
    ]


def test_a_memory_bomb_in_on_tick_crashes_naming_the_memory_limit(
    hosts: Any, docker_engine: Any
) -> None:
    code = HEAD + (
        "class Hog(Strategy):\n    def on_tick(self, tick):\n        blocks = []\n"
        "        while True:\n            blocks.append(bytearray(16 << 20))\n"
    )
    host = hosts(code, limits=dataclasses.replace(LIMITS, memory_mb=128))
    host.start({"id": host.instance_id}, {}, "active")
    with pytest.raises(StrategyCrashed, match=r"out of memory.*128 MiB") as crashed:
        host.tick(bar(0, 1.0), ACCOUNT)
    assert not host.alive
    assert gone(docker_engine, host.container_id), crashed.value.reason


def test_an_endless_loop_times_out_and_its_container_is_gone(
    hosts: Any, docker_engine: Any
) -> None:
    code = HEAD + "class Spin(Strategy):\n    def on_tick(self, tick):\n        while True: pass\n"
    host = hosts(code, tick_timeout_s=2.0)
    host.start({"id": host.instance_id}, {}, "active")
    with pytest.raises(StrategyCrashed, match=r"^on_tick took longer than 2 s; the sandbox was"):
        host.tick(bar(0, 1.0), ACCOUNT)
    assert gone(docker_engine, host.container_id)
    assert containers(docker_engine, host.instance_id) == []


def test_a_fork_bomb_is_capped_by_the_pids_limit_and_the_strategy_lives_on(hosts: Any) -> None:
    code = HEAD + textwrap.dedent("""
        import os, time

        class Forker(Strategy):
            def on_tick(self, tick):
                n = 0
                try:
                    for _ in range(10_000):
                        if os.fork() == 0:
                            time.sleep(120)
                            os._exit(0)
                        n += 1
                except OSError as exc:
                    self.context.log(f"forked {n} then {type(exc).__name__}")
        """)
    host = hosts(code)
    host.start({"id": host.instance_id}, {}, "active")
    reply = host.tick(bar(0, 1.0), ACCOUNT)
    [line] = reply.logs
    forked = int(line.split()[1])
    assert 0 < forked < LIMITS.pids and line.endswith("then BlockingIOError"), line
    assert host.tick(bar(1, 1.0), ACCOUNT).logs == ["forked 0 then BlockingIOError"]


OWNER = """
import sys, time
from pathlib import Path
from runners.strategyhost import DockerStrategyHost

host = DockerStrategyHost(Path(sys.argv[1]).read_text(), instance_id=sys.argv[2])
host.start({"id": sys.argv[2]}, {}, "observe")
print(host.container_id, flush=True)
time.sleep(600)
"""


def test_an_instance_whose_owner_died_stops_and_is_swept(
    docker_engine: Any, tmp_path: Path
) -> None:
    instance_id = f"test-{uuid.uuid4().hex[:10]}"
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ROOT / "examples/strategies/sma_cross.py"), instance_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        cid = proc.stdout.readline().strip()
        assert cid, proc.stderr.read() if proc.stderr else ""
        [found] = containers(docker_engine, instance_id)
        assert found["Labels"]["alphaforge.owner"] == f"{socket.gethostname()}:{proc.pid}"
        sweep(docker_engine)  # a live owner's running instance is not retired
        assert docker_engine.api.inspect_container(cid)["State"]["Running"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # its attach closed: the entrypoint read the end of its input and exited by itself
        wait_for(
            lambda: not docker_engine.api.inspect_container(cid)["State"]["Running"],
            30,
            interval_s=0.2,
            what="the orphaned strategy to end",
        )
        sweep(docker_engine)
        assert containers(docker_engine, instance_id) == []
        # and its job directory goes with the next host's launch (here: the same clean-up)
        root = Path(tempfile.gettempdir()) / "alphaforge-sandbox"
        [slot] = root.glob(f"strategy-{proc.pid}-*")
        assert slot in remove_leftover_slots(root) and not slot.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for c in containers(docker_engine, instance_id):
            docker_engine.api.remove_container(c["Id"], force=True)


def test_a_lease_not_renewed_retires_the_container(hosts: Any, docker_engine: Any) -> None:
    host = hosts(SMA, lease_s=2.0)
    host.start({"id": host.instance_id}, {}, "active")
    cid = host.container_id
    first = claimed_deadline([docker_engine.api.inspect_container(cid)["Name"]])
    renewed = wait_for(
        lambda: (
            (d := claimed_deadline([docker_engine.api.inspect_container(cid)["Name"]]))
            and d > (first or 0)
            and d
        ),
        10,
        interval_s=0.2,
        what="the lease to be renewed",
    )
    assert renewed > (first or 0)
    host.container._lease.stop()  # as if this process hung: nobody renews the lease
    deadline = claimed_deadline([docker_engine.api.inspect_container(cid)["Name"]])
    assert deadline is not None
    time.sleep(max(0.0, deadline - time.time() + 1.1))
    sweep(docker_engine)
    assert gone(docker_engine, cid)
    with pytest.raises(StrategyCrashed):
        host.tick(bar(0, 1.0), ACCOUNT)


def test_a_missing_image_is_a_clear_crash_and_a_dead_host(
    hosts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHAFORGE_SANDBOX_IMAGE_PYTHON", "alphaforge/sandbox-python:no-such-tag")
    host = hosts(SMA)
    with pytest.raises(StrategyCrashed, match=r"no-such-tag' is missing; build it with infra/"):
        host.start({"id": host.instance_id}, {}, "active")
    assert not host.alive
    with pytest.raises(StrategyCrashed, match="is missing"):
        host.tick(bar(0, 1.0), ACCOUNT)
