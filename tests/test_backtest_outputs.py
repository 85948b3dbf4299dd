"""`allsuse simulate --output-dir`: result.json, equity.csv and trades.csv that agree with each other and with
what the CLI prints; bad input exits 2 at once naming the file, line, symbol or parameter, and leaves nothing
in the output folder."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from pathlib import Path

import pytest

from allsuse import cli
from allsuse.backtest.data import Source
from allsuse.backtest.outputs import write_outputs
from allsuse.backtest.run import TRADE_COLUMNS
from allsuse.backtest.simulation import BacktestSpec, run_backtest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SP500 = DATA / "sp500_daily_2009_2018.csv"
STOCKS = DATA / "stocks20_close_1990_2014.csv"

needs_data = pytest.mark.skipif(not STOCKS.exists(), reason=f"shared data not found at {DATA}")

ARGS = ["--start", "2008-01-01", "--end", "2008-02-29", "--capital", "1e6"]
LAYOUT = ["--symbols", "gen=AMD,BAC,RRC,BBY", "rev=AAPL,MSFT,JPM,HD", "com=AAPL,MSFT,JNJ,PG"]


@needs_data
def test_output_dir_files_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert cli.main(["simulate", "--data", str(STOCKS), *LAYOUT, *ARGS, "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["equity.csv", "report.html", "result.json", "trades.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # the usual mode, not the temporary folder's 0700
    result = json.loads((out / "result.json").read_text())
    assert f"final equity {result['final_equity']:,.2f}" in printed
    assert "costs: commissions" in printed and "against target" in printed
    with (out / "equity.csv").open() as f:
        rows = list(csv.reader(f))
    header = rows[0]
    benchmarks = ["buy_and_hold", "put_write"]
    assert header[0] == "date" and header[-4:] == ["portfolio", *benchmarks, "deployment"]
    assert set(header[1:-4]) == set(result["accounts"])
    assert sorted(result["benchmarks"]) == benchmarks
    assert rows[1][0] == result["first_day"] and rows[-1][0] == result["last_day"]
    assert float(rows[-1][header.index("portfolio")]) == pytest.approx(result["final_equity"], abs=0.01)
    with (out / "trades.csv").open() as f:
        rows_read = list(csv.DictReader(f))
    assert tuple(rows_read[0].keys()) == TRADE_COLUMNS
    # The protocol's fills under its account ids, then each benchmark's under the benchmark's name.
    trades = [t for t in rows_read if t["account"] in result["accounts"]]
    for name in benchmarks:
        bench = [t for t in rows_read if t["account"] == name]
        assert len(bench) == result["benchmarks"][name]["trades"] > 0
        assert sum(float(t["commission"]) for t in bench) == pytest.approx(
            result["benchmarks"][name]["costs"]["commissions"], abs=0.05
        )
    assert len(trades) + sum(result["benchmarks"][n]["trades"] for n in benchmarks) == len(rows_read)
    assert len(trades) == result["costs"]["fills"]
    assert sum(float(t["commission"]) for t in trades) == pytest.approx(result["costs"]["commissions"], abs=0.05)
    assert sum(float(t["spread_cost"]) for t in trades) == pytest.approx(result["costs"]["spread_costs"], abs=0.05)
    assert {t["action"] for t in trades} >= {"SELL_TO_OPEN", "BUY_SHARES"}
    assert all(t["reason"] for t in trades)


@needs_data
def test_zero_cost_flags_turn_every_cost_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    zero = ["--commission", "0", "--share-commission", "0", "--spread", "0", "--rate", "0"]
    assert cli.main(["simulate", "--data", str(STOCKS), *LAYOUT, *ARGS, *zero, "--output", str(out)]) == 0
    costs = json.loads(out.read_text())["costs"]
    assert costs["commissions"] == costs["spread_costs"] == costs["interest"] == 0


@needs_data
def test_a_rate_csv_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("date,rate\n2007-12-31,0.03\n2008-02-01,0.01\n")
    out = tmp_path / "r.json"
    argv = ["simulate", "--data", f"AMD={STOCKS}", *ARGS, "--rate", str(rates), "--output", str(out)]
    assert cli.main(argv) == 0
    r = json.loads(out.read_text())
    assert r["costs"]["rate"] == "curve" and r["costs"]["interest"] > 0


def _bad(tmp_path: Path) -> list[tuple[list[str], str]]:
    broken = tmp_path / "broken.csv"
    broken.write_text("date,AAPL\n2008-01-02,1.5\n2008-01-03,abc\n")
    return [
        (["--data", str(tmp_path / "absent.csv")], "absent.csv: no such file"),
        (["--data", str(STOCKS), "--symbols", "gen=AMD,ZZZZ"], "symbol ZZZZ has no data"),
        (["--data", str(STOCKS), f"AAPL={SP500}"], "symbol AAPL comes from both"),
        (["--data", str(broken)], "broken.csv: line 3: AAPL 'abc' is not a number"),
        (["--data", str(STOCKS), "--commission", "-1"], "commission: must be between 0 and 100"),
        (["--data", str(STOCKS), "--spread", "2"], "spread: must be between 0 and 1"),
        (["--data", str(STOCKS), "--rate", "7"], "--rate: must be an annual rate"),
        (["--data", str(STOCKS), "--rate", str(tmp_path / "norates.csv")], "norates.csv: cannot be read"),
        (["--data", str(STOCKS), "--symbols", "gen"], "'gen' is not TYPE=SYMBOL"),
        (
            ["--data", str(SP500), "--start", "2030-01-01", "--end", "2030-12-31"],
            "start: 2030-01-01 is after the data's last session (2018-12-31)",
        ),
        (
            ["--data", str(SP500), "--start", "2000-01-01", "--end", "2001-01-01"],
            "end: 2001-01-01 is before the data's first session (2009-01-02)",
        ),
        (["--data", str(SP500), "--end", "2009-02-01"], "the first day that can be simulated is 2009-03-31"),
        (["--data", str(STOCKS), str(SP500), "--symbol", "X"], "--symbol: applies to one --data file only"),
    ]


@needs_data
def test_bad_input_exits_2_naming_it_and_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    for extra, needle in _bad(tmp_path):
        period = {"--start": "2008-01-01", "--end": "2008-02-29"}
        for flag in period:
            if flag in extra:
                period[flag] = extra[extra.index(flag) + 1]
                i = extra.index(flag)
                extra = extra[:i] + extra[i + 2 :]
        argv = [*extra, "--start", period["--start"], "--end", period["--end"], "--capital", "1e6"]
        code = cli.main(["simulate", *argv, "--output-dir", str(out)])
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        assert needle in err, (needle, err)
        assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_output_dir_that_cannot_be_written_is_refused_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    for target, needle in ((tmp_path / "no" / "dir", "does not exist"), (file, "is not a folder")):
        code = cli.main(["simulate", "--data", str(tmp_path / "missing.csv"), *ARGS, "--output-dir", str(target)])
        err = capsys.readouterr().err
        assert code == 2 and "--output-dir" in err and needle in err and "missing.csv" not in err


@needs_data
def test_a_failure_while_writing_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    run = run_backtest(BacktestSpec((Source.parse(f"AMD={STOCKS}"),), dt.date(2008, 1, 1), dt.date(2008, 1, 31), 1e6))
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text("old")

    def broken_report(folder: Path) -> None:
        (folder / "report.html").write_text("<html>half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_outputs(run, out, extra=broken_report)
    assert [p.name for p in out.iterdir()] == ["result.json"] and (out / "result.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    def report(folder: Path) -> None:
        (folder / "report.html").write_text("<html></html>")

    written = write_outputs(run, out, extra=report)
    assert sorted(p.name for p in written) == ["equity.csv", "report.html", "result.json", "trades.csv"]
    assert json.loads((out / "result.json").read_text())["final_equity"] == run.result["final_equity"]
