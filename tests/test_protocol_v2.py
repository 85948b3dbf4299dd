"""Protocol v2 in the engine (PROTOCOL sections 3, 5, 6, 8, 10): sizing to the deployment target, plain warnings,
settlement and expiry, the order of management actions, rolls valued like any order, covered-call weeks,
tail-dependent groups, Monte Carlo scenarios, decisions as proposals, slicing and the VIX proxy. Each test names
the defect of today's v1 engine it guards against."""

from __future__ import annotations

import copy
import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest

from allsuse.errors import InvalidInputError
from allsuse.protocol import Bars, Engine, MarketData, Portfolio, Position, settings
from tests.market_support import (
    IV_GREEN,
    MONDAY,
    THURSDAY,
    WEDNESDAY,
    at,
    chop,
    green,
    make_bars,
    market,
    trend,
)

FRIDAY = dt.date(2024, 3, 8)


@pytest.fixture
def portfolio() -> Portfolio:
    return Portfolio.create("p1", 1_000_000, at(MONDAY) - dt.timedelta(days=30))


def _config(**changes: object) -> settings.ProtocolConfig:
    """The default protocol with some keys changed ("a.b.c": value)."""
    data = copy.deepcopy(settings.default().doc._data)
    for path, value in changes.items():
        node = data
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return settings.parse(data)


# --- item 1: sizing to the deployment target ------------------------------------------------------------------
def test_gen_acc_sizes_to_its_deployment_target_over_four_symbols(portfolio: Portfolio) -> None:
    """v1 sized 12.5% of equity per position; v2 sizes t = 90% / 4 symbols = 22.5% of equity x m_label."""
    engine = Engine()
    m = market(green(THURSDAY), IV_GREEN)
    d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), m)
    assert d.action == "OPEN_PUT", d.explanation
    assert d.order is not None
    equity = 400_000.0
    # The bars sit in the low ATR regime (size x1.1): budget = min(22.5% x 400,000 x 1.1, R07's 25% x 400,000).
    assert "t 22.5%" in d.explanation and "ATR 1.1" in d.explanation, d.explanation
    budget = min(0.9 / 4 * equity * 1.1, 0.25 * equity)
    assert d.order.contracts == math.floor(budget / (d.order.strike * 100)), d.explanation
    assert d.order.contracts > math.floor(0.125 * equity / (d.order.strike * 100))  # more than v1's 12.5%


def test_chop_rev_acc_uses_its_label_multiplier(portfolio: Portfolio) -> None:
    """m_label replaces the per-position percentage: Rev-Acc in Chop sizes 0.55 of the per-symbol target."""
    wed = WEDNESDAY
    d = Engine().decide(portfolio, "p1/rev-1", "AAPL", at(wed), market(chop(wed), 0.30, symbol="AAPL"))
    assert d.label == "chop"
    assert "label 0.55" in d.explanation, d.explanation


def test_warning_instead_of_silent_no_trade_when_one_contract_is_unaffordable() -> None:
    """v1 answered NO_TRADE in silence when a $100,000 portfolio could not afford one contract."""
    small = Portfolio.create("p1", 100_000, at(MONDAY) - dt.timedelta(days=30))
    bars = make_bars(THURSDAY, trend(300, 1500.0, 0.002, 0.002))
    d = Engine().decide(small, "p1/gen-1", "SPX", at(THURSDAY), market(bars, 0.18, symbol="SPX"))
    assert d.action == "NO_TRADE"
    assert d.warnings, d.explanation
    w = d.warnings[0]
    assert w.startswith("p1/gen-1: one SPX put needs $") and "deployable $38,000" in w, w
    assert w in d.explanation


# --- item 3: settlement and expiry ---------------------------------------------------------------------------
def test_entries_expire_on_the_weeks_last_trading_day_not_on_good_friday() -> None:
    """v1 gave entries in Good Friday's week an expiry on the holiday itself."""
    from allsuse.protocol.market import weekly_expiry

    assert weekly_expiry(dt.date(2024, 3, 25)) == dt.date(2024, 3, 28)  # Good Friday 2024-03-29
    assert weekly_expiry(dt.date(2024, 3, 4)) == dt.date(2024, 3, 8)
    assert weekly_expiry(dt.date(2024, 3, 8)) == dt.date(2024, 3, 15)  # from the expiry day on: next week


