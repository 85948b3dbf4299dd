"""allsuse.pricing against QuantLib 1.44 (AnalyticEuropeanEngine) and an independent scipy reference.

Tolerances (every comparison below states which it uses):

* QuantLib grid, every greek: |ours - ql| <= 1e-8 * |ql| + ABS[greek], where ABS is 1e-14 times the
  quantity's natural scale: (S + K) for price, vega and theta; 1 for delta; 1 / S for gamma;
  K * t for rho. For S = 100 that is at most 3e-12 in price, i.e. 3e-14 of spot. The absolute part
  exists because QuantLib loses precision on tiny values: its put formula takes N(-d) as 1 - N(d)
  (the deep out-of-the-money put delta at S=100, K=50, two years, 5% vol comes out as +6e-33, wrong
  sign, against the true -1.2e-19), and its normal CDF switches to an asymptotic series below 1e-8
  that is only good to ~1e-7 relative around d = -5.7. Those errors are ~1e-16 of the terms QuantLib
  subtracts, hence absolute; on every value above ~1e-6 of its scale the bound is pure 1e-8 relative.
* Independent reference (textbook closed forms on scipy.special.ndtr, each tail probability taken
  directly): 1e-9 relative on every value above 1e-250, tiny values included, which is where the
  QuantLib comparison above is loose.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  (the conventional name)
from scipy.special import ndtr

from allsuse import pricing
from allsuse.errors import InvalidInputError

EPS = float(np.finfo(np.float64).eps)
SPOT = 100.0
KINDS = ("call", "put")
MONEYNESS = (0.5, 0.6, 0.8, 0.95, 1.0, 1.05, 1.25, 1.5, 2.0)
DAYS = (1, 2, 7, 30, 91, 182, 365, 730)
VOLS = (0.05, 0.2, 0.6, 1.2)
RATES = ((0.0, 0.0), (0.05, 0.0), (0.0, 0.03), (0.045, 0.02))
GREEKS = ("price", "delta", "gamma", "vega", "theta", "rho")


@dataclass(frozen=True)
class Case:
    kind: str
    strike: float
    days: int
    vol: float
    rate: float
    div: float

    @property
    def t(self) -> float:
        # QuantLib's Actual365Fixed year fraction for a maturity `days` after the evaluation date.
        return self.days / 365.0


def grid() -> Iterator[Case]:
    for kind, m, days, vol, (rate, div) in itertools.product(KINDS, MONEYNESS, DAYS, VOLS, RATES):
        yield Case(kind, SPOT * m, days, vol, rate, div)


CASES = list(grid())


def quantlib_greeks(c: Case) -> dict[str, float]:
    """QuantLib's AnalyticEuropeanEngine on flat Actual365Fixed curves, so its t is exactly days/365."""
    today = ql.Date(15, ql.January, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    spot = ql.QuoteHandle(ql.SimpleQuote(SPOT))
    rate = ql.YieldTermStructureHandle(ql.FlatForward(today, c.rate, dc))
    div = ql.YieldTermStructureHandle(ql.FlatForward(today, c.div, dc))
    vol = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), c.vol, dc))
    process = ql.BlackScholesMertonProcess(spot, div, rate, vol)
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if c.kind == "call" else ql.Option.Put, c.strike)
    option = ql.EuropeanOption(payoff, ql.EuropeanExercise(today + c.days))
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    assert dc.yearFraction(today, today + c.days) == c.t
    return {
        "price": option.NPV(),
        "delta": option.delta(),
        "gamma": option.gamma(),
        "vega": option.vega(),
        "theta": option.theta(),
        "rho": option.rho(),
    }


def reference_greeks(c: Case) -> dict[str, float]:
    """Closed forms on scipy's ndtr, tails taken on the accurate side (w = +1 call, -1 put)."""
    w = 1.0 if c.kind == "call" else -1.0
    t, k, v, r, q = c.t, c.strike, c.vol, c.rate, c.div
    sd = v * math.sqrt(t)
    d1 = (math.log(SPOT / k) + (r - q) * t) / sd + 0.5 * sd
    d2 = d1 - sd
    dq, dr = math.exp(-q * t), math.exp(-r * t)
    n1, n2 = float(ndtr(w * d1)), float(ndtr(w * d2))
    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    return {
        "price": w * (SPOT * dq * n1 - k * dr * n2),
        "delta": w * dq * n1,
        "gamma": dq * pdf / (SPOT * sd),
        "vega": SPOT * dq * pdf * math.sqrt(t),
        "theta": -SPOT * dq * pdf * v / (2.0 * math.sqrt(t)) - w * (r * k * dr * n2 - q * SPOT * dq * n1),
        "rho": w * k * t * dr * n2,
    }


