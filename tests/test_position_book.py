"""The engine's PositionBook (issue 10, third speed round): the positions as the core reads them, kept between
decisions and re-read only where they changed. A decision made after the portfolio changed must be the decision a
fresh book gives (a stale book shows as a difference), and every change a caller can make is noticed: a position
added, removed or replaced, a field set in place (quantity, strike, band), a merged group, another portfolio."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from allsuse import _core
from allsuse.errors import InvalidInputError
from allsuse.protocol import Engine, Portfolio, Position
from allsuse.protocol.accounts import AccountGroup
from allsuse.protocol.engine import Decision, Effects, Order, _roll_expiry
from allsuse.protocol.market import MarketData
from allsuse.rules import RuleResult
from tests.market_support import IV_GREEN, MONDAY, THURSDAY, at, green, make_bars, trend

GEN, REV = "p1/gen-1", "p1/rev-1"


def _market(day: dt.date) -> MarketData:
    return MarketData(
        bars={"NVDA": green(day), "AMD": make_bars(day, trend(300, 40.0, 0.002, 0.003))},
        iv={"NVDA": IV_GREEN, "AMD": 0.5},
        vix=18.0,
        sectors={"NVDA": "tech", "AMD": "tech"},
    )


def _portfolio() -> Portfolio:
    p = Portfolio.create("p1", 1_000_000, at(MONDAY) - dt.timedelta(days=30))
    spot = green(THURSDAY).last_close
    expiry = dt.date(2024, 3, 8)
    for pos in (
        Position("g-put", GEN, "NVDA", "put", -2.0, MONDAY, round(spot * 1.01), expiry, 2.0, iv=0.4),
        Position("r-put", REV, "AMD", "put", -5.0, MONDAY, 40.0, expiry, 1.0, iv=0.5),
        Position("r-stock", REV, "NVDA", "stock", 100.0, MONDAY, cost_basis=spot * 0.9),
    ):
        p.positions[pos.id] = pos
    return p


def _fields(d: Decision) -> dict[str, Any]:
    record = dataclasses.asdict(d)
    record.pop("id")
    return record


def _both(
    change: Callable[[Portfolio], None], account: str = GEN, symbol: str = "NVDA"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(before, after with the warm book, after with a fresh book): two engines decide on copies of one portfolio,
    the portfolio changes, and the second engine's book is replaced by a new one before deciding again."""
    first, second = _portfolio(), _portfolio()
    warm, cold = Engine(), Engine()
    m = _market(THURSDAY)
    before = warm.decide(first, account, symbol, at(THURSDAY), m)
    cold.decide(second, account, symbol, at(THURSDAY), m)
    change(first)
    change(second)
    after = warm.decide(first, account, symbol, at(THURSDAY), m)
    cold._book = _core.PositionBook()
    fresh = cold.decide(second, account, symbol, at(THURSDAY), m)
    return _fields(before), _fields(after), _fields(fresh)


def _set_quantity(p: Portfolio) -> None:
    p.positions["g-put"].quantity = -1.0


def _add(p: Portfolio) -> None:
    p.positions["g-call"] = Position(
        "g-call", GEN, "NVDA", "stock", 300.0, MONDAY, cost_basis=green(THURSDAY).last_close * 1.2
    )


def _remove(p: Portfolio) -> None:
    del p.positions["g-put"]


def _replace(p: Portfolio) -> None:
    old = p.positions["g-put"]
    p.positions["g-put"] = dataclasses.replace(old, strike=old.strike * 0.9, premium=0.5)


def _strike(p: Portfolio) -> None:
    p.positions["g-put"].strike *= 0.95


def _merge_rev(p: Portfolio) -> None:
    p.groups["p1/fork"] = AccountGroup("p1/fork", "p1/main", [REV], merged=True)
    p.accounts[REV].group_id = "p1/fork"


def _reorder(p: Portfolio) -> None:
    items = list(p.positions.items())
    p.positions.clear()
    p.positions.update(reversed(items))


@pytest.mark.parametrize(
    "change",
    [_set_quantity, _add, _remove, _replace, _strike, _reorder],
    ids=["quantity set in place", "position added", "position removed", "position replaced", "strike", "order"],
)
def test_a_decision_after_a_change_is_a_fresh_books(change: Callable[[Portfolio], None]) -> None:
    before, after, fresh = _both(change)
    assert after == fresh
    if change is not _reorder:  # the change shows in the decision, so a stale book would have been caught
        assert fresh != before


