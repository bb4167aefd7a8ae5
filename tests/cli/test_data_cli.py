"""`alphaforge data import | ls | show | versions`: output, --json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from tests.catalog.helpers import bars, per_symbol_folder, write_csv


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    frames = {"AAA": bars("AAA", "2020-01-01", 10, seed=1), "BBB": bars("BBB", "2020-01-03", 8)}
    return per_symbol_folder(tmp_path / "src", frames)


def test_import_prints_the_version_and_a_summary_and_ls_show_versions_list_it(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = str(tmp_path / "cat")
    assert main(["data", "import", str(folder), "--name", "daily", "--catalog", cat]) == 0
    out = capsys.readouterr().out
    assert out.startswith("imported: local/daily@")
    assert "18 rows, 2 symbol(s), 2020-01-01 .. 2020-01-10" in out and cat in out
    short = out.split("@", 1)[1].split()[0]
    assert main(["data", "ls", "--catalog", cat]) == 0
    out = capsys.readouterr().out
    assert "daily" in out and short in out
    assert main(["data", "show", f"daily@{short[:8]}", "--catalog", cat]) == 0
    out = capsys.readouterr().out
    assert "AAA" in out and "BBB" in out and "columns: ts, symbol, open" in out
    assert "validated 2 file(s)" in out
    assert main(["data", "versions", "daily", "--catalog", cat]) == 0
    assert short in capsys.readouterr().out


def test_importing_the_same_data_again_says_unchanged(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["data", "import", str(folder), "--name", "daily", "--catalog", str(tmp_path / "c")]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("unchanged (the same data as the latest version)")


def test_json_output_of_each_command(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = ["--catalog", str(tmp_path / "cat"), "--namespace", "team", "--json"]
    assert main(["data", "import", str(folder), "--name", "d", "--message", "m", *cat]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert (imported["namespace"], imported["rows"], imported["unchanged"]) == ("team", 18, False)
    assert main(["data", "ls", *cat]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["version"] == imported["version"]
    assert main(["data", "show", "d", *cat]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [s["symbol"] for s in shown["symbols"]] == ["AAA", "BBB"]
    assert shown["report"]["rows"] == 18
    assert main(["data", "versions", "d", *cat]) == 0
    assert [v["message"] for v in json.loads(capsys.readouterr().out)] == ["m"]


def test_bad_data_and_unknown_names_exit_2_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = bars("AAA", "2020-01-01", 5)
    frame.iloc[2, frame.columns.get_loc("close")] = -1.0
    src = write_csv(frame, tmp_path / "bad.csv")
    cat = ["--catalog", str(tmp_path / "cat")]
    assert main(["data", "import", str(src), "--name", "bad", *cat]) == 2
    err = capsys.readouterr().err
    assert f"{src}, row 4: NON_POSITIVE_PRICE" in err
    assert main(["data", "show", "nothing", *cat]) == 2
    assert "no dataset local/nothing" in capsys.readouterr().err
    assert main(["data", "import", str(src), "--name", "no/slash", *cat]) == 2
    assert "invalid dataset name" in capsys.readouterr().err