def test_index_option_in_the_money_at_expiry_is_cash_settled(portfolio: Portfolio) -> None:
    bars = make_bars(FRIDAY, trend(300, 4000.0, 0.0005, 0.002))
    spot = bars.last_close
    pos = Position("pos-1", "p1/gen-1", "SPX", "put", -1.0, MONDAY, round(spot + 20), FRIDAY, 30.0, iv=0.2)
    portfolio.positions[pos.id] = pos
    d = Engine().decide(portfolio, "p1/gen-1", "SPX", at(FRIDAY), market(bars, 0.2, symbol="SPX"))
    assert d.action == "ACCEPT_ASSIGNMENT", d.explanation
    assert "cash-settled" in d.explanation and "no units change hands" in d.explanation


def test_level_3_close_sells_the_shares_of_an_assigned_position(portfolio: Portfolio) -> None:
    """v1 bought back the call and left the assigned shares open."""
    bars = green(WEDNESDAY)
    spot = bars.last_close
    portfolio.positions["s"] = Position("s", "p1/gen-1", "NVDA", "stock", 200.0, MONDAY, cost_basis=spot * 1.08)
    portfolio.positions["c"] = Position(
        "c", "p1/gen-1", "NVDA", "call", -2.0, MONDAY, round(spot * 1.1), FRIDAY, 0.5, iv=0.3
    )
    d = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(bars, IV_GREEN))
    assert d.protocol_level == 3, d.explanation
    assert d.action == "CLOSE"
    kinds = [(o.kind, o.side, o.contracts) for o in d.orders]
    assert ("call", "buy_to_close", 2) in kinds and ("stock", "sell_to_close", 200) in kinds, kinds


# --- item 5: what the audit found ------------------------------------------------------------------------------
def test_orders_over_50_contracts_are_sliced_before_the_rules() -> None:
    big = Portfolio.create("p1", 20_000_000, at(MONDAY) - dt.timedelta(days=30))
    bars = make_bars(THURSDAY, trend(300, 60.0, 0.004, 0.002))
    d = Engine().decide(big, "p1/gen-1", "NVDA", at(THURSDAY), market(bars, IV_GREEN))
    assert d.action == "OPEN_PUT", d.explanation
    assert d.order is not None and d.order.contracts > 50
    assert all(c.contracts <= 50 for c in d.orders) and sum(c.contracts for c in d.orders) == d.order.contracts
    r14 = next(r for r in d.compliance if r.code == "R14_MAX_ORDER_SIZE")
    assert r14.passed, r14.message


def test_halted_lets_a_buy_back_reduce_through(portfolio: Portfolio) -> None:
    """v1's R10 rejected a REDUCE (a buy-back) when the system was HALTED."""
    bars = green(WEDNESDAY)
    spot = bars.last_close
    portfolio.positions["pos-1"] = Position(
        "pos-1", "p1/gen-1", "NVDA", "put", -5.0, MONDAY, round(spot * 0.9), FRIDAY, 0.5
    )
    gen = portfolio.account("p1/gen-1")
    gen.peak = gen.balance * Decimal("1.12")  # moderate protection: cut 40%
    engine = Engine()
    engine.system_state = "HALTED"
    d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(bars, IV_GREEN, vix=85.0))
    assert d.action == "REDUCE", d.explanation
    assert d.outcome != "REJECTED", [r.message for r in d.compliance if not r.passed]


def test_level_3_stop_loss_comes_before_the_drawdown_budget_cut(portfolio: Portfolio) -> None:
    """v1 ran the drawdown-budget REDUCE before the level-3 close (section 5's order of actions)."""
    bars = green(WEDNESDAY)
    spot = bars.last_close
    portfolio.positions["pos-1"] = Position(
        "pos-1", "p1/gen-1", "NVDA", "put", -20.0, MONDAY, round(spot * 1.06), FRIDAY, 0.5, iv=0.3
    )
    engine = Engine()
    m = market(bars, IV_GREEN)
    gen = portfolio.account("p1/gen-1")
    gen.peak = Decimal(str(round(engine.account_equity(portfolio, gen, m, WEDNESDAY) / 0.88, 2)))
    d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), m)
    assert d.protocol_level == 3
    assert d.action == "CLOSE" and d.order is not None and d.order.contracts == 20, d.explanation


def _green_with_old_crashes(end: dt.date) -> Bars:
    """A green market now, with -10% days long ago: the scenario window has a loss tail."""
    r = np.full(300, 0.004) + 0.002 * np.sin(np.arange(300) * 1.7)
    r[40:220:20] = -0.10
    return make_bars(end, 40.0 * np.cumprod(1 + r))


