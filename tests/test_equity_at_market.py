"""Equity at market from the core (PROTOCOL section 10): each account's cash plus its positions, and the
portfolio's cash and LEAPS plus the positions of accounts not merged away, the same sums as marking one position
after another in Python."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from allsuse.errors import InvalidInputError
from allsuse.protocol import Bars, Engine, MarketData, Portfolio, Position
from allsuse.protocol.accounts import AccountGroup

TODAY = dt.date(2024, 3, 7)


def _market() -> MarketData:
    days = tuple(TODAY - dt.timedelta(days=k) for k in range(3, -1, -1))
    bars = {}
    for symbol, close in (("AAA", 50.0), ("BBB", 80.0)):
        c = np.full(4, close)
        bars[symbol] = Bars(days, c, c, c, c, np.full(4, 1e6))
    return MarketData(bars=bars, iv={"AAA": 0.4, "BBB": 0.25}, rate=0.01)


def _portfolio() -> Portfolio:
    p = Portfolio.create("eq", 1_000_000, dt.datetime(2024, 1, 2, 9, 30))
    p.positions["a"] = Position("a", "eq/rev-1", "AAA", "put", -3.0, TODAY, 48.0, dt.date(2024, 3, 15), 1.0)
    p.positions["b"] = Position("b", "eq/com-1", "BBB", "stock", 200.0, TODAY, cost_basis=79.0)
    p.positions["c"] = Position("c", "eq/rev-1", "BBB", "call", -1.0, TODAY, 85.0, dt.date(2024, 3, 8), 0.5)
    p.positions["d"] = Position("d", "eq/gen-1", "AAA", "put", -2.0, TODAY, 45.0, dt.date(2024, 3, 1), 0.2)
    return p


def _by_hand(portfolio: Portfolio, market: MarketData, account_id: str | None) -> float:
    """The definition: cash, then each position's market value added in book order."""
    if account_id is None:
        total = 0.0
        for a in portfolio.accounts.values():
            if not portfolio.groups[a.group_id].merged:
                total += float(a.balance + a.leaps)
    else:
        total = float(portfolio.accounts[account_id].balance)
    for p in portfolio.positions.values():
        merged = portfolio.groups[portfolio.accounts[p.account_id].group_id].merged
        if (account_id is None and not merged) or p.account_id == account_id:
            s = p.symbol
            total += p.market_value(market.bars[s].last_close, market.iv[s], TODAY, market.rate)
    return total


def test_account_and_portfolio_equity_are_the_positions_marked_in_order() -> None:
    engine, market, portfolio = Engine(), _market(), _portfolio()
    accounts = [portfolio.accounts["eq/rev-1"], portfolio.accounts["eq/com-1"]]
    each, whole = engine.equities(portfolio, accounts, market, TODAY)
    assert each == [_by_hand(portfolio, market, "eq/rev-1"), _by_hand(portfolio, market, "eq/com-1")]
    assert whole == _by_hand(portfolio, market, None)
    assert engine.account_equity(portfolio, accounts[0], market, TODAY) == each[0]
    assert engine.portfolio_equity(portfolio, market, TODAY) == whole
    # An expired option (d) still prices with an hour left; a short option is a liability.
    assert each[0] < float(accounts[0].balance)


def test_a_merged_account_counts_for_itself_but_not_in_the_portfolio() -> None:
    engine, market, portfolio = Engine(), _market(), _portfolio()
    gen = portfolio.accounts["eq/gen-1"]
    portfolio.groups["side"] = AccountGroup("side", None, [gen.id], merged=True)
    gen.group_id = "side"
    (own,), whole = engine.equities(portfolio, [gen], market, TODAY)
    assert own == _by_hand(portfolio, market, "eq/gen-1")
    assert whole == _by_hand(portfolio, market, None)
    assert whole != engine.equities(_portfolio(), [], market, TODAY)[1]


def test_a_missing_iv_is_named() -> None:
    engine, portfolio = Engine(), _portfolio()
    market = MarketData(bars=_market().bars, iv={"AAA": 0.4})
    with pytest.raises(InvalidInputError, match="iv"):
        engine.portfolio_equity(portfolio, market, TODAY)
