"""Tick datasets on the Datasets page (tests/e2e/ticks.mjs) against the shared ``alphaforge
serve``: a synthetic book and a Binance recording imported with the real CLI into the admin's
namespace (``--owner admin``), then the page checked against the figures the CLI printed.
Screenshots tests/e2e/screenshots/ticks-*.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.driver import run_tour
from tests.serve_process import Served

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]

ALPHAFORGE = Path(sys.executable).with_name("alphaforge")


def _cli(served: Served, *args: str) -> dict:
    env = {**os.environ, "ALPHAFORGE_DATA_DIR": str(served.out.parent / "data")}
    for var in ("ALPHAFORGE_DATABASE_URL", "ALPHAFORGE_CATALOG_URL", "ALPHAFORGE_NAMESPACE"):
        env.pop(var, None)
    env.update(served.extra_env)  # the serve's own database, when not the data dir's SQLite
    proc = subprocess.run(
        [str(ALPHAFORGE), *args, "--owner", "admin", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _price(v: float) -> str:
    return f"{v:.12g}"


def test_tick_datasets_on_the_datasets_page(shared_serve: Served) -> None:
    suffix = uuid.uuid4().hex[:4]
    book, other = f"book_{suffix}", f"btc_{suffix}"
    args = ("ticks", "generate", "--name", book, "--seed", "7", "--duration", "5m")
    made = _cli(shared_serve, *args)
    (sym,) = made["ticks"]["symbols"]
    for seed in ("1", "2"):  # a dataset with two versions
        _cli(shared_serve, "ticks", "generate", "--name", other, "--seed", seed, "--symbol", "BTC",
             "--mid", "42000", "--tick-size", "0.5", "--duration", "30")  # fmt: skip
    prices = f"{_price(sym['px_min'])} – {_price(sym['px_max'])}"
    extra = ("--name", book, "--events", str(sym["events"]), "--symbol", sym["symbol"])
    extra += ("--prices", prices, "--seed", "7", "--other", other)
    expected = {"ticks-01-list", "ticks-02-summary", "ticks-03-versions"}
    run_tour("ticks.mjs", shared_serve.base, "ticks-", expected, timeout=600, extra=extra)
