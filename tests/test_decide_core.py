"""The decision in the core (issue 9, item 1): Engine.decide assembles one typed `DecisionInput`, makes one call
into the core and converts the typed result; bad input fields are refused by name (InvalidInputError), never a
panic. Counted, not timed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from allsuse import _core
from allsuse.errors import InvalidInputError
from allsuse.protocol import Engine, MarketData, Portfolio, Position
from allsuse.protocol.market import Bars, OptionQuote

THURSDAY = dt.date(2024, 3, 7)


def _bars(start: float, n: int = 300) -> Bars:
    rng = np.random.default_rng(7)
    closes = start * np.cumprod(1 + rng.normal(0.002, 0.006, n))
    days: list[dt.date] = []
    d = THURSDAY
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d -= dt.timedelta(days=1)
    days.reverse()
    return Bars(tuple(days), closes, closes * 1.005, closes * 0.995, closes, np.full(n, 1e6))


@pytest.fixture
def market() -> MarketData:
    return MarketData(bars={"AAA": _bars(100.0), "BBB": _bars(50.0)}, iv={"AAA": 0.4, "BBB": 0.4}, vix=16.0)


class _Counting:
    """Stands in for the engine's compiled `Decider` and counts the calls into the core."""

    def __init__(self, inner: _core.Decider) -> None:
        self.inner = inner
        self.calls = 0

    def decide(self, *args: Any, **kwargs: Any) -> _core.CoreDecision:
        self.calls += 1
        return self.inner.decide(*args, **kwargs)


def test_each_decision_is_one_call_into_the_core(market: MarketData) -> None:
    portfolio = Portfolio.create("p", 1_000_000, dt.datetime(2024, 1, 2, 9, 30))
    spot = market.bars_for("AAA").last_close
    portfolio.positions["x"] = Position(
        "x", "p/rev-1", "AAA", "put", -1.0, THURSDAY, round(spot * 0.9), THURSDAY + dt.timedelta(days=8), 2.0, iv=0.4
    )
    engine = Engine(symbols={"gen": ("AAA", "BBB"), "rev": ("AAA", "BBB")})
    counting = _Counting(engine.decider)
    engine.decider = counting  # type: ignore[assignment]
    when = dt.datetime.combine(THURSDAY, dt.time(15, 45))
    entry = engine.decide(portfolio, "p/gen-1", "AAA", when, market)
    held = engine.decide(portfolio, "p/rev-1", "AAA", when, market)
    assert counting.calls == 2
    assert entry.action == "OPEN_PUT", entry.explanation
    assert entry.order is not None and entry.order.band is not None and entry.effects is not None
    assert entry.effects.counts_order and entry.es_after > entry.es_before
    assert held.action in ("HOLD", "CLOSE", "ROLL"), held.explanation
    assert held.explanation.startswith("label=")


def test_an_entry_from_a_given_chain_takes_the_quote(market: MarketData) -> None:
    spot = market.bars_for("AAA").last_close
    quotes = [OptionQuote(float(k), 0.9, 1.1, 0.4, 900.0, 300.0) for k in range(int(spot * 0.9), int(spot * 1.05))]
    chained = MarketData(bars=market.bars, iv=market.iv, vix=16.0, chains={"AAA": {"put": quotes}})
    portfolio = Portfolio.create("p", 1_000_000, dt.datetime(2024, 1, 2, 9, 30))
    d = Engine(symbols={"gen": ("AAA", "BBB")}).decide(
        portfolio, "p/gen-1", "AAA", dt.datetime.combine(THURSDAY, dt.time(15, 45)), chained
    )
    assert d.action == "OPEN_PUT", d.explanation
    assert d.order is not None and d.order.limit_price == 1.0  # the quote's mid, not a model price
    assert d.iv_source == "chain"