def test_a_merged_group_leaves_the_book() -> None:
    # Rev's positions stop counting in the portfolio's book: the ES of Gen's roll no longer holds Rev's.
    before, after, fresh = _both(_merge_rev, account=GEN, symbol="NVDA")
    assert after == fresh
    assert fresh["es_before"] != before["es_before"]


def test_a_balance_change_is_read_by_the_next_decision() -> None:
    def deposit(p: Portfolio) -> None:
        p.deposit(GEN, 500_000, at(THURSDAY) - dt.timedelta(hours=1))

    before, after, fresh = _both(deposit, account=GEN, symbol="NVDA")
    assert after == fresh and fresh != before


def test_another_portfolio_object_is_read_whole() -> None:
    engine, cold = Engine(), Engine()
    m = _market(THURSDAY)
    one = _portfolio()
    engine.decide(one, GEN, "NVDA", at(THURSDAY), m)
    other = _portfolio()
    other.positions["g-put"].quantity = -1.0
    other_copy = copy.deepcopy(other)
    after = engine.decide(other, GEN, "NVDA", at(THURSDAY), m)
    fresh = cold.decide(other_copy, GEN, "NVDA", at(THURSDAY), m)
    assert _fields(after) == _fields(fresh)


def test_the_book_reads_a_position_once_until_it_changes() -> None:
    p = _portfolio()
    book = _core.PositionBook()
    m = _market(THURSDAY)

    def held() -> _core.HeldBook:
        return book.held(
            p.positions, account_id=GEN, symbol="NVDA", merged=[], market=m, roll_expiry=_roll_expiry, band=_no_band
        )

    first = held()
    assert book.reads == 3 and len(book) == 3 and len(first) == 3
    assert first.symbols == ["AMD", "NVDA"] and first.own_symbols == ["NVDA"] and first.column == 1
    held()
    assert book.reads == 3  # nothing changed: nothing read again
    p.positions["g-put"].quantity = -3.0
    held()
    assert book.reads == 4  # the one position set in place
    p.positions["g-put"].strike = p.positions["g-put"].strike + 0.0  # an equal value, but another object
    held()
    assert book.reads == 5
    del p.positions["r-put"]
    assert len(held()) == 2 and len(book) == 2
    # A band that is not a plain value (a list can change in place) is read at every decision.
    p.positions["g-put"].band = [40.0, 50.0]  # type: ignore[assignment]
    reads = book.reads
    held()
    held()
    assert book.reads == reads + 2
    # Merged accounts' positions leave the book unless they are the deciding account's.
    only = book.held(
        p.positions, account_id=GEN, symbol="NVDA", merged=[REV], market=m, roll_expiry=_roll_expiry, band=_no_band
    )
    assert len(only) == 1 and only.symbols == ["NVDA"]


def _no_band(position: Position) -> tuple[float, float] | None:
    return None


def test_bad_positions_are_named() -> None:
    m = _market(THURSDAY)

    def held(pos: Position) -> _core.HeldBook:
        return _core.PositionBook().held(
            {pos.id: pos}, account_id=GEN, symbol="NVDA", merged=[], market=m, roll_expiry=_roll_expiry, band=_no_band
        )

    good = Position("x", GEN, "NVDA", "put", -1.0, MONDAY, 100.0, dt.date(2024, 3, 8), 1.0)
    with pytest.raises(InvalidInputError) as kind:
        held(dataclasses.replace(good, kind="future"))
    assert kind.value.field == "kind[0]"
    with pytest.raises(InvalidInputError) as quantity:
        held(dataclasses.replace(good, quantity="two"))  # type: ignore[arg-type]
    assert quantity.value.field == "positions[0].quantity"
    with pytest.raises(InvalidInputError) as band:
        held(dataclasses.replace(good, band=(40.0, None)))  # type: ignore[arg-type]
    assert band.value.field == "band[0]"
    with pytest.raises(InvalidInputError) as name:
        held(dataclasses.replace(good, id=7))  # type: ignore[arg-type]
    assert name.value.field == "positions[0].id"
    with pytest.raises(InvalidInputError) as missing:  # a symbol the market has no bars for: as the market says
        held(dataclasses.replace(good, symbol="TSLA"))
    assert missing.value.field == "iv"
    # A non-finite number is refused when the decision's input is checked, as before.
    engine = Engine()
    p = _portfolio()
    p.positions["g-put"].premium = float("nan")
    with pytest.raises(InvalidInputError):
        engine.decide(p, GEN, "NVDA", at(THURSDAY), m)


