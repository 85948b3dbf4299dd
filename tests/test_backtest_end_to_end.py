"""`allsuse simulate --output-dir` end to end: the CLI's figures, the benchmarks run on the same data, and the
report.html it writes opened in headless Chromium, whose text must show the final equity, CAGR and max drawdown
the CLI printed."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from allsuse import cli
from allsuse.backtest.costs import CostModel
from allsuse.backtest.data import Source
from allsuse.backtest.simulation import BacktestSpec, run_backtest
from tests.test_backtest_report import (
    CHROMIUM_TIMEOUT,
    _chromium,
    _chromium_args,
    _text,
    assert_not_blank,
    screenshot_rgb,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STOCKS = DATA / "stocks20_close_1990_2014.csv"
needs_data = pytest.mark.skipif(not STOCKS.exists(), reason=f"shared data not found at {DATA}")

LAYOUT = ["--symbols", "gen=AMD,BAC", "rev=AAPL,MSFT", "com=JNJ,PG"]
PERIOD = ["--start", "2012-01-01", "--end", "2012-12-31", "--capital", "1000000"]


def _row(printed: str, label: str) -> list[str]:
    """The cells of the summary row that starts with `label` (cells are separated by 2+ spaces)."""
    for line in printed.splitlines():
        if line.startswith(label + " "):
            return re.split(r"\s{2,}", line[len(label) :].strip())
    raise AssertionError(f"no summary row {label!r} in:\n{printed}")


@needs_data
def test_simulate_report_in_chromium_shows_what_the_cli_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert cli.main(["simulate", "--data", str(STOCKS), *LAYOUT, *PERIOD, "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    protocol = _row(printed, "Protocol")
    final_equity, cagr, _vol, max_drawdown, _sharpe = protocol
    result = json.loads((out / "result.json").read_text())
    assert final_equity == f"${result['final_equity']:,.2f}"
    # Both benchmarks ran on the same data and are printed next to the protocol.
    for label, name in (("Buy and hold", "buy_and_hold"), ("Put-write (PUT-style)", "put_write")):
        cells = _row(printed, label)
        assert cells[0] == f"${result['benchmarks'][name]['final_equity']:,.2f}"
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            _chromium(),
            *_chromium_args(tmp_path / "profile"),
            f"--screenshot={shot}",
            "--dump-dom",
            "--window-size=1280,2000",
            (out / "report.html").resolve().as_uri(),
        ],
        capture_output=True,
        timeout=CHROMIUM_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0 and shot.exists(), done.stderr.decode(errors="replace")[-2000:]
    assert_not_blank(screenshot_rgb(shot))
    text = _text(done.stdout.decode())
    for cell in (final_equity, cagr, max_drawdown):
        assert cell in text, cell


@needs_data
def test_benchmarks_hold_a_symbol_through_its_gap_and_say_so(tmp_path: Path) -> None:
    # Two symbols of the shared wide file over 2012, with AAPL's close of one session removed.
    with STOCKS.open() as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if "2011-06-01" <= r["date"] <= "2012-03-30"]
    gap_day = "2012-02-15"
    wide = tmp_path / "two_close.csv"
    with wide.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "AAPL", "JNJ"])
        for r in kept:
            w.writerow([r["date"], "" if r["date"] == gap_day else r["AAPL"], r["JNJ"]])
    spec = BacktestSpec(
        sources=(Source(wide),),
        start=dt.date(2012, 1, 3),
        end=dt.date(2012, 3, 30),
        capital=1_000_000.0,
        symbols={"gen": ("AAPL",), "rev": ("JNJ",), "com": ("JNJ",)},
        costs=CostModel(),
    )
    run = run_backtest(spec)
    assert (
        "benchmarks: AAPL has no bar on 1 session(s); the benchmarks hold it at its previous close"
        in (run.result["warnings"])
    )
    i = run.dates.index(dt.date.fromisoformat(gap_day))
    assert np.isnan(run.closes["AAPL"][i])  # the protocol's record keeps the gap
    for name in ("buy_and_hold", "put_write"):
        equity = run.equity[name]
        assert np.all(np.isfinite(equity)) and equity.shape == (len(run.dates),)
        assert run.result["benchmarks"][name]["final_equity"] == pytest.approx(float(equity[-1]), abs=0.01)