def test_a_roll_is_valued_like_any_order(portfolio: Portfolio) -> None:
    """v1 carried ES 0/0 on rolls, so R09 always passed."""
    bars = _green_with_old_crashes(WEDNESDAY)
    spot = bars.last_close
    atr5 = spot * 0.008
    portfolio.positions["pos-1"] = Position(
        "pos-1", "p1/gen-1", "NVDA", "put", -2.0, MONDAY, spot + 2.5 * atr5, FRIDAY, 1.5, iv=0.3, band=(40.0, 50.0)
    )
    m = market(bars, IV_GREEN)
    d = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), m, roll_available=True)
    assert d.action == "ROLL", d.explanation
    assert d.es_before != 0.0 and d.es_after != 0.0 and d.es_after != d.es_before, d.explanation
    assert f"after the roll={d.es_after:.2f}" in d.explanation
    # A roll whose post-trade ES breaks the portfolio's 4% budget (the Rev-Acc holds puts on NVDA too) is
    # rejected by R09, and the position is closed instead.
    portfolio.positions["pos-1"].quantity = -65.0
    portfolio.positions["rev"] = Position(
        "rev", "p1/rev-1", "NVDA", "put", -50.0, MONDAY, round(spot * 0.97), FRIDAY, 1.0, iv=0.3
    )
    d2 = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), m, roll_available=True)
    assert d2.action == "CLOSE", d2.explanation
    assert "roll rejected by R09_ES_BUDGET" in d2.explanation


def _shares_and_call(portfolio: Portfolio, spot: float, strike: float, shares: float = 1000.0) -> None:
    portfolio.positions["s"] = Position("s", "p1/rev-1", "AAPL", "stock", shares, MONDAY, cost_basis=spot * 1.02)
    portfolio.positions["c"] = Position(
        "c", "p1/rev-1", "AAPL", "call", -shares / 100, MONDAY, strike, FRIDAY, 1.0, iv=0.3
    )


def test_c_ro_rolls_the_call_down_to_the_current_price(portfolio: Portfolio) -> None:
    """v1 held the call in a C-RO week (the out-of-the-money call was left to expire)."""
    closes = np.concatenate(
        [trend(295, 100.0, 0.001, 0.002), [100.0 * 1.001**294 * f for f in (1, 0.98, 0.96, 0.94, 0.93)]]
    )
    bars = make_bars(FRIDAY, closes)
    spot = bars.last_close
    _shares_and_call(portfolio, spot, round(spot * 1.1))
    d = Engine().decide(portfolio, "p1/rev-1", "AAPL", at(FRIDAY), market(bars, 0.30, symbol="AAPL"))
    assert d.week_type == "C-RO", d.explanation
    assert d.action == "ROLL", d.explanation
    assert d.order is not None and 45 <= d.order.delta <= 55 and d.order.strike < spot * 1.1


def test_c_rec_covers_at_most_half_with_20_30_delta_calls(portfolio: Portfolio) -> None:
    """v1 never applied the C-REC 50% cover cap and 20-30 band."""
    closes = np.concatenate(
        [trend(295, 100.0, 0.001, 0.002), [100.0 * 1.001**294 * f for f in (1, 0.96, 0.92, 0.89, 0.88)]]
    )
    bars = make_bars(FRIDAY, closes)
    monday = FRIDAY + dt.timedelta(days=3)
    bars = make_bars(monday, np.concatenate([closes, [closes[-1] * 1.001]]))
    spot = bars.last_close
    portfolio.positions["s"] = Position("s", "p1/rev-1", "AAPL", "stock", 1000.0, MONDAY, cost_basis=spot * 1.02)
    d = Engine().decide(portfolio, "p1/rev-1", "AAPL", at(monday), market(bars, 0.30, symbol="AAPL"))
    assert d.action == "OPEN_CALL", d.explanation
    assert d.order is not None and d.order.contracts <= 5 and 20 <= d.order.delta <= 30, d.explanation
    assert "C-REC" in d.explanation


def test_a_forced_gen_roll_in_a_chop_week_keeps_the_band_it_was_opened_in(portfolio: Portfolio) -> None:
    """v1 rejected it with R01_DELTA_BAND: missing=band_low (Gen-Acc has no Chop band)."""
    bars = chop(WEDNESDAY)
    spot = bars.last_close
    portfolio.positions["pos-1"] = Position(
        "pos-1", "p1/gen-1", "NVDA", "put", -2.0, MONDAY, spot + 2.4, FRIDAY, 1.5, iv=0.3, band=(40.0, 50.0)
    )
    d = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(bars, 0.30), roll_available=True)
    assert d.protocol_level == 2, d.explanation
    assert d.label == "chop"
    assert d.action == "ROLL", d.explanation
    r01 = next(r for r in d.compliance if r.code == "R01_DELTA_BAND")
    assert r01.passed and "band=40-50" in r01.message, r01.message


