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
    # Protocol v2: every account sizes to its deployment target on SPX alone (its concentration limit raised to
    # that target); index options are cash-settled; Com-Acc holds round lots and writes calls on them.
    r = simulate(SP500, vix=VIX, symbol="SPX", start=dt.date(2014, 1, 1), end=dt.date(2015, 12, 31), capital=20e6)
    assert r["first_day"] == "2014-01-02" and r["last_day"] == "2015-12-31"
    assert r["final_equity"] == pytest.approx(20_469_721.92, abs=0.01)
    assert r["actions"] == {
        "ACCEPT_ASSIGNMENT": 76,
        "BUY_SHARES": 16,
        "CLOSE": 120,
        "HOLD": 360,
        "NO_TRADE": 2270,
        "OPEN_CALL": 126,
        "OPEN_PUT": 134,
        "REDUCE": 11,
        "ROLL": 3,
    }
    assert len(r["forks"]) == 3 and r["merges"] == []
    gen = r["accounts"]["backtest/gen-1"]
    assert gen["week_types"] == {"P-AWL": 1, "P-EW": 12, "W-IDL": 91}
    assert r["deployment"] == {"mean": pytest.approx(0.3143, abs=5e-5), "max": pytest.approx(0.8757, abs=5e-5)}
    assert r["accounts"]["backtest/com-1"]["deployment"]["mean"] == pytest.approx(0.6782, abs=5e-5)
    assert r["settlement"] == "cash"
    assert sum(a["final_equity"] for a in r["accounts"].values()) == pytest.approx(r["final_equity"], abs=0.05)
    assert set(r["metrics"]) >= {"sharpe_ratio", "max_drawdown", "expected_shortfall", "profit_factor"}


@needs_data
def test_every_main_account_trades_and_the_proxy_days_are_named() -> None:
    """v1 at $2M never traded; v2 sizes to the deployment target, and the days before the VIX file used the proxy."""
    r = simulate(SP500, vix=VIX, start=dt.date(2013, 6, 1), end=dt.date(2014, 6, 30), capital=2e6)
    for account in ("backtest/gen-1", "backtest/rev-1", "backtest/com-1"):
        assert r["accounts"][account]["trades"] > 0, account
        assert r["accounts"][account]["deployment"]["max"] > 0.3, account
    assert 0 < r["deployment"]["mean"] <= r["deployment"]["max"] <= 1.0
    assert r["vol_source"][0] == {"from": "2013-06-03", "to": "2014-01-02", "source": "proxy"}
    assert r["vol_source"][-1]["source"] == "vix" and r["vol_source"][-1]["to"] == "2014-06-30"
    assert r["proxy_days"] > 100  # every trading day from 2013-06-03 to 2014-01-02
    for account in r["accounts"].values():
        assert account["symbols"] == ["SP500"] and account["max_symbol_weight"] in (0.9, 0.85)


@needs_data
def test_an_account_that_cannot_afford_one_contract_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """v1 returned NO_TRADE in silence at $100,000 (an S&P 500 put needs ~$200,000 of collateral)."""
    argv = ["simulate", "--data", str(SP500), "--symbol", "SPX", "--start", "2014-01-01", "--end", "2014-03-31"]
    assert cli.main([*argv, "--capital", "100000"]) == 0
    out = capsys.readouterr().out
    assert "warning: backtest/gen-1: one SPX put needs $" in out and "deployable $38,000" in out
    r = simulate(SP500, symbol="SPX", start=dt.date(2014, 1, 1), end=dt.date(2014, 3, 31), capital=1e5)
    gen = next(w for w in r["warnings"] if w.startswith("backtest/gen-1: one SPX put needs $"))
    assert "of collateral; deployable $38,000" in gen
    assert any(w.startswith("backtest/com-1: one SPX round lot needs $") for w in r["warnings"])


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


def test_simulate_refuses_bad_vix_and_output_before_simulating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """v1 loaded the data first (or ran the whole backtest) and then crashed with a traceback."""
    prices = _write(tmp_path, "date,open,high,low,close,volume\n2020-01-02,3200,3210,3190,3205,5\n")
    base = ["simulate", "--data", str(tmp_path / "missing-data.csv"), "--start", "2020-01-01", "--end", "2020-02-01"]
    cases = [
        (["--vix", str(tmp_path / "nope.csv")], "--vix"),
        (["--vix", str(prices)], "is not a volatility index"),
        (["--output", str(tmp_path / "no-such-dir" / "r.json")], "--output: folder"),
    ]
    for extra, needle in cases:
        assert cli.main([*base, "--capital", "1e5", *extra]) == 2
        err = capsys.readouterr().err
        # The data file does not exist: the option was refused first, before anything was loaded or simulated.
        assert needle in err and "missing-data" not in err, err
    bad = tmp_path / "vix.csv"
    bad.write_text("date,vix_close\n2020-01-02,abc\n")
    with pytest.raises(InvalidInputError, match="line 2"):
        load_vix(bad)
    fraction = tmp_path / "frac.csv"
    fraction.write_text("date,vix_close\n2020-01-02,0.15\n")
    with pytest.raises(InvalidInputError, match="not a volatility index"):
        load_vix(fraction)
