"""allsuse.risk against plain references: numpy for PROTOCOL section 6 (VaR, ES, tail dependence),
empyrical-reloaded and scipy for the performance metrics, and a numpy Black-Scholes (scipy's ndtr)
for full revaluation. Bad input must raise InvalidInputError naming the argument."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import empyrical as ep
import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr

from allsuse import risk
from allsuse.errors import InvalidInputError

# --- references ---------------------------------------------------------------------------------


def tail_k(n: int, confidence: float) -> int:
    """k = ceil(n (1 - c)) in exact decimal arithmetic (c as written), at least 1."""
    return max(1, math.ceil(n * (1 - Fraction(str(confidence)))))


def ref_var(pnl: np.ndarray, confidence: float = 0.975) -> float:
    return float(-np.sort(pnl)[tail_k(len(pnl), confidence) - 1])


def ref_es(pnl: np.ndarray, confidence: float = 0.975) -> float:
    return float(-np.sort(pnl)[: tail_k(len(pnl), confidence)].mean())


def ref_tail_dependence(x: np.ndarray, y: np.ndarray, q: float = 0.05) -> float:
    in_x = x <= np.quantile(x, q)
    return float(np.sum(in_x & (y <= np.quantile(y, q))) / np.sum(in_x))


def quiet(fn: Callable[[], Any]) -> Any:
    """Calls a reference that may warn on degenerate input (pytest turns warnings into errors)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn()


def ref_metrics(r: np.ndarray, ppy: int, benchmark: np.ndarray | None = None) -> dict[str, float]:
    return {k: float(v) for k, v in quiet(lambda: _ref_metrics(r, ppy, benchmark)).items()}


def _ref_metrics(r: np.ndarray, ppy: int, benchmark: np.ndarray | None) -> dict[str, Any]:
    gains, losses = r[r > 0].sum(), r[r < 0].sum()
    out = {
        "total_return": ep.cum_returns_final(r),
        "annual_return": ep.annual_return(r, annualization=ppy),
        "annual_volatility": ep.annual_volatility(r, annualization=ppy),
        "sharpe_ratio": ep.sharpe_ratio(r, annualization=ppy),
        "sortino_ratio": ep.sortino_ratio(r, annualization=ppy),
        "calmar_ratio": ep.calmar_ratio(r, annualization=ppy),
        "omega_ratio": ep.omega_ratio(r, annualization=ppy),
        "max_drawdown": ep.max_drawdown(r),
        "downside_risk": ep.downside_risk(r, annualization=ppy),
        "stability": ep.stability_of_timeseries(r),
        "tail_ratio": ep.tail_ratio(r),
        "value_at_risk": ref_var(r, 0.95),
        "expected_shortfall": ref_es(r, 0.975),
        "skew": stats.skew(r),
        "kurtosis": stats.kurtosis(r),
        "win_rate": np.mean(r > 0),
        "profit_factor": gains / abs(losses),
    }
    if benchmark is not None:
        alpha, beta = ep.alpha_beta(r, benchmark, annualization=ppy)
        out["alpha"], out["beta"] = alpha, beta
    return out


def assert_same(name: str, got: float, want: float, rel: float = 1e-9) -> None:
    """Equal within `rel` (relative once |want| > 1); NaN matches NaN and inf matches inf."""
    if math.isnan(want) or math.isinf(want):
        assert (math.isnan(got) and math.isnan(want)) or got == want, f"{name}: {got} != {want}"
    else:
        assert abs(got - want) <= rel * max(1.0, abs(want)), f"{name}: {got} != {want}"


