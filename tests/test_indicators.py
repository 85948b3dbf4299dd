"""Indicators against plain numpy/pandas implementations of the same definitions, on real S&P 500 bars
and on hand-made edge cases; bad input names the argument."""

from __future__ import annotations

import csv
import math
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allsuse import indicators
from allsuse.errors import InvalidInputError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sp500_daily_2009_2018.csv"


@pytest.fixture(scope="module")
def bars() -> dict[str, np.ndarray]:
    """Daily S&P 500 open/high/low/close, 2009-2018 (2,516 bars)."""
    if not DATA.exists():
        pytest.skip(f"real price data not found at {DATA} (expected ../shared/data from the repo root)")
    with DATA.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in ("open", "high", "low", "close")}


# --- reference implementations: straight from the definitions, no shortcuts ---


def ref_sma(x: np.ndarray, window: int) -> np.ndarray:
    return pd.Series(x).rolling(window).mean().to_numpy()


def ref_rsi(closes: np.ndarray, period: int) -> np.ndarray:
    d = np.diff(closes)
    gains, losses = np.clip(d, 0, None), np.clip(-d, 0, None)
    out = np.full(len(closes), np.nan)
    avg_g, avg_l = gains[:period].mean(), losses[:period].mean()
    for i in range(period, len(closes)):
        if i > period:
            avg_g = (avg_g * (period - 1) + gains[i - 1]) / period
            avg_l = (avg_l * (period - 1) + losses[i - 1]) / period
        if avg_l == 0:
            out[i] = 50.0 if avg_g == 0 else 100.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + avg_g / avg_l)
    return out


def ref_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    prev = np.concatenate(([np.nan], close[:-1]))
    tr = np.nanmax(np.vstack([high - low, np.abs(high - prev), np.abs(low - prev)]), axis=0)
    tr[0] = high[0] - low[0]
    out = np.full(len(tr), np.nan)
    out[period - 1] = tr[:period].mean()
    for i in range(period, len(tr)):
        out[i] = (out[i - 1] * (period - 1) + tr[i]) / period
    return out


