"""The benchmarks run next to the protocol: buy-and-hold (equal weight, monthly rebalance, whole shares) and a
CBOE PUT-style put-write (at-the-money, fully cash-secured, rolled at each monthly expiry, cash-settled).

Checked against hand computations, QuantLib for the option prices used, and properties on real closes."""

from __future__ import annotations

import csv
import datetime as dt
import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  (the conventional name)

from allsuse import indicators
from allsuse.backtest.benchmarks import (
    BUY_AND_HOLD,
    PUT_WRITE,
    buy_and_hold,
    monthly_expiry,
    nearest_strike,
    put_write,
)
from allsuse.backtest.costs import CostModel, RateCurve
from allsuse.errors import InvalidInputError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stocks20_close_1990_2014.csv"
D = dt.date


def free(rate: float = 0.0) -> CostModel:
    """No commissions, no spread (the one-tick floor stays), a constant rate."""
    return CostModel(commission_per_contract=0.0, commission_per_share=0.0, spread=0.0, rate=RateCurve.constant(rate))


@cache
def wide(first: dt.date, last: dt.date) -> tuple[list[dt.date], dict[str, np.ndarray]]:
    """The real closes of ../shared/data's 20 stocks between two dates."""
    with DATA.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    days: list[dt.date] = []
    values: list[list[float]] = []
    for row in rows[1:]:
        day = dt.date.fromisoformat(row[0])
        if first <= day <= last:
            days.append(day)
            values.append([float(x) for x in row[1:]])
    arr = np.asarray(values)
    return days, {name: arr[:, j].copy() for j, name in enumerate(header[1:])}


def real(symbols: tuple[str, ...], first: dt.date, last: dt.date) -> tuple[list[dt.date], dict[str, np.ndarray]]:
    days, closes = wide(first, last)
    return days, {s: closes[s] for s in symbols}


def proxy_vols(symbols: tuple[str, ...], first: dt.date, last: dt.date) -> dict[str, np.ndarray]:
    """The protocol's VIX proxy (20-day realised vol x 1.2), computed with 60 sessions of history before `first`."""
    days, closes = wide(first - dt.timedelta(days=100), last)
    start = next(i for i, d in enumerate(days) if d >= first)
    return {s: indicators.hist_vol(closes[s], 20)[start:] * 1.2 for s in symbols}


def ql_put(spot: float, strike: float, days: int, vol: float, rate: float) -> float:
    """QuantLib's AnalyticEuropeanEngine on flat Actual365Fixed curves (t = days / 365 exactly)."""
    today = ql.Date(15, ql.January, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, rate, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, dc)),
    )
    option = ql.EuropeanOption(ql.PlainVanillaPayoff(ql.Option.Put, strike), ql.EuropeanExercise(today + days))
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return float(option.NPV())


# --- the expiry calendar and the strike grid -------------------------------------------------------------------


def test_monthly_expiry_is_the_third_friday_or_the_session_before() -> None:
    assert monthly_expiry(2014, 1) == D(2014, 1, 17)
    assert monthly_expiry(2014, 3) == D(2014, 3, 21)
    # April 18 2014, the third Friday, was Good Friday: the options expired on the Thursday.
    assert monthly_expiry(2014, 4) == D(2014, 4, 17)
    # Before the NYSE rules' first year the data's own sessions are the calendar.
    sessions = [D(1992, 4, 16), D(1992, 4, 20)]  # no session on Friday April 17 1992 (Good Friday)
    assert monthly_expiry(1992, 4, sessions=sessions) == D(1992, 4, 16)


@pytest.mark.parametrize(
    ("spot", "strike"),
    [(0.263, 0.3), (4.97, 5.0), (5.2, 5.0), (27.3, 27.0), (26.5, 26.0), (212.4, 210.0), (1999.0, 2000.0)],
)
def test_at_the_money_strike_is_the_nearest_on_the_v2_grid(spot: float, strike: float) -> None:
    # Grid (config/protocol.yaml strike_grid): $0.10 under $5, $0.50 under $25, $1 under $200, $5 above; a tie
    # goes to the lower strike (the out-of-the-money side of a put).
    assert nearest_strike(spot) == pytest.approx(strike)


