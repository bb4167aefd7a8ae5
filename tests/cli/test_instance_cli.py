"""`alphaforge instance create | show` with each feed kind, on a real PostgreSQL database: the
``--feed`` forms (``replay:``, ``dataset:``, ``binance:``, ``binance_futures:``), what is
stored, what ``show`` prints, and the refusals (a futures interval or a symbol Binance has
not, an unknown kind) as sentences naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from api.db import make_engine
from cli.main import main
from tests.live.test_engine import CODE
from tests.pgdb import scratch_database


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("af_instance_cli", migrate=True) as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (username, password_hash, role, is_active, "
                    "must_change_password, created_at) VALUES ('trader', 'x', 'developer', true, "
                    "false, now())"
                )
            )
        engine.dispose()
        yield url


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI on the test database, with strategy ``sma_cross`` of ``trader`` stored."""
    monkeypatch.setenv("ALPHAFORGE_DATABASE_URL", db_url)
    monkeypatch.setenv("ALPHAFORGE_DATA_DIR", str(tmp_path / "data"))
    module = tmp_path / "sma_cross.py"
    module.write_text(CODE)
    assert main(["strategy", "save", "sma_cross", str(module), "--owner", "trader"]) == 0
    return tmp_path


def _create(capsys: pytest.CaptureFixture[str], market: str, feed: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["instance", "create", "--strategy", "sma_cross", "--owner", "trader",
                 "--market", market, "--feed", feed])  # fmt: skip
    out = capsys.readouterr()
    return code, out.out.strip(), out.err


@pytest.mark.parametrize(
    ("market", "feed", "stored", "shown"),
    [
        ("BTCUSDT", "binance_futures:5m,warmup=50",
         {"kind": "binance_futures", "interval": "5m", "warmup": 50},
         "feed Binance USD-M futures · 5m · warm-up 50"),
        ("BTCUSDT_261225", "binance_futures:1h",
         {"kind": "binance_futures", "interval": "1h"}, "feed Binance USD-M futures · 1h"),
        ("ETHUSDT", "binance:1s", {"kind": "binance", "interval": "1s"},
         "feed Binance spot · 1s"),
        ("ASSET", "replay:data/sample_ohlcv.csv,speed=20,warmup=100",
         {"kind": "replay", "path": "data/sample_ohlcv.csv", "interval": "1d", "speed": 20,
          "warmup": 100},
         "feed replay · data/sample_ohlcv.csv · 1d · ×20 · warm-up 100"),
    ],
)  # fmt: skip
def test_an_instance_is_created_with_its_feed_and_show_prints_it(
    cli: Path,
    capsys: pytest.CaptureFixture[str],
    market: str,
    feed: str,
    stored: dict[str, object],
    shown: str,
) -> None:
    code, iid, err = _create(capsys, market, feed)
    assert code == 0, err
    assert main(["instance", "show", iid]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{iid}  sma_cross v1  {market} (paper)")
    assert lines[1] == shown
    assert main(["instance", "show", iid, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["feed"] == stored
    assert main(["instance", "ls", "--json"]) == 0
    listed = {i["id"]: i for i in json.loads(capsys.readouterr().out)}
    assert listed[iid]["feed"] == stored


@pytest.mark.parametrize(
    ("market", "feed", "words"),
    [
        ("BTCUSDT", "binance_futures:1s",
         "feed.interval: '1s' is not a Binance USD-M futures kline interval"),
        ("BTCUSDT", "binance:7m", "feed.interval: '7m' is not a Binance spot kline interval"),
        ("BTC/USDT", "binance_futures:1m",
         "market: the binance_futures feed: 'BTC/USDT' is not a Binance USD-M futures symbol"),
        ("BTCUSDT_2612", "binance_futures:1m", "is not a Binance USD-M futures symbol"),
        ("BTCUSDT", "kraken:1m", "binance_futures:INTERVAL"),
    ],
)  # fmt: skip
def test_a_feed_binance_cannot_serve_is_refused_naming_the_field(
    cli: Path, capsys: pytest.CaptureFixture[str], market: str, feed: str, words: str
) -> None:
    code, out, err = _create(capsys, market, feed)
    assert code != 0 and out == ""
    assert words in " ".join(err.split()), err
