"""Dataset uploads are parsed in chunks (issue 10, item 8: a 100 MB upload cost ~600 MB of API
memory): :func:`nodes.data.iter_ohlcv_csv` gives the same bars and the same named errors, with
the same editor line numbers, as reading the whole file, also where chunks meet; the upload
stores what the whole-file read gives; over the cap it is a 413 sentence and nothing is stored.
The memory itself is measured by ``bench/bench_upload_memory.py`` (not a timed test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from nodes.data import iter_ohlcv_csv, read_ohlcv_csv
from nodes.errors import DataError
from tests.api.conftest import Account

HEADER = "ts,open,high,low,close,volume\n"
G = [f"2024-01-{d:02d},10,11,9,10.5,{d}" for d in range(1, 10)]


def _write(tmp_path: Path, lines: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text(header + "\n".join(lines) + "\n")
    return path


def _outcome(read: object) -> object:
    try:
        frame = read()  # type: ignore[operator]
    except DataError as exc:
        return ("error", exc.kind, exc.row, str(exc))
    return ("ok", frame)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3])
@pytest.mark.parametrize(
    ("lines", "header"),
    [
        (G, HEADER),
        ([*G, "", ""], HEADER),  # trailing blank lines are fine
        ([*G[:3], "", *G[3:]], HEADER),  # a blank line between bars is not
        ([*G[:4], G[2], *G[5:]], HEADER),  # out of order across a chunk boundary
        ([*G[:4], G[3], *G[5:]], HEADER),  # a duplicate across a chunk boundary
        ([*G[:5], "2024-01-06,1,2,0.5,x,1"], HEADER),
        ([*G[:5], "2024-01-06,1,2,0.5,1,1,7"], HEADER),  # a long row
        (["2024-01-02,10,11,9,100"], "ts,open,high,low,volume\n"),
        ([], HEADER),
        ([g.rsplit(",", 1)[0] for g in G], "ts,open,high,low,close\n"),  # no volume
        (
            [f"2024-01-0{d},{s},10,11,9,10.5,1" for d in range(1, 6) for s in ("A", "B")]
            + ["2024-01-05,B,10,11,9,10.5,1"],  # B's 01-05 again, in a later chunk
            "ts,symbol,open,high,low,close,volume\n",
        ),
        (
            [f"2024-01-0{d},{s},10,11,9,10.5,1" for d in range(1, 6) for s in ("A", "B")],
            "ts,symbol,open,high,low,close,volume\n",
        ),
    ],
)
def test_chunks_give_what_the_whole_file_gives(
    tmp_path: Path, lines: list[str], header: str, chunk_rows: int
) -> None:
    path = _write(tmp_path, lines, header)
    whole = _outcome(lambda: read_ohlcv_csv(path))
    chunked = _outcome(lambda: pd.concat(list(iter_ohlcv_csv(path, chunk_rows=chunk_rows))))
    if whole[0] == "ok":
        assert chunked[0] == "ok", chunked
        pd.testing.assert_frame_equal(chunked[1], whole[1])  # type: ignore[index]
    else:
        assert chunked == whole


def _bars(rows: int) -> bytes:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, rows)))
    ts = pd.date_range("2021-01-01", periods=rows, freq="min", tz="UTC")
    frame = pd.DataFrame(
        {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.integers(1, 100, rows),
        }
    )
    return frame.to_csv(index=False, float_format="%.6f").encode()


def test_a_multi_chunk_upload_stores_what_the_whole_file_read_gives(
    client: TestClient,
    alice: Account,
    api_settings: ApiSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nodes.data

    body = _bars(3_000)
    assert len(body) <= api_settings.max_upload_bytes
    monkeypatch.setattr(nodes.data, "CSV_CHUNK_ROWS", 1_000)  # chunks within the small cap
    resp = client.post(
        "/api/datasets",
        data={"name": "big"},
        files={"file": ("big.csv", body, "text/csv")},
        headers=alice.headers,
    )
    assert resp.status_code == 201, resp.text
    (tmp_path / "big.csv").write_bytes(body)
    whole = read_ohlcv_csv(tmp_path / "big.csv")
    out = resp.json()
    assert out["rows"] == len(whole)
    assert out["columns"] == ["ts", "open", "high", "low", "close", "volume"]
    assert pd.Timestamp(out["start"]) == whole.index[0]
    assert pd.Timestamp(out["end"]) == whole.index[-1]
    stored = list(api_settings.datasets_dir.glob("*.parquet"))
    assert len(stored) == 1
    pd.testing.assert_frame_equal(pd.read_parquet(stored[0]), whole)


def test_an_upload_over_the_cap_is_a_413_sentence_and_stores_nothing(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    body = _bars(20_000)
    assert len(body) > api_settings.max_upload_bytes
    resp = client.post(
        "/api/datasets",
        data={"name": "huge"},
        files={"file": ("huge.csv", body, "text/csv")},
        headers=alice.headers,
    )
    assert resp.status_code == 413
    limit_kb = api_settings.max_upload_bytes // 1024
    assert resp.json()["detail"] == (
        f"The upload is larger than the limit of {limit_kb} KB "
        "(ALPHAFORGE_MAX_UPLOAD_BYTES): nothing was stored. Upload a smaller file (split it by "
        "date) or ask your operator to raise the limit."
    )
    assert not api_settings.datasets_dir.exists() or not any(api_settings.datasets_dir.iterdir())
    listing = client.get("/api/datasets", headers=alice.headers).json()
    assert listing["total"] == 0
