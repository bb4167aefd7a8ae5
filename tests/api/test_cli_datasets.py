"""`alphaforge validate` checks dataset names against the web app's datasets (issue 9, item 5).

The web app records dataset names in its database; the command line reads the same database
(ALPHAFORGE_DATA_DIR / ALPHAFORGE_DATABASE_URL) and says, gcc-style with line and column, when a
pipeline names a dataset that does not exist, with the nearest names.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from cli.main import _dataset_refs, main
from dsl import compile_source
from flows.settings import CoreSettings
from tests.api.conftest import Account
from tests.api.test_datasets import bars, upload

PIPELINE = """\
pipeline reads_a_dataset "Reads a dataset"

data   = dataset_ohlcv(name="{name}")
fast   = sma(data.close, window=2)
slow   = sma(data.close, window=3)
signal = crossover(fast, slow)
result = backtest(data, signal)
"""


@pytest.fixture
def app_env(api_settings: ApiSettings, monkeypatch: pytest.MonkeyPatch) -> ApiSettings:
    """The command line pointed at the test app's data dir and database."""
    monkeypatch.setenv("ALPHAFORGE_DATA_DIR", str(api_settings.data_dir))
    monkeypatch.setenv("ALPHAFORGE_DATABASE_URL", api_settings.db_url)
    return api_settings


@pytest.mark.sqlite_too
def test_validate_refuses_an_unknown_dataset_with_did_you_mean(
    client: TestClient,
    alice: Account,
    bob: Account,
    app_env: ApiSettings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for who, name in ((alice, "goog_daily"), (alice, "eurusd_1h"), (bob, "btc_daily")):
        assert upload(client, who, name, bars(3)).status_code == 201
    af = tmp_path / "p.af"
    af.write_text(PIPELINE.format(name="goog_dialy"))
    assert main(["validate", str(af)]) == 2
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "AF209" in x]
    assert (
        line == f'{af}:3:29: error AF209: no dataset named "goog_dialy"; did you mean `goog_daily`?'
    )
    assert "hint: your datasets: btc_daily, eurusd_1h, goog_daily" in err

    af.write_text(PIPELINE.format(name="goog_daily"))
    assert main(["validate", str(af)]) == 0
    assert "ok: " in capsys.readouterr().out
    # --owner: only that user's datasets count
    af.write_text(PIPELINE.format(name="btc_daily"))
    assert main(["validate", "--owner", "alice", str(af)]) == 2
    assert 'no dataset named "btc_daily"' in capsys.readouterr().err
    assert main(["validate", "--owner", "bob", str(af)]) == 0


def test_validate_without_any_web_app_says_no_such_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALPHAFORGE_DATA_DIR", str(tmp_path / "fresh"))
    monkeypatch.delenv("ALPHAFORGE_DATABASE_URL", raising=False)
    af = tmp_path / "p.af"
    af.write_text(PIPELINE.format(name="goog_daily"))
    assert main(["validate", str(af)]) == 2
    err = capsys.readouterr().err
    assert f'{af}:3:29: error AF209: no dataset named "goog_daily"' in err
    assert "upload one on the Datasets page first" in err


def test_cli_runs_read_the_datasets_they_name(
    client: TestClient, alice: Account, bob: Account, app_env: ApiSettings
) -> None:
    """`alphaforge run` hands the flow the store reference of each dataset it reads."""
    from cli.datasets import store_datasets

    assert upload(client, alice, "goog_daily", bars(3)).status_code == 201
    assert upload(client, bob, "shared_name", bars(3)).status_code == 201
    assert upload(client, alice, "shared_name", bars(4)).status_code == 201
    ir = compile_source(PIPELINE.format(name="goog_daily")).ir
    assert ir is not None
    core = CoreSettings(data_dir=app_env.data_dir)
    refs = _dataset_refs(ir, store_datasets(None), core)
    assert list(refs) == ["goog_daily"] and refs["goog_daily"].startswith("store:datasets/")
    assert core.resolve_ref(refs["goog_daily"]).is_file()
    ambiguous = compile_source(PIPELINE.format(name="shared_name")).ir
    with pytest.raises(Exception, match="") as exc:
        _dataset_refs(ambiguous, store_datasets(None), core)
    assert type(exc.value).__name__ == "_Exit"
    assert _dataset_refs(ambiguous, store_datasets("bob"), core)["shared_name"].startswith("store:")


@pytest.mark.sqlite_too
def test_data_import_for_a_web_user_shows_on_their_page_and_their_runs_resolve_it(
    client: TestClient,
    alice: Account,
    app_env: ApiSettings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`alphaforge data import --owner alice` imports into alice's namespace: the dataset is on
    her Datasets page, and `validate --owner alice` resolves dataset("...") there."""
    from flows.settings import get_settings

    get_settings.cache_clear()
    try:
        folder = tmp_path / "src"
        folder.mkdir()
        (folder / "AAA.csv").write_text(bars(3))
        (folder / "BBB.csv").write_text(bars(4))
        args = ["data", "import", str(folder), "--name", "pair", "--owner", "alice", "--json"]
        assert main(args) == 0
        import json

        info = json.loads(capsys.readouterr().out)
        assert info["namespace"] == f"u{alice.id}"
        listed = client.get("/api/datasets", headers=alice.headers).json()["items"]
        assert [(d["name"], d["version"], d["symbols"]) for d in listed] == [
            ("pair", info["version"], ["AAA", "BBB"])
        ]
        af = tmp_path / "p.af"
        af.write_text('pipeline p\nd = dataset("pair")\nx = sma(d.close, window=2)\n')
        assert main(["validate", str(af), "--owner", "alice"]) == 0
        assert main(["validate", str(af)]) == 2  # the local namespace has no "pair"
        assert main(["data", "ls", "--owner", "nobody"]) == 2
        assert "the web app has no user 'nobody'" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
