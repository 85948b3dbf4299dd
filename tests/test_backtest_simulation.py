"""The multi-symbol backtest (run_backtest): the real account layout over real stocks, costs in every fill and in
the totals, interest on cash at the pricing rate, prices under $1, gaps not traded, the zero-cost golden figure of
the single-underlying run, and determinism."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest

from allsuse.backtest.costs import CostModel, RateCurve, tick_of
from allsuse.backtest.data import Source
from allsuse.backtest.simulation import ZERO_COSTS, BacktestSpec, parse_symbols, run_backtest
from allsuse.errors import InvalidInputError
from allsuse.protocol.positions import Position

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SP500 = DATA / "sp500_daily_2009_2018.csv"
VIX = DATA / "vix_daily_2014_2018.csv"
STOCKS = DATA / "stocks20_close_1990_2014.csv"

needs_data = pytest.mark.skipif(not STOCKS.exists(), reason=f"shared data not found at {DATA}")

LAYOUT = parse_symbols(["gen=AMD,BAC,RRC,BBY", "rev=AAPL,MSFT,JPM,HD", "com=AAPL,MSFT,JNJ,PG"])


def _spec(**kw: object) -> BacktestSpec:
    base: dict[str, object] = {
        "sources": (Source(STOCKS),),
        "start": dt.date(2008, 1, 1),
        "end": dt.date(2008, 3, 31),
        "capital": 1e6,
        "symbols": LAYOUT,
    }
    base.update(kw)
    return BacktestSpec(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def q1_2008() -> object:
    """One quarter of 2008 over the issue's account layout, default costs."""
    return run_backtest(_spec())


@needs_data
def test_the_single_underlying_golden_figure_with_zero_costs() -> None:
    """The 2-year SPX backtest of earlier releases, through the new entry point with costs turned off."""
    spec = BacktestSpec(
        (Source.parse(f"SPX={SP500}"),), dt.date(2014, 1, 1), dt.date(2015, 12, 31), 20e6, costs=ZERO_COSTS, vix=VIX
    )
    run = run_backtest(spec)
    assert run.result["final_equity"] == pytest.approx(20_469_721.92, abs=0.01)
    assert run.result["costs"]["commissions"] == 0 and run.result["costs"]["interest"] == 0
    assert run.result["settlement"] == "cash" and run.result["single_underlying"]


@needs_data
def test_each_account_trades_only_its_own_symbols(q1_2008: object) -> None:
    run = q1_2008
    traded: dict[str, set[str]] = {}
    for t in run.trades:  # type: ignore[attr-defined]
        traded.setdefault(t.account.split("/")[1].split("-")[0], set()).add(t.symbol)
    assert set(traded) == {"gen", "rev", "com"}
    for kind, symbols in traded.items():
        assert symbols <= set(LAYOUT[kind]), kind
    r = run.result  # type: ignore[attr-defined]
    assert r["symbols"] == {k: list(v) for k, v in LAYOUT.items()}
    assert r["settlement"] == "physical" and r["single_underlying"] is None
    assert r["data"]["close_only"] == sorted({s for v in LAYOUT.values() for s in v})
    assert any("ATR from close-to-close" in n and "volume term skipped" in n for n in r["data"]["notes"])


@needs_data
def test_every_cost_is_in_the_fills_and_the_totals(q1_2008: object) -> None:
    run = q1_2008
    costs = CostModel()
    trades = run.trades  # type: ignore[attr-defined]
    r = run.result  # type: ignore[attr-defined]
    sold = [t for t in trades if t.action == "SELL_TO_OPEN"]
    bought = [t for t in trades if t.action == "BUY_TO_CLOSE" and t.reason != "EXPIRY"]
    assert sold and bought
    for t in sold:
        half = max(0.05 * t.mid, tick_of(t.mid)) / 2
        assert t.price == pytest.approx(max(t.mid - half, 0.0), abs=1e-6)
        assert t.commission == pytest.approx(0.65 * -t.contracts)
        assert t.spread_cost == pytest.approx((t.mid - t.price) * 100 * -t.contracts, abs=0.01)
    for t in bought:
        assert t.price == pytest.approx(t.mid + max(0.05 * t.mid, tick_of(t.mid)) / 2, abs=1e-6)
    for t in trades:
        if t.instrument == "stock" and t.action in ("BUY_SHARES", "SELL_SHARES"):
            assert t.commission == pytest.approx(costs.share_commission(t.shares), abs=0.005)
    assert r["costs"]["commissions"] == pytest.approx(sum(t.commission for t in trades), abs=0.05)
    assert r["costs"]["spread_costs"] == pytest.approx(sum(t.spread_cost for t in trades), abs=0.05)
    assert r["costs"]["fills"] == len(trades)
    per_account = sum(a["costs"]["commissions"] for a in r["accounts"].values())
    assert per_account == pytest.approx(r["costs"]["commissions"], abs=0.05)
    # Interest on a million at 2% for a quarter is about $5,000 (cash and put collateral alike earn it).
    assert 3_000 < r["costs"]["interest"] < 6_000
    # The account equities add up to the portfolio every day.
    eq = run.equity  # type: ignore[attr-defined]
    accounts = np.nansum([v for k, v in eq.items() if k in r["accounts"]], axis=0)
    assert np.allclose(accounts, eq["portfolio"], atol=0.05)
    assert r["final_equity"] == pytest.approx(eq["portfolio"][-1], abs=0.01)


