"""``alphaforge stream``: the example replayed as live bars into CSV and PostgreSQL (the app's
database from ALPHAFORGE_DATABASE_URL), one line per event, the health at the end; a restart
emits nothing twice; bad input exits 2 saying what and where."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.live.stream_support import (
    ROOT,
    batch_values,
    compiled,
    pg_rows,
    read_csv_events,
    stream_db,
    workdir,
    write_af,
)

__all__ = ["stream_db"]  # the module's database fixture

ALPHAFORGE = Path(sys.executable).with_name("alphaforge")
EXAMPLE = ROOT / "examples" / "stream_signals.af"


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ALPHAFORGE), "stream", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=300,
    )


def test_the_example_streams_the_sample_into_csv_and_postgres(
    tmp_path: Path, stream_db: str
) -> None:
    folder = workdir(tmp_path)
    shutil.copy(EXAMPLE, folder / "stream_signals.af")
    env = {"ALPHAFORGE_DATA_DIR": str(tmp_path / "home"), "ALPHAFORGE_DATABASE_URL": stream_db}
    done = _cli("stream_signals.af", "--until-end", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    signals = [ln for ln in lines if " stream_signals.signal.signal = " in ln]
    trends = [ln for ln in lines if " stream_signals.trend.value = " in ln]
    assert len(signals) == len(trends) == 300  # one line per event, though it goes to 2 sinks
    assert (
        "stream_signals: ended, 300 bars (0 repeated), 300 evaluations, 600 events" in done.stdout
    )
    assert "warm-up 120 bars" in done.stdout
    assert "sink postgres stream_signals @ " in done.stdout and "300 delivered" in done.stdout
    assert "AF008" not in done.stderr  # the warning that a run ignores the block: not here

    csv = read_csv_events(folder / "outputs" / "stream_signals.csv")
    assert len(csv) == 300 and csv["ts"].is_monotonic_increasing
    rows = pg_rows(stream_db, "SELECT ts, value FROM stream_signals ORDER BY ts")
    assert [r[1] for r in rows] == list(csv["value"])
    assert [r[0] for r in rows] == [t.to_pydatetime() for t in csv["ts"]]
    # the values are a batch run's over the same 420 bars
    ir = compiled(folder / "stream_signals.af")
    start = str(csv["ts"].iloc[0].date())
    status = json.loads(
        (tmp_path / "home" / "stream" / "stream_signals" / "status.json").read_text()
    )
    assert status["warmup_bars"] == 120 and status["first_live"].startswith(start)
    batch = batch_values(
        ir, folder, status["warmup_from"][:10], status["last_bar"][:10], ["signal"]
    )
    expected = batch["signal"]["signal"].reindex(csv["ts"])
    np.testing.assert_allclose(csv["value"].to_numpy(), expected.to_numpy(), atol=1e-12)
    assert set(csv["value"]) == {0.0, 1.0}  # the signal changes over these bars

    again = _cli("stream_signals.af", "--until-end", "--quiet", cwd=folder, env=env)
    assert again.returncode == 0, again.stderr
    assert "stream_signals: ended, 0 bars" in again.stdout  # resumed after the last bar
    assert len(read_csv_events(folder / "outputs" / "stream_signals.csv")) == 300
    assert pg_rows(stream_db, "SELECT count(*) FROM stream_signals") == [(300,)]


def test_bad_input_exits_2_saying_what_and_where(tmp_path: Path) -> None:
    folder = workdir(tmp_path)
    env = {"ALPHAFORGE_DATA_DIR": str(tmp_path / "home"), "ALPHAFORGE_DATABASE_URL": ""}
    typo = write_af(
        folder,
        "typo",
        "pipeline typo\n"
        'data = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
        "stream {\n"
        "    source = replay(sped=0)\n"
        '    emit data.close to csv_apend(path="x.csv")\n'
        "}\n",
    )
    done = _cli(str(typo), "--until-end", cwd=folder, env=env)
    assert done.returncode == 2
    assert "typo.af:4:21: error AF508: source `replay` has no param `sped`" in done.stderr
    assert "did you mean `speed`?" in done.stderr
    assert "typo.af:5:24: error AF507: unknown stream sink `csv_apend`" in done.stderr

    no_db = write_af(
        folder,
        "nodb",
        "pipeline nodb\n"
        'data = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
        "stream {\n"
        "    source = replay()\n"
        '    emit data.close to postgres(table="t")\n'
        "}\n",
    )
    done = _cli(str(no_db), "--until-end", cwd=folder, env=env)
    assert done.returncode == 2
    assert "nodb: emit data to postgres: no PostgreSQL database" in done.stderr
    assert "ALPHAFORGE_DATABASE_URL" in done.stderr

    missing = write_af(
        folder,
        "missing",
        "pipeline missing\n"
        'data = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
        "stream {\n"
        '    source = replay(path="data/nothing.csv")\n'
        '    emit data.close to csv_append(path="x.csv")\n'
        "}\n",
    )
    done = _cli(str(missing), "--until-end", cwd=folder, env=env)
    assert done.returncode == 2 and "missing: replay: no file" in done.stderr
    assert "nothing.csv" in done.stderr
