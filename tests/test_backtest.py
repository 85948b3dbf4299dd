"""The backtest over the shared S&P 500 and VIX data: known-good totals, a reconciling ledger, determinism,
and clear errors with line numbers for bad CSV files."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from allsuse import cli
from allsuse.errors import InvalidInputError
from allsuse.protocol.backtest import Backtest, load_bars, load_vix, simulate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SP500 = DATA / "sp500_daily_2009_2018.csv"
VIX = DATA / "vix_daily_2014_2018.csv"

needs_data = pytest.mark.skipif(not SP500.exists(), reason=f"shared data not found at {DATA}")


@needs_data
def test_two_years_of_sp500_with_vix_known_good_totals() -> None:
    # An index contract is ~$200k of collateral: 20M lets the sizing rule buy whole contracts.
    r = simulate(SP500, vix=VIX, symbol="SPX", start=dt.date(2014, 1, 1), end=dt.date(2015, 12, 31), capital=20e6)
    assert r["first_day"] == "2014-01-02" and r["last_day"] == "2015-12-31"
    assert r["final_equity"] == pytest.approx(20_189_972.62, abs=0.01)
    assert r["actions"] == {
        "ACCEPT_ASSIGNMENT": 58,
        "CLOSE": 110,
        "HOLD": 415,
        "NO_TRADE": 986,
        "OPEN_CALL": 92,
        "OPEN_PUT": 123,
        "ROLL": 46,
    }
    assert len(r["forks"]) == 1 and r["merges"] == []
    gen = r["accounts"]["backtest/gen-1"]
    assert gen["week_types"] == {"C-PNO": 4, "P-AWL": 1, "P-EW": 12, "W-IDL": 67}
    assert sum(a["final_equity"] for a in r["accounts"].values()) == pytest.approx(r["final_equity"], abs=0.05)
    assert set(r["metrics"]) >= {"sharpe_ratio", "max_drawdown", "expected_shortfall", "profit_factor"}


@needs_data
def test_ledger_reconciles_and_runs_are_deterministic() -> None:
    bars = load_bars(SP500)
    vix = load_vix(VIX)
    bt = Backtest(bars, symbol="SPX", capital=20e6, vix=vix, seed=3)
    first = bt.run(dt.date(2015, 1, 1), dt.date(2015, 12, 31))
    second = Backtest(bars, symbol="SPX", capital=20e6, vix=vix, seed=3).run(dt.date(2015, 1, 1), dt.date(2015, 12, 31))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


@needs_data
def test_ledger_flows_equal_cash_and_leaps() -> None:
    bars = load_bars(SP500)
    bt = Backtest(bars, symbol="SPX", capital=20e6, vix=load_vix(VIX))
    captured = {}
    original = bt._result

    def keep(portfolio, *args):  # type: ignore[no-untyped-def]
        captured["p"] = portfolio
        return original(portfolio, *args)

    bt._result = keep  # type: ignore[method-assign]
    bt.run(dt.date(2014, 1, 1), dt.date(2014, 12, 31))
    p = captured["p"]
    flows = sum((t.amount for t in p.transactions if t.kind not in ("reinvestment", "leaps")), Decimal("0.00"))
    cash = sum((a.balance + a.leaps for a in p.accounts.values()), Decimal("0.00"))
    assert flows == cash


@needs_data
def test_cli_simulate_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    argv = ["simulate", "--data", str(SP500), "--start", "2012-01-01", "--end", "2012-06-30", "--capital", "2e7"]
    assert cli.main([*argv, "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "week types" in text and "sharpe_ratio" in text
    result = json.loads(out.read_text())
    assert result["symbol"] == "SP500"  # from the file name
    assert result["accounts"]["backtest/gen-1"]["type"] == "gen"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("date,open,high,low,volume\n2020-01-02,1,2,1,5\n", "line 1: missing column(s) close"),
        ("date,open,high,low,close,volume\n2020-01-02,1,2,1,1.5,5\n2020-01-03,1,x,1,1.5,5\n", "line 3: high"),
        ("date,open,high,low,close,volume\n2020-01-03,1,2,1,1.5,5\n2020-01-02,1,2,1,1.5,5\n", "line 3: date"),
        ("date,open,high,low,close,volume\n2020-13-02,1,2,1,1.5,5\n", "line 2: date"),
        ("date,open,high,low,close,volume\n2020-01-02,1,2,3,1.5,5\n", "line 2: high is below low"),
    ],
)
def test_bad_csv_names_the_line(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(InvalidInputError, match=r".*") as err:
        load_bars(_write(tmp_path, text))
    assert needle in str(err.value)


def test_cli_reports_bad_data_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "date,open,high,low,close,volume\n2020-01-03,1,2,1,1.5,5\n2020-01-02,1,2,1,1.5,5\n")
    code = cli.main(
        ["simulate", "--data", str(path), "--start", "2020-01-01", "--end", "2020-02-01", "--capital", "1e5"]
    )
    assert code == 2
    assert "line 3" in capsys.readouterr().err
