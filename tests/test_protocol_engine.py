"""Decision scenarios of the engine (PROTOCOL sections 3, 5, 6, 7, 10) on synthetic but deterministic bars."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest

from allsuse.protocol import Engine, Portfolio, Position
from tests.market_support import IV_GREEN, MONDAY, THURSDAY, WEDNESDAY, at, chop, green, make_bars, market, red


@pytest.fixture
def portfolio() -> Portfolio:
    # $1M: a Gen-Acc of 400,000 sizes 12.5% = 50,000, two contracts of a ~$200 stock (a $100k portfolio's
    # Gen-Acc cannot afford one: sizing never rounds up).
    return Portfolio.create("p1", 1_000_000, at(MONDAY) - dt.timedelta(days=30))


def test_green_thursday_gen_opens_a_put_inside_40_50(portfolio: Portfolio) -> None:
    engine = Engine()
    d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), market(green(THURSDAY), IV_GREEN))
    assert d.label == "green"
    assert d.action == "OPEN_PUT", d.explanation
    assert d.order is not None and 40 <= d.order.delta <= 50
    assert d.order.expiry == dt.date(2024, 3, 8)  # that week's Friday: DTE 1
    assert d.order.contracts >= 1
    # No position before the trade; afterwards the tail is the new put's (its sign depends on the scenarios).
    assert d.es_before == 0.0 and d.es_after != 0.0
    codes = {r.code for r in d.compliance}
    assert {"R01_DELTA_BAND", "R02_DTE_WINDOW", "R05_CASH_SECURED", "R09_ES_BUDGET"} <= codes
    assert all(r.passed for r in d.compliance), [r.message for r in d.compliance if not r.passed]
    assert d.requires_approval  # trust starts at 0.3
    assert f"delta={d.order.delta:.1f}" in d.explanation
    assert f"{d.order.strike:g}" in d.explanation


def test_red_monday_gen_opens_inside_35_45(portfolio: Portfolio) -> None:
    d = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(MONDAY), market(red(MONDAY), 0.45))
    assert d.label == "red"
    assert d.action == "OPEN_PUT", d.explanation
    assert d.order is not None and 35 <= d.order.delta <= 45
    assert d.order.expiry == dt.date(2024, 3, 8)


def test_chop_gives_gen_no_trade(portfolio: Portfolio) -> None:
    d = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), market(chop(THURSDAY), 0.30))
    assert d.label == "chop"
    assert d.action == "NO_TRADE" and d.order is None
    assert "no new entries" in d.explanation


def test_not_an_entry_day_gives_no_trade(portfolio: Portfolio) -> None:
    d = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(green(WEDNESDAY), IV_GREEN))
    assert d.action == "NO_TRADE" and "not an entry day" in d.explanation


def _short_put(portfolio: Portfolio, strike: float, premium: float = 1.0) -> Position:
    pos = Position("pos-1", "p1/gen-1", "NVDA", "put", -2.0, MONDAY, strike, dt.date(2024, 3, 8), premium, iv=0.3)
    portfolio.positions[pos.id] = pos
    return pos


def test_level_2_excursion_rolls(portfolio: Portfolio) -> None:
    bars = green(WEDNESDAY)
    spot = bars.last_close
    atr5 = spot * 0.008  # the synthetic bars' ATR is about 0.8% of spot
    _short_put(portfolio, strike=spot + 2.5 * atr5, premium=1.5)
    d = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(bars, IV_GREEN), roll_available=True)
    assert d.protocol_level == 2, d.explanation
    assert d.action == "ROLL", d.explanation
    assert d.order is not None and d.order.expiry is not None and (d.order.expiry - WEDNESDAY).days <= 14


def test_level_3_excursion_closes_and_account_turns_reducing(portfolio: Portfolio) -> None:
    bars = green(WEDNESDAY)
    spot = bars.last_close
    _short_put(portfolio, strike=spot * 1.06, premium=0.5)
    engine = Engine()
    d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(bars, IV_GREEN))
    assert d.protocol_level == 3
    assert d.action == "CLOSE" and d.requires_approval  # emergency: never automatic
    assert d.account_state == "REDUCING"
    # A decision is a proposal (section 10): the account turns REDUCING when the stop-loss is executed.
    assert portfolio.account("p1/gen-1").state == "ACTIVE"
    engine.commit(d, portfolio)
    assert portfolio.account("p1/gen-1").state == "REDUCING"
    # A REDUCING account gets no new entries until an operator resets it.
    del portfolio.positions["pos-1"]
    nxt = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), market(green(THURSDAY), IV_GREEN))
    assert nxt.action == "NO_TRADE" and nxt.outcome == "REJECTED"
    assert any(r.code == "R10_TRADING_STATE" and not r.passed for r in nxt.compliance)
    engine.reset_account(portfolio, "p1/gen-1")
    again = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), market(green(THURSDAY), IV_GREEN))
    assert again.action == "OPEN_PUT"


def test_vix_66_blocks_new_entries(portfolio: Portfolio) -> None:
    d = Engine().decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), market(green(THURSDAY), IV_GREEN, vix=66.0))
    assert d.action == "NO_TRADE" and d.outcome == "REJECTED"
    r11 = next(r for r in d.compliance if r.code == "R11_VIX_BREAKER")
    assert not r11.passed and "vix=66" in r11.message


def test_repeated_idempotency_key_returns_the_stored_decision(portfolio: Portfolio) -> None:
    engine = Engine()
    m = market(green(THURSDAY), IV_GREEN)
    first = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), m, idempotency_key="k-1")
    second = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), m, idempotency_key="k-1")
    assert second is first
    third = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), m, idempotency_key="k-2")
    assert third.id != first.id


def test_outcomes_move_trust(portfolio: Portfolio) -> None:
    engine = Engine()
    d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), market(green(THURSDAY), IV_GREEN))
    before = engine.trust.score("entry")
    up = engine.record_outcome(d, True, THURSDAY)
    assert up == pytest.approx(before + 0.02 * d.confidence)
    down = engine.record_outcome(d, False, THURSDAY)
    assert down == pytest.approx(up - 0.01 * d.confidence)
    engine.trust.decay(THURSDAY + dt.timedelta(days=14))
    assert engine.trust.score("entry") == pytest.approx(down * 0.98**2)


def test_portfolio_es_matches_a_numpy_full_revaluation() -> None:
    rng = np.random.default_rng(11)
    closes = 100.0 * np.cumprod(1 + rng.normal(0.0003, 0.015, 600))
    bars = make_bars(THURSDAY, closes)
    m = market(bars, 0.30)
    put = Position("p", "p1/gen-1", "NVDA", "put", -3.0, THURSDAY, round(closes[-1]) - 2, dt.date(2024, 3, 15), 1.0)
    es = Engine().portfolio_es([put], m, THURSDAY)

    from allsuse import pricing

    r = closes[1:] / closes[:-1] - 1.0
    r = r[-500:]
    spot = closes[-1]
    t0 = put.years_to_expiry(THURSDAY)
    v0 = pricing.bs_price("put", spot, put.strike, t0, 0.30)
    iv = 0.30 * (1 + np.maximum(-5.0 * r, -0.9))
    v1 = pricing.bs_price("put", spot * (1 + r), put.strike, t0 - 1 / 365, iv)
    pnl = -3.0 * 100.0 * (np.asarray(v1) - v0)
    k = int(np.ceil(500 * 0.025))
    expected = -np.sort(pnl)[:k].mean()
    assert es == pytest.approx(expected, rel=1e-9)
    assert es > 0


def test_moderate_drawdown_cuts_a_position_by_40_percent_once(portfolio: Portfolio) -> None:
    bars = green(WEDNESDAY)
    spot = bars.last_close
    pos = Position("pos-1", "p1/gen-1", "NVDA", "put", -5.0, MONDAY, round(spot * 0.9), dt.date(2024, 3, 8), 0.5)
    portfolio.positions[pos.id] = pos
    gen = portfolio.account("p1/gen-1")
    gen.peak = gen.balance * Decimal("1.12")  # about 10.7% below the peak: moderate protection
    engine = Engine()
    d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(bars, IV_GREEN))
    assert d.action == "REDUCE", d.explanation
    assert d.order is not None and d.order.contracts == 2 and d.order.side == "buy_to_close"
    assert "moderate" in d.explanation and "cut 40% of 5 contracts = 2" in d.explanation
    assert any(r.code == "R10_TRADING_STATE" and r.passed for r in d.compliance)
    # Not executed yet: the same cut is proposed again (a proposal leaves no trace).
    assert engine.decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(bars, IV_GREEN)).action == "REDUCE"
    engine.commit(d, portfolio)
    again = engine.decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), market(bars, IV_GREEN))
    assert again.action != "REDUCE"  # the moderate cut happens once


def test_drawdown_budget_proposes_reducing_excess_exposure(portfolio: Portfolio) -> None:
    bars = green(WEDNESDAY)
    strike = float(round(bars.last_close * 0.9))
    pos = Position("pos-1", "p1/gen-1", "NVDA", "put", -20.0, MONDAY, strike, dt.date(2024, 3, 8), 0.5)
    portfolio.positions[pos.id] = pos
    engine = Engine()
    m = market(bars, IV_GREEN)
    gen = portfolio.account("p1/gen-1")
    equity = engine.account_equity(portfolio, gen, m, WEDNESDAY)
    # 9% under the peak: protection light (no cut: the bars' vol is low), and the CPPI budget of section 6:
    # floor = 0.85 peak, cushion = (0.91 - 0.85) / 0.15 = 0.4, allowed = min(1, 2 x 0.4) = 80% of the 90% target.
    gen.peak = Decimal(str(round(equity / 0.91, 2)))
    d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), m)
    committed = 20 * 100 * strike
    cap = 0.8 * 0.9 * equity
    expected = math.ceil(20 * (committed - cap) / committed)
    assert d.action == "REDUCE", d.explanation
    assert d.order is not None and d.order.contracts == expected
    assert "drawdown budget" in d.explanation
    engine.commit(d, portfolio)
    assert engine.decide(portfolio, "p1/gen-1", "NVDA", at(WEDNESDAY), m).action != "REDUCE"


def test_the_trust_gate_follows_scores_changed_in_place(portfolio: Portfolio) -> None:
    """The engine keeps the core's trust gate while the scores stay the same; a score written straight into the
    book (as a service restoring its state does) is read by the next decision, and so is the way back."""
    engine = Engine()
    m = market(green(THURSDAY), IV_GREEN)
    outcomes = []
    for score in (engine.trust.score("entry"), 1.0, 0.0, 1.0):
        engine.trust.scores["entry"] = score
        d = engine.decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), m)
        assert d.action == "OPEN_PUT"
        outcomes.append(d.requires_approval)
    assert outcomes[1:] == [False, True, False]