def test_decisions_are_proposals_until_committed(portfolio: Portfolio) -> None:
    """v1 counted every non-rejected order in the rate window and froze entries on a mere proposal."""
    engine = Engine()
    m = market(green(THURSDAY), IV_GREEN)
    for _ in range(35):
        d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), m)
    assert d.action == "OPEN_PUT"
    r15 = next(r for r in d.compliance if r.code == "R15_ORDER_RATE")
    assert r15.passed, r15.message  # 35 proposals, none executed: nothing counts
    for _ in range(30):
        engine.commit(d, portfolio)
    d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), m)
    r15 = next(r for r in d.compliance if r.code == "R15_ORDER_RATE")
    assert not r15.passed  # 30 executed within the minute


def test_a_level_2_freeze_starts_only_when_the_decision_is_executed(portfolio: Portfolio) -> None:
    bars = green(WEDNESDAY)
    spot = bars.last_close
    atr5 = spot * 0.008
    pos = Position("pos-1", "p1/gen-1", "NVDA", "put", -2.0, MONDAY, spot + 2.5 * atr5, FRIDAY, 1.5, iv=0.3)
    portfolio.positions[pos.id] = pos
    engine = Engine()
    d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(bars, IV_GREEN), roll_available=False)
    assert d.protocol_level == 2 and d.effects is not None and d.effects.freeze_until == FRIDAY
    del portfolio.positions[pos.id]
    m = market(green(THURSDAY), IV_GREEN)
    assert engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), m).action == "OPEN_PUT"
    engine.commit(d, portfolio)
    frozen = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), m)
    assert frozen.action == "NO_TRADE" and "frozen" in frozen.explanation


def test_closing_a_worthless_option_passes_the_collar(portfolio: Portfolio) -> None:
    """v1's R13 rejected `limit=0 mid=0 deviation=inf` for a CLOSE at take-profit of an option worth nothing."""
    bars = green(WEDNESDAY)
    spot = bars.last_close
    portfolio.positions["pos-1"] = Position(
        "pos-1", "p1/gen-1", "NVDA", "put", -2.0, MONDAY, round(spot * 0.5), FRIDAY, 1.0, iv=0.3
    )
    d = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(bars, IV_GREEN))
    assert d.action == "CLOSE", d.explanation
    assert d.outcome != "REJECTED", [r.message for r in d.compliance if not r.passed]


def test_tail_dependent_symbols_count_as_one_for_concentration() -> None:
    """v1 measured R07 per symbol only; two symbols that crash together are one risk (section 6)."""
    big = Portfolio.create("p1", 1_000_000, at(MONDAY) - dt.timedelta(days=30))
    rng = np.random.default_rng(3)
    base = 100.0 * np.cumprod(1 + rng.normal(0.0005, 0.01, 600))
    a = make_bars(THURSDAY, base)
    b = make_bars(THURSDAY, base * 0.5)
    m = MarketData(bars={"AMD": a, "NVDA": b}, iv={"AMD": IV_GREEN, "NVDA": IV_GREEN}, vix=18.0)
    strike = round(a.last_close * 0.9)
    big.positions["amd"] = Position("amd", "p1/gen-1", "AMD", "put", -6.0, MONDAY, strike, FRIDAY, 1.0, iv=0.3)
    engine = Engine()
    d = engine.decide(big, "p1/gen-1", "NVDA", at(THURSDAY), m)
    assert d.action == "OPEN_PUT", d.explanation
    r07 = next(r for r in d.compliance if r.code == "R07_SYMBOL_CONCENTRATION")
    assert "AMD" in r07.message and not r07.passed, r07.message


def test_monte_carlo_scenarios_are_an_option() -> None:
    rng = np.random.default_rng(11)
    closes = 100.0 * np.cumprod(1 + rng.normal(0.0003, 0.015, 600))
    bars = make_bars(THURSDAY, closes)
    m = market(bars, 0.30)
    put = Position("p", "p1/gen-1", "NVDA", "put", -3.0, THURSDAY, round(closes[-1]) - 2, FRIDAY, 1.0)
    historical = Engine().portfolio_es([put], m, THURSDAY)
    mc = Engine(_config(**{"scenarios.method": "monte_carlo"}))
    first = mc.portfolio_es([put], m, THURSDAY)
    again = Engine(_config(**{"scenarios.method": "monte_carlo"})).portfolio_es([put], m, THURSDAY)
    assert first == again > 0  # seeded: the same draws every time
    assert first != historical
    assert first == pytest.approx(historical, rel=0.5)  # same volatility, different tails
    with pytest.raises(InvalidInputError, match=r"scenarios\.method"):
        Engine(_config(**{"scenarios.method": "bootstrap"})).portfolio_es([put], m, THURSDAY)