@needs_data
def test_target_and_actual_weekly_return_per_account(q1_2008: object) -> None:
    r = q1_2008.result  # type: ignore[attr-defined]
    targets = {"gen": 0.015, "rev": 0.010, "com": 0.005}
    for a in r["accounts"].values():
        assert a["weekly_target"] == targets[a["type"]]
        assert a["weekly_vs_target"] == pytest.approx(a["mean_weekly_return"] - a["weekly_target"], abs=1e-6)


@needs_data
def test_closes_and_vols_per_traded_symbol_for_the_benchmarks(q1_2008: object) -> None:
    run = q1_2008
    n = len(run.dates)  # type: ignore[attr-defined]
    assert set(run.closes) == {s for v in LAYOUT.values() for s in v}  # type: ignore[attr-defined]
    for s in run.closes:  # type: ignore[attr-defined]
        assert run.closes[s].shape == (n,) and run.vols[s].shape == (n,)  # type: ignore[attr-defined]
        assert np.all(run.closes[s] > 0) and np.all((run.vols[s] > 0.05) & (run.vols[s] < 3))  # type: ignore[attr-defined]
    assert run.dates[0] == dt.date(2008, 1, 2) and run.closes["AAPL"][0] == pytest.approx(5.914)  # type: ignore[attr-defined]
    assert run.capital == 1e6 and run.costs == CostModel()  # type: ignore[attr-defined]


@needs_data
def test_interest_on_idle_cash_at_the_rate_that_prices() -> None:
    """Rev-Acc mapped to no symbol holds cash only: its equity grows by the rate alone (5% a year, ACT/365,
    from the first close to the last); Gen-Acc's puts are priced at the same rate."""
    spec = _spec(
        symbols={"gen": ("AMD",), "rev": (), "com": ()},
        costs=CostModel(rate=RateCurve.constant(0.05)),
        end=dt.date(2008, 1, 31),
    )
    run = run_backtest(spec)
    r = run.result
    assert r["costs"]["rate"] == 0.05
    days = (run.dates[-1] - run.dates[0]).days
    rev = r["accounts"]["backtest/rev-1"]
    assert rev["trades"] == 0 and rev["costs"]["commissions"] == 0
    assert rev["final_equity"] == pytest.approx(300_000 * (1 + 0.05 * days / 365), rel=2e-4)
    assert r["accounts"]["backtest/gen-1"]["costs"]["interest"] > 0
    # An explicitly empty account gets no warning; it was asked for.
    assert not any(w.startswith("rev:") for w in r["warnings"])


@needs_data
def test_default_layout_is_each_accounts_configured_symbols_found_in_the_data(tmp_path: Path) -> None:
    # Only AMD and BAC: AMD is a configured Gen-Acc symbol; Rev-Acc and Com-Acc find none of theirs.
    lines = STOCKS.read_text().splitlines()
    header = lines[0].split(",")
    keep = [0, header.index("AMD"), header.index("BAC")]
    wide = tmp_path / "two.csv"
    wide.write_text(
        "\n".join(",".join(row.split(",")[j] for j in keep) for row in [lines[0], *lines[4500:4700]]) + "\n"
    )
    first = lines[4500].split(",")[0]
    spec = BacktestSpec((Source(wide),), dt.date.fromisoformat(first), dt.date(2018, 1, 1), 1e6)
    r = run_backtest(spec).result
    assert r["symbols"] == {"gen": ["AMD"], "rev": [], "com": []}
    assert any(w.startswith("rev: none of its configured symbols (AAPL, AMZN, MSFT, GOOGL)") for w in r["warnings"])
    assert any(w.startswith("com: none of its configured symbols") for w in r["warnings"])


