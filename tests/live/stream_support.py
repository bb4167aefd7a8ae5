"""Helpers of the stream pipeline tests: a PostgreSQL database, webhook servers, pipelines in
a temporary folder with the sample data, and the batch run a stream is compared with.

The database is module-scoped (a fixture per test module that imports it); the webhook servers
are real HTTP servers on free ports, in threads of the test process.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

from dsl import compile_source
from dsl.ir import PipelineIR
from runners.inprocess import InProcessRunner
from runners.memgraph import MemoryGraph
from tests.pgdb import scratch_database

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "data" / "sample_ohlcv.csv"
UNIVERSE = ROOT / "examples" / "data" / "universe"


@pytest.fixture(scope="module")
def stream_db() -> Iterator[str]:
    """An empty PostgreSQL database of this module; dropped afterwards."""
    with scratch_database("af_stream") as url:
        yield url


def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of a query on the database at ``url``."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(sql).fetchall())


def workdir(tmp_path: Path, *, panel: bool = False) -> Path:
    """A folder with ``data/sample_ohlcv.csv`` (one symbol) or ``data/panel.csv`` (S01, S02
    of the sample universe, 2018-2019, with a symbol column)."""
    (tmp_path / "data").mkdir(exist_ok=True)
    shutil.copy(SAMPLE, tmp_path / "data" / "sample_ohlcv.csv")
    if panel:
        parts = []
        for sym in ("S01", "S02"):
            frame = pd.read_parquet(UNIVERSE / f"{sym}.parquet")
            frame = frame.reset_index() if "ts" not in frame.columns else frame
            frame = frame[frame["ts"] < pd.Timestamp("2019-01-01", tz="UTC")].copy()
            frame["symbol"] = sym
            parts.append(frame)
        data = pd.concat(parts).sort_values(["ts", "symbol"])
        data[["ts", "symbol", "open", "high", "low", "close", "volume"]].to_csv(
            tmp_path / "data" / "panel.csv", index=False
        )
    return tmp_path


def write_af(folder: Path, name: str, text: str) -> Path:
    """``text`` as ``folder/name.af``."""
    path = folder / f"{name}.af"
    path.write_text(text, encoding="utf-8")
    return path


def compiled(path: Path) -> PipelineIR:
    """The pipeline of an ``.af`` file (the test fails with the diagnostics otherwise)."""
    result = compile_source(path.read_text(encoding="utf-8"), filename=str(path))
    assert result.ok and result.ir is not None, result.format(str(path))
    return result.ir


def batch_values(
    ir: PipelineIR, base_dir: Path, start: str, end: str, wanted: list[str]
) -> dict[str, dict[str, Any]]:
    """The batch run's outputs of ``wanted`` over the bars from ``start`` to ``end`` (the data
    step's own date range set to them), evaluated all at once by the sweeps' in-memory graph."""
    data = next(n for n in ir.nodes if not n.dependencies())
    params = {**data.params, "start": start, "end": end}
    nodes = tuple(n.model_copy(update={"params": params}) if n is data else n for n in ir.nodes)
    ir = ir.model_copy(update={"nodes": nodes, "stream": None})
    graph = MemoryGraph(ir, InProcessRunner(base_dir=base_dir), swept=[])
    return graph.evaluate({}, wanted)


def read_csv_events(path: Path) -> pd.DataFrame:
    """A csv_append sink's file: ts parsed (UTC), one row per event."""
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


@dataclass
class Hook:
    """A webhook server's record: the POSTed JSON bodies, their Idempotency-Keys, attempts."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    attempts: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def webhook_server(status: int = 200, *, gated: bool = False) -> Iterator[Hook]:
    """A real HTTP server on a free port answering every POST with ``status``; ``gated``: each
    POST waits until ``hook.release`` is set (a stuck receiver)."""
    hook = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if gated:
                hook.release.wait(120)
            with hook.lock:
                hook.attempts += 1
                if status < 300:
                    hook.bodies.append(json.loads(body))
                    hook.keys.append(self.headers.get("Idempotency-Key", ""))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.release.set()
        server.shutdown()
        server.server_close()
