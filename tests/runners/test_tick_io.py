"""``ticks`` port values as artifact files (runners.io): .npz, checked on the way in and out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nodes import ticks
from nodes.base import PortType, port_info
from runners.base import RunnerError
from runners.io import check_value, file_name, read_value, write_value


def _events() -> np.ndarray:
    data = np.zeros(4, ticks.EVENT_DTYPE)
    data["ev"] = ticks.EXCH_EVENT | ticks.LOCAL_EVENT | ticks.DEPTH_EVENT | ticks.SELL_EVENT
    data["exch_ts"] = [10, 20, 20, 30]
    data["local_ts"] = [15, 25, 26, 35]
    data["px"] = [101.0, 101.5, 102.0, 101.0]
    data["qty"] = [1.0, 2.0, 0.0, 3.0]
    return data


def test_ticks_are_an_events_form_not_a_sandbox_input() -> None:
    info = port_info(PortType.TICKS)
    assert info.form.value == "events"
    assert not info.sandbox_input and not info.sandbox_output
    assert file_name("book", "ticks") == "book.npz"


def test_ticks_round_trip_through_an_artifact_file(tmp_path: Path) -> None:
    value = ticks.tick_array(_events(), symbol="BTCUSDT", tick_size=0.5, lot_size=0.001)
    check_value(value, PortType.TICKS, "output 'book'")
    path = tmp_path / file_name("book", PortType.TICKS)
    write_value(value, PortType.TICKS, path)
    back = read_value(path)
    np.testing.assert_array_equal(np.asarray(back), _events())
    assert ticks.tick_meta(back) == ticks.TickMeta("BTCUSDT", 0.5, 0.001)
    # a plain array (no hints) is a tick value too
    write_value(_events(), PortType.TICKS, path)
    assert ticks.tick_meta(read_value(path)) == ticks.TickMeta()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (np.zeros(3), "BAD_EVENT_DTYPE"),
        ([1, 2], "expected ticks"),
        (np.zeros((2, 2), ticks.EVENT_DTYPE), "expected ticks"),
        (
            np.zeros(
                2,
                np.dtype(
                    {
                        "names": [n for n, _ in ticks.EVENT_FIELDS],
                        "formats": [c for _, c in ticks.EVENT_FIELDS],
                        "offsets": [8 * i for i in range(8)],
                        "itemsize": 72,
                    }
                ),
            ),
            "aligned",
        ),
    ],
)
def test_a_value_that_is_not_ticks_is_refused(value: object, words: str) -> None:
    with pytest.raises(RunnerError, match=words):
        check_value(value, PortType.TICKS, "output 'book' of node 'b'")


def test_unsorted_ticks_are_refused_before_they_are_stored() -> None:
    data = _events()
    data["exch_ts"][3] = 5
    with pytest.raises(RunnerError, match=r"row 3.*exch_ts order"):
        check_value(data, PortType.TICKS, "output 'book'")


def test_a_damaged_tick_artifact_is_a_runner_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "book.npz"
    path.write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(RunnerError, match=r"book\.npz.*not a tick file"):
        read_value(path)
