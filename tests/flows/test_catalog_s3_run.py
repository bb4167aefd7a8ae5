"""A pipeline run reading its data from a catalog on S3 (moto's server over real HTTP): the
universe imported there, a rotation run through Prefect, the version recorded; the server
failing mid-read fails the data step with a clear error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIVERSE = ROOT / "examples" / "data" / "universe"
ROTATION = """pipeline s3_rotation "Rotation on S3"
data   = dataset("universe", symbols=["S01", "S02", "S03", "S04", "NEWCO", "HALT"])
mom    = returns(data.close, periods=60)
weight = top_n(mom, n=2)
result = portfolio_backtest(data, weight, cash=100_000, fee_bps=5, slippage_bps=2)
"""

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def _settings(tmp_path: Path, s3_server: Any) -> Any:
    from flows.settings import CoreSettings

    opts = s3_server.options()
    return CoreSettings(
        data_dir=tmp_path / "data",
        catalog_url=f"s3://{s3_server.new_bucket()}/catalog",
        s3_endpoint_url=opts["endpoint_url"],
        s3_key=opts["key"],
        s3_secret=opts["secret"],
        s3_region=opts["region"],
    )


def _compile(settings: Any) -> Any:
    from cli.catalogrefs import CliDatasetResolver
    from dsl import compile_source

    result = compile_source(ROTATION, catalog=CliDatasetResolver(settings, "local"))
    assert result.ok, result.diagnostics
    return result.ir


def test_a_run_reads_its_dataset_from_s3_and_records_the_version(
    tmp_path: Path, s3_server: Any
) -> None:
    from flows.catalog import open_catalog
    from tests.flows.support import run_ir

    settings = _settings(tmp_path, s3_server)
    info = open_catalog(settings).import_files("local", "universe", [UNIVERSE])
    ir = _compile(settings)
    assert ir.node("data").params["version"] == info.version
    result = run_ir(settings, ir, tmp_path)
    assert result.status == "completed", result.error
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["datasets"]["data"]["fingerprint"] == f"catalog:{info.version}"
    assert result.metrics["symbols"] == 6 and result.metrics["num_trades"] > 0
    # the flow run's parameters never carry the S3 secret
    spec = json.dumps(record.get("spec") or {})
    assert settings.s3_secret not in spec and settings.s3_key not in spec


def test_the_server_failing_mid_read_fails_the_data_step_clearly(
    tmp_path: Path, s3_server: Any
) -> None:
    from flows.catalog import open_catalog
    from tests.flows.support import run_ir

    settings = _settings(tmp_path, s3_server)
    info = open_catalog(settings).import_files("local", "universe", [UNIVERSE])
    ir = _compile(settings)
    s3_server.fail = lambda method, path: method == "GET" and "symbol%3DS02" in path
    try:
        result = run_ir(settings, ir, tmp_path, use_cache=False)
    finally:
        s3_server.fail = None
    assert result.status == "failed"
    assert result.node_states["data"] == "failed"
    assert info.version[:12] in result.error
    assert "Traceback" not in result.error and "botocore" not in result.error