def _input(**changes: Any) -> _core.DecisionInput:
    n = 30
    close = np.linspace(100.0, 103.0, n)
    fields: dict[str, Any] = dict(
        account_id="p/gen-1",
        account_kind="gen",
        account_state="ACTIVE",
        balance=1e6,
        reinvest_cash=0.0,
        peak=1e6,
        equity=1e6,
        portfolio_equity=1e6,
        symbol="AAA",
        sector="tech",
        label="green",
        label_confidence=0.8,
        notes=["label=green"],
        today=THURSDAY.toordinal(),
        weekday=3,
        entry_expiry=THURSDAY.toordinal() + 1,
        frozen_until=None,
        spot=103.0,
        iv=0.3,
        rate=0.0,
        days=np.arange(THURSDAY.toordinal() - n + 1, THURSDAY.toordinal() + 1, dtype=np.int64),
        high=close + 0.5,
        low=close - 0.5,
        close=close,
        protection_level=0,
        drawdown=0.0,
        vix=15.0,
        vix_multiplier=1.0,
        vix_state="ACTIVE",
        system_state="ACTIVE",
        orders_last_minute=0,
        earnings_in_week=None,
        group_symbols=["AAA"],
        book=[],
        column=0,
        trust=_core.TrustGate(
            entry=0.3,
            exit=0.3,
            roll=0.3,
            risk_reduction=0.3,
            emergency=0.3,
            auto_threshold=0.7,
            confidence_threshold=0.7,
        ),
        cuts_done=[],
        roll_available=None,
    )
    fields.update(changes)
    return _core.DecisionInput(**fields)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"spot": float("nan")}, "spot"),
        ({"iv": -0.2}, "iv"),
        ({"equity": float("inf")}, "equity"),
        ({"label": "blue"}, "label"),
        ({"weekday": 9}, "weekday"),
        ({"protection_level": 7}, "protection_level"),
        ({"days": np.arange(3, dtype=np.int64)}, "days"),
        ({"close": np.full(30, np.nan)}, "close"),
        ({"vix": float("nan")}, "vix"),
    ],
)
def test_a_bad_decision_input_field_is_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        _input(**changes)
    assert err.value.field == field


def test_bad_positions_quotes_and_settings_are_named() -> None:
    held = dict(
        id="x",
        account_id="p/gen-1",
        symbol="AAA",
        quantity=-1.0,
        strike=95.0,
        expiry=None,
        roll_expiry=None,
        premium=1.0,
        cost_basis=0.0,
        band_low=30.0,
        band_high=None,
        sector="tech",
        last_close=100.0,
        iv=0.3,
        column=0,
        in_book=True,
    )
    with pytest.raises(InvalidInputError) as err:
        _core.HeldPosition(kind="bond", **{**held, "band_high": 40.0})
    assert err.value.field == "kind"
    with pytest.raises(InvalidInputError) as err:
        _core.HeldPosition(kind="put", **held)  # a band needs both ends
    assert err.value.field == "band"
    nan_position = _core.HeldPosition(kind="put", **{**held, "band_high": 40.0, "premium": float("nan")})
    with pytest.raises(InvalidInputError) as err:
        _input(book=[nan_position])
    assert err.value.field == "book[0].premium"
    quote = _core.ChainQuote(strike=95.0, bid=float("nan"), ask=1.0, iv=0.3, open_interest=1.0, volume=1.0)
    with pytest.raises(InvalidInputError) as err:
        _input(chain_puts=[quote])
    assert err.value.field == "chain_puts[0].bid"
    with pytest.raises(InvalidInputError) as err:
        _core.Band(low=40.0, high=30.0)
    assert err.value.field == "band"


def test_the_core_names_a_column_outside_the_scenarios_and_raises_the_markets_own_error() -> None:
    engine = Engine()
    scenarios = _core.ScenarioSet(
        np.full((50, 1), 0.001), spot=[103.0], iv=[0.3], iv_move_sensitivity=5.0, horizon=1 / 365, rate=0.0
    )
    entry = {"entry_expiry": THURSDAY.toordinal() + 6}
    with pytest.raises(InvalidInputError) as err:
        engine.decider.decide(_input(column=2, **entry), engine.rules.compiled, scenarios=lambda: scenarios)
    assert err.value.field == "column"

    def no_scenarios() -> _core.ScenarioSet:
        raise InvalidInputError.of("bars", "need at least two closes per symbol for scenarios")

    with pytest.raises(InvalidInputError) as err:
        engine.decider.decide(_input(**entry), engine.rules.compiled, scenarios=no_scenarios)
    assert err.value.field == "bars"
    # A decision that values no order never asks for the scenarios.
    red = engine.decider.decide(_input(label="red"), engine.rules.compiled, scenarios=no_scenarios)
    assert red.action == "NO_TRADE"


