"""Fixtures for the hostile-code suite: a helper that runs one piece of hostile code as a custom
node in the real sandbox (``docker_engine`` of tests/conftest.py: the engine with the images
built, a failure when there is none, never a skip), and checks that the host was not affected.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dsl.ir import InputBinding, NodeIR
from runners.base import NodeResult
from runners.custom import AdminCaps, CustomNodeManifest, ManifestCatalog, template
from runners.docker import DockerRunner
from runners.docker.selftest import ATTESTATION_FILE
from runners.io import read_value, write_value

ROOT = Path(__file__).resolve().parents[2]
N_ROWS = 100


@dataclass
class Outcome:
    """A hostile node's result, its metrics report (if it completed) and its log text."""

    result: NodeResult
    report: dict[str, Any] | None
    output: Any

    @property
    def log(self) -> str:
        return "\n".join(self.result.logs)


class Sandbox:
    """Runs code as a custom node in the Docker sandbox, one fresh run id per call."""

    def __init__(self, client: Any, tmp: Path) -> None:
        self.client = client
        self.tmp = tmp
        self.work_root = tmp / "work"
        self.input_path = tmp / "x.parquet"
        idx = pd.date_range("2024-01-01", periods=N_ROWS, freq="h", tz="UTC", name="ts")
        x = pd.Series(100 + np.cumsum(np.random.default_rng(1).normal(size=N_ROWS)), index=idx)
        write_value(x.rename("x"), "series", self.input_path)
        self.x = read_value(self.input_path)
        self.run_ids: list[str] = []
        self.runners: list[DockerRunner] = []

    def run(
        self,
        language: str,
        code: str,
        *,
        outputs: tuple[tuple[str, str], ...] = (("report", "metrics"),),
        resources: dict[str, Any] | None = None,
        caps: AdminCaps | None = None,
        run_id: str | None = None,
        node_id: str = "attack",
        manifest: CustomNodeManifest | None = None,
        runner_hook: Any = None,
    ) -> Outcome:
        if manifest is None:
            manifest = CustomNodeManifest(
                name="hostile",
                version="1.0.0",
                language=language,
                inputs=({"name": "x", "type": "series"},),
                outputs=tuple({"name": n, "type": t} for n, t in outputs),
                resources=resources or {},
                code=code,
                code_format="wat" if language == "wasm" else "source",
            )
        run_id = run_id or f"test-{uuid.uuid4().hex[:12]}"
        self.run_ids.append(run_id)
        runner = DockerRunner(
            ManifestCatalog([manifest]),
            caps=caps,
            client=self.client,
            run_id=run_id,
            work_root=self.work_root,
        )
        self.runners.append(runner)
        if runner_hook is not None:
            runner_hook(runner)
        node = NodeIR(
            id=node_id,
            type=manifest.name,
            version=manifest.version,
            inputs={p.name: InputBinding(node="data", port="x") for p in manifest.inputs},
            outputs={p.name: p.type.value for p in manifest.outputs},
            runtime=manifest.language,
            code_hash=manifest.code_hash(),
        )
        out = self.tmp / f"out-{run_id}"
        inputs = {p.name: str(self.input_path) for p in manifest.inputs}
        result = runner.run(node, inputs, output_dir=out)
        report = output = None
        if result.ok:
            first = manifest.outputs[0].name
            output = read_value(result.output_paths[first])
            report = output if isinstance(output, dict) else None
        return Outcome(result, report, output)

    def honest(self, language: str = "python", node_id: str = "honest") -> Outcome:
        """The indicator template: what a concurrent well-behaved node should still produce."""
        return self.run(language, "", manifest=template(language, "indicator"), node_id=node_id)

    def expected_ema(self) -> pd.Series:
        return self.x.ewm(span=20, adjust=False).mean()

    def assert_host_unaffected(self) -> None:
        """The engine answers, no container of these runs is left, no work dir is left."""
        assert self.client.ping()
        deadline = time.monotonic() + 30
        left: list[Any] = []
        while time.monotonic() < deadline:
            left = [
                c
                for rid in self.run_ids
                for c in self.client.api.containers(
                    all=True, filters={"label": f"alphaforge.run_id={rid}"}
                )
            ]
            if not left:
                break
            time.sleep(0.2)
        assert left == [], f"containers left behind: {[c['Names'] for c in left]}"
        leftovers: list[Path] = []
        while time.monotonic() < deadline + 5:  # pooled slots are removed in the background
            found = self.work_root.iterdir() if self.work_root.exists() else iter(())
            # the self-test's attestation is kept on purpose (the next process reuses it)
            leftovers = [p for p in found if p.name != ATTESTATION_FILE]
            if not leftovers:
                break
            time.sleep(0.2)
        assert leftovers == [], f"work dirs left behind: {leftovers}"


@pytest.fixture
def sandbox(docker_engine: Any, tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(docker_engine, tmp_path)
    yield box
    box.assert_host_unaffected()


class Concurrent:
    """Runs an honest node in a thread while the test's attack runs; check it afterwards."""

    def __init__(self, box: Sandbox, language: str = "python") -> None:
        self.box = box
        self.language = language
        self.outcome: Outcome | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.outcome = self.box.honest(self.language)

    def __enter__(self) -> Concurrent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=120)
        assert self.outcome is not None, "the honest run did not finish"
        assert self.outcome.result.ok, self.outcome.result.error
        pd.testing.assert_series_equal(
            self.outcome.output, self.box.expected_ema(), check_names=False, check_freq=False
        )