@needs_data
def test_prices_under_one_dollar_trade_on_the_strike_grid() -> None:
    """Split-adjusted AAPL closed at $0.31-0.40 in 1991: its options take the grid's $0.10 steps."""
    spec = _spec(start=dt.date(1991, 1, 1), end=dt.date(1991, 6, 30), symbols={"com": ("AAPL",), "rev": ("AAPL",)})
    run = run_backtest(spec)
    options = [t for t in run.trades if t.instrument in ("put", "call") and t.action == "SELL_TO_OPEN"]
    assert options, run.result["actions"]
    for t in options:
        assert t.strike is not None and t.strike < 1.0
        assert math.isclose(round(t.strike / 0.10) * 0.10, t.strike, abs_tol=1e-9)
    assert run.result["final_equity"] > 0


@needs_data
def test_a_symbol_missing_a_session_is_not_traded_that_day(tmp_path: Path) -> None:
    text = SP500.read_text().splitlines()
    body = [ln for ln in text[1:] if "2013-09-01" <= ln[:10] <= "2014-03-31" and ln[:10] != "2014-02-06"]
    path = tmp_path / "spx_gap.csv"
    path.write_text("\n".join([text[0], *body]) + "\n")
    run = run_backtest(BacktestSpec((Source(path),), dt.date(2014, 1, 1), dt.date(2014, 3, 31), 20e6))
    i = run.dates.index(dt.date(2014, 2, 6))  # the session is simulated (other symbols could trade) ...
    assert math.isnan(run.closes["SPX"][i])  # ... but SPX has no close that day: nothing filled in
    assert not any(t.date == dt.date(2014, 2, 6) and t.reason != "EXPIRY" for t in run.trades)
    notes = run.result["data"]["notes"]
    assert any("SPX: missing 1 NYSE session" in n for n in notes)
    assert any("SPX: not traded on 1 simulated session" in n for n in notes)


@needs_data
def test_same_spec_same_run() -> None:
    spec = _spec(end=dt.date(2008, 2, 15))
    a, b = run_backtest(spec), run_backtest(spec)
    assert json.dumps(a.result, sort_keys=True) == json.dumps(b.result, sort_keys=True)
    assert [t.row() for t in a.trades] == [t.row() for t in b.trades]


@needs_data
def test_a_symbol_mapped_to_no_data_is_named() -> None:
    with pytest.raises(InvalidInputError, match="--symbols rev: symbol TSLA has no data"):
        run_backtest(_spec(symbols={"rev": ("TSLA",)}))


@pytest.mark.parametrize(
    ("items", "needle"),
    [
        (["gen"], "'gen' is not TYPE=SYMBOL"),
        (["xyz=AAPL"], "unknown account type 'xyz'"),
        (["gen=AMD", "gen=BAC"], "account type gen is given twice"),
    ],
)
def test_bad_symbol_mappings_are_named(items: list[str], needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        parse_symbols(items)


@needs_data
def test_options_are_priced_at_the_interest_rate() -> None:
    """At 40% a year the rate moves a weekly option's price by cents: where the model prices at 40% and at 0%
    differ by more than two cents, each sale's mid is the one at the run's rate."""
    spec = _spec(end=dt.date(2008, 2, 29), costs=CostModel(rate=RateCurve.constant(0.4)))
    run = run_backtest(spec)
    compared = 0
    for t in run.trades:
        if t.action != "SELL_TO_OPEN" or t.strike is None or t.expiry is None:
            continue
        i = run.dates.index(t.date)
        spot, iv = float(run.closes[t.symbol][i]), float(run.vols[t.symbol][i])
        opt = Position("x", t.account, t.symbol, t.instrument, -1.0, t.date, t.strike, t.expiry)
        at_rate, at_zero = opt.mark(spot, iv, t.date, 0.4), opt.mark(spot, iv, t.date, 0.0)
        if abs(at_rate - at_zero) > 0.02:
            compared += 1
            assert abs(t.mid - at_rate) < abs(t.mid - at_zero), (t, at_rate, at_zero)
    assert compared >= 3