def norm_price(
    kind: np.ndarray, s: np.ndarray, k: np.ndarray, t: np.ndarray, v: np.ndarray, r: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """Black-Scholes-Merton with scipy's ndtr; kind 1 call, 2 put; t <= 0 gives intrinsic value."""
    w = np.where(kind == risk.CALL, 1.0, -1.0)
    live = t > 0
    tt = np.where(live, t, 1.0)
    sd = v * np.sqrt(tt)
    d1 = (np.log(s / k) + (r - q) * tt) / sd + 0.5 * sd
    d2 = d1 - sd
    bs = w * (s * np.exp(-q * tt) * ndtr(w * d1) - k * np.exp(-r * tt) * ndtr(w * d2))
    return np.where(live, bs, np.maximum(w * (s - k), 0.0))


def ref_revalue(
    book: risk.Book, spot: np.ndarray, returns: np.ndarray, shifts: np.ndarray, horizon: float
) -> np.ndarray:
    """The straightforward way: reprice every position in every scenario (scenarios x positions)."""
    u = book.underlying
    s0 = spot[u][None, :]
    s1 = spot[None, :][:, u] * (1.0 + returns[:, u])
    scale = (book.quantity * book.multiplier)[None, :]
    is_stock = (book.kind == risk.STOCK)[None, :]
    args = (book.strike, book.t, book.vol, book.rate, book.div)
    k, t, v, r, q = (np.where(book.kind == risk.STOCK, 1.0, a)[None, :] for a in args)
    kind = book.kind[None, :]
    today = norm_price(kind, s0, k, t, v, r, q)
    then = norm_price(kind, s1, k, t - horizon, v + shifts[:, u], r, q)
    option_pnl = np.where(is_stock, 0.0, then - today)
    stock_pnl = np.where(is_stock, s1 - s0, 0.0)
    return np.sum(scale * (option_pnl + stock_pnl), axis=1)


RNG = np.random.default_rng(20240601)

# --- VaR and ES ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 40, 41, 1000, 4096, 100_003])
@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.975, 0.99, 0.999])
def test_var_es_match_the_protocol_reference(n: int, confidence: float) -> None:
    pnl = RNG.standard_t(3, n) * 1000.0
    assert risk.value_at_risk(pnl, confidence) == ref_var(pnl, confidence)
    assert risk.expected_shortfall(pnl, confidence) == pytest.approx(ref_es(pnl, confidence), rel=1e-12, abs=1e-9)


def test_tail_count_is_exact_where_n_times_one_minus_c_is_integral() -> None:
    # 1000 x (1 - 0.975) = 25.000000000000025 in floating point: k must be 25, not 26.
    pnl = -np.arange(1000, dtype=float)  # worst is -999
    assert risk.value_at_risk(pnl) == 975.0  # the 25th worst
    assert risk.expected_shortfall(pnl) == np.mean(np.arange(975, 1000))
    assert risk.value_at_risk(-np.arange(100.0), 0.95) == 95.0  # k = 5
    assert risk.value_at_risk(-np.arange(20.0), 0.95) == 19.0  # k = 1


def test_hand_made_cases() -> None:
    ties = np.array([1.0, -5.0, 3.0, -5.0, -5.0, 2.0])
    assert risk.value_at_risk(ties, 0.5) == 5.0
    assert risk.expected_shortfall(ties, 0.5) == 5.0
    assert risk.value_at_risk([7.0]) == -7.0  # n = 1: the one outcome (a gain is a negative loss)
    assert risk.expected_shortfall([-7.0]) == 7.0
    assert risk.value_at_risk(-3.0) == 3.0  # a scalar is one outcome
    assert risk.expected_shortfall([-4.0, -1.0, 0.0, 2.0], 0.5) == 2.5
    constant = np.full(999, -2.5)
    assert risk.value_at_risk(constant) == 2.5 and risk.expected_shortfall(constant) == 2.5


def test_es_is_at_least_var() -> None:
    for _ in range(20):
        pnl = RNG.normal(size=RNG.integers(1, 3000))
        assert risk.expected_shortfall(pnl) >= risk.value_at_risk(pnl) - 1e-12


def test_pnl_input_is_not_modified() -> None:
    pnl = RNG.normal(size=50_000)
    before = pnl.copy()
    risk.expected_shortfall(pnl)
    np.testing.assert_array_equal(pnl, before)


# --- tail dependence ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 5, 20, 101, 2500])
@pytest.mark.parametrize("q", [0.01, 0.05, 0.1, 0.5])
def test_tail_dependence_matches_numpy(n: int, q: float) -> None:
    z = RNG.normal(size=n)
    x = z + 0.5 * RNG.normal(size=n)
    y = z + 0.5 * RNG.normal(size=n)
    assert risk.tail_dependence(x, y, q) == ref_tail_dependence(x, y, q)


def test_tail_dependence_with_ties_and_extremes() -> None:
    x = RNG.integers(-3, 4, 500).astype(float)
    y = RNG.integers(-3, 4, 500).astype(float)
    assert risk.tail_dependence(x, y) == ref_tail_dependence(x, y)
    assert risk.tail_dependence(x, x) == 1.0
    ranks = np.arange(100.0)
    assert risk.tail_dependence(ranks, -ranks) == 0.0


