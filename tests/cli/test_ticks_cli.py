"""`alphaforge ticks import | generate | ls | show` run as the installed console script, as a
user runs it: the summaries against figures worked out by hand from the input files, exit codes,
a bad file's FILE:LINE, and a pipeline's `tick_data("name@version")` pinned by `validate` /
`compile` after an import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ALPHAFORGE = Path(sys.executable).with_name("alphaforge")
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z in ms


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ALPHAFORGE_DATA_DIR": str(tmp / "data"),
        "ALPHAFORGE_CATALOG_URL": str(tmp / "cat"),
        "ALPHAFORGE_NAMESPACE": "local",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(ALPHAFORGE), *args], capture_output=True, text=True, env=env, timeout=120
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _depth(u: int, pu: int, t: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    msg = {"e": "depthUpdate", "E": t + 1, "T": t, "s": "BTCUSDT", "U": pu + 1, "u": u, "pu": pu}
    return json.dumps({**msg, "b": bids, "a": asks})


def _trade(t: int, px: str, qty: str, maker: bool) -> str:
    msg = {"e": "aggTrade", "E": t + 1, "T": t, "s": "BTCUSDT", "a": t, "p": px, "q": qty}
    return json.dumps({**msg, "m": maker})


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    """A Binance USD-M stream dump: 3 diffs with 6 levels in all, 2 trades, 1 other message,
    exchange times T0+0 .. T0+4000 ms, prices 41990.5 .. 42010.0."""
    lines = [
        _depth(10, 9, T0, [["42000.0", "1.5"], ["41999.5", "2"]], [["42000.5", "0.7"]]),
        json.dumps({"e": "markPriceUpdate", "E": T0 + 500, "s": "BTCUSDT", "p": "42000.1"}),
        _depth(11, 10, T0 + 1000, [["41990.5", "4"]], [["42010.0", "0.2"]]),
        _trade(T0 + 2000, "42000.5", "0.3", False),
        _depth(12, 11, T0 + 3000, [["42000.0", "0"]], []),
        _trade(T0 + 4000, "41999.5", "0.1", True),
    ]
    path = tmp_path / "btcusdt.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_ls_show_round_trip_reports_the_files_figures(tmp_path: Path, dump: Path) -> None:
    imported = json.loads(
        _ok(
            _cli(
                tmp_path,
                "ticks",
                "import",
                str(dump),
                "--format",
                "binance-futures",
                "--name",
                "btc_book",
                "--tick-size",
                "0.5",
                "--lot-size",
                "0.001",
                "--message",
                "one minute of BTC",
                "--json",
            )
        )
    )
    assert (imported["kind"], imported["rows"], imported["skipped"]) == ("ticks", 8, 1)
    assert imported["unchanged"] is False
    (sym,) = imported["ticks"]["symbols"]
    assert (sym["symbol"], sym["events"], sym["depth"], sym["trades"]) == ("BTCUSDT", 8, 6, 2)
    assert (sym["px_min"], sym["px_max"]) == (41990.5, 42010.0)
    assert (sym["tick_size"], sym["lot_size"]) == (0.5, 0.001)
    assert sym["start"] == "2024-01-01T00:00:00+00:00"
    assert sym["end"] == "2024-01-01T00:00:04+00:00"

    (listed,) = json.loads(_ok(_cli(tmp_path, "ticks", "ls", "--json")))
    assert listed["name"] == "btc_book" and listed["versions"] == 1
    assert listed["latest"]["version"] == imported["version"]
    assert listed["ticks"]["events"] == 8

    short = imported["short"]
    text = _ok(_cli(tmp_path, "ticks", "show", f"btc_book@{short[:8]}"))
    assert f"local/btc_book@{short}" in text and "one minute of BTC" in text
    assert "BTCUSDT: 8 events (6 book rows, 2 trades)" in text
    assert "2024-01-01 00:00:00.000 .. 2024-01-01 00:00:04.000 UTC" in text
    assert "price 41990.5 .. 42010; tick size 0.5, lot size 0.001" in text
    assert f"btcusdt.jsonl (binance-futures, {dump.stat().st_size:,} bytes)" in text
    assert f'tick_data("btc_book@{short}")' in text

    table = _ok(_cli(tmp_path, "ticks", "ls"))
    assert "btc_book" in table and short in table and "BTCUSDT" in table
    assert "2024-01-01 00:00:00 .. 00:00:04" in table
    # the same file again stores nothing new
    again = _ok(
        _cli(
            tmp_path,
            "ticks",
            "import",
            str(dump),
            "--format",
            "binance-futures",
            "--name",
            "btc_book",
            "--tick-size",
            "0.5",
            "--lot-size",
            "0.001",
        )
    )
    said = "unchanged (the same events as the latest version)"
    assert again.startswith(f"{said}: local/btc_book@{short}")
    assert "skipped 1 other message(s)" in again


def test_a_bad_line_exits_2_naming_the_file_and_line_and_stores_nothing(
    tmp_path: Path, dump: Path
) -> None:
    lines = dump.read_text().splitlines()
    lines.insert(3, '{"e": "depthUpdate", "T": ')  # line 4: cut off mid-message
    dump.write_text("\n".join(lines) + "\n")
    proc = _cli(
        tmp_path, "ticks", "import", str(dump), "--format", "binance-futures", "--name", "b"
    )
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {dump}:4: BAD_JSON: not JSON")
    assert proc.stdout == ""
    assert json.loads(_ok(_cli(tmp_path, "ticks", "ls", "--json"))) == []

    gap = tmp_path / "gap.jsonl"  # the second diff's pu is not the first's u
    gap.write_text(f"{_depth(10, 9, T0, [['1', '1']], [])}\n{_depth(13, 12, T0 + 1, [], [])}\n")
    proc = _cli(tmp_path, "ticks", "import", str(gap), "--format", "binance-futures", "--name", "b")
    assert proc.returncode == 2 and f"error: {gap}:2: SEQUENCE_GAP" in proc.stderr

    csv = tmp_path / "BTCUSDT-trades-2024-01-01.csv"
    header = "id,price,qty,quote_qty,time,is_buyer_maker"
    csv.write_text(f"{header}\n1,42000,0.1,4200,1704067200000,maybe\n")
    proc = _cli(
        tmp_path, "ticks", "import", str(csv), "--format", "binance-trades-csv", "--name", "t"
    )
    assert proc.returncode == 2 and f"error: {csv}:2: BAD_LINE: is_buyer_maker" in proc.stderr

    nope = str(tmp_path / "nope.csv")
    proc = _cli(tmp_path, "ticks", "import", nope, "--format", "tardis", "--name", "t")
    assert proc.returncode == 2 and "nope.csv: no such file" in proc.stderr
    proc = _cli(tmp_path, "ticks", "show", "nothing")
    assert proc.returncode == 2 and "no dataset local/nothing" in proc.stderr


def test_generate_is_deterministic_and_a_tardis_export_imports_to_the_same_events(
    tmp_path: Path,
) -> None:
    from catalog import Catalog
    from catalog.ticks import tardis
    from nodes import ticks

    args = ("ticks", "generate", "--name", "syn", "--seed", "3", "--duration", "2m", "--json")
    first = json.loads(_ok(_cli(tmp_path, *args)))
    again = json.loads(_ok(_cli(tmp_path, *args)))
    assert again["version"] == first["version"] and again["unchanged"] is True
    other = json.loads(_ok(_cli(tmp_path, *args[:5], "4", *args[6:])))
    assert other["version"] != first["version"]
    (listed,) = json.loads(_ok(_cli(tmp_path, "ticks", "ls", "--json")))
    assert listed["versions"] == 2 and listed["latest"]["version"] == other["version"]

    # the counts the CLI reports, against the events themselves
    cat = Catalog.open(tmp_path / "cat")
    events = cat.read_ticks(first["version"])["SYN"]
    kinds = events["ev"] & ticks.KIND_MASK
    (sym,) = first["ticks"]["symbols"]
    assert sym["events"] == len(events)
    assert sym["trades"] == int((kinds == ticks.TRADE_EVENT).sum())
    priced = kinds != ticks.DEPTH_CLEAR_EVENT
    assert (sym["px_min"], sym["px_max"]) == (
        float(events["px"][priced].min()),
        float(events["px"][priced].max()),
    )
    assert sym["end"].startswith("2024-01-01T00:01:59")

    # exported as Tardis CSV and imported again: the same book and trades
    book, trades = tmp_path / "book.csv", tmp_path / "trades.csv"
    tardis.write_csv(events, "SYN", book, trades)
    out = json.loads(
        _ok(
            _cli(
                tmp_path,
                "ticks",
                "import",
                str(book),
                str(trades),
                "--format",
                "tardis",
                "--name",
                "syn_csv",
                "--json",
            )
        )
    )
    assert out["ticks"]["symbols"][0]["trades"] == sym["trades"]
    assert out["ticks"]["symbols"][0]["px_min"] == sym["px_min"]

    bad = _cli(tmp_path, "ticks", "generate", "--name", "x", "--seed", "1", "--depth", "0")
    assert bad.returncode == 2 and "error: --depth: depth must be > 0" in bad.stderr


def test_data_ls_lists_tick_datasets_with_their_kind(tmp_path: Path, dump: Path) -> None:
    _ok(_cli(tmp_path, "ticks", "generate", "--name", "syn", "--seed", "1", "--duration", "10"))
    listed = json.loads(_ok(_cli(tmp_path, "data", "ls", "--json")))
    assert [(d["name"], d["kind"]) for d in listed] == [("syn", "ticks")]
    table = _ok(_cli(tmp_path, "data", "ls"))
    assert "ticks" in table and "alphaforge ticks ls" in table
    shown = _ok(_cli(tmp_path, "data", "show", "syn"))
    assert "tick dataset" in shown and "SYN:" in shown and "book rows" in shown


def test_validate_and_compile_pin_a_tick_data_reference_after_an_import(
    tmp_path: Path, dump: Path
) -> None:
    imported = json.loads(
        _ok(
            _cli(
                tmp_path,
                "ticks",
                "import",
                str(dump),
                "--format",
                "binance-futures",
                "--name",
                "btc_book",
                "--namespace",
                "desk",
                "--json",
            )
        )
    )
    af = tmp_path / "mm.af"

    def write(ref: str) -> None:
        af.write_text(f'pipeline mm\nbook = tick_data("{ref}", symbol="BTCUSDT")\n')

    write(f"btc_book@{imported['short'][:8]}")
    out = _ok(_cli(tmp_path, "validate", str(af), "--namespace", "desk"))
    assert out.startswith(f"ok: {af}: pipeline 'mm'")
    ir = json.loads(_ok(_cli(tmp_path, "compile", str(af), "--namespace", "desk")))
    (node,) = [n for n in ir["nodes"] if n["type"] == "tick_data"]
    assert node["params"]["version"] == imported["version"]
    assert node["params"]["name"] == f"btc_book@{imported['short'][:8]}"

    write("btc_book@ffffff")
    proc = _cli(tmp_path, "validate", str(af), "--namespace", "desk")
    assert proc.returncode == 2 and "AF212" in proc.stdout + proc.stderr
    assert f"{af}:2:" in proc.stdout + proc.stderr
    write("btc_book")
    proc = _cli(tmp_path, "validate", str(af))  # namespace local: no such name there
    assert proc.returncode == 2 and "local/btc_book" in proc.stdout + proc.stderr

    # dataset(...) cannot read order-book events: said at validation, not when a run fails
    af.write_text('pipeline mm\nd = dataset("btc_book")\nx = sma(d.close, window=2)\n')
    proc = _cli(tmp_path, "validate", str(af), "--namespace", "desk")
    said = proc.stdout + proc.stderr
    assert proc.returncode == 2 and f"{af}:2:" in said and "AF212" in said
    assert "holds order-book events (ticks), not bars" in said and "tick_data(...)" in said