def ref_hist_vol(closes: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    log_returns = np.log(pd.Series(closes)).diff()
    return (log_returns.rolling(window).std(ddof=1) * math.sqrt(periods_per_year)).to_numpy()


def ref_trend_strength(closes: np.ndarray, window: int) -> np.ndarray:
    out = np.full(len(closes), np.nan)
    t = np.arange(window, dtype=float)
    for end in range(window - 1, len(closes)):
        y = closes[end + 1 - window : end + 1]
        slope, intercept = np.polyfit(t, y, 1)
        ss_res = float(np.sum((y - (slope * t + intercept)) ** 2))
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        out[end] = 0.0 if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return out


def assert_series(got: np.ndarray, want: np.ndarray, *, rtol: float = 1e-10, atol: float = 1e-10) -> None:
    assert got.dtype == np.float64
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# --- real prices ---


@pytest.mark.parametrize("window", [1, 10, 20, 50, 200])
def test_sma_matches_pandas_on_sp500(bars: dict[str, np.ndarray], window: int) -> None:
    assert_series(indicators.sma(bars["close"], window), ref_sma(bars["close"], window), rtol=1e-12)


@pytest.mark.parametrize("period", [2, 5, 14, 30])
def test_rsi_matches_wilder_reference_on_sp500(bars: dict[str, np.ndarray], period: int) -> None:
    got = indicators.rsi(bars["close"], period)
    assert_series(got, ref_rsi(bars["close"], period), rtol=1e-12, atol=1e-12)
    assert np.nanmin(got) >= 0 and np.nanmax(got) <= 100


def test_rsi_default_period_is_14(bars: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(indicators.rsi(bars["close"]), indicators.rsi(bars["close"], 14))


@pytest.mark.parametrize("period", [1, 5, 14])
def test_atr_matches_wilder_reference_on_sp500(bars: dict[str, np.ndarray], period: int) -> None:
    got = indicators.atr(bars["high"], bars["low"], bars["close"], period)
    assert_series(got, ref_atr(bars["high"], bars["low"], bars["close"], period), rtol=1e-11)


def test_true_range_on_sp500(bars: dict[str, np.ndarray]) -> None:
    tr = indicators.true_range(bars["high"], bars["low"], bars["close"])
    assert_series(tr, ref_atr(bars["high"], bars["low"], bars["close"], 1), rtol=1e-15)


@pytest.mark.parametrize(("window", "ppy"), [(2, 252), (20, 252), (60, 252), (20, 52)])
def test_hist_vol_matches_pandas_on_sp500(bars: dict[str, np.ndarray], window: int, ppy: float) -> None:
    got = indicators.hist_vol(bars["close"], window, ppy)
    assert_series(got, ref_hist_vol(bars["close"], window, ppy), rtol=1e-11, atol=1e-14)
    # S&P 500 realised vol over 20 days stays between 2% and 100% a year in 2009-2018
    if window == 20 and ppy == 252:
        assert 0.02 < np.nanmin(got) < np.nanmax(got) < 1.0


@pytest.mark.parametrize("window", [2, 3, 20, 50])
def test_trend_strength_matches_polyfit_on_sp500(bars: dict[str, np.ndarray], window: int) -> None:
    got = indicators.trend_strength(bars["close"], window)
    assert_series(got, ref_trend_strength(bars["close"], window), rtol=1e-10, atol=1e-11)


def test_defaults(bars: dict[str, np.ndarray]) -> None:
    c = bars["close"][:300]
    np.testing.assert_array_equal(indicators.hist_vol(c), indicators.hist_vol(c, 20, 252))
    np.testing.assert_array_equal(indicators.trend_strength(c), indicators.trend_strength(c, 20))
    h, lo = bars["high"][:300], bars["low"][:300]
    np.testing.assert_array_equal(indicators.atr(h, lo, c), indicators.atr(h, lo, c, 14))


# --- hand-made cases ---


def test_rsi_hand_example() -> None:
    # changes +1, -1, +2, 0 with period 2
    got = indicators.rsi([10, 11, 10, 12, 12], 2)
    np.testing.assert_allclose(got, [np.nan, np.nan, 50.0, 100 * 1.25 / 1.5, 100 * 0.625 / 0.75])


def test_rsi_one_sided_and_flat() -> None:
    up = np.arange(30, dtype=float)
    assert np.all(indicators.rsi(up)[14:] == 100.0)
    assert np.all(indicators.rsi(up[::-1])[14:] == 0.0)
    assert np.all(indicators.rsi(np.full(30, 7.0))[14:] == 50.0)
    # flat, then one rise: all gain, no loss
    assert indicators.rsi([5.0] * 15 + [6.0])[-1] == 100.0


def test_atr_hand_example() -> None:
    high, low, close = [10, 11, 12, 11.5], [9, 10, 10.5, 9], [9.5, 10.8, 11, 9.2]
    np.testing.assert_allclose(indicators.true_range(high, low, close), [1.0, 1.5, 1.5, 2.5])
    np.testing.assert_allclose(indicators.atr(high, low, close, 2), [np.nan, 1.25, 1.375, 1.9375])
    # the whole series as one window: a single value at the end
    np.testing.assert_allclose(indicators.atr(high, low, close, 4)[-1], 6.5 / 4)


def test_hist_vol_of_constant_growth_is_zero() -> None:
    closes = 100 * 1.001 ** np.arange(40)
    got = indicators.hist_vol(closes, 10)
    assert np.all(np.isnan(got[:10]))
    np.testing.assert_allclose(got[10:], 0.0, atol=1e-9)


def test_hist_vol_of_alternating_returns() -> None:
    # returns alternate +r, -r: sample sd of an even window is r * sqrt(w / (w - 1))
    r = 0.01
    closes = 100 * np.exp(np.cumsum(np.r_[0.0, np.tile([r, -r], 10)]))
    got = indicators.hist_vol(closes, 4, 1)
    np.testing.assert_allclose(got[4:], r * math.sqrt(4 / 3), rtol=1e-12)


def test_trend_strength_line_noise_and_flat() -> None:
    line = 3.0 * np.arange(30) - 7.0
    np.testing.assert_allclose(indicators.trend_strength(line)[19:], 1.0, rtol=1e-12)
    np.testing.assert_allclose(indicators.trend_strength(-line, 5)[4:], 1.0, rtol=1e-12)
    assert np.all(indicators.trend_strength(np.full(25, 4.0))[19:] == 0.0)
    # a symmetric V has no linear trend at all
    v = np.abs(np.arange(-10, 11, dtype=float))
    assert indicators.trend_strength(v, 21)[-1] == pytest.approx(0.0, abs=1e-12)


def test_sma_small() -> None:
    np.testing.assert_allclose(indicators.sma([1, 2, 3, 4, 5], 2), [np.nan, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(indicators.sma([4.0], 1), [4.0])


def test_accepts_lists_series_and_strided_views(bars: dict[str, np.ndarray]) -> None:
    c = bars["close"]
    strided = c[::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(indicators.sma(strided, 5), indicators.sma(strided.copy(), 5))
    np.testing.assert_array_equal(indicators.rsi(pd.Series(c[:50])), indicators.rsi(c[:50]))
    np.testing.assert_array_equal(indicators.sma(list(c[:10]), 3), indicators.sma(c[:10], 3))
    np.testing.assert_array_equal(
        indicators.sma(c[:10].astype(np.float32), 3),
        indicators.sma(c[:10].astype(np.float32).astype(float), 3),
    )


def test_threads_get_the_same_answers(bars: dict[str, np.ndarray]) -> None:
    want = indicators.trend_strength(bars["close"], 20)
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(5):
            results.append(indicators.trend_strength(bars["close"], 20))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 20
    for r in results:
        np.testing.assert_array_equal(r, want)


# --- bad input ---

PRICES = [100.0, 101.0, 99.5, 102.0, 103.0, 101.5]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: indicators.sma(PRICES, 0), "window"),
        (lambda: indicators.sma(PRICES, 7), "window"),
        (lambda: indicators.sma(PRICES, -3), "window"),
        (lambda: indicators.sma(PRICES, 2.0), "window"),
        (lambda: indicators.sma(PRICES, True), "window"),
        (lambda: indicators.sma(PRICES, 10**30), "window"),
        (lambda: indicators.sma([], 1), "values"),
        (lambda: indicators.sma([1.0, np.nan, 2.0], 1), "values"),
        (lambda: indicators.sma([[1.0, 2.0]], 1), "values"),
        (lambda: indicators.sma("abc", 1), "values"),
        (lambda: indicators.rsi(PRICES, 6), "period"),
        (lambda: indicators.rsi(PRICES, 0), "period"),
        (lambda: indicators.rsi([1.0, np.inf, 2.0], 1), "closes"),
        (lambda: indicators.atr(PRICES, PRICES[:5], PRICES, 2), "low"),
        (lambda: indicators.atr(PRICES, PRICES, PRICES[:5], 2), "close"),
        (lambda: indicators.atr([1.0, 2.0], [1.5, 1.0], [1.2, 1.5], 1), "high"),
        (lambda: indicators.atr([1.0, np.nan], [0.5, 1.0], [0.7, 1.5], 1), "high"),
        (lambda: indicators.atr(PRICES, PRICES, PRICES, 7), "period"),
        (lambda: indicators.atr(PRICES, PRICES, PRICES, 0), "period"),
        (lambda: indicators.true_range([1.0], [2.0], [1.5]), "high"),
        (lambda: indicators.hist_vol(PRICES, 1), "window"),
        (lambda: indicators.hist_vol(PRICES, 6), "window"),
        (lambda: indicators.hist_vol([1.0, 0.0, 2.0, 3.0], 2), "closes"),
        (lambda: indicators.hist_vol([1.0, -1.0, 2.0, 3.0], 2), "closes"),
        (lambda: indicators.hist_vol(PRICES, 2, 0), "periods_per_year"),
        (lambda: indicators.hist_vol(PRICES, 2, np.nan), "periods_per_year"),
        (lambda: indicators.hist_vol(PRICES, 2, "252"), "periods_per_year"),
        (lambda: indicators.trend_strength(PRICES, 1), "window"),
        (lambda: indicators.trend_strength(PRICES, 7), "window"),
        (lambda: indicators.trend_strength([np.nan] * 5, 2), "closes"),
    ],
)
def test_bad_input_names_the_argument(call: object, field: str) -> None:
    assert callable(call)
    with pytest.raises(InvalidInputError) as info:
        call()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^window: must be >= 1"):
        indicators.sma(PRICES, 0)