# --- buy and hold ---------------------------------------------------------------------------------------------


def test_buy_and_hold_hand_checked_three_months() -> None:
    """One symbol, $0.01 a share, 3.65% a year (0.0001 a calendar day), whole shares, rebalanced on each month's
    first session; every figure below was worked out by hand."""
    days = [D(2014, 1, 30), D(2014, 1, 31), D(2014, 2, 3), D(2014, 2, 4), D(2014, 3, 3)]
    prices = np.array([10.0, 11.0, 12.0, 9.0, 8.0])
    costs = CostModel(commission_per_share=0.01, rate=RateCurve.constant(0.0365))
    run = buy_and_hold(days, {"XYZ": prices}, 1000.0, costs)
    # Day 0: floor(1000 / 10.01) = 99 shares for 990 + 0.99 commission, 9.01 left.
    # Day 1 (1 day): cash 9.01 x 1.0001; Day 2, Feb 3 (3 days): no trade (floor(1197.0136 / 12.01) = 99);
    # Day 3 (1 day); Day 4, Mar 3 (27 days): floor(801.0388 / 8.01) = 100, one more share for 8 + 0.01.
    c1 = 9.01 + 9.01 * 0.0001
    c2 = c1 + c1 * 0.0003
    c3 = c2 + c2 * 0.0001
    c4 = c3 + c3 * 0.0027 - 8.01
    expected = [9.01 + 990, c1 + 99 * 11, c2 + 99 * 12, c3 + 99 * 9, c4 + 100 * 8]
    np.testing.assert_allclose(run.equity, expected, rtol=0, atol=1e-9)
    assert run.name == BUY_AND_HOLD
    assert [(t.date, t.action, t.shares, t.commission, t.reason) for t in run.trades] == [
        (D(2014, 1, 30), "BUY", 99, pytest.approx(0.99), "REBALANCE"),
        (D(2014, 3, 3), "BUY", 1, pytest.approx(0.01), "REBALANCE"),
    ]
    assert run.commissions == pytest.approx(1.0)
    assert run.interest == pytest.approx(c3 * 1.0027 - 9.01)
    assert run.spread_costs == 0.0


def test_buy_and_hold_without_costs_is_shares_times_price_plus_the_leftover_cash() -> None:
    days, closes = real(("AAPL",), D(2013, 1, 1), D(2014, 12, 31))
    run = buy_and_hold(days, closes, 100_000.0, free())
    price = closes["AAPL"]
    shares = np.zeros(len(days))
    held = 0.0
    trades = iter(run.trades)
    pending = next(trades, None)
    for i, day in enumerate(days):
        while pending is not None and pending.date == day:
            held += pending.shares
            pending = next(trades, None)
        shares[i] = held
    assert shares[0] == math.floor(100_000.0 / price[0])
    cash = run.equity - shares * price
    assert np.all(cash >= -1e-9) and np.all(cash < price)
    # Between trades the equity moves by exactly the held shares times the price change.
    same = np.diff(shares) == 0
    np.testing.assert_allclose(np.diff(run.equity)[same], (shares[1:] * np.diff(price))[same], rtol=0, atol=1e-8)
    changed = np.flatnonzero(np.diff(shares)) + 1
    # Shares only change on a month's first session.
    assert all(days[i].month != days[i - 1].month for i in changed)
    assert run.equity[0] == pytest.approx(100_000.0, abs=1e-9)


