"""``alphaforge stream deploy|ls|start|stop|rm`` on the app's database, and ``alphaforge
engine`` running what they deployed (the engine's loop runs the stream reconciler too)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from tests.live.stream_deploy_support import folder as data_folder
from tests.live.stream_deploy_support import row

ALPHAFORGE = Path(sys.executable).with_name("alphaforge")

TEXT = """pipeline cli_signals

data = csv_ohlcv(path="data/sample_ohlcv.csv")
fast = sma(data.close, window=5)

stream {
    source = replay(speed=0, start=100)
    emit fast.value to csv_append(path="out/cli.csv")
}
"""


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ALPHAFORGE), *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env}, timeout=300)  # fmt: skip


def test_deploy_ls_start_stop_rm_and_the_engine_runs_it(
    live_db: Engine, live_db_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    data_folder(home / "workspace")  # the engine's workspace: relative paths resolve there
    env = {"ALPHAFORGE_DATA_DIR": str(home), "ALPHAFORGE_DATABASE_URL": live_db_url}
    (tmp_path / "bad.af").write_text(TEXT.replace("sma(", "smaa("))
    bad = _cli("stream", "deploy", "bad.af", "--owner", "trader", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "bad.af:4:8: error" in bad.stderr, bad.stderr
    (tmp_path / "cli.af").write_text(TEXT)
    done = _cli("stream", "deploy", "cli.af", "--owner", "trader", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("deployed sp_") and "stopped" in done.stdout
    sid = done.stdout.split()[1]
    again = _cli("stream", "deploy", "cli.af", "--owner", "trader", "--start", env=env,
                 cwd=tmp_path)  # fmt: skip
    assert again.stdout.startswith(f"unchanged {sid}") and "running" in again.stdout
    listed = _cli("stream", "ls", env=env, cwd=tmp_path)
    assert (
        sid in listed.stdout and "cli_signals" in listed.stdout and "want running" in listed.stdout
    )
    engine = _cli("engine", "--once", env=env, cwd=tmp_path)
    assert engine.returncode == 0, engine.stderr
    ran = row(live_db, sid)
    assert (ran.status, ran.status_reason, ran.engine_id) == ("stopped", "the engine stopped", None)
    assert ran.health_json is not None  # it ran, and reported
    assert (home / "streams" / sid).is_dir()  # its state folder: <data dir>/streams/<id>
    assert _cli("stream", "stop", "cli_signals", env=env, cwd=tmp_path).returncode == 0
    assert row(live_db, sid).desired == "stopped"
    assert _cli("stream", "start", sid, env=env, cwd=tmp_path).returncode == 0
    assert row(live_db, sid).desired == "running"
    missing = _cli("stream", "start", "nope", env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "no stream deployment 'nope'" in missing.stderr
    assert _cli("stream", "rm", "cli_signals", env=env, cwd=tmp_path).returncode == 0
    assert row(live_db, sid).deleted_at is not None
    assert "no stream deployments" in _cli("stream", "ls", env=env, cwd=tmp_path).stdout