def abs_tolerance(c: Case, greek: str) -> float:
    scale = {
        "price": SPOT + c.strike,
        "delta": 1.0,
        "gamma": 1.0 / SPOT,
        "vega": SPOT + c.strike,
        "theta": SPOT + c.strike,
        "rho": c.strike * c.t,
    }[greek]
    return 1e-14 * scale


@pytest.fixture(scope="module")
def quantlib_values() -> list[dict[str, float]]:
    return [quantlib_greeks(c) for c in CASES]


def columns(cases: list[Case]) -> dict[str, Any]:
    return {
        "spot": SPOT,
        "strike": np.array([c.strike for c in cases]),
        "t": np.array([c.t for c in cases]),
        "vol": np.array([c.vol for c in cases]),
        "rate": np.array([c.rate for c in cases]),
        "div": np.array([c.div for c in cases]),
    }


# --- price and greeks -------------------------------------------------------------------------


def test_grid_covers_the_required_ranges() -> None:
    assert len(CASES) == 2 * 9 * 8 * 4 * 4
    assert min(MONEYNESS) <= 0.5 and max(MONEYNESS) >= 2.0 and min(DAYS) == 1 and max(DAYS) >= 730


def test_scalar_greeks_match_quantlib(quantlib_values: list[dict[str, float]]) -> None:
    failures = []
    for c, ql_values in zip(CASES, quantlib_values, strict=True):
        ours = pricing.bs_greeks(c.kind, SPOT, c.strike, c.t, c.vol, c.rate, c.div)
        assert ours["price"] == pricing.bs_price(c.kind, SPOT, c.strike, c.t, c.vol, c.rate, c.div)
        for g in GREEKS:
            bound = 1e-8 * abs(ql_values[g]) + abs_tolerance(c, g)
            if not abs(ours[g] - ql_values[g]) <= bound:
                failures.append((c, g, ours[g], ql_values[g]))
    assert not failures, failures[:5]


def test_batch_greeks_match_quantlib(quantlib_values: list[dict[str, float]]) -> None:
    for kind in KINDS:
        idx = [i for i, c in enumerate(CASES) if c.kind == kind]
        cases = [CASES[i] for i in idx]
        got = pricing.bs_greeks(kind, **columns(cases))
        prices = pricing.bs_price(kind, **columns(cases))
        np.testing.assert_array_equal(prices, got["price"])
        for g in GREEKS:
            expected = np.array([quantlib_values[i][g] for i in idx])
            bound = 1e-8 * np.abs(expected) + np.array([abs_tolerance(c, g) for c in cases])
            assert np.all(np.abs(got[g] - expected) <= bound), g


def test_greeks_match_independent_reference_even_when_tiny() -> None:
    worst = 0.0
    for c in CASES:
        ours = pricing.bs_greeks(c.kind, SPOT, c.strike, c.t, c.vol, c.rate, c.div)
        ref = reference_greeks(c)
        for g in GREEKS:
            if abs(ref[g]) > 1e-250:
                worst = max(worst, abs(ours[g] - ref[g]) / abs(ref[g]))
    assert worst <= 1e-9


def test_quantlib_theta_is_per_year_and_vega_rho_per_unit() -> None:
    # One hand-checked point: theta is d(value)/d(valuation date) per year, vega/rho per 1.00.
    c = Case("call", 95.0, 182, 0.25, 0.03, 0.01)
    ours = pricing.bs_greeks(c.kind, SPOT, c.strike, c.t, c.vol, c.rate, c.div)
    h = 1e-5
    bump = pricing.bs_price(c.kind, SPOT, c.strike, c.t - h, c.vol, c.rate, c.div)
    base = pricing.bs_price(c.kind, SPOT, c.strike, c.t + h, c.vol, c.rate, c.div)
    assert ours["theta"] == pytest.approx((bump - base) / (2 * h), rel=1e-7)
    assert ours["theta"] == pytest.approx(quantlib_greeks(c)["theta"], rel=1e-12)