def test_buy_and_hold_rebalances_to_equal_weight_each_month() -> None:
    symbols = ("AAPL", "JNJ", "XOM", "AMD")
    days, closes = real(symbols, D(2012, 1, 1), D(2013, 12, 31))
    costs = CostModel()
    run = buy_and_hold(days, closes, 1_000_000.0, costs)
    held = dict.fromkeys(symbols, 0.0)
    by_day: dict[dt.date, list[object]] = {}
    for t in run.trades:
        by_day.setdefault(t.date, []).append(t)
        held[t.symbol] += t.shares
        assert t.reason == "REBALANCE" and t.instrument == "stock" and t.account == BUY_AND_HOLD
        assert t.commission == pytest.approx(costs.share_commission(t.shares))
    first_sessions = [d for i, d in enumerate(days) if i == 0 or d.month != days[i - 1].month]
    assert set(by_day) <= set(first_sessions) and len(by_day) >= len(first_sessions) - 1
    # After the last rebalance each symbol holds a quarter of the equity, to within one share.
    last = max(by_day)
    i = days.index(last)
    replay = dict.fromkeys(symbols, 0.0)
    for t in run.trades:
        replay[t.symbol] += t.shares
    for s in symbols:
        weight = replay[s] * closes[s][i] / run.equity[i]
        assert abs(weight - 0.25) <= closes[s][i] / run.equity[i] + 1e-3
    assert run.commissions == pytest.approx(sum(t.commission for t in run.trades))
    assert run.interest > 0


# --- put-write ------------------------------------------------------------------------------------------------


def test_put_write_sells_at_the_model_fill_checked_against_quantlib() -> None:
    symbols = ("MSFT",)
    first, last = D(2014, 1, 2), D(2014, 3, 31)
    days, closes = real(symbols, first, last)
    vols = proxy_vols(symbols, first, last)
    costs = CostModel(rate=RateCurve.constant(0.02))
    run = put_write(days, closes, vols, 100_000.0, costs, cash_settled=set())
    assert run.name == PUT_WRITE
    sales = [t for t in run.trades if t.action == "SELL"]
    # Day 0 and the Jan 17, Feb 21 and Mar 21 2014 expiries.
    assert [t.date for t in sales] == [D(2014, 1, 2), D(2014, 1, 17), D(2014, 2, 21), D(2014, 3, 21)]
    for t in sales:
        i = days.index(t.date)
        spot = float(closes["MSFT"][i])
        assert t.strike == nearest_strike(spot)
        assert t.expiry is not None and t.expiry > t.date
        mid = ql_put(spot, t.strike, (t.expiry - t.date).days, float(vols["MSFT"][i]), 0.02)
        assert t.mid == pytest.approx(mid, rel=1e-9, abs=1e-12)
        assert t.price == pytest.approx(costs.option_fill(mid, selling=True), rel=1e-9)
        # Fully cash-secured on the equity just before the sale: the close's equity without the sale's costs (the
        # put is marked at the mid it was sold against).
        before = run.equity[i] + t.spread_cost + t.commission
        assert t.contracts == -math.floor(before / (t.strike * 100))
        assert t.commission == pytest.approx(0.65 * -t.contracts)
        assert t.spread_cost == pytest.approx((t.mid - t.price) * 100 * -t.contracts)
        assert t.reason == "ROLL" and t.instrument == "put"