def test_the_tail_group_is_measured_only_when_a_rule_context_is_built() -> None:
    """`group=` is called once, only by a decision that builds a rule context, and gives what `group_symbols` would
    have; its error is raised as it is; without it (and without group_symbols) the core names group_symbols."""
    engine = Engine()
    scenarios = _core.ScenarioSet(
        np.full((50, 1), 0.001), spot=[103.0], iv=[0.3], iv_move_sensitivity=5.0, horizon=1 / 365, rate=0.0
    )
    entry = {"entry_expiry": THURSDAY.toordinal() + 6}
    calls: list[int] = []

    def group() -> list[str]:
        calls.append(1)
        return ["AAA"]

    given = engine.decider.decide(_input(**entry), engine.rules.compiled, scenarios=lambda: scenarios)
    lazy = engine.decider.decide(
        _input(group_symbols=None, **entry), engine.rules.compiled, scenarios=lambda: scenarios, group=group
    )
    assert given.rules_checked and lazy.rules_checked and calls == [1]
    assert (lazy.action, lazy.order, lazy.notes) == (given.action, given.order, given.notes)
    assert [(r.code, r.passed, r.message) for r in lazy.compliance] == [
        (r.code, r.passed, r.message) for r in given.compliance
    ]
    red = engine.decider.decide(
        _input(label="red", group_symbols=None), engine.rules.compiled, scenarios=lambda: scenarios, group=group
    )
    assert red.action == "NO_TRADE" and calls == [1]

    def unmeasurable() -> list[str]:
        raise InvalidInputError.of("bars", "need at least two closes per symbol for scenarios")

    with pytest.raises(InvalidInputError) as err:
        engine.decider.decide(
            _input(group_symbols=None, **entry), engine.rules.compiled, scenarios=lambda: scenarios, group=unmeasurable
        )
    assert err.value.field == "bars"
    with pytest.raises(InvalidInputError) as err:
        engine.decider.decide(_input(group_symbols=None, **entry), engine.rules.compiled, scenarios=lambda: scenarios)
    assert err.value.field == "group_symbols"
    with pytest.raises(TypeError):
        engine.decider.decide(
            _input(group_symbols=None, **entry), engine.rules.compiled, scenarios=lambda: scenarios, group=lambda: 7
        )


def test_a_bad_setting_is_refused_when_the_decider_is_compiled() -> None:
    engine = Engine()
    with pytest.raises(InvalidInputError) as err:
        _core.Decider(
            tables=engine.tables,
            strikes=engine._strikes,
            gen=_account("gen"),
            rev=_account("rev"),
            com=_account("com"),
            atr_period=14,
            atr_fallback_pct=1.0,
            protection_multipliers=[1.0, 0.5],
            drawdown_budget_k=2.0,
            es_budget_share=0.1,
            es_level=0.975,
            entry_max_dte=7,
            max_contracts_per_order=10,
            call_band=_core.Band(low=20.0, high=30.0),
            call_recovery_band=_core.Band(low=20.0, high=30.0),
            call_roll_down_band=_core.Band(low=40.0, high=50.0),
            covered_call_cap_share=0.5,
            roll_max_debit_share=0.5,
            level_atr_period=5,
            level_atr_fallback_share=0.02,
            rev_roll_excursion=1.0,
            take_profit=_core.TakeProfit(gen=0.5, rev=0.5, com=0.5),
            confidence=_core.Confidences(hold_normal=0.8, hold_enhanced=0.6, close=0.9, roll=0.7),
            protection_cuts=[0.0, 0.2, 0.4, 0.6, 1.0],
            light_vol_above=0.35,
            light_cut=0.2,
            emergency_close_count=3,
            cash_settled=[],
        )
    assert err.value.field == "protection_multipliers"


def _account(kind: str) -> _core.AccountRules:
    rule = _core.EntryRule(entry_days=[3], band_low=30.0, band_high=40.0, m_label=1.0)
    return _core.AccountRules(
        kind=kind,
        name=kind,
        buffer=0.05,
        max_drawdown=0.2,
        target_share=0.9,
        max_symbol_weight=0.9,
        allowed_symbols=["AAA"],
        green=rule,
        red=rule,
        chop=rule,
    )


_HELD = dict(
    id=["x", "y"],
    account_id=["p/gen-1", "p/rev-1"],
    symbol=["AAA", "BBB"],
    kind=["put", "stock"],
    quantity=[-1.0, 100.0],
    strike=[95.0, 0.0],
    expiry=[THURSDAY.toordinal() + 1, None],
    roll_expiry=[THURSDAY.toordinal() + 8, None],
    premium=[1.0, 0.0],
    cost_basis=[0.0, 48.0],
    band_low=[30.0, None],
    band_high=[40.0, None],
    sector=["tech", "unknown"],
    last_close=[103.0, 50.0],
    iv=[0.3, 0.0],
    column=[0, 1],
    in_book=[True, True],
)


def _decided(inp: _core.DecisionInput) -> dict[str, Any]:
    engine = Engine()
    d = engine.decider.decide(inp, engine.rules.compiled, scenarios=None, group=None)
    out = {name: getattr(d, name) for name in ("action", "outcome", "notes", "warnings", "week_type", "position_id")}
    out["compliance"] = [(r.code, r.passed, r.message) for r in d.compliance]
    return out