# --- max drawdown and metrics -------------------------------------------------------------------


def series(n: int, drift: float = 0.0005, vol: float = 0.012) -> np.ndarray:
    return RNG.normal(drift, vol, n)


@pytest.mark.parametrize(
    "returns",
    [series(300), series(60, -0.002), np.array([-0.1, 0.05]), np.array([0.1, -0.1, 0.2, -0.5, 0.3]), np.array([0.02])],
)
def test_max_drawdown_matches_empyrical(returns: np.ndarray) -> None:
    assert_same("max_drawdown", risk.max_drawdown(returns), ep.max_drawdown(returns), rel=1e-12)


@pytest.mark.parametrize("ppy", [252, 52, 12])
@pytest.mark.parametrize("n", [2, 3, 25, 260, 2000])
def test_metrics_match_empyrical(ppy: int, n: int) -> None:
    r = series(n, 0.0004, 0.015)
    got = risk.metrics(r, periods_per_year=ppy)
    want = ref_metrics(r, ppy)
    assert list(got) == list(risk.METRIC_NAMES)
    for name in risk.METRIC_NAMES:
        assert_same(name, got[name], want[name])


@pytest.mark.parametrize("n", [2, 30, 500])
def test_metrics_with_a_benchmark(n: int) -> None:
    b = series(n, 0.0003, 0.01)
    r = 0.8 * b + series(n, 0.0002, 0.004)
    got = risk.metrics(r, 252, benchmark=b)
    want = ref_metrics(r, 252, b)
    assert list(got) == [*risk.METRIC_NAMES, "alpha", "beta"]
    for name, value in want.items():
        assert_same(name, got[name], value)


@pytest.mark.parametrize(
    "returns",
    [
        np.zeros(20),  # all zero: 0/0 ratios are NaN
        np.full(30, 0.01),  # constant and no downside: sharpe and sortino +inf, omega NaN
        np.full(30, -0.01),  # constant losses
        np.abs(series(40)) + 1e-4,  # no downside, not constant
        np.array([0.01]),  # a single period
        np.array([0.03, -0.02]),
        np.array([0.05, 0.0, 0.0, 0.0]),  # flat after the first period
        np.array([-1.0, 0.5, 0.1]),  # total loss in the first period
    ],
)
def test_metric_edge_cases_follow_empyrical(returns: np.ndarray) -> None:
    got = risk.metrics(returns)
    want = ref_metrics(returns, 252)
    for name in risk.METRIC_NAMES:
        assert_same(name, got[name], want[name])


def test_metric_conventions() -> None:
    r = np.array([0.02, -0.01, 0.0, 0.03, -0.04])
    m = risk.metrics(r)
    assert m["win_rate"] == 2 / 5
    assert m["profit_factor"] == pytest.approx(0.05 / 0.05)
    assert m["max_drawdown"] <= 0.0
    assert risk.metrics(np.full(5, 0.01))["profit_factor"] == math.inf
    assert math.isnan(risk.metrics(np.zeros(5))["profit_factor"])
    assert m["value_at_risk"] == 0.04 and m["expected_shortfall"] == 0.04  # k = 1 for n = 5


# --- revaluation --------------------------------------------------------------------------------


def sample_book() -> risk.Book:
    return risk.Book.from_positions(
        [
            risk.BookPosition("put", 0, -3, strike=95.0, t=5 / 365, vol=0.35, rate=0.04),
            risk.BookPosition("call", 0, -2, strike=110.0, t=12 / 365, vol=0.30, rate=0.04, div=0.01),
            {"kind": "put", "underlying": 1, "quantity": -1, "strike": 190.0, "t": 0.5 / 365, "vol": 0.25},
            {"kind": "stock", "underlying": 1, "quantity": 200},
            risk.BookPosition("call", 2, 4, strike=48.0, t=0.25, vol=0.5, rate=0.03, div=0.005, multiplier=10),
            risk.BookPosition("put", 2, 7, strike=30.0, t=2.0, vol=0.9),
        ]
    )


