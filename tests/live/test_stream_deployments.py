"""Deployed stream pipelines run by the engine (live/stream/reconciler.py) against a real
PostgreSQL database: a deployment is loaded, replayed to a CSV file and a PostgreSQL table;
the engine is stopped half-way, or killed (SIGKILL) half-way, and another one finishes it:
every (ts, symbol) reaches each sink exactly once, none is missing, and the values are those
of one uninterrupted run. Two engines never both run it; stop, a new text and delete are
followed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from live.leases import engine_id_for
from live.stream import StreamPipeline, StreamService
from live.stream.deployments import (
    DeploymentInputError,
    create_deployment,
    delete_deployment,
    set_desired,
    update_text,
)
from live.stream.reconciler import StreamReconciler
from live.stream.store import StreamStore
from tests.deployments.fixtures import wait_for
from tests.live.stream_deploy_support import (
    LIMIT,
    bars_done,
    expected_ts,
    row,
    running,
    sink_rows,
    stream_engine,
    text,
)
from tests.live.stream_deploy_support import folder as data_folder
from tests.live.stream_support import compiled, read_csv_events, stream_db, write_af

__all__ = ["stream_db"]

ROOT = Path(__file__).resolve().parents[2]


def _reference(tmp_path: Path, url: str) -> pd.DataFrame:
    """One uninterrupted foreground run of the same pipeline (its own folder and table)."""
    folder = data_folder(tmp_path / "reference")
    ir = compiled(write_af(folder, "ref", text(url, "ref_signals", speed=0)))
    StreamService([StreamPipeline(ir, base_dir=folder, state_dir=folder / "state")]).run_until_end(
        timeout_s=120
    )
    return read_csv_events(folder / "out" / "cross.csv")


def _exactly_once(folder: Path, url: str, table: str, reference: pd.DataFrame) -> None:
    csv, pg = sink_rows(folder, url, table)
    want = expected_ts()
    for name, got in (("csv", csv), ("postgres", pg)):
        keys = list(zip(got["ts"], got["symbol"], strict=True))
        assert len(keys) == len(set(keys)), f"{name}: a (ts, symbol) twice"
        assert sorted(got["ts"]) == want, f"{name}: missing or extra bars"
        merged = got.merge(reference, on=["ts", "symbol"], suffixes=("", "_ref"))
        assert len(merged) == LIMIT
        pd.testing.assert_series_equal(
            merged["value"].astype(float), merged["value_ref"].astype(float), check_names=False
        )


def test_a_stopped_engine_is_resumed_by_the_next_exactly_once(
    live_db: Engine, stream_db: str, tmp_path: Path
) -> None:
    folder = data_folder(tmp_path)
    with Session(live_db) as s:
        dep = create_deployment(s, 1, text(stream_db, "stopped_mid"), start=True).id
    with running(stream_engine(live_db, folder, "first")):
        wait_for(lambda: bars_done(live_db, dep) > 40, 120, what="the first engine's bars")
        assert row(live_db, dep).status == "running"
    first = row(live_db, dep)
    assert first.status == "stopped" and first.status_reason == "the engine stopped"
    assert first.engine_id is None and bars_done(live_db, dep) < LIMIT
    with running(stream_engine(live_db, folder, "second")):
        wait_for(lambda: row(live_db, dep).status == "ended", 120, what="the replay's end")
        assert "second@" in (row(live_db, dep).engine_id or "")
    _exactly_once(folder, stream_db, "stopped_mid", _reference(tmp_path, stream_db))


ENGINE_SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from live.service import build_engine
    url, state, base = sys.argv[1:4]
    engine = build_engine(url, base, stream_state_dir=state, stream_base_dir=base,
                          name="doomed")
    engine.run(threading.Event(), 0.2)
    """
)


def test_a_killed_engine_is_taken_over_at_once_and_nothing_is_lost_or_doubled(
    live_db: Engine, live_db_url: str, stream_db: str, tmp_path: Path
) -> None:
    folder = data_folder(tmp_path)
    with Session(live_db) as s:
        dep = create_deployment(s, 1, text(stream_db, "killed_mid"), start=True).id
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ALPHAFORGE_DATA_DIR": str(tmp_path / "d")}
    proc = subprocess.Popen(
        [sys.executable, "-c", ENGINE_SCRIPT, live_db_url, str(folder / "streams"), str(folder)],
        env=env,
    )
    try:
        wait_for(lambda: bars_done(live_db, dep) > 40, 180, what="the doomed engine's bars")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    held = row(live_db, dep)
    assert "doomed@" in (held.engine_id or "") and held.status == "running"
    with running(stream_engine(live_db, folder, "heir")):
        # the lease (30 s) has not run out: taken back because its holder's process is gone
        wait_for(lambda: "heir@" in (row(live_db, dep).engine_id or ""), 10,
                 what="the takeover")  # fmt: skip
        wait_for(lambda: row(live_db, dep).status == "ended", 120, what="the replay's end")
    _exactly_once(folder, stream_db, "killed_mid", _reference(tmp_path, stream_db))