def test_shapes_broadcast_and_scalars_stay_floats() -> None:
    strikes = np.array([[90.0], [100.0], [110.0]])
    vols = np.array([0.1, 0.2, 0.3, 0.4])
    prices = pricing.bs_price("call", 100.0, strikes, 0.5, vols)
    assert prices.shape == (3, 4)
    assert prices[1, 2] == pricing.bs_price("call", 100.0, 100.0, 0.5, 0.3)
    greeks = pricing.bs_greeks("put", 100.0, strikes, 0.5, vols, 0.01, 0.0)
    assert set(greeks) == set(GREEKS)
    assert all(isinstance(a, np.ndarray) and a.shape == (3, 4) for a in greeks.values())
    scalar = pricing.bs_greeks("put", np.float64(100.0), 100, 0.5, 0.2)
    assert all(type(v) is float for v in scalar.values())
    assert type(pricing.bs_price("call", np.array(100.0), 100.0, 1.0, 0.2)) is float
    assert pricing.bs_price("call", [100.0], 100.0, 1.0, 0.2).shape == (1,)


def test_batches_are_thread_safe_and_deterministic() -> None:
    rng = np.random.default_rng(7)
    n = 50_000  # above the parallel threshold
    args = dict(spot=100.0, strike=rng.uniform(50, 200, n), t=rng.uniform(1 / 365, 2, n), vol=rng.uniform(0.05, 1, n))
    expected = pricing.bs_greeks("call", **args)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: pricing.bs_greeks("call", **args), range(4)))
    for r in results:
        for g in GREEKS:
            np.testing.assert_array_equal(r[g], expected[g])


# --- implied volatility -----------------------------------------------------------------------


def intrinsic_and_upper(c: Case) -> tuple[float, float]:
    fwd, kd = SPOT * math.exp(-c.div * c.t), c.strike * math.exp(-c.rate * c.t)
    w = 1.0 if c.kind == "call" else -1.0
    return max(w * (fwd - kd), 0.0), (fwd if c.kind == "call" else kd)


def test_implied_vol_round_trips_across_the_grid() -> None:
    solved = unsolvable = 0
    for c in CASES:
        price = pricing.bs_price(c.kind, SPOT, c.strike, c.t, c.vol, c.rate, c.div)
        intrinsic, _ = intrinsic_and_upper(c)
        if price <= intrinsic:
            # No time value left in double precision (deep ITM or OTM at a one-day expiry): the
            # price says nothing about the volatility, so asking for one must fail, not guess.
            with pytest.raises(InvalidInputError) as info:
                pricing.implied_vol(c.kind, price, SPOT, c.strike, c.t, c.rate, c.div)
            assert info.value.field == "price"
            unsolvable += 1
            continue
        vol = pricing.implied_vol(c.kind, price, SPOT, c.strike, c.t, c.rate, c.div)
        back = pricing.bs_price(c.kind, SPOT, c.strike, c.t, vol, c.rate, c.div)
        assert back == pytest.approx(price, rel=1e-9, abs=1e-300), c
        # The volatility is recovered up to what the price resolves: an ulp of the price and of
        # the parity terms moves the volatility by about that much divided by vega.
        vega = pricing.bs_greeks(c.kind, SPOT, c.strike, c.t, c.vol, c.rate, c.div)["vega"]
        resolution = 8 * EPS * (price + SPOT + c.strike) / vega if vega > 0 else math.inf
        assert abs(vol - c.vol) <= 1e-10 * c.vol + resolution, (c, vol)
        solved += 1
    assert solved > 0.75 * len(CASES) and unsolvable > 0


def test_implied_vol_recovers_vol_for_deep_otm_and_one_day_options() -> None:
    cases = [
        ("put", 50.0, 30 / 365, 0.35, 0.03, 0.01),  # price ~1e-9
        ("call", 200.0, 91 / 365, 0.3, 0.0, 0.0),  # price ~1e-6
        ("call", 103.0, 1 / 365, 0.2, 0.05, 0.0),  # one day, 3% OTM
        ("put", 97.0, 1 / 365, 0.15, 0.0, 0.02),
        ("call", 60.0, 2.0, 0.6, 0.05, 0.02),  # deep ITM, solved on the OTM side
        ("call", 100.0, 2.0, 3.0, 0.0, 0.0),  # very high vol
    ]
    for kind, k, t, v, r, q in cases:
        p = pricing.bs_price(kind, SPOT, k, t, v, r, q)
        assert pricing.implied_vol(kind, p, SPOT, k, t, r, q) == pytest.approx(v, rel=1e-9)


