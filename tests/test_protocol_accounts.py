"""Accounts (PROTOCOL section 1): allocation, withdrawals, forks, merges, reinvestment, projections."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from allsuse.errors import InvalidInputError
from allsuse.protocol import Portfolio, allocate, project

AT = dt.datetime(2024, 1, 5, 16, 0)


def test_allocate_100000_matches_the_protocol_table() -> None:
    a = allocate(100_000)
    assert {k: v.allocation for k, v in a.items()} == {
        "gen": Decimal("40000.00"),
        "rev": Decimal("30000.00"),
        "com": Decimal("30000.00"),
    }
    assert {k: v.buffer for k, v in a.items()} == {
        "gen": Decimal("2000.00"),
        "rev": Decimal("1500.00"),
        "com": Decimal("1500.00"),
    }
    assert [a[k].deployable for k in ("gen", "rev", "com")] == [
        Decimal("38000.00"),
        Decimal("28500.00"),
        Decimal("28500.00"),
    ]


def test_allocate_keeps_every_cent() -> None:
    a = allocate("100000.01")
    assert sum(v.allocation for v in a.values()) == Decimal("100000.01")
    assert a["com"].allocation == Decimal("30000.01")  # Gen and Rev round down, Com-Acc takes the rest
    for v in a.values():
        assert v.allocation == v.buffer + v.deployable


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), "abc"])
def test_allocate_rejects_bad_totals(bad: object) -> None:
    with pytest.raises(InvalidInputError) as err:
        allocate(bad)  # type: ignore[arg-type]
    assert err.value.field == "total"


def test_create_records_deposits() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    assert len(p.transactions) == 3
    assert all(t.kind == "deposit" for t in p.transactions)
    assert p.equity == Decimal("100000.00")


def test_com_withdrawal_is_rejected_and_nothing_changes() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    before = (p.account("p1/com-1").balance, len(p.transactions))
    with pytest.raises(InvalidInputError, match="R18_NO_WITHDRAWAL"):
        p.withdraw("p1/com-1", 100, AT)
    assert (p.account("p1/com-1").balance, len(p.transactions)) == before
    tx = p.withdraw("p1/gen-1", 1_000, AT, reason="income")
    assert tx.amount == Decimal("-1000.00") and tx.reason == "income"
    with pytest.raises(InvalidInputError) as err:
        p.withdraw("p1/gen-1", 10**9, AT)
    assert err.value.field == "amount"


def test_fork_at_52000_surplus_seeds_26000_and_26000() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    gen = p.account("p1/gen-1")
    p.book_pnl(gen.id, 52_000, AT, "premium")
    assert p.check_forks(AT + dt.timedelta(days=1)) != []
    new_gen = next(a for a in p.accounts.values() if a.kind == "gen" and a.id != gen.id)
    new_com = next(a for a in p.accounts.values() if a.kind == "com" and a.group_id == new_gen.group_id)
    assert new_gen.balance == Decimal("26000.00")
    assert new_com.balance == Decimal("26000.00")
    assert gen.balance == Decimal("40000.00") and gen.base == Decimal("40000.00")
    forks = [t for t in p.transactions if t.kind == "fork"]
    assert len(forks) == 3 and sum(t.amount for t in forks) == 0
    assert p.equity == Decimal("152000.00")


def test_no_fork_below_threshold() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.book_pnl("p1/gen-1", 49_999.99, AT, "premium")
    assert p.check_forks(AT) == []


def test_merge_at_500000_moves_the_group_into_the_parent_com_acc() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.book_pnl("p1/gen-1", 60_000, AT, "premium")
    (group,) = p.check_forks(AT)
    new_gen = group.account_ids[0]
    p.book_pnl(new_gen, 499_999.99 - 60_000, AT, "premium")
    assert p.check_merges(AT) == []
    p.book_pnl(new_gen, 0.01, AT, "premium")
    merged = p.check_merges(AT)
    assert [g.id for g in merged] == [group.id] and group.merged
    assert p.account("p1/com-1").balance == Decimal("530000.00")
    assert all(p.accounts[i].balance == 0 for i in group.account_ids)
    assert p.equity == Decimal("600000.00")  # 40,000 + 30,000 + 530,000


def test_quarterly_reinvestment_splits_75_25_for_rev_and_com_only() -> None:
    p = Portfolio.create("p1", 100_000, AT)
    p.realise("p1/rev-1", 1_000, AT, "closed")
    p.realise("p1/com-1", 400, AT, "expired")
    p.realise("p1/gen-1", 5_000, AT, "assigned")
    assert p.reinvest_quarter(AT) == []  # January 5 is no quarter's last trading day
    quarter_end = dt.datetime(2024, 3, 28, 16, 0)  # Good Friday follows
    txs = p.reinvest_quarter(quarter_end)
    by = {(t.account_id, t.kind): t.amount for t in txs}
    assert by[("p1/rev-1", "reinvestment")] == Decimal("750.00")
    assert by[("p1/rev-1", "leaps")] == Decimal("250.00")
    assert by[("p1/com-1", "leaps")] == Decimal("100.00")
    assert not any(a == "p1/gen-1" for a, _ in by)
    assert p.account("p1/rev-1").leaps == Decimal("250.00")
    assert p.reinvest_quarter(quarter_end) == []  # the quarter's gains were consumed


def test_projection_expected_path_and_band() -> None:
    pr = project(100_000, 5, paths=500, seed=1)
    assert pr.years == [1, 2, 3, 4, 5]
    assert all(b > a for a, b in zip(pr.expected, pr.expected[1:], strict=False))
    for lo, mid, hi in zip(pr.p05, pr.p50, pr.p95, strict=True):
        assert lo <= mid <= hi
    # year 1 by hand: E[mult] = 0.6*1.1 + 0.3*1.0 + 0.1*0.8 = 1.04, 20% of returns reinvested
    annual = [(1.015**52 - 1), (1.01**52 - 1), (1.005**52 - 1)]
    start = [40_000, 30_000, 30_000]
    year1 = sum(s * (1 + r * 1.04 * 0.2) for s, r in zip(start, annual, strict=True))
    assert pr.expected[0] == pytest.approx(year1, rel=1e-12)
    assert project(100_000, 5, paths=500, seed=1) == pr