@pytest.mark.parametrize("n_scenarios", [1, 7, 500, 3000])
@pytest.mark.parametrize("with_shifts", [False, True])
def test_revaluation_matches_numpy_reference(n_scenarios: int, with_shifts: bool) -> None:
    book = sample_book()
    spot = np.array([100.0, 200.0, 45.0])
    returns = np.clip(RNG.standard_t(4, (n_scenarios, 3)) * 0.03, -0.9, 2.0)
    shifts = RNG.normal(0.0, 0.05, (n_scenarios, 3)) if with_shifts else np.zeros((n_scenarios, 3))
    horizon = 1 / 252
    out = risk.revalue(book, spot, returns, shifts if with_shifts else None, horizon=horizon)
    want = ref_revalue(book, spot, returns, shifts, horizon)
    notional = np.sum(np.abs(book.quantity * book.multiplier)) * spot.max()
    np.testing.assert_allclose(out.pnl, want, rtol=0, atol=1e-12 * notional)
    assert out.value_at_risk == risk.value_at_risk(out.pnl)
    assert out.expected_shortfall == risk.expected_shortfall(out.pnl)


def test_revaluation_values_expired_options_at_intrinsic() -> None:
    book = risk.Book.from_positions([risk.BookPosition("put", 0, 1, strike=100.0, t=0.001, vol=0.2)])
    out = risk.revalue(book, [100.0], [[-0.1], [0.1]], horizon=1 / 252)
    today = float(norm_price(np.array([risk.PUT]), *(np.array([x]) for x in (100.0, 100.0, 0.001, 0.2, 0.0, 0.0)))[0])
    np.testing.assert_allclose(out.pnl, [100.0 * (10.0 - today), 100.0 * (0.0 - today)], atol=1e-9)


def test_stock_only_book_is_exactly_linear() -> None:
    book = risk.Book.from_arrays(["stock", "stock", "stock"], [0, 1, 0], [150.0, -40.0, 25.0])
    spot = np.array([50.0, 80.0])
    r = RNG.normal(0, 0.02, (1000, 2))
    one = risk.revalue(book, spot, r, horizon=0.0).pnl
    two = risk.revalue(book, spot, 2.0 * r, horizon=0.0).pnl
    np.testing.assert_array_equal(two, 2.0 * one)
    linear = (150.0 * 50.0 + 25.0 * 50.0) * r[:, 0] - 40.0 * 80.0 * r[:, 1]
    np.testing.assert_allclose(one, linear, rtol=1e-13, atol=1e-9)


def test_unchanged_scenario_over_zero_horizon_has_no_pnl() -> None:
    out = risk.revalue(sample_book(), [100.0, 200.0, 45.0], np.zeros((3, 3)), horizon=0.0)
    np.testing.assert_allclose(out.pnl, 0.0, atol=1e-9)


def test_one_underlying_accepts_a_vector_of_returns() -> None:
    book = risk.Book.from_arrays(["call"], [0], [1.0], strike=100.0, t=0.5, vol=0.2)
    a = risk.revalue(book, [100.0], [0.01, -0.02])
    b = risk.revalue(book, [100.0], [[0.01], [-0.02]])
    np.testing.assert_array_equal(a.pnl, b.pnl)


def test_book_is_frozen_and_broadcasts_scalars() -> None:
    book = risk.Book.from_arrays(["call", "put", "stock"], [0, 0, 1], [1, -1, 10], strike=100.0, t=0.1, vol=0.3)
    assert len(book) == 3
    np.testing.assert_array_equal(book.kind, [risk.CALL, risk.PUT, risk.STOCK])
    np.testing.assert_array_equal(book.multiplier, [100.0, 100.0, 1.0])
    np.testing.assert_array_equal(book.rate, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="read-only"):
        book.strike[0] = 1.0
    with pytest.raises(AttributeError):
        book.strike = np.zeros(3)  # type: ignore[misc]
    empty = risk.Book.from_positions([])
    assert len(empty) == 0
    np.testing.assert_array_equal(risk.revalue(empty, [10.0], [[0.1]]).pnl, [0.0])


# --- bad input ----------------------------------------------------------------------------------


def raises(field: str, fn: Callable[[], object], contains: str = "") -> None:
    with pytest.raises(InvalidInputError) as info:
        fn()
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(f"{field}: ")
    assert contains in str(info.value)


