"""The ``ticks`` value (nodes.ticks) and its file (nodes.tickfile): hftbacktest's layout."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nodes import tickfile, ticks
from nodes.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
_FIELDS = ticks.EVENT_FIELDS


def _events(n: int = 6) -> np.ndarray:
    data = np.zeros(n, ticks.EVENT_DTYPE)
    both = ticks.EXCH_EVENT | ticks.LOCAL_EVENT
    data["ev"] = both | ticks.DEPTH_EVENT | ticks.BUY_EVENT
    data["ev"][1::2] = both | ticks.TRADE_EVENT | ticks.SELL_EVENT
    data["exch_ts"] = 1_700_000_000_000_000_000 + np.arange(n) * 1_000_000
    data["local_ts"] = data["exch_ts"] + 500_000
    data["px"] = 100.0 + np.arange(n) * 0.5
    data["qty"] = 1.25
    return data


def test_event_dtype_and_flags_are_hftbacktests() -> None:
    import hftbacktest.types as hbt

    assert hbt.event_dtype == ticks.EVENT_DTYPE
    assert ticks.EVENT_DTYPE.itemsize == hbt.event_dtype.itemsize == 64
    for name in (
        "DEPTH_EVENT",
        "TRADE_EVENT",
        "DEPTH_CLEAR_EVENT",
        "DEPTH_SNAPSHOT_EVENT",
        "EXCH_EVENT",
        "LOCAL_EVENT",
        "BUY_EVENT",
        "SELL_EVENT",
    ):
        assert getattr(ticks, name) == getattr(hbt, name), name


def test_importing_the_tick_modules_does_not_import_numpy() -> None:
    code = "import sys, nodes.ticks, nodes.tickfile, runners.io; print('numpy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "False"


def test_tick_array_keeps_its_hints_through_slices() -> None:
    value = ticks.tick_array(_events(), symbol="BTCUSDT", tick_size=0.1, lot_size=0.001)
    assert ticks.tick_meta(value[2:]).symbol == "BTCUSDT"
    assert ticks.tick_meta(_events()) == ticks.TickMeta()
    s = ticks.summary(value)
    assert (s["events"], s["trades"], s["depth"]) == (6, 3, 3)
    assert s["end_ns"] - s["start_ns"] == 5_000_000
    assert s["tick_size"] == 0.1


def test_tick_file_round_trips_events_and_hints(tmp_path: Path) -> None:
    value = ticks.tick_array(_events(), symbol="ETHUSDT", tick_size=0.01)
    path = tmp_path / "t.npz"
    tickfile.save(value, path)
    back = tickfile.load(path)
    assert back.dtype == ticks.EVENT_DTYPE
    np.testing.assert_array_equal(np.asarray(back), _events())
    assert ticks.tick_meta(back) == ticks.TickMeta("ETHUSDT", 0.01, None)
    # what numpy itself reads, without pickles
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["data", "meta"]
        marker = json.loads(str(npz["meta"][()]))
    assert marker["events"] == 6 and marker["kind"] == "ticks"
    assert tickfile.read_marker(path)["symbol"] == "ETHUSDT"


def test_same_events_give_the_same_bytes() -> None:
    a = tickfile.dumps(_events(), ticks.TickMeta("X", 0.5))
    b = tickfile.dumps(_events().copy(), ticks.TickMeta("X", 0.5))
    assert a == b
    assert tickfile.dumps(_events(), ticks.TickMeta("Y", 0.5)) != a


def test_the_same_fields_with_other_offsets_are_read_in_hftbacktests_layout() -> None:
    padded = np.dtype(
        {
            "names": [n for n, _ in ticks.EVENT_FIELDS],
            "formats": [c for _, c in ticks.EVENT_FIELDS],
            "offsets": [8 * i for i in range(8)],
            "itemsize": 72,
        }
    )
    raw = _npz(data=_events().astype(padded), meta=_marker(6))
    back = tickfile.loads(raw, name="padded.npz")
    assert back.dtype == ticks.EVENT_DTYPE and back.dtype.itemsize == 64
    np.testing.assert_array_equal(np.asarray(back), _events())


def _marker(n: int) -> np.ndarray:
    return np.array(json.dumps({"kind": "ticks", "format": 1, "events": n}))


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"not a zip at all", "not a tick file"),
        (_npz(data=np.zeros(3)), "lacks ['meta']"),
        (_npz(data=np.zeros(3), meta=_marker(3)), "BAD_EVENT_DTYPE"),
        (
            _npz(data=np.zeros(2, [("ev", "u8"), ("exch_ts", "i8")]), meta=_marker(2)),
            "event fields must be",
        ),
        (
            _npz(
                data=np.zeros(2, [(n, "f8" if n == "exch_ts" else c) for n, c in _FIELDS]),
                meta=_marker(2),
            ),
            "field 'exch_ts' must be int64",
        ),
        (_npz(data=_events(), meta=np.array("{}")), "not a tick marker"),
        (_npz(data=_events(), meta=_marker(5)), "says 5 events, it holds 6"),
    ],
)
def test_a_bad_tick_file_is_a_clear_error(raw: bytes, words: str) -> None:
    with pytest.raises(DataError) as err:
        tickfile.loads(raw, name="bad.npz")
    assert "bad.npz" in str(err.value) and words in str(err.value)


def test_a_pickled_member_is_refused_not_unpickled() -> None:
    buf = io.BytesIO()
    np.savez(buf, data=np.array([{"evil": 1}], dtype=object), meta=_marker(1))
    with pytest.raises(DataError, match="not a tick file"):
        tickfile.loads(buf.getvalue(), name="evil.npz")


def test_events_out_of_replay_order_are_refused_naming_the_row() -> None:
    data = _events()
    data["exch_ts"][4] = data["exch_ts"][2] - 1
    data["local_ts"][4] = data["local_ts"][4]
    with pytest.raises(DataError, match=r"row 4.*UNSORTED: exchange events must be in exch_ts"):
        tickfile.loads(_npz(data=data, meta=_marker(6)), name="x.npz")
    # a row that is only a local event may be out of exchange order (hftbacktest's split rows)
    data["ev"][4] = (data["ev"][4] & ~np.uint64(ticks.EXCH_EVENT)) | ticks.LOCAL_EVENT
    ticks.check_order(data, "x")


def test_the_zip_members_have_no_wall_clock() -> None:
    with zipfile.ZipFile(io.BytesIO(tickfile.dumps(_events()))) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