def test_orders_and_verdicts_made_by_the_core_are_the_classes_own() -> None:
    engine = Engine()
    p = Portfolio.create("p1", 1_000_000, at(MONDAY) - dt.timedelta(days=30))
    d = engine.decide(p, GEN, "NVDA", at(THURSDAY), _market(THURSDAY))
    assert d.action == "OPEN_PUT" and d.order is not None and d.compliance
    o = d.order
    assert o == Order(o.kind, o.side, o.strike, o.expiry, o.contracts, o.limit_price, o.delta, o.premium, o.band)
    assert type(o) is Order and isinstance(o.expiry, dt.date) and isinstance(o.contracts, int)
    assert o.band is None or (type(o.band) is tuple and len(o.band) == 2)
    assert all(type(c) is Order for c in d.orders) and sum(c.contracts for c in d.orders) == o.contracts
    for r in d.compliance:
        assert type(r) is RuleResult
        assert r == RuleResult(code=r.code, severity=r.severity, passed=r.passed, message=r.message)
        assert list(vars(r)) == [f.name for f in dataclasses.fields(RuleResult)]
    assert list(vars(o)) == [f.name for f in dataclasses.fields(Order)]
    # The decision and its effects carry exactly their fields, as their classes would make them.
    assert list(vars(d)) == [f.name for f in dataclasses.fields(Decision)]
    assert d.effects is not None and list(vars(d.effects)) == [f.name for f in dataclasses.fields(Effects)]
    assert d.effects == Effects(**vars(d.effects)) and d == Decision(**vars(d))
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.action = "HOLD"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.strike = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("seed", range(6))
def test_random_changes_never_leave_the_book_stale(seed: int) -> None:
    """Random sequences of changes (set in place, add, remove, replace) and decisions on random accounts and
    symbols: the warm engine decides as one whose book is new at every decision."""
    rng = np.random.default_rng(seed)
    warm, cold = Engine(), Engine()
    one, two = _portfolio(), _portfolio()
    m = _market(THURSDAY)
    spot = green(THURSDAY).last_close
    for serial in range(12):
        for p in (one, two):  # the same change to both copies
            state = np.random.default_rng((seed, serial))
            ids = sorted(p.positions)
            what = int(state.integers(4))
            if what == 0 and ids:
                p.positions[ids[int(state.integers(len(ids)))]].quantity = -float(state.integers(1, 5))
            elif what == 1:
                symbol = ("NVDA", "AMD")[int(state.integers(2))]
                owner = (GEN, REV)[int(state.integers(2))]
                strike = round((spot if symbol == "NVDA" else 40.0) * float(state.uniform(0.9, 1.1)))
                pid = f"n{serial}"
                p.positions[pid] = Position(
                    pid, owner, symbol, "put", -1.0, MONDAY, strike, dt.date(2024, 3, 8), 1.0, band=(40.0, 50.0)
                )
            elif what == 2 and ids:
                del p.positions[ids[int(state.integers(len(ids)))]]
            elif ids:
                pos = p.positions[ids[int(state.integers(len(ids)))]]
                p.positions[pos.id] = dataclasses.replace(pos, premium=pos.premium + 0.25)
        account = (GEN, REV)[int(rng.integers(2))]
        symbol = ("NVDA", "AMD")[int(rng.integers(2))]
        a = warm.decide(one, account, symbol, at(THURSDAY), m)
        cold._book = _core.PositionBook()
        b = cold.decide(two, account, symbol, at(THURSDAY), m)
        assert _fields(a) == _fields(b)
    assert one.positions.keys() == two.positions.keys()
    assert isinstance(one.account(GEN).balance, Decimal)


