"""The compiler checks a stream block against the sources and sinks the live side runs:
AF507 an unknown one, AF508 its params, AF509 an `every` that is not a multiple of the bars."""

from __future__ import annotations

from dsl import compile_source

HEAD = 'pipeline s\ndata = csv_ohlcv(path="x.csv")\nfast = sma(data.close)\n'


def _diagnostics(block: str) -> list[tuple[str, int, int, str]]:
    result = compile_source(HEAD + block)
    return [(d.code, d.line, d.col, d.message) for d in result.diagnostics if d.code != "AF008"]


def test_known_sources_and_sinks_compile() -> None:
    block = (
        "stream {\n"
        '    source = binance_futures(universe=["BTCUSDT", "ETHUSDT"], interval=1h)\n'
        "    warmup = 30d\n"
        "    every 2h after 5m\n"
        '    emit fast to csv_append(path="o.csv", dedup_key=["ts", "symbol", "node"])\n'
        '    emit fast to postgres(table="public.signals")\n'
        '    emit fast to webhook(url="https://example.org/hook", retries=5, timeout_s=2.5)\n'
        '    emit fast to prefect_event(event="alphaforge.signal")\n'
        '    emit fast to trigger(target="other")\n'
        "}\n"
    )
    result = compile_source(HEAD + block)
    assert result.ok, result.format()
    assert result.ir is not None and result.ir.stream is not None
    assert [s.sink for s in result.ir.stream.sinks] == [
        "csv_append", "postgres", "webhook", "prefect_event", "trigger",
    ]  # fmt: skip


def test_an_unknown_source_or_sink_is_af507_with_a_suggestion() -> None:
    got = _diagnostics(
        'stream {\n    source = replya()\n    emit fast to csv_apend(path="o.csv")\n}\n'
    )
    assert [(c, line, col) for c, line, col, _ in got] == [("AF507", 5, 14), ("AF507", 6, 18)]
    assert "unknown stream source `replya`" in got[0][3] and "did you mean `replay`?" in got[0][3]
    assert "did you mean `csv_append`?" in got[1][3]


def test_bad_params_are_af508_at_the_argument() -> None:
    got = _diagnostics(
        "stream {\n"
        '    source = replay(dataset="d", path="p.csv", speed=-1, start="soon")\n'
        '    emit fast to webhook(url="ftp://x", retries=99)\n'
        '    emit fast to postgres(tabel="t")\n'
        '    emit fast to csv_append(path="o.csv", dedup_key=["ts", "price"])\n'
        "    emit fast to trigger(target=3)\n"
        "}\n"
    )
    by_place = {(line, col): message for _, line, col, message in got}
    assert {c for c, *_ in got} == {"AF508"}
    assert by_place[(5, 54)] == "source `replay`: `speed` must be a number of at least 0"
    assert "`start` must be a number of bars held back" in by_place[(5, 64)]
    assert by_place[(5, 39)] == "source `replay` takes `dataset` or `path`, not both"
    assert by_place[(6, 30)] == "sink `webhook`: `url` must be an http:// or https:// URL"
    assert "at most 20" in by_place[(6, 49)]
    assert "needs `table=`" in by_place[(7, 18)]
    assert (
        "has no param `tabel`" in by_place[(7, 27)] and "did you mean `table`?" in by_place[(7, 27)]
    )
    assert "`dedup_key` must be a list of distinct event fields" in by_place[(8, 53)]
    assert "`target` must be a pipeline name" in by_place[(9, 33)]


def test_every_must_be_a_multiple_of_the_source_interval() -> None:
    got = _diagnostics(
        'stream {\n    source = binance(symbols=["BTCUSDT"], interval=1h)\n    every 90m\n'
        '    emit fast to csv_append(path="o.csv")\n}\n'
    )
    assert [(c, line, col) for c, line, col, _ in got] == [("AF509", 5, 52)]
    assert "`every 90m` is not a whole multiple of the source's 1h bars" in got[0][3]
    assert (
        _diagnostics(
            'stream {\n    source = binance(symbols=["BTCUSDT"], interval=1h)\n    every 4h\n'
            '    emit fast to csv_append(path="o.csv")\n}\n'
        )
        == []
    )