def test_bad_tail_input_names_the_argument() -> None:
    raises("pnl", lambda: risk.value_at_risk([1.0, math.nan, 2.0]), "element 1")
    raises("pnl", lambda: risk.expected_shortfall([1.0, 2.0, math.inf]), "element 2")
    raises("pnl", lambda: risk.expected_shortfall([]))
    raises("pnl", lambda: risk.expected_shortfall(np.zeros((2, 2))))
    raises("pnl", lambda: risk.value_at_risk(["a"]))
    raises("confidence", lambda: risk.value_at_risk([1.0], 1.0))
    raises("confidence", lambda: risk.expected_shortfall([1.0], math.nan))
    raises("confidence", lambda: risk.expected_shortfall([1.0], "high"))  # type: ignore[arg-type]
    raises("y", lambda: risk.tail_dependence([1.0, 2.0], [1.0]))
    raises("x", lambda: risk.tail_dependence([math.nan, 2.0], [1.0, 2.0]))
    raises("q", lambda: risk.tail_dependence([1.0, 2.0], [1.0, 2.0], 0.0))


def test_bad_metrics_input_names_the_argument() -> None:
    raises("returns", lambda: risk.metrics([0.01, math.inf]), "element 1")
    raises("returns", lambda: risk.metrics([]))
    raises("returns", lambda: risk.max_drawdown([math.nan]))
    raises("periods_per_year", lambda: risk.metrics([0.01], periods_per_year=0))
    raises("benchmark", lambda: risk.metrics([0.01, 0.02], benchmark=[0.01]))
    raises("benchmark", lambda: risk.metrics([0.01, 0.02], benchmark=[0.01, math.nan]))


def test_bad_revaluation_input_names_the_field() -> None:
    book = sample_book()
    spot = [100.0, 200.0, 45.0]
    ok = np.zeros((2, 3))

    def with_field(name: str, index: int, value: float) -> risk.Book:
        columns = {f: getattr(book, f).copy() for f in ("kind", "underlying", *risk.Book._FLOAT_FIELDS)}
        columns[name][index] = value
        return risk.Book(**columns)

    raises("book.strike", lambda: risk.revalue(with_field("strike", 1, -5.0), spot, ok), "position 1")
    raises("book.vol", lambda: risk.revalue(with_field("vol", 0, math.nan), spot, ok))
    raises("book.t", lambda: risk.revalue(with_field("t", 0, 0.0), spot, ok))
    raises("book.rate", lambda: risk.revalue(with_field("rate", 0, math.inf), spot, ok))
    raises("book.quantity", lambda: risk.revalue(with_field("quantity", 3, math.nan), spot, ok))
    raises("book.multiplier", lambda: risk.revalue(with_field("multiplier", 0, 0.0), spot, ok))
    raises("book.underlying", lambda: risk.revalue(with_field("underlying", 0, 3), spot, ok), "out of range")
    raises("book.underlying", lambda: risk.revalue(with_field("underlying", 0, -1), spot, ok))
    raises("book.kind", lambda: risk.revalue(with_field("kind", 0, 7), spot, ok))
    raises("book.kind", lambda: risk.Book.from_arrays(["call", "future"], [0, 0], [1, 1]), "future")
    raises("book.strike", lambda: risk.Book.from_arrays(["call", "put"], [0, 0], [1, 1], strike=[1.0, 2.0, 3.0]))
    raises("book.underlying", lambda: risk.Book.from_arrays(["call"], [0.5], [1]))
    raises("positions", lambda: risk.Book.from_positions([{"kind": "call", "underlying": 0, "quantity": 1, "iv": 0.2}]))
    raises("book", lambda: risk.revalue("book", spot, ok))  # type: ignore[arg-type]
    raises("spot", lambda: risk.revalue(book, [100.0, -1.0, 45.0], ok), "element 1")
    raises("scenario_returns", lambda: risk.revalue(book, spot, np.zeros((2, 2))), "columns")
    raises("scenario_returns", lambda: risk.revalue(book, spot, [[0.0, -1.0, 0.0]]), "(0, 1)")
    raises("scenario_returns", lambda: risk.revalue(book, spot, [[0.0, 0.0, -1.5]]))
    raises("scenario_returns", lambda: risk.revalue(book, spot, [[0.0, math.nan, 0.0]]))
    raises("vol_shifts", lambda: risk.revalue(book, spot, ok, np.zeros((3, 3))))
    raises("vol_shifts", lambda: risk.revalue(book, spot, ok, np.full((2, 3), -0.3)), "above 0")
    raises("horizon", lambda: risk.revalue(book, spot, ok, horizon=-1.0))
    raises("confidence", lambda: risk.revalue(book, spot, ok, confidence=0.0))