def test_put_write_hand_checked_equity_path_over_one_expiry() -> None:
    """One symbol, a synthetic path across the Feb 21 2014 expiry, 3.65% a year, $1 a contract."""
    days = [D(2014, 2, 18), D(2014, 2, 19), D(2014, 2, 21), D(2014, 2, 24)]
    prices = np.array([50.2, 49.0, 47.4, 48.0])
    vol = np.array([0.3, 0.35, 0.4, 0.3])
    costs = CostModel(commission_per_contract=1.0, spread=0.05, rate=RateCurve.constant(0.0365))
    run = put_write(days, {"XYZ": prices}, {"XYZ": vol}, 20_000.0, costs, cash_settled=set())
    # Day 0: strike 50, 3 days to Feb 21, floor(20000 / 5000) = 4 contracts.
    mid0 = ql_put(50.2, 50.0, 3, 0.3, 0.0365)
    fill0 = mid0 - max(0.05 * mid0, 0.01) / 2
    cash0 = 20_000.0 - 20_000.0 + fill0 * 400 - 4.0
    assert run.equity[0] == pytest.approx(cash0 + 20_000.0 - 400 * mid0, abs=1e-9)
    # Day 1: one day's interest on cash and collateral; the put marked at 2 days.
    cash1 = cash0 + (cash0 + 20_000.0) * 0.0001
    assert run.equity[1] == pytest.approx(cash1 + 20_000.0 - 400 * ql_put(49.0, 50.0, 2, 0.35, 0.0365), abs=1e-9)
    # Day 2, the expiry: two days' interest, settled at intrinsic (50 - 47.4) in cash, then the March put sold
    # (strike 47 on the $1 grid, expiring Mar 21, 28 days) on floor(equity / 4700) contracts.
    cash2 = cash1 + (cash1 + 20_000.0) * 0.0002 - 2.6 * 400
    settle = [t for t in run.trades if t.action == "SETTLE"]
    assert len(settle) == 1 and settle[0].date == D(2014, 2, 21) and settle[0].price == pytest.approx(2.6)
    assert settle[0].realised_pnl == pytest.approx((fill0 - 2.6) * 400)
    assert settle[0].reason == "ASSIGNED" and settle[0].shares == 0 and settle[0].commission == 0.0
    n = math.floor((cash2 + 20_000.0) / 4700.0)
    mid2 = ql_put(47.4, 47.0, 28, 0.4, 0.0365)
    fill2 = mid2 - max(0.05 * mid2, 0.01) / 2
    cash2b = cash2 + 20_000.0 - n * 4700.0 + fill2 * 100 * n - n * 1.0
    assert run.equity[2] == pytest.approx(cash2b + n * 4700.0 - 100 * n * mid2, abs=1e-9)
    cash3 = cash2b + (cash2b + n * 4700.0) * 0.0003
    assert run.equity[3] == pytest.approx(cash3 + n * 4700.0 - 100 * n * ql_put(48.0, 47.0, 25, 0.3, 0.0365), abs=1e-9)
    assert run.commissions == pytest.approx(4.0 + n)
    assert run.interest == pytest.approx(cash1 - cash0 + (cash1 + 20_000.0) * 0.0002 + cash3 - cash2b)


def test_put_write_cash_settles_index_options_and_labels_stock_ones_as_assigned() -> None:
    days = [D(2014, 2, 18), D(2014, 2, 21)]
    closes = {"SPX": np.array([1800.0, 1700.0]), "XYZ": np.array([50.0, 60.0])}
    vols = {"SPX": np.array([0.2, 0.2]), "XYZ": np.array([0.3, 0.3])}
    run = put_write(days, closes, vols, 1_000_000.0, CostModel(), cash_settled={"SPX"})
    settled = {t.symbol: t for t in run.trades if t.action == "SETTLE"}
    assert settled["SPX"].reason == "CASH_SETTLED" and settled["SPX"].price == pytest.approx(100.0)
    assert settled["XYZ"].reason == "EXPIRED" and settled["XYZ"].price == 0.0


