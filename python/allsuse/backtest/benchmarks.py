"""The benchmarks a backtest runs on the same data, costs and rate as the protocol.

* `buy_and_hold`: equal weight across the traded symbols, rebalanced on each month's first session, whole shares,
  commission per share; idle cash earns interest.
* `put_write`: in the manner of the CBOE PUT index: on each underlying (an equal share of equity) an at-the-money
  put (the listed strike nearest the spot on the configured strike grid), fully cash-secured, sold at the cost
  model's fill against a Black-Scholes mid (the day's vol, the day's rate), held to the monthly expiry (the third
  Friday, or the session before it when that Friday is no NYSE session), settled there at its intrinsic value in
  cash and rolled into the next month's put. The PUT index's SPX options are cash-settled; stock options are
  settled the same way here (no shares change hands), so the benchmark stays a pure put-writing series. Put
  collateral and idle cash earn interest; commission per contract on each sale, none at expiry.

Each benchmark returns a `SeriesRun`: the daily closing equity, the trades (trades.csv rows), the cost totals and
the deployment (share of equity committed at each close).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from allsuse import pricing
from allsuse.backtest.costs import CostModel
from allsuse.backtest.run import SeriesRun, Trade
from allsuse.errors import InvalidInputError
from allsuse.orchestration.nyse import FIRST_YEAR, LAST_YEAR, NYSE
from allsuse.protocol import settings

BUY_AND_HOLD = "buy_and_hold"
PUT_WRITE = "put_write"
MULTIPLIER = 100.0
MAX_VOL = 5.0

Grid = Sequence[tuple[float, float]]


# --- input checks ---------------------------------------------------------------------------------------------


def _check_dates(dates: Sequence[dt.date]) -> None:
    if not isinstance(dates, Sequence) or len(dates) == 0:
        raise InvalidInputError.of("dates", "must be a non-empty list of dates")
    for i, day in enumerate(dates):
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise InvalidInputError.of("dates", f"position {i}: must be a date, got {day!r}")
        if i and day <= dates[i - 1]:
            raise InvalidInputError.of("dates", f"position {i}: {day} does not follow {dates[i - 1]}")


def _series(name: str, field: str, values: Mapping[str, np.ndarray], n: int, high: float) -> dict[str, np.ndarray]:
    """Per-symbol arrays of `n` finite values in (0, high], as float64; errors name `field.SYMBOL`."""
    if not isinstance(values, Mapping) or not values:
        raise InvalidInputError.of(field, f"must map each symbol to its daily {name}")
    out: dict[str, np.ndarray] = {}
    for symbol, raw in values.items():
        key = f"{field}.{symbol}"
        try:
            arr = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInputError.of(key, f"must be numbers, got {raw!r}") from None
        if arr.ndim != 1 or arr.size != n:
            raise InvalidInputError.of(key, f"has {arr.size} values for {n} dates")
        bad = ~np.isfinite(arr) | (arr <= 0) | (arr > high)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError.of(key, f"position {i}: {name} must be finite, > 0 and <= {high:g}, got {arr[i]}")
        out[symbol] = arr
    return out


def _check_capital(capital: float) -> float:
    if isinstance(capital, bool) or not isinstance(capital, int | float) or not math.isfinite(capital) or capital <= 0:
        raise InvalidInputError.of("capital", f"must be a finite amount > 0, got {capital!r}")
    return float(capital)


# --- the option calendar and the strike grid ------------------------------------------------------------------


@functools.cache
def _default_grid() -> tuple[tuple[float, float], ...]:
    return settings.strike_grid(settings.default().doc)


def nearest_strike(spot: float, grid: Grid | None = None) -> float:
    """The strike on the grid nearest `spot` (a tie goes to the lower strike, the out-of-the-money put).

    The grid is config/protocol.yaml's `strike_grid` tiers: the strikes around a spot are multiples of the step
    of the first tier whose bound is above it ($0.10 under $5, $0.50 under $25, $1 under $200, $5 above)."""
    tiers = _default_grid() if grid is None else grid
    step = next((s for below, s in tiers if spot < below), tiers[-1][1])
    lo = round(math.floor(spot / step + 1e-9) * step, 2)
    hi = round(lo + step, 2)
    if lo <= 0 or spot - lo > hi - spot + 1e-12:
        return hi
    return lo


def monthly_expiry(year: int, month: int, *, sessions: Sequence[dt.date] | None = None) -> dt.date:
    """The monthly options expiry: the third Friday, or the NYSE session before it when the exchange is closed
    that Friday (Good Friday). Outside the NYSE rules' years the `sessions` given (the data's) are the calendar."""
    first = dt.date(year, month, 1)
    day = first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)
    if FIRST_YEAR <= year <= LAST_YEAR:
        while not NYSE.is_trading_day(day):
            day -= dt.timedelta(days=1)
        return day
    if sessions:
        known = set(sessions)
        for back in range(7):
            if day - dt.timedelta(days=back) in known:
                return day - dt.timedelta(days=back)
    return day


def next_expiry(day: dt.date, sessions: Sequence[dt.date] | None = None) -> dt.date:
    """The first monthly expiry after `day`."""
    expiry = monthly_expiry(day.year, day.month, sessions=sessions)
    if expiry > day:
        return expiry
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return monthly_expiry(year, month, sessions=sessions)


# --- buy and hold ---------------------------------------------------------------------------------------------


def buy_and_hold(
    dates: Sequence[dt.date], closes: Mapping[str, np.ndarray], capital: float, costs: CostModel
) -> SeriesRun:
    """Equal weight across `closes`' symbols, rebalanced at the close of each month's first session.

    At a rebalance each symbol's target is floor(equity / n / (price + commission per share)) whole shares, so the
    orders and their commissions fit in the equity; sales are placed before purchases. Cash earns interest
    (CostModel.interest, close to close). Every order is a Trade with reason REBALANCE; a sale realises its P&L
    against the average cost of the shares held."""
    _check_dates(dates)
    prices = _series("price", "closes", closes, len(dates), math.inf)
    capital = _check_capital(capital)
    symbols = list(prices)
    held = dict.fromkeys(symbols, 0)
    basis = dict.fromkeys(symbols, 0.0)
    cash = capital
    run = SeriesRun(BUY_AND_HOLD, np.empty(len(dates)), deployment=np.empty(len(dates)))
    assert run.deployment is not None
    # The prices as Python floats (float(prices[s][i]) each), read a day at a time.
    daily = list(zip(*(prices[s].tolist() for s in symbols), strict=True))
    for i, day in enumerate(dates):
        if i:
            earned = costs.interest(cash, dates[i - 1], day)
            cash += earned
            run.interest += earned
        today = daily[i]
        if i == 0 or day.month != dates[i - 1].month or day.year != dates[i - 1].year:
            cash = _rebalance(run, day, dict(zip(symbols, today, strict=True)), held, basis, cash, costs)
        invested = sum(held[s] * p for s, p in zip(symbols, today, strict=True))
        run.equity[i] = cash + invested
        run.deployment[i] = invested / run.equity[i] if run.equity[i] > 0 else 0.0
    return run


def _rebalance(
    run: SeriesRun,
    day: dt.date,
    price: dict[str, float],
    held: dict[str, int],
    basis: dict[str, float],
    cash: float,
    costs: CostModel,
) -> float:
    """Trades `held` to equal weight at `price`; returns the cash left."""
    per_share = costs.commission_per_share
    equity = cash + sum(held[s] * p for s, p in price.items())
    budget = equity / len(price)
    delta = {s: math.floor(budget / (p + per_share)) - held[s] for s, p in price.items()}

    def cash_after() -> float:
        return cash - sum(d * price[s] + costs.share_commission(d) for s, d in delta.items())

    # A sale's commission can leave the purchases a few cents short: buy fewer shares of the largest order.
    while cash_after() < 0 and any(d > 0 for d in delta.values()):
        largest = max((s for s, d in delta.items() if d > 0), key=lambda s: delta[s] * price[s])
        delta[largest] -= 1
    for selling in (True, False):
        for s, d in delta.items():
            if d == 0 or (d < 0) != selling:
                continue
            commission = costs.share_commission(d)
            realised = 0.0
            if d < 0:
                realised = (price[s] - basis[s]) * -d
            else:
                basis[s] = (basis[s] * held[s] + price[s] * d) / (held[s] + d)
            held[s] += d
            cash -= d * price[s] + commission
            run.commissions += commission
            run.trades.append(
                Trade(
                    date=day,
                    account=run.name,
                    symbol=s,
                    action="SELL" if d < 0 else "BUY",
                    instrument="stock",
                    strike=None,
                    expiry=None,
                    contracts=0,
                    shares=float(d),
                    price=price[s],
                    mid=price[s],
                    commission=commission,
                    spread_cost=0.0,
                    realised_pnl=realised,
                    reason="REBALANCE",
                )
            )
    return cash


# --- put-write ------------------------------------------------------------------------------------------------


class _Short:
    """One open short put of the benchmark."""

    __slots__ = ("contracts", "expiry", "fill", "strike", "symbol")

    def __init__(self, symbol: str, strike: float, expiry: dt.date, contracts: int, fill: float) -> None:
        self.symbol = symbol
        self.strike = strike
        self.expiry = expiry
        self.contracts = contracts
        self.fill = fill


def put_write(
    dates: Sequence[dt.date],
    closes: Mapping[str, np.ndarray],
    vols: Mapping[str, np.ndarray],
    capital: float,
    costs: CostModel,
    *,
    cash_settled: set[str] | frozenset[str],
    grid: Grid | None = None,
) -> SeriesRun:
    """CBOE PUT-style put-writing on every symbol of `closes` (module docstring), priced at `vols` (annual IV per
    symbol per day, the protocol's) and the cost model's rate of the day.

    At each roll (the first session, then each expiry's close after settling) the equity is split equally across
    the underlyings; each sells floor(share / (strike x 100)) puts, the collateral set aside in cash. A put whose
    fill does not cover its commission, or whose collateral exceeds the share, is not sold (a warning says how
    often). At expiry a put is settled at max(strike - close, 0): reason EXPIRED when worthless, CASH_SETTLED for
    the symbols in `cash_settled` (index options), ASSIGNED for stock options (settled in cash all the same).
    Daily equity = cash + collateral - the short puts at Black-Scholes (the day's vol and rate)."""
    _check_dates(dates)
    prices = _series("price", "closes", closes, len(dates), math.inf)
    iv = _series("vol", "vols", vols, len(dates), MAX_VOL)
    if set(iv) != set(prices):
        missing = sorted(set(prices) ^ set(iv))
        raise InvalidInputError.of("vols", f"must hold exactly the symbols of closes; differs on {', '.join(missing)}")
    capital = _check_capital(capital)
    if not isinstance(cash_settled, set | frozenset) or not all(isinstance(s, str) for s in cash_settled):
        raise InvalidInputError.of("cash_settled", f"must be a set of symbols, got {cash_settled!r}")
    symbols = list(prices)
    n_days = len(dates)
    rates = np.array([costs.rate.on(day) for day in dates])
    ordinals = np.array([day.toordinal() for day in dates], dtype=np.float64)
    cash_at = np.empty(n_days)
    collateral_at = np.empty(n_days)
    cash = capital
    collateral = 0.0
    shorts: list[_Short] = []
    # Each put sold, with the sessions it is open at the close: [sold, settled) (to the end if never settled).
    lives: list[tuple[_Short, int, int]] = []
    expiry: dt.date | None = None
    sold_at = 0
    skipped: dict[tuple[str, str], int] = {}
    rolls = 0
    run = SeriesRun(PUT_WRITE, np.empty(n_days), deployment=np.empty(n_days))
    for i, day in enumerate(dates):
        if i:
            earned = costs.interest(cash + collateral, dates[i - 1], day)
            cash += earned
            run.interest += earned
        if expiry is not None and day >= expiry:
            for short in shorts:
                cash += _settle(run, day, short, float(prices[short.symbol][i]), short.symbol in cash_settled)
                lives.append((short, sold_at, i))
            shorts, collateral, expiry = [], 0.0, None
        if expiry is None:
            rolls += 1
            sold_at = i
            expiry = next_expiry(day, dates)
            t = (expiry - day).days / 365.0
            budget = cash / len(symbols)
            for s in symbols:
                spot = float(prices[s][i])
                strike = nearest_strike(spot, grid)
                contracts = math.floor(budget / (strike * MULTIPLIER))
                if contracts <= 0:
                    why = "one contract's collateral is more than its share of equity"
                    skipped[(s, why)] = skipped.get((s, why), 0) + 1
                    continue
                mid = pricing.bs_price("put", spot, strike, t, float(iv[s][i]), float(rates[i]))
                fill = costs.option_fill(mid, selling=True)
                if fill * MULTIPLIER <= costs.commission_per_contract:
                    why = "the premium after the spread does not cover the commission"
                    skipped[(s, why)] = skipped.get((s, why), 0) + 1
                    continue
                commission = costs.option_commission(contracts)
                secured = strike * MULTIPLIER * contracts
                cash += fill * MULTIPLIER * contracts - commission - secured
                collateral += secured
                run.commissions += commission
                run.spread_costs += (mid - fill) * MULTIPLIER * contracts
                shorts.append(_Short(s, strike, expiry, contracts, fill))
                run.trades.append(
                    Trade(
                        date=day,
                        account=run.name,
                        symbol=s,
                        action="SELL",
                        instrument="put",
                        strike=strike,
                        expiry=expiry,
                        contracts=-contracts,
                        shares=0.0,
                        price=fill,
                        mid=mid,
                        commission=commission,
                        spread_cost=(mid - fill) * MULTIPLIER * contracts,
                        realised_pnl=0.0,
                        reason="ROLL",
                    )
                )
        cash_at[i] = cash
        collateral_at[i] = collateral
    lives += [(short, sold_at, n_days) for short in shorts]
    # The short puts at each close: every put over the sessions it is open, priced in one batch (Black-Scholes in
    # the core, each option from its own inputs alone, so as if priced put by put), then added up put by put in the
    # order they were sold.
    liability = np.zeros(n_days)
    if lives:
        shorts_at = [(short, slice(first, end)) for short, first, end in lives]
        marks = np.asarray(
            pricing.bs_price(
                "put",
                np.concatenate([prices[short.symbol][span] for short, span in shorts_at]),
                np.concatenate([np.full(span.stop - span.start, short.strike) for short, span in shorts_at]),
                np.concatenate([(short.expiry.toordinal() - ordinals[span]) / 365.0 for short, span in shorts_at]),
                np.concatenate([iv[short.symbol][span] for short, span in shorts_at]),
                np.concatenate([rates[span] for _, span in shorts_at]),
            )
        )
        at = 0
        for short, span in shorts_at:
            size = span.stop - span.start
            liability[span] += short.contracts * MULTIPLIER * marks[at : at + size]
            at += size
    run.equity = cash_at + collateral_at - liability
    run.deployment = np.divide(collateral_at, run.equity, out=np.zeros(n_days), where=run.equity > 0)
    run.warnings = [f"{PUT_WRITE}: {s}: no put sold at {n} of {rolls} rolls ({why})" for (s, why), n in skipped.items()]
    return run


def _settle(run: SeriesRun, day: dt.date, short: _Short, spot: float, cash_settled: bool) -> float:
    """Settles an expiring put at its intrinsic value in cash; returns the cash it frees (collateral - payout)."""
    intrinsic = max(short.strike - spot, 0.0)
    n = short.contracts
    reason = "EXPIRED" if intrinsic == 0.0 else "CASH_SETTLED" if cash_settled else "ASSIGNED"
    run.trades.append(
        Trade(
            date=day,
            account=run.name,
            symbol=short.symbol,
            action="SETTLE",
            instrument="put",
            strike=short.strike,
            expiry=short.expiry,
            contracts=n,
            shares=0.0,
            price=intrinsic,
            mid=intrinsic,
            commission=0.0,
            spread_cost=0.0,
            realised_pnl=(short.fill - intrinsic) * MULTIPLIER * n,
            reason=reason,
        )
    )
    return (short.strike - intrinsic) * MULTIPLIER * n


__all__ = [
    "BUY_AND_HOLD",
    "PUT_WRITE",
    "buy_and_hold",
    "monthly_expiry",
    "nearest_strike",
    "next_expiry",
    "put_write",
]
