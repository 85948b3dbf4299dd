"""The paper market's model against hand-computed values: the U-shaped volume profile, the spread from IV and
moneyness, the instrument's daily volatility and the square-root impact law (and its inverse)."""

from __future__ import annotations

import math

import pytest

from allsuse.errors import InvalidInputError
from allsuse.execution.model import (
    MarketParams,
    daily_volatility,
    impact_share,
    max_quantity_within,
    permanent_share,
    spread_price,
    spread_share,
    tick,
    volume_profile,
)


def test_volume_profile_is_u_shaped_and_sums_to_one() -> None:
    # 3 minutes, c = 2: x = -2/3, 0, 2/3 -> 1 + 2 x 4/9 = 17/9, 1, 17/9; total 43/9 -> 17/43, 9/43, 17/43.
    assert volume_profile(2.0, 3) == pytest.approx((17 / 43, 9 / 43, 17 / 43), rel=1e-12)
    day = volume_profile(2.0)
    assert len(day) == 390 and sum(day) == pytest.approx(1.0, rel=1e-12)
    assert day[0] > day[100] > day[194] and day[389] > day[300] > day[195]
    assert day[0] / day[195] == pytest.approx((1 + 2 * (194.5 / 195) ** 2) / (1 + 2 * (0.5 / 195) ** 2), rel=1e-9)
    assert volume_profile(0.0, 4) == (0.25, 0.25, 0.25, 0.25)
    with pytest.raises(InvalidInputError) as err:
        volume_profile(-1.0)
    assert err.value.field == "profile_curvature"


def test_spread_from_iv_and_moneyness() -> None:
    p = MarketParams(spread_base=0.02, spread_iv=0.03, spread_moneyness=0.5, stock_spread=0.0002, stock_spread_iv=0.001)
    # ATM at IV 0.25: 0.02 + 0.03 x 0.25 = 0.0275.
    assert spread_share("put", 0.25, 100.0, 100.0, p) == pytest.approx(0.0275, rel=1e-12)
    # 10% out of the money: + 0.5 x |ln(0.9)| = 0.0526803...
    assert spread_share("put", 0.25, 100.0, 90.0, p) == pytest.approx(0.0275 + 0.5 * math.log(100 / 90), rel=1e-12)
    assert spread_share("call", 0.5, 100.0, 100.0, p) > spread_share("call", 0.25, 100.0, 100.0, p)
    assert spread_share("stock", 0.3, 100.0, 100.0, p) == pytest.approx(0.0002 + 0.0003, rel=1e-12)
    with pytest.raises(InvalidInputError) as err:
        spread_share("put", 0.0, 100.0, 100.0, p)
    assert err.value.field == "iv"


def test_daily_volatility_and_square_root_impact() -> None:
    # Stock at IV 0.252: 0.252 / sqrt(252) = 0.015874...
    assert daily_volatility("stock", 0.252, 100.0, 100.0, 1.0) == pytest.approx(0.252 / math.sqrt(252), rel=1e-12)
    # A 0.30-delta put worth 1.50 on a 100 stock: elasticity 0.3 x 100 / 1.5 = 20.
    assert daily_volatility("put", 0.252, 100.0, 1.5, 0.3) == pytest.approx(20 * 0.252 / math.sqrt(252), rel=1e-12)
    # k 0.5, sigma 0.02, q 25 of V 10,000: 0.5 x 0.02 x sqrt(0.0025) = 0.0005 (5 bps); 4x the size: 2x the impact.
    assert impact_share(25, 10_000, 0.02, 0.5) == pytest.approx(0.0005, rel=1e-12)
    assert impact_share(100, 10_000, 0.02, 0.5) == pytest.approx(0.001, rel=1e-12)
    assert impact_share(0, 10_000, 0.02, 0.5) == 0.0
    # The inverse: the largest whole quantity within 5 bps is 25; within 4.9 bps it is 24.
    assert max_quantity_within(0.0005, 10_000, 0.02, 0.5) == 25
    assert max_quantity_within(0.00049, 10_000, 0.02, 0.5) == 24
    assert max_quantity_within(-0.001, 10_000, 0.02, 0.5) == 0


def test_params_are_validated_naming_the_field() -> None:
    with pytest.raises(InvalidInputError) as err:
        MarketParams(impact_coefficient=-0.1)
    assert err.value.field == "impact_coefficient"
    with pytest.raises(InvalidInputError) as err:
        MarketParams(permanent_impact_coefficient=float("nan"))
    assert err.value.field == "permanent_impact_coefficient"
    with pytest.raises(InvalidInputError) as err:
        MarketParams(option_daily_volume=0)
    assert err.value.field == "option_daily_volume"


def test_the_spread_is_never_under_a_tick_and_permanent_impact_is_linear() -> None:
    assert tick("put", 2.99) == 0.01 and tick("call", 3.0) == 0.05 and tick("stock", 500.0) == 0.01
    assert spread_price("put", 2.0, 0.05) == pytest.approx(0.10)
    assert spread_price("put", 0.10, 0.05) == 0.01  # 0.005 is under the penny tick
    assert spread_price("call", 4.0, 0.01) == 0.05
    # gamma 0.314, sigma 0.02, 100 of 10,000: 0.314 x 0.02 x 0.01 = 6.28e-5; cut in 4 pieces it adds up the same.
    assert permanent_share(100, 10_000, 0.02, 0.314) == pytest.approx(6.28e-5, rel=1e-12)
    assert 4 * permanent_share(25, 10_000, 0.02, 0.314) == pytest.approx(permanent_share(100, 10_000, 0.02, 0.314))