def test_implied_vol_batch_matches_scalar_and_counts_failures() -> None:
    for kind in KINDS:
        cases = [c for c in CASES if c.kind == kind]
        cols = columns(cases)
        prices = pricing.bs_price(kind, **cols)
        out = pricing.implied_vol_batch(
            kind, prices, cols["spot"], cols["strike"], cols["t"], cols["rate"], cols["div"]
        )
        assert isinstance(out, pricing.ImpliedVols)
        assert out.vol.shape == prices.shape
        assert out.failed == int(np.isnan(out.vol).sum())
        plain = pricing.implied_vol(kind, prices, cols["spot"], cols["strike"], cols["t"], cols["rate"], cols["div"])
        np.testing.assert_array_equal(plain, out.vol)
        for c, p, v in zip(cases, prices, out.vol, strict=True):
            if math.isnan(v):
                assert p <= intrinsic_and_upper(c)[0]
            else:
                assert v == pricing.implied_vol(kind, float(p), SPOT, c.strike, c.t, c.rate, c.div)


def test_prices_outside_no_arbitrage_bounds_raise_for_scalars() -> None:
    # S=100, K=90, t=1, r=5%, q=0: call in (S - K e^{-r}, S), put in (0, K e^{-r}).
    k, t, r = 90.0, 1.0, 0.05
    call_lo, put_hi = SPOT - k * math.exp(-r * t), k * math.exp(-r * t)
    bad = [("call", call_lo), ("call", call_lo - 1.0), ("call", SPOT), ("call", 150.0), ("call", 0.0), ("call", -1.0)]
    bad += [("put", 0.0), ("put", -0.5), ("put", put_hi), ("put", 200.0)]
    for kind, price in bad:
        with pytest.raises(InvalidInputError) as info:
            pricing.implied_vol(kind, price, SPOT, k, t, r)
        assert info.value.field == "price", (kind, price)
        assert str(info.value).startswith("price: ")


def test_prices_outside_no_arbitrage_bounds_give_nan_and_a_count_in_batches() -> None:
    prices = np.array([8.0, -1.0, 0.0, 100.0, 250.0, 12.0, 99.999])
    out = pricing.implied_vol_batch("call", prices, 100.0, 100.0, 1.0)
    assert out.failed == 4
    assert np.isnan(out.vol[1:5]).all() and np.isfinite(out.vol[[0, 5, 6]]).all()
    arr = pricing.implied_vol("call", prices, 100.0, 100.0, 1.0)
    assert np.isnan(arr[1:5]).all()
    single = pricing.implied_vol_batch("put", 500.0, 100.0, 100.0, 1.0)
    assert single.vol.shape == (1,) and single.failed == 1


# --- strike for delta -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_strike_for_delta_round_trips(kind: str) -> None:
    for target, days, vol, (rate, div) in itertools.product(
        (0.01, 0.1, 0.25, 0.5, 0.75, 0.9), (1, 7, 30, 365, 730), (0.1, 0.4, 1.0), RATES
    ):
        t = days / 365.0
        signed = target if kind == "call" else -target
        k = pricing.strike_for_delta(kind, signed, SPOT, t, vol, rate, div)
        delta = pricing.bs_greeks(kind, SPOT, k, t, vol, rate, div)["delta"]
        assert delta == pytest.approx(signed, rel=1e-9), (target, days, vol, rate, div)
    # Vectorised: the same strikes.
    targets = np.array([0.1, 0.25, 0.5])
    ks = pricing.strike_for_delta(kind, targets, SPOT, 0.25, 0.3, 0.02, 0.01)
    assert ks.shape == (3,)
    for d, k in zip(targets, ks, strict=True):
        assert k == pricing.strike_for_delta(kind, float(d), SPOT, 0.25, 0.3, 0.02, 0.01)


def test_put_delta_sign_is_read_as_magnitude() -> None:
    a = pricing.strike_for_delta("put", -0.25, SPOT, 0.5, 0.3)
    b = pricing.strike_for_delta("put", 0.25, SPOT, 0.5, 0.3)
    assert a == b and a < SPOT


