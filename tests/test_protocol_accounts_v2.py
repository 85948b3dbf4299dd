"""Accounts, spec v2 (PROTOCOL section 1): allocation exact to the cent, merging that closes positions at the
caller's marks, and quarterly reinvestment of realised gains only, on the quarter's last NYSE trading day."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest

from allsuse.errors import InvalidInputError
from allsuse.protocol import Portfolio, Position, allocate
from allsuse.protocol.accounts import AccountGroup, Transaction

AT = dt.datetime(2024, 1, 5, 16, 0)
CENT = Decimal("0.01")
QUARTER_END = dt.datetime(2024, 3, 28, 16, 0)  # Thursday: Friday March 29, 2024 is Good Friday


def reconciles(p: Portfolio) -> bool:
    """Every cash change is a transaction: the flows add up to the cash held (reinvestment and LEAPS records
    move money inside an account, between its cash and its sleeve)."""
    flows = sum((t.amount for t in p.transactions if t.kind not in ("reinvestment", "leaps")), Decimal("0.00"))
    return flows == sum((a.balance + a.leaps for a in p.accounts.values()), Decimal("0.00"))


def short(pid: str, account_id: str, kind: str, contracts: int, strike: float, premium: float) -> Position:
    """A short option position of `contracts` contracts sold at `premium` per share."""
    return Position(pid, account_id, "NVDA", kind, -float(contracts), AT.date(), strike, dt.date(2024, 1, 12), premium)


def stock(pid: str, account_id: str, shares: int, basis: float, symbol: str = "NVDA") -> Position:
    """A stock lot of `shares` shares bought at `basis`."""
    return Position(pid, account_id, symbol, "stock", float(shares), AT.date(), cost_basis=basis)


# --- 1. allocation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "total",
    [100_000.01, 0.03, 33_333.33, 1e9 + 0.07, "0.01", 0.25, 12_345.67, 999_999.99, Decimal("7"), 100_000],
)
def test_allocate_adds_up_to_the_total_and_follows_the_rounding_rule(total: Any) -> None:
    t = Decimal(str(total))
    a = allocate(total)
    assert a["gen"].allocation + a["rev"].allocation + a["com"].allocation == t
    assert a["gen"].allocation == (t * Decimal("0.40")).quantize(CENT, rounding=ROUND_DOWN)
    assert a["rev"].allocation == (t * Decimal("0.30")).quantize(CENT, rounding=ROUND_DOWN)
    assert a["com"].allocation == t - a["gen"].allocation - a["rev"].allocation
    for v in a.values():
        assert v.buffer == (v.allocation * Decimal("0.05")).quantize(CENT, rounding=ROUND_HALF_EVEN)
        assert v.deployable == v.allocation - v.buffer
        for amount in (v.allocation, v.buffer, v.deployable):
            assert amount == amount.quantize(CENT) and amount >= 0


def test_allocate_awkward_totals_by_hand() -> None:
    a = allocate(33_333.33)  # 13,333.332 and 9,999.999 round down; Com-Acc takes the 0.009 left over
    assert [a[k].allocation for k in ("gen", "rev", "com")] == [
        Decimal("13333.33"),
        Decimal("9999.99"),
        Decimal("10000.01"),
    ]
    a = allocate(0.03)
    assert [a[k].allocation for k in ("gen", "rev", "com")] == [Decimal("0.01"), Decimal("0.00"), Decimal("0.02")]
    a = allocate(1e9 + 0.07)
    assert [a[k].allocation for k in ("gen", "rev", "com")] == [
        Decimal("400000000.02"),
        Decimal("300000000.02"),
        Decimal("300000000.03"),
    ]
    a = allocate("100000.01")
    assert [a[k].allocation for k in ("gen", "rev", "com")] == [
        Decimal("40000.00"),
        Decimal("30000.00"),
        Decimal("30000.01"),
    ]
    assert a["com"].buffer == Decimal("1500.00") and a["com"].deployable == Decimal("28500.01")


@pytest.mark.parametrize("bad", ["100000.005", 0.001, Decimal("0.015"), "1e-3", 100_000.001])
def test_allocate_refuses_a_fraction_of_a_cent(bad: Any) -> None:
    with pytest.raises(InvalidInputError) as err:
        allocate(bad)
    assert err.value.field == "total"
    with pytest.raises(InvalidInputError) as err:
        Portfolio.create("p1", bad, AT)
    assert err.value.field == "total"


@pytest.mark.parametrize("bad", ["0.005", 0.001, "12.345"])
def test_deposit_and_withdrawal_refuse_a_fraction_of_a_cent(bad: Any) -> None:
    p = Portfolio.create("p1", 100_000, AT)
    n = len(p.transactions)
    with pytest.raises(InvalidInputError) as err:
        p.deposit("p1/gen-1", bad, AT)
    assert err.value.field == "amount"
    with pytest.raises(InvalidInputError) as err:
        p.withdraw("p1/gen-1", bad, AT)
    assert err.value.field == "amount"
    assert len(p.transactions) == n and p.account("p1/gen-1").balance == Decimal("40000.00")


# --- 2. merging -----------------------------------------------------------------------------------------------


def forked(p: Portfolio) -> AccountGroup:
    """Forks p1/gen-1 once: a new group of a Gen-Acc and a Com-Acc with 30,000 each."""
    p.book_pnl("p1/gen-1", 60_000, AT, "premium")
    (group,) = p.check_forks(AT)
    return group


def state(p: Portfolio) -> tuple[Any, ...]:
    """Everything a failed check must leave untouched."""
    return (
        {i: (a.balance, a.leaps, a.base, a.peak, a.quarter_realised) for i, a in p.accounts.items()},
        {i: (x.quantity, x.account_id) for i, x in p.positions.items()},
        {i: g.merged for i, g in p.groups.items()},
        len(p.transactions),
    )


def test_merge_closes_every_position_at_its_mark_then_moves_the_whole_balance() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    group = forked(p)
    gen, com = group.account_ids
    p.open_position(short("put-1", gen, "put", 2, 100.0, 1.5), AT, "sold 2 puts")  # +300.00 cash
    p.open_position(stock("stk-1", com, 100, 50.0), AT, "bought 100 shares")  # -5,000.00 cash
    p.open_position(short("call-1", com, "call", 1, 55.0, 0.8), AT, "sold 1 call")  # +80.00 cash
    p.open_position(short("put-main", "p1/gen-1", "put", 1, 90.0, 1.0), AT, "parent's put")
    # cash in the group: 30,300 + 25,080 = 55,380; take it to exactly 500,400 of cash
    p.book_pnl(gen, Decimal("445020.00"), AT, "premium")
    marks: dict[str, Any] = {"put-1": Decimal("3.10"), "stk-1": 49.5, "call-1": "0.25", "put-main": 2.0}
    # at these marks the group is worth 500,400 - 620 + 4,950 - 25 = 504,705: it merges
    later = AT + dt.timedelta(days=3)
    merged = p.check_merges(later, marks)
    assert [g.id for g in merged] == [group.id] and group.merged
    assert not any(x.account_id in group.account_ids for x in p.positions.values())
    assert "put-main" in p.positions  # the parent's own positions are not touched
    closes = [t for t in p.transactions if t.kind == "close"]
    assert {(t.account_id, t.amount) for t in closes} == {
        (gen, Decimal("-620.00")),
        (com, Decimal("4950.00")),
        (com, Decimal("-25.00")),
    }
    assert all(t.at == later and "merge" in t.reason for t in closes)
    assert p.account("p1/com-1").balance == Decimal("30000.00") + Decimal("504705.00")
    assert all(p.accounts[i].balance == 0 and p.accounts[i].leaps == 0 for i in group.account_ids)
    merges = [t for t in p.transactions if t.kind == "merge"]
    assert sum(t.amount for t in merges) == 0 and all(t.at == later and t.reason for t in merges)
    assert reconciles(p)
    assert p.check_merges(later, marks) == []  # merged once


def test_merge_threshold_counts_positions_at_their_marks() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    group = forked(p)
    gen = group.account_ids[0]
    p.open_position(short("put-1", gen, "put", 10, 100.0, 1.0), AT, "sold 10 puts")  # +1,000.00
    p.book_pnl(gen, Decimal("439000.00"), AT, "premium")  # cash in the group: 500,000.00
    before = state(p)
    assert p.check_merges(AT, {"put-1": "0.01"}) == []  # 500,000 - 10 x 100 x 0.01 = 499,990
    assert state(p) == before
    (g,) = p.check_merges(AT, {"put-1": 0})  # worthless: the group is worth its cash
    assert g.id == group.id and "put-1" not in p.positions
    assert p.account("p1/com-1").balance == Decimal("530000.00")


def test_merge_without_a_mark_for_a_position_changes_nothing() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    group = forked(p)
    gen, com = group.account_ids
    p.open_position(short("put-1", gen, "put", 1, 100.0, 1.0), AT, "sold a put")
    p.open_position(stock("stk-1", com, 10, 20.0), AT, "bought shares")
    p.book_pnl(gen, 600_000, AT, "premium")
    before = state(p)
    with pytest.raises(InvalidInputError) as err:
        p.check_merges(AT, {"put-1": 0.5})
    assert err.value.field == "marks[stk-1]" and "stk-1" in str(err.value)
    assert state(p) == before
    for bad in (-0.01, float("nan"), float("inf"), "abc"):
        with pytest.raises(InvalidInputError) as err:
            p.check_merges(AT, {"put-1": bad, "stk-1": 20})
        assert err.value.field == "marks[put-1]"
        assert state(p) == before


def test_no_merged_group_keeps_a_position_open() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    group = forked(p)
    p.positions["put-1"] = short("put-1", group.account_ids[0], "put", 1, 100.0, 1.0)
    p.book_pnl(group.account_ids[0], 600_000, AT, "premium")
    merged = p.check_merges(AT)  # no marks: the put cannot be closed, so the group cannot merge yet
    held = {x.account_id for x in p.positions.values()}
    assert not any(set(g.account_ids) & held for g in merged)
    assert all(not (g.merged and set(g.account_ids) & held) for g in p.groups.values())


def test_merge_without_marks_merges_only_groups_holding_cash() -> None:
    p = Portfolio.create("p1", 200_000, AT)
    p.book_pnl("p1/gen-1", 60_000, AT, "premium")
    (first,) = p.check_forks(AT)
    p.book_pnl("p1/gen-1", 60_000, AT, "premium")
    (second,) = p.check_forks(AT)
    p.open_position(short("put-1", first.account_ids[0], "put", 1, 100.0, 1.0), AT, "sold a put")
    p.book_pnl(first.account_ids[0], 600_000, AT, "premium")
    p.book_pnl(second.account_ids[0], 600_000, AT, "premium")
    merged = p.check_merges(AT)  # no prices known: the group holding a put cannot be valued yet
    assert [g.id for g in merged] == [second.id]
    assert not first.merged and "put-1" in p.positions
    assert [g.id for g in p.check_merges(AT, {"put-1": 0.1})] == [first.id]
    assert not p.positions and reconciles(p)


# --- 3. realised P&L and reinvestment ----------------------------------------------------------------------------


def test_premium_of_an_open_option_is_cash_but_not_realised() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.book_pnl("p1/rev-1", 1_000, AT, "premium")  # cash: not realised by itself
    assert p.account("p1/rev-1").quarter_realised == 0
    assert p.reinvest_quarter(QUARTER_END) == []
    tx = p.open_position(short("put-1", "p1/rev-1", "put", 2, 100.0, 2.0), AT, "sold 2 puts")
    assert (tx.kind, tx.amount, tx.realised) == ("premium", Decimal("400.00"), Decimal("0.00"))
    assert p.account("p1/rev-1").balance == Decimal("31400.00")
    assert p.account("p1/rev-1").quarter_realised == 0
    assert p.reinvest_quarter(QUARTER_END) == []


def test_closing_realises_premium_less_the_buy_back() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.open_position(short("put-1", "p1/rev-1", "put", 2, 100.0, 2.0), AT, "sold 2 puts")
    tx = p.close_position("put-1", "0.50", AT, "take profit")
    assert (tx.kind, tx.amount, tx.realised) == ("close", Decimal("-100.00"), Decimal("300.00"))
    assert "put-1" not in p.positions
    txs = p.reinvest_quarter(QUARTER_END)
    by = {(t.account_id, t.kind): t.amount for t in txs}
    assert by == {("p1/rev-1", "reinvestment"): Decimal("225.00"), ("p1/rev-1", "leaps"): Decimal("75.00")}
    assert all(t.at == QUARTER_END and "realised" in t.reason for t in txs)
    rev = p.account("p1/rev-1")
    assert rev.leaps == Decimal("75.00") and rev.balance == Decimal("30225.00")
    assert p.reinvest_quarter(QUARTER_END) == []  # the quarter's gains were consumed
    assert reconciles(p)


def test_partial_closes_realise_exactly_what_the_position_made() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.open_position(short("put-1", "p1/com-1", "put", 3, 100.0, 1.235), AT, "sold 3 puts")  # +370.50
    a = p.close_position("put-1", 0.333, AT, "reduce", quantity=1)  # -33.30
    assert p.positions["put-1"].quantity == -2
    b = p.expire_position("put-1", AT)
    assert (b.kind, b.amount) == ("expiry", Decimal("0.00"))
    assert a.realised + b.realised == Decimal("370.50") - Decimal("33.30")
    assert p.account("p1/com-1").quarter_realised == Decimal("337.20")
    with pytest.raises(InvalidInputError) as err:
        p.close_position("put-1", 0, AT, "again")
    assert err.value.field == "position_id"


def test_close_refuses_bad_input_and_changes_nothing() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.open_position(short("put-1", "p1/gen-1", "put", 2, 100.0, 1.0), AT, "sold 2 puts")
    before = state(p)
    for kwargs, name in (
        ({"price": -1}, "price"),
        ({"price": float("nan")}, "price"),
        ({"price": 1, "quantity": 3}, "quantity"),
        ({"price": 1, "quantity": 0}, "quantity"),
    ):
        with pytest.raises(InvalidInputError) as err:
            p.close_position("put-1", at=AT, reason="x", **kwargs)
        assert err.value.field == name
    assert state(p) == before


def test_open_position_refuses_bad_input() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.open_position(short("put-1", "p1/gen-1", "put", 1, 100.0, 1.0), AT, "sold a put")
    before = state(p)
    for pos, name in (
        (short("put-1", "p1/gen-1", "put", 1, 100.0, 1.0), "position.id"),
        (short("put-2", "p1/nope", "put", 1, 100.0, 1.0), "account_id"),
        (short("put-2", "p1/gen-1", "put", 0, 100.0, 1.0), "position.quantity"),
        (short("put-2", "p1/gen-1", "put", 1, 100.0, -1.0), "position.premium"),
        (stock("stk-2", "p1/gen-1", -10, 10.0), "position.quantity"),
        (stock("stk-2", "p1/gen-1", 10, float("nan")), "position.cost_basis"),
    ):
        with pytest.raises(InvalidInputError) as err:
            p.open_position(pos, AT, "bad")
        assert err.value.field == name
    assert state(p) == before


def test_put_assignment_realises_the_premium_and_the_shares_stay_unrealised() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.open_position(short("put-1", "p1/rev-1", "put", 1, 100.0, 2.5), AT, "sold a put")
    tx = p.assign("put-1", AT, "put assigned", stock_id="stk-1")
    assert (tx.kind, tx.amount, tx.realised) == ("assignment", Decimal("-10000.00"), Decimal("250.00"))
    s = p.positions["stk-1"]
    assert (s.kind, s.quantity, s.cost_basis, s.account_id) == ("stock", 100.0, 100.0, "p1/rev-1")
    assert "put-1" not in p.positions
    # the covered call on the shares is called away above the basis
    p.open_position(short("call-1", "p1/rev-1", "call", 1, 105.0, 1.2), AT, "sold a call")
    tx = p.assign("call-1", AT, "call assigned")
    assert (tx.amount, tx.realised) == (Decimal("10500.00"), Decimal("120.00") + Decimal("500.00"))
    assert not p.positions
    assert p.account("p1/rev-1").quarter_realised == Decimal("870.00")
    assert p.account("p1/rev-1").balance == Decimal("30000.00") + Decimal("870.00")
    assert reconciles(p)


def test_call_assignment_needs_the_shares() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.open_position(stock("stk-1", "p1/com-1", 50, 10.0), AT, "bought")
    p.open_position(short("call-1", "p1/com-1", "call", 1, 12.0, 0.3), AT, "sold a call")
    before = state(p)
    with pytest.raises(InvalidInputError) as err:
        p.assign("call-1", AT, "call assigned")
    assert err.value.field == "position_id"
    assert state(p) == before
    p.open_position(short("put-9", "p1/com-1", "put", 1, 12.0, 0.3), AT, "sold a put")
    with pytest.raises(InvalidInputError) as err:
        p.assign("put-9", AT, "put assigned")  # the shares bought need a position id
    assert err.value.field == "stock_id" and "put-9" in p.positions


def test_call_assignment_sells_lots_first_in_first_out() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.open_position(stock("stk-1", "p1/com-1", 60, 10.0), AT, "bought")
    p.open_position(stock("stk-2", "p1/com-1", 100, 11.0), AT, "bought")
    p.open_position(stock("stk-3", "p1/com-1", 100, 9.0, symbol="AAPL"), AT, "bought")
    p.open_position(short("call-1", "p1/com-1", "call", 1, 12.0, 0.3), AT, "sold a call")
    tx = p.assign("call-1", AT, "call assigned")
    # 60 shares from stk-1 (+2.00 each) and 40 from stk-2 (+1.00 each), plus the 30.00 premium
    assert (tx.amount, tx.realised) == (Decimal("1200.00"), Decimal("120.00") + Decimal("40.00") + Decimal("30.00"))
    assert "stk-1" not in p.positions and p.positions["stk-2"].quantity == 60
    assert p.positions["stk-3"].quantity == 100
    assert reconciles(p)


def test_realise_records_pnl_without_moving_cash() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    tx = p.realise("p1/rev-1", "123.45", AT, "option expired worthless")
    assert (tx.kind, tx.amount, tx.realised, tx.at) == ("realised", Decimal("0.00"), Decimal("123.45"), AT)
    assert p.account("p1/rev-1").balance == Decimal("30000.00")
    assert p.account("p1/rev-1").quarter_realised == Decimal("123.45")
    with pytest.raises(InvalidInputError) as err:
        p.realise("p1/rev-1", "0.001", AT, "x")
    assert err.value.field == "pnl"


@pytest.mark.parametrize(
    ("when", "runs"),
    [
        (dt.datetime(2024, 3, 27, 16, 0), False),
        (dt.datetime(2024, 3, 28, 16, 0), True),  # Good Friday follows
        (dt.datetime(2024, 3, 29, 16, 0), False),  # Good Friday: no session
        (dt.datetime(2024, 3, 31, 16, 0), False),
        (dt.datetime(2024, 1, 31, 16, 0), False),  # a month's last trading day, not a quarter's
        (dt.datetime(2024, 6, 28, 16, 0), True),
        (dt.datetime(2024, 6, 30, 16, 0), False),  # Sunday
        (dt.datetime(2025, 6, 30, 9, 0), True),  # Monday
        (dt.datetime(2024, 9, 30, 16, 0), True),
        (dt.datetime(2024, 12, 30, 16, 0), False),
        (dt.datetime(2024, 12, 31, 16, 0), True),
        (dt.datetime(2024, 3, 28, 20, 30, tzinfo=dt.UTC), True),  # 16:30 US/Eastern on March 28
        (dt.datetime(2024, 3, 29, 2, 0, tzinfo=dt.UTC), True),  # still March 28 in New York
        (dt.datetime(2024, 3, 28, 3, 0, tzinfo=dt.UTC), False),  # March 27 in New York
    ],
)
def test_reinvestment_runs_on_the_quarters_last_nyse_trading_day_only(when: dt.datetime, runs: bool) -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.account("p1/rev-1").quarter_realised = Decimal("1000.00")  # what the quarter's closes realised
    n = len(p.transactions)
    txs = p.reinvest_quarter(when)
    assert bool(txs) is runs
    if not runs:
        assert txs == [] and len(p.transactions) == n
        assert p.account("p1/rev-1").quarter_realised == Decimal("1000.00")


def test_reinvestment_is_rev_and_com_only_and_a_losing_quarter_reinvests_nothing() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.realise("p1/gen-1", 5_000, AT, "closed")
    p.realise("p1/com-1", "400.02", AT, "closed")
    p.realise("p1/rev-1", -50, AT, "stop-loss")
    txs = p.reinvest_quarter(QUARTER_END)
    by = {(t.account_id, t.kind): t.amount for t in txs}
    # 25% of 400.02 is 100.005: the LEAPS share is rounded to the cent and contracts take the rest
    assert by == {("p1/com-1", "reinvestment"): Decimal("300.02"), ("p1/com-1", "leaps"): Decimal("100.00")}
    assert all(isinstance(t, Transaction) and t.at == QUARTER_END for t in txs)
    # the next quarter starts from zero for every account
    assert all(a.quarter_realised == 0 for a in p.accounts.values())
    assert reconciles(p)


def test_merged_accounts_are_not_reinvested() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    group = forked(p)
    com = group.account_ids[1]
    p.realise(com, 1_000, AT, "closed")
    p.book_pnl(group.account_ids[0], 500_000, AT, "premium")
    assert p.check_merges(AT, {}) == [group]
    assert p.reinvest_quarter(QUARTER_END) == []


def test_every_fork_merge_reinvestment_withdrawal_and_deposit_is_recorded_with_time_and_reason() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.deposit("p1/rev-1", 500, AT, "top-up")
    p.withdraw("p1/rev-1", 200, AT, "income")
    group = forked(p)
    p.realise("p1/rev-1", 100, AT, "closed")
    p.reinvest_quarter(QUARTER_END)
    p.book_pnl(group.account_ids[0], 500_000, AT, "premium")
    p.check_merges(QUARTER_END, {})
    kinds = {t.kind for t in p.transactions}
    assert {"deposit", "withdrawal", "fork", "merge", "reinvestment", "leaps"} <= kinds
    assert all(isinstance(t.at, dt.datetime) and t.reason for t in p.transactions)
    with pytest.raises(InvalidInputError, match="R18_NO_WITHDRAWAL"):
        p.withdraw("p1/com-1", 1, AT)
    assert reconciles(p)


def test_reinvestment_outside_the_nyse_calendar_names_at() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    with pytest.raises(InvalidInputError) as err:
        p.reinvest_quarter(dt.datetime(1997, 3, 31, 16, 0))
    assert err.value.field == "at"
    assert p.reinvest_quarter(dt.datetime(1997, 2, 28, 16, 0)) == []  # no quarter's month: nothing to look up
