"""Protocol levels, ATR regime, drawdown protection, drawdown budget and VIX breakers (PROTOCOL sections 5 and 6)
through the typed facades, with every boundary compared on exact values."""

from __future__ import annotations

import datetime as dt
import doctest

import pytest

from allsuse.errors import InvalidInputError
from allsuse.protocol import (
    AtrRegime,
    LevelName,
    ProtectionLevel,
    ProtectionState,
    TradingState,
    allowed_exposure,
    atr_regime,
    breakers,
    delta_target,
    describe_week,
    drawdown,
    level,
    new_exposure_multiplier,
    protocol_level,
    step_protection,
    vix_breaker,
)

# --- protocol levels (section 5) -----------------------------------------------------------------------------------


def test_an_excursion_a_hair_under_three_is_level_three() -> None:
    r = protocol_level(100.0, 97.9, 0.7, 0.0, 100_000.0)  # x = 2.1 / 0.7 = 2.999999999999992
    assert r.excursion < 3.0
    assert (r.level, r.name) == (3, LevelName.PRESERVATION)


@pytest.mark.parametrize(
    ("spot", "loss", "expected"),
    [
        (101.0, 0.0, LevelName.NORMAL),
        (99.0, 0.0, LevelName.ENHANCED),
        (98.0, 0.0, LevelName.RECOVERY),
        (101.0, 2_000.0 * (1 - 1e-12), LevelName.ENHANCED),
        (101.0, 3_000.0, LevelName.RECOVERY),
        (101.0, 4_999.0, LevelName.RECOVERY),
        (101.0, 5_000.0, LevelName.PRESERVATION),
    ],
)
def test_levels_by_excursion_and_loss(spot: float, loss: float, expected: LevelName) -> None:
    r = protocol_level(100.0, spot, 1.0, loss, 100_000.0)
    assert r.name == expected and r.level == expected.level


def test_atr_fallback_and_bad_input() -> None:
    assert protocol_level(104.0, 100.0, None, 0.0, 1.0).excursion == pytest.approx(2.0)
    with pytest.raises(InvalidInputError) as err:
        protocol_level(100.0, -1.0, 1.0, 0.0, 1.0)
    assert err.value.field == "spot"


@pytest.mark.parametrize(
    ("pct", "regime", "m"),
    [
        (0.5, AtrRegime.VERY_LOW, 1.2),
        (0.1 * 3 * 10 / 6 * 2, AtrRegime.LOW, 1.1),  # 1.0000000000000002: on the "<= 1.0" bound
        (2.0 * (1 + 5e-10), AtrRegime.NORMAL, 1.0),
        (3.5, AtrRegime.HIGH, 0.8),
        (3.5 * (1 + 2e-9), AtrRegime.VERY_HIGH, 0.6),
    ],
)
def test_atr_regime_boundaries(pct: float, regime: AtrRegime, m: float) -> None:
    r = atr_regime(pct)
    assert (r.regime, r.size_multiplier) == (regime, m)


def test_delta_targets() -> None:
    assert delta_target(40, 50, AtrRegime.NORMAL) == 45.0
    assert delta_target(40, 50, "very_high") == 40.0
    with pytest.raises(InvalidInputError) as err:
        delta_target(40, 50, "wild")
    assert err.value.field == "regime"


def test_week_type_boundaries_are_exact() -> None:
    assert describe_week("SHORT_PUT", -1.0 * (1 + 1e-12)).code == "P-EW"
    assert describe_week("LONG_STOCK", 5.0 * (1 - 1e-12)).code == "C-WAP+"


# --- drawdown protection (section 6) -------------------------------------------------------------------------------


def walk(drawdowns: list[float], day: int = 1) -> list[ProtectionLevel]:
    state = ProtectionState()
    levels = []
    for d in drawdowns:
        state = step_protection(state, d, day)
        levels.append(state.level)
    return levels


@pytest.mark.parametrize(
    ("dd", "expected"),
    [
        (0.0, ProtectionLevel.NONE),
        (0.05 * (1 - 1e-12), ProtectionLevel.LIGHT),
        (0.10, ProtectionLevel.MODERATE),
        (0.15, ProtectionLevel.AGGRESSIVE),
        (0.20, ProtectionLevel.EMERGENCY),
        (0.0499, ProtectionLevel.NONE),
    ],
)
def test_levels_rise_immediately(dd: float, expected: ProtectionLevel) -> None:
    assert step_protection(None, dd, 1).level == expected