def test_two_engines_never_run_one_deployment(
    live_db: Engine, stream_db: str, tmp_path: Path
) -> None:
    folder = data_folder(tmp_path)
    with Session(live_db) as s:
        dep = create_deployment(s, 1, text(stream_db, "two_engines", speed=100), start=True).id
    a = StreamReconciler(StreamStore(live_db), engine_id_for("a"), state_root=folder / "streams",
                         base_dir=folder)  # fmt: skip
    b = StreamReconciler(StreamStore(live_db), engine_id_for("b"), state_root=folder / "streams",
                         base_dir=folder)  # fmt: skip
    try:
        first = a.reconcile()
        second = b.reconcile()
        assert first.loaded == [dep] and second.busy == [dep]
        for _ in range(10):
            assert b.reconcile().busy == [dep] and not b.running
            assert a.reconcile().busy == [] and a.running == {dep}
        wait_for(lambda: a.reconcile() and row(live_db, dep).status == "ended", 60,
                 what="the replay's end")  # fmt: skip
        assert not b.running
    finally:
        a.shutdown()
        b.shutdown()
    csv, _ = sink_rows(folder, stream_db, "two_engines")
    assert sorted(csv["ts"]) == expected_ts()


def test_stop_new_text_and_delete_are_followed(
    live_db: Engine, stream_db: str, tmp_path: Path
) -> None:
    folder = data_folder(tmp_path)
    with Session(live_db) as s:
        dep = create_deployment(s, 1, text(stream_db, "followed", speed=20), start=True).id
    rec = StreamReconciler(StreamStore(live_db), engine_id_for("c"),
                           state_root=folder / "streams", base_dir=folder)  # fmt: skip
    try:
        assert rec.reconcile().loaded == [dep]
        with Session(live_db) as s:
            d = s.get(type(row(live_db, dep)), dep)
            assert d is not None
            set_desired(s, d, "stopped")
        assert rec.reconcile().unloaded == [dep] and not rec.running
        stopped = row(live_db, dep)
        assert (stopped.status, stopped.status_reason) == ("stopped", "stopped by its owner")
        with Session(live_db) as s:
            d = s.get(type(stopped), dep)
            assert d is not None
            set_desired(s, d, "running")
            assert d.status == "starting"  # waiting for an engine
        assert rec.reconcile().loaded == [dep]
        with Session(live_db) as s:
            d = s.get(type(stopped), dep)
            assert d is not None
            assert update_text(s, d, text(stream_db, "followed", speed=30), user_id=1)
            assert d.text_version == 2
        assert rec.reconcile().reloaded == [dep] and rec.running == {dep}
        assert row(live_db, dep).loaded_key is not None
        assert row(live_db, dep).loaded_key.startswith("t2:")  # type: ignore[union-attr]
        with Session(live_db) as s:
            d = s.get(type(stopped), dep)
            assert d is not None
            delete_deployment(s, d)
        assert rec.reconcile().unloaded == [dep]
        assert row(live_db, dep).status_reason == "deleted"
    finally:
        rec.shutdown()


def test_a_text_that_does_not_compile_is_refused_with_line_and_column(live_db: Engine) -> None:
    bad = 'pipeline bad\ndata = csv_ohlcv(path="x.csv")\nfast = smaa(data.close, window=5)\n'
    with Session(live_db) as s, pytest.raises(DeploymentInputError) as caught:
        create_deployment(s, 1, bad)
    assert caught.value.diagnostics and caught.value.diagnostics[0].line == 3
    assert "first at 3:" in str(caught.value)
    batch = 'pipeline nostream\ndata = csv_ohlcv(path="x.csv")\n'
    with Session(live_db) as s, pytest.raises(DeploymentInputError, match="no stream"):
        create_deployment(s, 1, batch)
    escape = text("postgresql://x/y", "t").replace("out/cross.csv", "../../etc/x.csv")
    with Session(live_db) as s, pytest.raises(DeploymentInputError, match=r"without '\.\.'"):
        create_deployment(s, 1, escape)
    own = text("postgresql://x/y", "strategy_instances")
    with Session(live_db) as s, pytest.raises(DeploymentInputError, match="app's own tables"):
        create_deployment(s, 1, own)
