"""Technical indicators over daily bars, computed in the compiled core.

They feed the market label (RSI(14), moving averages, trend strength: PROTOCOL section 2) and the
protocol levels and ATR regime (ATR(5), ATR(14): section 5). Each takes 1-D price series and returns a
float64 array of the same length, NaN where there is not yet enough data. Bad input (non-finite prices,
a window of 0 or longer than the series allows, mismatched lengths) raises
`allsuse.errors.InvalidInputError` naming the argument.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from allsuse import _core
from allsuse._arrays import FloatArray, as_vector
from allsuse.errors import InvalidInputError

# The core takes window lengths as 64-bit integers; anything longer than this is longer than any series.
_MAX_COUNT = 2**62


def _count(name: str, value: Any) -> int:
    """A window or period argument as an int, or InvalidInputError naming it."""
    if isinstance(value, (bool, np.bool_)):
        raise InvalidInputError.of(name, f"must be an integer, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise InvalidInputError.of(name, f"must be an integer, got {value!r}") from None
    if n < 1:
        raise InvalidInputError.of(name, f"must be >= 1, got {n}")
    if n > _MAX_COUNT:
        raise InvalidInputError.of(name, f"is longer than any series, got {n}")
    return n


def sma(values: Any, window: int) -> FloatArray:
    """Simple moving average: mean of the last `window` values; NaN for the first `window - 1`."""
    return _core.sma(as_vector("values", values), _count("window", window))


def rsi(closes: Any, period: int = 14) -> FloatArray:
    """Relative strength index (0-100) with Wilder smoothing.

    The averages of gains and losses start at index `period` as the simple mean of the first `period`
    changes, then `avg = (prev * (period - 1) + x) / period`. 100 when there are gains and no losses,
    0 for losses only, 50 when prices have not moved at all. NaN for the first `period` values.
    """
    return _core.rsi(as_vector("closes", closes), _count("period", period))


def true_range(high: Any, low: Any, close: Any) -> FloatArray:
    """True range per bar: max(high - low, |high - prev close|, |low - prev close|); high - low on bar 0."""
    return _core.true_range(as_vector("high", high), as_vector("low", low), as_vector("close", close))


def atr(high: Any, low: Any, close: Any, period: int = 14) -> FloatArray:
    """Wilder's average true range (in price units).

    The first bar's true range is high - low. ATR is first defined at index `period - 1`, as the mean of
    the first `period` true ranges, then `atr = (prev * (period - 1) + tr) / period`. The three series must
    have the same length and high >= low on every bar.
    """
    return _core.atr(
        as_vector("high", high), as_vector("low", low), as_vector("close", close), _count("period", period)
    )


def hist_vol(closes: Any, window: int = 20, periods_per_year: float = 252) -> FloatArray:
    """Annualised historical volatility: the sample standard deviation (ddof=1) of the last `window` log
    returns, times sqrt(periods_per_year). Prices must be > 0. NaN for the first `window` values."""
    if isinstance(periods_per_year, (bool, np.bool_)) or not isinstance(
        periods_per_year, (int, float, np.integer, np.floating)
    ):
        raise InvalidInputError.of("periods_per_year", f"must be a number, got {periods_per_year!r}")
    return _core.hist_vol(as_vector("closes", closes), _count("window", window), float(periods_per_year))


def trend_strength(closes: Any, window: int = 20) -> FloatArray:
    """Trend strength in [0, 1]: R^2 of a least-squares line through the last `window` closes against time.

    PROTOCOL section 2 reads < 0.3 as weak and > 0.7 as strong. A flat window scores 0 (no trend).
    NaN for the first `window - 1` values.
    """
    return _core.trend_strength(as_vector("closes", closes), _count("window", window))


__all__ = ["atr", "hist_vol", "rsi", "sma", "trend_strength", "true_range"]