@pytest.mark.parametrize(
    ("kind", "delta"),
    [
        ("call", 0.0),
        ("call", -0.25),
        ("call", 1.0),
        ("call", math.exp(-0.04)),  # div 4% over 1y: e^{-qt} itself is unreachable
        ("put", 0.0),
        ("put", 1.0),
        ("put", -1.2),
        ("call", math.nan),
        ("put", math.inf),
    ],
)
def test_unreachable_delta_raises_naming_delta(kind: str, delta: float) -> None:
    with pytest.raises(InvalidInputError) as info:
        pricing.strike_for_delta(kind, delta, SPOT, 1.0, 0.2, 0.0, 0.04)
    assert info.value.field == "delta"
    with pytest.raises(InvalidInputError) as info:
        pricing.strike_for_delta(kind, [0.3 if kind == "call" else -0.3, delta], SPOT, 1.0, 0.2, 0.0, 0.04)
    assert info.value.field == "delta"


# --- bad input --------------------------------------------------------------------------------

BASE: dict[str, dict[str, Any]] = {
    "bs_price": dict(spot=100.0, strike=100.0, t=0.5, vol=0.2, rate=0.01, div=0.0),
    "bs_greeks": dict(spot=100.0, strike=100.0, t=0.5, vol=0.2, rate=0.01, div=0.0),
    "implied_vol": dict(price=6.0, spot=100.0, strike=100.0, t=0.5, rate=0.01, div=0.0),
    "implied_vol_batch": dict(price=6.0, spot=100.0, strike=100.0, t=0.5, rate=0.01, div=0.0),
    "strike_for_delta": dict(delta=0.3, spot=100.0, t=0.5, vol=0.2, rate=0.01, div=0.0),
}
POSITIVE = {"spot", "strike", "t", "vol"}


def bad_values(field: str) -> list[Any]:
    values: list[Any] = [math.nan, math.inf, -math.inf, "abc", b"1", np.array([]), [], None, [1.0, "x"]]
    if field in POSITIVE:
        values += [0.0, -1.0, np.array([1.0, -2.0])]
    if field == "price":
        values += [np.array([1.0, math.nan])]
    return values


def bad_cases() -> Iterator[tuple[str, str, Any]]:
    for fn, base in BASE.items():
        for field in base:
            for value in bad_values(field):
                yield fn, field, value


@pytest.mark.parametrize(("fn", "field", "value"), list(bad_cases()))
def test_bad_input_names_the_argument(fn: str, field: str, value: Any) -> None:
    args = dict(BASE[fn], **{field: value})
    with pytest.raises(InvalidInputError) as info:
        getattr(pricing, fn)("call", **args)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize("fn", list(BASE))
@pytest.mark.parametrize("kind", ["straddle", "Call", "", None, 1, "c"])
def test_unknown_kind_names_kind(fn: str, kind: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        getattr(pricing, fn)(kind, **BASE[fn])
    assert info.value.field == "kind"


@pytest.mark.parametrize("fn", list(BASE))
def test_mismatched_shapes_name_the_argument(fn: str) -> None:
    names = list(BASE[fn])
    first, second = names[1], names[2]
    args = dict(BASE[fn], **{first: np.full(3, BASE[fn][first]), second: np.full(4, BASE[fn][second])})
    with pytest.raises(InvalidInputError) as info:
        getattr(pricing, fn)("put", **args)
    assert info.value.field == second


def test_an_integer_too_large_for_a_float_is_named() -> None:
    with pytest.raises(InvalidInputError) as info:
        pricing.bs_price("call", 100, 10**400, 1, 0.2)
    assert info.value.field == "strike"


def test_bad_element_inside_an_array_is_named() -> None:
    with pytest.raises(InvalidInputError) as info:
        pricing.bs_greeks("call", 100.0, [90.0, 100.0, math.nan], 0.5, 0.2)
    assert info.value.field == "strike"
    assert "element 2" in str(info.value)


def test_extreme_but_valid_inputs_raise_instead_of_returning_nan() -> None:
    with pytest.raises(InvalidInputError) as info:
        pricing.bs_price("call", 100.0, 100.0, 1e20, 1e300)  # vol * sqrt(t) overflows
    assert info.value.field == "vol"
    with pytest.raises(InvalidInputError) as info:
        pricing.bs_greeks("put", 100.0, 100.0, 1.0, 0.2, -800.0)  # e^{-rt} overflows
    assert info.value.field == "rate"
