"""The metrics table a researcher reads after `alphaforge run`."""

from __future__ import annotations

from rich.console import Console

from cli.output import metrics_table


def _render(metrics: dict) -> list[str]:
    console = Console(width=80, record=True)
    console.print(metrics_table(metrics, "t"))
    return [line for line in console.export_text().splitlines() if "│" in line]


def test_metrics_table_reads_returns_first_and_shows_fractions_as_percent() -> None:
    rows = _render(
        {"num_trades": 30, "sharpe": 0.6087, "total_return": 0.4455, "zeta": 1.5, "win_rate": None}
    )
    names = [r.split("│")[1].strip() for r in rows]
    assert names == ["total_return", "sharpe", "num_trades", "win_rate", "zeta"]
    assert "44.55 %" in rows[0] and "0.6087" in rows[1] and "—" in rows[3]


def test_warnings_notes_and_the_ppy_reason_are_lines_not_cells() -> None:
    from cli.output import print_metrics

    console = Console(width=100, record=True)
    metrics = {
        "sharpe": None,
        "ppy": 252,
        "ppy_source": "calendar equities (declared)",
        "warnings": ["2 bars fall on a weekend"],
        "notes": ["sharpe: null below 30 returns (3 here)"],
    }
    print_metrics(console, metrics, "t")
    text = console.export_text()
    cells = [line.split("│")[1].strip() for line in text.splitlines() if "│" in line]
    assert cells == ["sharpe", "ppy"]
    assert "periods/year  252: calendar equities (declared)" in text
    assert "warning: 2 bars fall on a weekend" in text
    assert "note: sharpe: null below 30 returns (3 here)" in text