# --- item 6: the VIX proxy -------------------------------------------------------------------------------------
def test_without_a_vix_the_proxy_stands_in_and_the_decision_says_so(portfolio: Portfolio) -> None:
    bars = green(THURSDAY)
    d = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), market(bars, IV_GREEN, vix=None))
    assert d.vol_source == "proxy"
    assert "VIX proxy=" in d.explanation and "x 1.2" in d.explanation
    with_vix = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), market(bars, IV_GREEN, vix=18.0))
    assert with_vix.vol_source == "vix"


def test_the_proxy_feeds_the_breakers(portfolio: Portfolio) -> None:
    """A crash without a VIX series: the proxy (realised vol x 100 x 1.2) crosses 65 and R11 blocks entries."""
    closes = np.concatenate([trend(280, 100.0, 0.001, 0.002), 100.0 * np.cumprod(1 + np.tile([0.09, -0.09], 10))])
    bars = make_bars(THURSDAY, closes)
    d = Engine().decide(portfolio, "p1/rev-1", "NVDA", at(THURSDAY), market(bars, 0.9, vix=None))
    assert d.vol_source == "proxy"
    proxy = float(d.explanation.split("VIX proxy=")[1].split(" ")[0])
    assert proxy >= 65


def test_the_strike_grid_scales_with_price() -> None:
    """v1's synthetic chain had $1 steps under $200: a $3.30 stock had only the strikes 2, 3 and 4, none inside a
    40-50 band a week out; v2 steps $0.10 under $5 (config strike_grid)."""
    from allsuse import _core

    chosen = _core.select_synthetic_strike("put", 3.3, 7 / 365, 0.6, 0.0, 0.0, 40, 50, 45)
    assert chosen is not None and chosen[0] == pytest.approx(3.3) and 40 <= chosen[1] <= 50
    coarse = _core.select_synthetic_strike("put", 3.3, 7 / 365, 0.6, 0.0, 0.0, 40, 50, 45, [(float("inf"), 1.0)])
    assert coarse is None


def test_com_acc_buys_round_lots_and_sells_puts_only_with_reinvestment_cash(portfolio: Portfolio) -> None:
    """v1's Com-Acc sold 20-30 delta puts with its cash; v2 buys round lots at setup, writes calls on them, and
    sells puts only to deploy its quarterly reinvestment cash (PROTOCOL section 1)."""
    bars = green(MONDAY)
    m = market(bars, 0.30, symbol="AAPL")
    engine = Engine()
    setup = engine.decide(portfolio, "p1/com-1", "AAPL", at(MONDAY), m)
    assert setup.action == "BUY_SHARES", setup.explanation
    assert setup.order is not None and setup.order.contracts % 100 == 0
    # 85% / 4 symbols of the Com-Acc's 300,000 = 63,750 of AAPL at ~$198: 3 round lots.
    assert setup.order.contracts * bars.last_close <= 0.85 / 4 * 300_000 + 1e-6
    com = portfolio.account("p1/com-1")
    portfolio.positions["s"] = Position("s", "p1/com-1", "AAPL", "stock", 100.0, MONDAY, cost_basis=bars.last_close)
    com.balance -= Decimal(str(round(100 * bars.last_close, 2)))
    topup = engine.decide(portfolio, "p1/com-1", "AAPL", at(MONDAY), m)
    assert topup.action == "BUY_SHARES" and topup.order is not None and topup.order.contracts == 200, topup.explanation
    com.reinvest_cash = Decimal("50000.00")
    put = engine.decide(portfolio, "p1/com-1", "AAPL", at(MONDAY), m)
    assert put.action == "OPEN_PUT", put.explanation  # reinvestment cash goes into contracts first
    assert put.order is not None and 20 <= put.order.delta <= 30
    assert put.order.strike * 100 * put.order.contracts <= 50_000
    portfolio.positions["s"].quantity = 300.0
    com.reinvest_cash = Decimal("0.00")
    call = engine.decide(portfolio, "p1/com-1", "AAPL", at(MONDAY), m)
    assert call.action == "OPEN_CALL" and call.order is not None and call.order.contracts == 3, call.explanation