def test_a_book_given_column_by_column_decides_as_one_given_position_by_position() -> None:
    """The engine passes its book as one `HeldBook` (issue 10's speed work): the same decision as the
    `HeldPosition`s, in the same order, and both together read `book` first."""
    rows = [{k: v[i] for k, v in _HELD.items()} for i in range(2)]
    positions = [_core.HeldPosition(**row) for row in rows]
    columns = _core.HeldBook(**_HELD)
    assert len(columns) == 2
    entry = {"entry_expiry": THURSDAY.toordinal() + 1, "group_symbols": ["AAA", "BBB"]}
    one_by_one = _decided(_input(book=positions, **entry))
    assert _decided(_input(book=[], held=columns, **entry)) == one_by_one
    first = _core.HeldBook(**{k: v[1:] for k, v in _HELD.items()})
    assert _decided(_input(book=positions[:1], held=first, **entry)) == one_by_one


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"strike": [95.0]}, "strike"),
        ({"kind": ["put", "bond"]}, "kind[1]"),
        ({"band_high": [None, None]}, "band[0]"),
    ],
)
def test_a_bad_book_column_is_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        _core.HeldBook(**{**_HELD, **changes})
    assert err.value.field == field
    nan = _core.HeldBook(**{**_HELD, "premium": [1.0, float("nan")]})
    with pytest.raises(InvalidInputError) as err:
        _input(held=nan)
    assert err.value.field == "book[1].premium"


def test_decisions_sharing_one_valuation_decide_as_each_valuing_alone(market: MarketData) -> None:
    """Engine.keep_equities (the backtest's day): the decisions of one market and day share one valuation of the
    accounts, the very equities each would compute alone, until forget_equities after the portfolio changes."""

    def fresh() -> tuple[Portfolio, Engine]:
        portfolio = Portfolio.create("p", 1_000_000, dt.datetime(2024, 1, 2, 9, 30))
        spot = market.bars_for("AAA").last_close
        expiry = THURSDAY + dt.timedelta(days=8)
        portfolio.positions["x"] = Position(
            "x", "p/rev-1", "AAA", "put", -3.0, THURSDAY, round(spot * 0.9), expiry, 2.0
        )
        portfolio.positions["y"] = Position("y", "p/com-1", "BBB", "stock", 300.0, THURSDAY, cost_basis=45.0)
        return portfolio, Engine(symbols={"gen": ("AAA", "BBB"), "rev": ("AAA", "BBB"), "com": ("AAA", "BBB")})

    when = dt.datetime.combine(THURSDAY, dt.time(15, 45))
    asks = [("p/gen-1", "AAA"), ("p/rev-1", "AAA"), ("p/com-1", "BBB"), ("p/gen-1", "BBB")]
    alone_portfolio, alone = fresh()
    shared_portfolio, shared = fresh()
    shared.keep_equities(shared_portfolio)
    for account_id, symbol in asks:
        one = alone.decide(alone_portfolio, account_id, symbol, when, market)
        other = shared.decide(shared_portfolio, account_id, symbol, when, market)
        assert one == other
    assert shared._equity_memo is not None  # the valuation was shared, not made per decision
    # The portfolio changes (a fill): forgotten, the next decision values it again, as a decision alone would.
    for p in (alone_portfolio, shared_portfolio):
        p.book_pnl("p/gen-1", -250_000, when, "loss")
    shared.forget_equities()
    one = alone.decide(alone_portfolio, "p/gen-1", "AAA", when, market)
    assert shared.decide(shared_portfolio, "p/gen-1", "AAA", when, market) == one
    shared.keep_equities(None)
    assert shared._equity_memo is None


def _entered(inp: _core.DecisionInput) -> tuple[Any, ...]:
    """An entry valued over flat scenarios (strike and size read the bars' ATR; R04 then rejects the symbol): the
    notes cite the numbers."""
    engine = Engine()
    flat = _core.ScenarioSet(
        np.zeros((20, 1)), spot=[103.0], iv=[0.3], iv_move_sensitivity=0.0, horizon=1 / 365, rate=0.0
    )
    d = engine.decider.decide(inp, engine.rules.compiled, scenarios=lambda: flat, group=None)
    assert any(note.startswith("ES(97.5%)") for note in d.notes)
    return (d.action, d.notes, [(r.code, r.message) for r in d.compliance])


def test_the_bars_are_read_in_place_and_checked_when_read() -> None:
    """The input reads the bars' arrays in place (issue 10, third round: no copy per decision): a strided array
    decides as a contiguous one, and an array written to NaN after the input was built is refused by name when
    the decision reads it, never read as a price."""
    n = 30
    base = np.linspace(100.0, 103.0, n)
    spread = np.empty(2 * n)
    spread[::2] = base
    assert _entered(_input(close=spread[::2])) == _entered(_input(close=base.copy()))
    close = base.copy()
    inp = _input(close=close)
    close[-1] = np.nan
    with pytest.raises(InvalidInputError) as err:
        _entered(inp)
    assert err.value.field == "close"
    close[-1] = base[-1]
    assert _entered(inp) == _entered(_input(close=base.copy()))
