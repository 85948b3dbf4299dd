"""The backtest's cost model: spread with a one-tick floor, commissions, interest from a constant or a CSV rate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from allsuse.backtest.costs import CostModel, RateCurve, tick_of
from allsuse.errors import InvalidInputError


def test_fills_cross_half_the_spread_with_a_tick_floor() -> None:
    costs = CostModel(spread=0.05)
    assert costs.option_fill(10.0, selling=True) == pytest.approx(9.75)
    assert costs.option_fill(10.0, selling=False) == pytest.approx(10.25)
    # 5% of $0.10 is half a cent: the spread is one tick (a penny under $3), so half a cent each side.
    assert costs.option_fill(0.10, selling=True) == pytest.approx(0.095)
    assert tick_of(2.99) == 0.01 and tick_of(3.0) == 0.05
    # A sale never fills below zero.
    assert costs.option_fill(0.001, selling=True) == 0.0


def test_commissions_and_interest() -> None:
    costs = CostModel(commission_per_contract=0.65, commission_per_share=0.005, rate=RateCurve.constant(0.0365))
    assert costs.option_commission(-10) == pytest.approx(6.5)
    assert costs.share_commission(1000) == pytest.approx(5.0)
    # 3.65% a year on 1,000,000 over a weekend (Friday close to Monday close, 3 calendar days).
    assert costs.interest(1_000_000.0, dt.date(2015, 1, 2), dt.date(2015, 1, 5)) == pytest.approx(300.0)
    assert costs.interest(1_000_000.0, dt.date(2015, 1, 5), dt.date(2015, 1, 5)) == 0.0


def test_rate_curve_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("date,rate\n2015-01-02,0.01\n2015-06-01,0.02\n")
    curve = RateCurve.from_csv(path)
    assert curve.on(dt.date(2014, 12, 31)) == 0.01
    assert curve.on(dt.date(2015, 5, 29)) == 0.01
    assert curve.on(dt.date(2015, 6, 1)) == 0.02


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("day,rate\n2015-01-02,0.01\n", "line 1: needs columns date and rate"),
        ("date,rate\n2015-01-02,abc\n", "line 2: rate 'abc' is not a number"),
        ("date,rate\n2015-01-02,2.5\n", "line 2: rate '2.5' must be an annual decimal rate"),
        ("date,rate\n2015-01-05,0.01\n2015-01-02,0.01\n", "line 3: date 2015-01-02 does not follow"),
        ("date,rate\n", "has no rates"),
    ],
)
def test_bad_rate_files_name_the_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "rates.csv"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=needle):
        RateCurve.from_csv(path)


def test_bad_cost_parameters_name_the_field() -> None:
    with pytest.raises(InvalidInputError, match="commission: must be between 0 and 100"):
        CostModel(commission_per_contract=-1.0)
    with pytest.raises(InvalidInputError, match="spread"):
        CostModel(spread=float("nan"))
    with pytest.raises(InvalidInputError, match="rate"):
        RateCurve.constant(3.0)