def test_the_books_equities_are_the_engines() -> None:
    engine = Engine()
    p = _portfolio()
    m = _market(THURSDAY)
    accounts = list(p.accounts.values())
    first = engine._book_equities(p, accounts, m, THURSDAY)
    assert first == engine.equities(p, accounts, m, THURSDAY)
    p.positions["g-put"].quantity = -4.0
    _merge_rev(p)
    p.deposit(GEN, 1000, at(THURSDAY))
    second = engine._book_equities(p, accounts, m, THURSDAY)
    assert second == engine.equities(p, accounts, m, THURSDAY) and second != first
    # The day changes the options' time to expiry.
    assert engine._book_equities(p, accounts, m, MONDAY) == engine.equities(p, accounts, m, MONDAY)
    p.positions["stray"] = Position("stray", "p1/nobody", "NVDA", "stock", 1.0, MONDAY)
    with pytest.raises(InvalidInputError) as stray:
        engine._book_equities(p, accounts, m, THURSDAY)
    assert stray.value.field == "positions"
    del p.positions["stray"]
    p.positions["tsla"] = Position("tsla", GEN, "TSLA", "stock", 1.0, MONDAY)
    with pytest.raises(InvalidInputError) as missing:
        engine._book_equities(p, accounts, m, THURSDAY)
    with pytest.raises(InvalidInputError) as expected:
        engine.equities(p, accounts, m, THURSDAY)
    assert missing.value.field == expected.value.field == "symbol"
    with pytest.raises(InvalidInputError) as short:
        engine._book.equities(
            p.positions, accounts=[GEN], cash=[], portfolio_cash=0.0, merged=[], market=m, today=1, rate=0.0
        )
    assert short.value.field == "cash"


def test_inside_keep_equities_the_book_is_checked_again_after_forget_equities() -> None:
    """Inside a keep_equities scope the portfolio changes only after forget_equities (the backtest's contract, the
    same as for the shared valuation): the book takes the positions as read until then, and reads them again
    after; another portfolio decided inside the scope is read whole, and the scope's again after it."""
    m = _market(THURSDAY)
    engines, portfolios = (Engine(), Engine()), (_portfolio(), _portfolio())
    outcomes = []
    for engine, p in zip(engines, portfolios, strict=True):
        engine.keep_equities(p)
        engine.decide(p, GEN, "NVDA", at(THURSDAY), m)
        reads = engine._book.reads
        engine.decide(p, REV, "AMD", at(THURSDAY), m)
        assert engine._book.reads == reads  # nothing changed, nothing checked again
        other = _portfolio()
        other.positions["g-put"].quantity = -1.0
        engine.decide(other, GEN, "NVDA", at(THURSDAY), m)
        assert engine._book.reads > reads
        engine.forget_equities()
        p.positions["g-put"].quantity = -1.0
        if engine is engines[1]:
            engine._book = _core.PositionBook()
        outcomes.append(_fields(engine.decide(p, GEN, "NVDA", at(THURSDAY), m)))
        engine.keep_equities(None)
    assert outcomes[0] == outcomes[1]


def test_a_decision_made_while_the_engines_book_is_in_use_reads_a_book_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the engine's book is being read (here: from inside the book's own call-back for a held put's roll
    expiry, the one place Python runs during that read), a second decision cannot borrow it: it reads a book of its
    own and decides exactly as a fresh engine does, and the first decision is not disturbed either."""
    from allsuse.protocol import engine as engine_module

    portfolio, m = _portfolio(), _market(THURSDAY)
    engine = Engine()
    nested: list[Decision] = []

    def roll_expiry_deciding_meanwhile(expiry: dt.date) -> int:
        if not nested:
            nested.append(engine.decide(portfolio, REV, "NVDA", at(THURSDAY), m))
        return _roll_expiry(expiry)

    monkeypatch.setattr(engine_module, "_roll_expiry", roll_expiry_deciding_meanwhile)
    outer = engine.decide(portfolio, GEN, "NVDA", at(THURSDAY), m)
    monkeypatch.undo()
    assert len(nested) == 1, "the roll expiry was not asked for while the book was read"
    assert _fields(nested[0]) == _fields(Engine().decide(_portfolio(), REV, "NVDA", at(THURSDAY), m))
    assert _fields(outer) == _fields(Engine().decide(_portfolio(), GEN, "NVDA", at(THURSDAY), m))