def test_put_write_on_real_stocks_rolls_every_month_and_stays_secured() -> None:
    symbols = ("AAPL", "AMD", "JPM", "PG")
    first, last = D(2012, 1, 3), D(2013, 12, 31)
    days, closes = real(symbols, first, last)
    vols = proxy_vols(symbols, first, last)
    run = put_write(days, closes, vols, 1_000_000.0, CostModel(), cash_settled=set())
    assert np.all(np.isfinite(run.equity)) and np.all(run.equity > 0)
    sales = [t for t in run.trades if t.action == "SELL"]
    settlements = [t for t in run.trades if t.action == "SETTLE"]
    expiries = sorted({t.expiry for t in sales if t.expiry is not None})
    assert len(expiries) == 25 and all(e.weekday() == 4 for e in expiries)  # Jan 2012 .. Jan 2014
    # Every put but the last month's is settled on its expiry, at its intrinsic value.
    assert len(settlements) == len(sales) - len(symbols)
    for t in settlements:
        i = days.index(t.date)
        assert t.date == t.expiry
        assert t.price == pytest.approx(max((t.strike or 0.0) - float(closes[t.symbol][i]), 0.0))
    # Fully cash-secured: each roll's collateral fits in the equity before it (the close's without the sales' costs),
    # each underlying in its equal share.
    for day in {t.date for t in sales}:
        i = days.index(day)
        today = [t for t in sales if t.date == day]
        before = run.equity[i] + sum(t.spread_cost + t.commission for t in today)
        for t in today:
            assert (t.strike or 0.0) * 100 * -t.contracts <= before / len(symbols) + 1e-6
    assert run.commissions == pytest.approx(sum(t.commission for t in run.trades))
    assert run.spread_costs == pytest.approx(sum(t.spread_cost for t in run.trades))
    assert run.interest > 0
    assert run.deployment is not None and 0.5 < float(np.mean(run.deployment)) <= 1.0


# --- bad input ------------------------------------------------------------------------------------------------


def _ok() -> tuple[list[dt.date], dict[str, np.ndarray], dict[str, np.ndarray]]:
    days = [D(2014, 1, 2), D(2014, 1, 3)]
    return days, {"A": np.array([10.0, 11.0])}, {"A": np.array([0.2, 0.2])}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda a: a.update(dates=[]), "dates"),
        (lambda a: a.update(dates=[D(2014, 1, 3), D(2014, 1, 2)]), "dates"),
        (lambda a: a.update(closes={}), "closes"),
        (lambda a: a.update(closes={"A": np.array([10.0])}), "closes.A"),
        (lambda a: a.update(closes={"A": np.array([10.0, math.nan])}), "closes.A"),
        (lambda a: a.update(closes={"A": np.array([10.0, -1.0])}), "closes.A"),
        (lambda a: a.update(capital=0.0), "capital"),
        (lambda a: a.update(capital=math.inf), "capital"),
    ],
)
def test_bad_input_names_the_field(change: object, field: str) -> None:
    days, closes, _ = _ok()
    args: dict[str, object] = {"dates": days, "closes": closes, "capital": 1000.0}
    change(args)  # type: ignore[operator]
    with pytest.raises(InvalidInputError) as err:
        buy_and_hold(args["dates"], args["closes"], args["capital"], CostModel())  # type: ignore[arg-type]
    assert err.value.field == field
    with pytest.raises(InvalidInputError) as err:
        put_write(
            args["dates"],  # type: ignore[arg-type]
            args["closes"],  # type: ignore[arg-type]
            {k: np.full(len(v), 0.2) for k, v in args["closes"].items()},  # type: ignore[attr-defined]
            args["capital"],  # type: ignore[arg-type]
            CostModel(),
            cash_settled=set(),
        )
    assert err.value.field == field


@pytest.mark.parametrize(
    ("vols", "field"),
    [
        ({}, "vols"),
        ({"A": np.array([0.2])}, "vols.A"),
        ({"A": np.array([0.2, math.nan])}, "vols.A"),
        ({"A": np.array([0.2, 0.0])}, "vols.A"),
    ],
)
def test_bad_vols_name_the_field(vols: dict[str, np.ndarray], field: str) -> None:
    days, closes, _ = _ok()
    with pytest.raises(InvalidInputError) as err:
        put_write(days, closes, vols, 1000.0, CostModel(), cash_settled=set())
    assert err.value.field == field
