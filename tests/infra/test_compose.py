"""The production stack's definition (infra/): the compose file as `docker-compose config`
resolves it (health checks, restart policies, limits, volumes, secrets required, the Docker socket
reachable only through the proxy, N workers), and the socket proxy's HAProxy configuration run
against this machine's engine: a real strategy sandbox works through it, and every call the
sandbox does not need is refused with 403."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "compose.yaml"
ENV_EXAMPLE = INFRA / ".env.example"
ALPHAFORGE = Path(sys.executable).with_name("alphaforge")
SERVICES = {"postgres", "minio", "prefect", "mlflow", "deploy", "api", "worker", "engine",
            "docker-proxy"}  # fmt: skip


def _config(env_file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "--env-file", str(env_file), "config"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    proc = _config(ENV_EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_every_service_is_limited_restarted_and_health_checked(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        assert svc.get("mem_limit") and svc.get("cpus"), f"{name}: no resource limits"
        if name == "deploy":  # a one-off: registers the deployments and exits
            assert svc["restart"] == "no" and svc["command"] == ["alphaforge", "deploy"]
            continue
        assert svc["restart"] == "unless-stopped", name
        if name != "engine":  # its health is its instances' status, in the app
            assert svc["healthcheck"]["test"], f"{name}: no health check"
    assert services["api"]["healthcheck"]["test"][-1].find("/readyz") > 0
    assert set(stack["volumes"]) == {"postgres-data", "object-data", "platform-state"}
    # the app waits for its dependencies to be healthy and the deployments registered
    assert services["api"]["depends_on"]["deploy"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["worker"]["depends_on"]["docker-proxy"]["condition"] == "service_healthy"


def test_only_the_proxy_holds_the_docker_socket_and_workers_go_through_it(
    stack: dict[str, Any],
) -> None:
    services = stack["services"]
    for name, svc in services.items():
        mounts = [str(v) for v in svc.get("volumes", [])]
        socket_mounts = [m for m in mounts if "docker.sock" in m]
        if name == "docker-proxy":
            assert socket_mounts and all(m.endswith(":ro") for m in socket_mounts), mounts
        else:
            assert not socket_mounts, f"{name} mounts the Docker socket: {mounts}"
    for name in ("worker", "engine"):
        assert services[name]["environment"]["DOCKER_HOST"] == "tcp://docker-proxy:2375"
    drain = ["python", "-m", "deployments.drainworker", "--pool"]  # drains on SIGTERM
    assert services["worker"]["command"][:4] == drain


def test_workers_scale_and_every_secret_is_required(tmp_path: Path) -> None:
    three = _config(ENV_EXAMPLE, WORKERS="3")
    assert three.returncode == 0, three.stderr
    assert int(yaml.safe_load(three.stdout)["services"]["worker"]["scale"]) == 3
    env = tmp_path / ".env"
    lines = ENV_EXAMPLE.read_text().splitlines()
    env.write_text("\n".join(line for line in lines if not line.startswith("POSTGRES_PASSWORD")))
    refused = _config(env)
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD" in refused.stderr


def test_the_commands_the_stack_runs_exist() -> None:
    for command in (["api"], ["deploy"], ["engine"]):
        proc = subprocess.run([str(ALPHAFORGE), *command, "--help"], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    refused = subprocess.run([str(ALPHAFORGE), "api"], capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items()
                                  if k != "ALPHAFORGE_PREFECT_API_URL"})  # fmt: skip
    assert refused.returncode == 2 and "ALPHAFORGE_PREFECT_API_URL" in refused.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_THROUGH_PROXY = textwrap.dedent(
    """
    import json, sys
    import docker, pandas as pd
    from runners.papertrade.backtest import backtest_strategy
    from runners.strategyhost import strategy_host

    client = docker.from_env(version="auto")
    refused = {}
    for what, call in [
        ("volumes", lambda: client.volumes.list()),
        ("networks", lambda: client.networks.list()),
        ("pull", lambda: client.images.pull("alpine:3")),
        ("exec", lambda: client.api.exec_create("anything", "sh")),
        ("build", lambda: client.api._result(client.api._post(client.api._url("/build")))),
        ("swarm", lambda: client.swarm.attrs),
        ("system_df", lambda: client.df()),
    ]:
        try:
            call()
            refused[what] = "allowed"
        except docker.errors.APIError as exc:
            refused[what] = exc.status_code
        except Exception as exc:
            refused[what] = type(exc).__name__
    bars = pd.read_csv(sys.argv[1]).head(120)
    host = strategy_host(open(sys.argv[2]).read(), instance_id="proxy", choice="docker")
    result = backtest_strategy(host, bars, config={"fast": 3, "slow": 8, "qty": 1})
    print(json.dumps({"refused": refused, "fills": len(result.orders)}))
    """
)


@pytest.mark.docker
def test_the_socket_proxy_lets_a_sandbox_run_and_refuses_everything_else(
    docker_engine: Any, tmp_path: Path
) -> None:
    import json

    port = _free_port()
    env = {**os.environ, "PROXY_BIND": f"127.0.0.1:{port}", "DOCKER_SOCKET": "/var/run/docker.sock"}
    log = tmp_path / "haproxy.log"
    with log.open("w") as sink:
        cfg = str(INFRA / "socket-proxy" / "haproxy.cfg")
        proxy = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=sink,
                                 stderr=subprocess.STDOUT, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        run = subprocess.run(
            [sys.executable, "-c", _THROUGH_PROXY, str(ROOT / "examples/data/sample_ohlcv.csv"),
             str(ROOT / "examples/strategies/sma_cross.py")],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
            env={**os.environ, "DOCKER_HOST": f"tcp://127.0.0.1:{port}", "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    finally:
        proxy.terminate()
        proxy.wait(10)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["fills"] > 0  # the sandbox self-test and the strategy's container, via the proxy
    assert out["refused"] == {k: 403 for k in out["refused"]}, out["refused"]
    lines = log.read_text().splitlines()
    denied = [line for line in lines if " 403 " in line]
    assert len(denied) == len(out["refused"]), denied  # the sandbox itself was refused nothing
    assert any("/containers/create" in line and " 201 " in line for line in lines)
    assert any("/attach" in line and " 101 " in line for line in lines)


def test_the_docker_pool_switch_gives_workers_and_flow_run_containers_the_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WORKER_POOL_TYPE=docker: the workers run prefect-docker's worker on that pool, and the
    deploy service's settings become a Docker pool template whose flow-run containers are the
    platform image on the stack's network, with the state volume, the sandbox job root, the
    sandbox launches through the proxy (never the socket) and no output streaming (the proxy
    refuses the engine's logs call); the template renders to prefect-docker's job config."""
    import prefect.client.orchestration as orchestration
    from click.testing import CliRunner
    from prefect.utilities.templating import apply_values
    from prefect_docker.worker import DockerWorkerJobConfiguration

    import cli.deploy as cli_deploy
    import deployments.deploy as deploy_module
    from cli.deploy import deploy_command
    from deployments.dockerpool import DockerPoolConfig, docker_base_job_template

    proc = _config(ENV_EXAMPLE, WORKER_POOL_TYPE="docker", WORKER_POOL="alphaforge-docker")
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    command = services["worker"]["command"]
    assert command[3:8] == ["--pool", "alphaforge-docker", "--type", "docker", "--with-healthcheck"]
    assert services["api"]["environment"]["ALPHAFORGE_WORK_POOL"] == "alphaforge-docker"
    deploy_env = services["deploy"]["environment"]

    seen: dict[str, Any] = {}

    class Client:  # the Prefect server is not up here: what deploy would register is enough
        def __init__(self, api: str) -> None:
            seen["api"] = api

        def __enter__(self) -> Client:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def api_healthcheck(self) -> None:
            return None

    def register(
        client: Any, pool: str, *, docker: DockerPoolConfig | None = None
    ) -> dict[str, str]:
        seen["pool"], seen["docker"] = pool, docker
        return {"web-x": "1"}

    monkeypatch.setattr(orchestration, "SyncPrefectClient", Client)
    monkeypatch.setattr(deploy_module, "register_all", register)
    # nor is the object store: the bucket deploy would create (tests/cli/test_deploy_buckets.py)
    monkeypatch.setattr(cli_deploy, "_ensure_buckets", lambda settings: [])
    from flows.settings import get_settings

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ALPHAFORGE_")}
    # the settings are read once per process: another test's in this worker must not be used
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(deploy_command, ["--json"], env={**env, **deploy_env})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    config = seen["docker"]
    assert seen["pool"] == "alphaforge-docker" and seen["api"] == "http://prefect:4200/api"
    assert config.image == "alphaforge/platform:latest" and config.pull_policy == "Never"
    assert config.networks == ("alphaforge",) and config.network_mode is None
    assert config.volumes == (
        "alphaforge-platform-state:/var/lib/alphaforge",
        "/var/lib/alphaforge-sandbox:/var/lib/alphaforge-sandbox",
        "/sys/fs/cgroup:/sys/fs/cgroup:ro",
    )
    assert not any("docker.sock" in v for v in config.volumes)
    assert config.env["DOCKER_HOST"] == "tcp://docker-proxy:2375"
    assert config.env["ALPHAFORGE_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert config.env["ALPHAFORGE_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    # deploy's own settings and the web app's signing key stay out of the containers
    assert not {k for k in config.env if k.startswith("ALPHAFORGE_DOCKER_POOL_")}
    assert "ALPHAFORGE_SECRET_KEY" not in config.env and "ALPHAFORGE_POOL_TYPE" not in config.env
    assert config.stream_output is False

    # rendered as the worker renders it (without the block/variable look-ups: none are used)
    template = docker_base_job_template(config)
    defaults = {k: v["default"] for k, v in template["variables"]["properties"].items()
                if "default" in v}  # fmt: skip
    job = DockerWorkerJobConfiguration(**apply_values(template["job_configuration"], defaults))
    assert job.image == "alphaforge/platform:latest" and job.networks == ["alphaforge"]
    assert job.env["DOCKER_HOST"] == "tcp://docker-proxy:2375"
    assert job.env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert job.stream_output is False and job.auto_remove is True