def test_trough_twelve_percent_at_moderate() -> None:
    # light at 8.5% (not before), none at 1.2% (not at 6%)
    assert walk([0.12, 0.0851, 0.085, 0.06, 0.0121, 0.012]) == [
        "moderate",
        "moderate",
        "light",
        "light",
        "light",
        "none",
    ]


def test_trough_six_percent_at_light() -> None:
    assert walk([0.06, 0.03, 0.0061, 0.006]) == ["light", "light", "light", "none"]


def test_the_trough_is_the_worst_of_the_episode_and_resets_at_none() -> None:
    s = step_protection(None, 0.12, dt.date(2024, 3, 1))
    s = step_protection(s, 0.08, dt.date(2024, 3, 2))
    assert (s.level, s.trough) == (ProtectionLevel.LIGHT, 0.12)
    s = step_protection(s, 0.01, dt.date(2024, 3, 3))
    assert (s.level, s.trough, s.day) == (ProtectionLevel.NONE, 0.0, dt.date(2024, 3, 3).toordinal())


def test_at_most_five_adjustments_a_day() -> None:
    levels = walk([0.06, 0.0] * 5, day=7)
    changes = sum(1 for a, b in zip([ProtectionLevel.NONE, *levels], levels, strict=False) if a != b)
    assert changes == 5


def test_state_round_trips_through_the_core_tuple() -> None:
    s = step_protection(None, 0.16, 3)
    assert ProtectionState.from_tuple(s.as_tuple()) == s
    assert s.as_tuple() == (3, 0.16, 3, 1)
    with pytest.raises(InvalidInputError) as err:
        ProtectionState.from_tuple((7, 0.0, 1, 0))
    assert err.value.field == "level"


def test_new_exposure_multipliers() -> None:
    assert [new_exposure_multiplier(level) for level in ProtectionLevel] == [1.0, 0.8, 0.6, 0.4, 0.0]


# --- drawdown budget (CPPI) -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("equity", "expected"),
    [(100.0, 1.0), (92.5, 1.0), (88.75, 0.5), (85.0, 0.0), (60.0, 0.0)],
    ids=["peak", "half-cap", "three-quarters-cap", "at-cap", "past-cap"],
)
def test_cppi_budget(equity: float, expected: float) -> None:
    assert allowed_exposure(100.0, equity, 0.15, 2.0) == pytest.approx(expected, abs=1e-12)


def test_budget_bad_input_names_the_argument() -> None:
    for args, field in [((100.0, 90.0, 1.2, 2.0), "cap"), ((0.0, 90.0, 0.15, 2.0), "peak")]:
        with pytest.raises(InvalidInputError) as err:
            allowed_exposure(*args)
        assert err.value.field == field


# --- VIX breakers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vix", "state", "hedged", "m"),
    [
        (20.0, TradingState.ACTIVE, False, 1.0),
        (50.0 * (1 - 1e-12), TradingState.ACTIVE, True, 0.5),
        (65.0 * (1 - 1e-12), TradingState.REDUCING, True, 0.0),
        (80.0 * (1 - 1e-12), TradingState.HALTED, True, 0.0),
        (80.0 * (1 - 1e-8), TradingState.REDUCING, True, 0.0),
    ],
)
def test_vix_breakers(vix: float, state: TradingState, hedged: bool, m: float) -> None:
    r = vix_breaker(vix)
    assert (r.state, r.hedged, r.multiplier, r.proxy) == (state, hedged, m, False)


def test_vix_reading_says_when_a_proxy_was_used() -> None:
    assert vix_breaker(30.0, proxy=True).proxy
    with pytest.raises(InvalidInputError) as err:
        vix_breaker(float("nan"))
    assert err.value.field == "vix"


@pytest.mark.parametrize("module", [level, drawdown, breakers])
def test_docstring_examples_hold(module: object) -> None:
    assert doctest.testmod(module, raise_on_error=False).failed == 0  # type: ignore[arg-type]
