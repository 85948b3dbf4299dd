"""allsuse.pricing against numpy/scipy on the same options.

Rows:
- greeks, 1,000,000 options: `bs_greeks` (price and five greeks) against the same closed forms
  vectorised in numpy with scipy.special.ndtr.
- implied vol, 100,000 options: `implied_vol_batch` against scipy.optimize.brentq on each option
  (the brentq loop is timed on the first 2,000 options and scaled per option, as the row says).
The inputs mix deep in/out-of-the-money strikes (50%..200% of spot) and expiries from 1 day to 2 years.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr

from allsuse import pricing
from bench.harness import Row, best_of

GREEKS_N = 1_000_000
IV_N = 100_000
BRENTQ_N = 2_000


def _market(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "spot": np.full(n, 100.0),
        "strike": 100.0 * rng.uniform(0.5, 2.0, n),
        "t": rng.integers(1, 731, n) / 365.0,
        "vol": rng.uniform(0.05, 1.0, n),
        "rate": rng.uniform(0.0, 0.06, n),
        "div": rng.uniform(0.0, 0.03, n),
    }


def numpy_greeks(
    w: float, s: np.ndarray, k: np.ndarray, t: np.ndarray, v: np.ndarray, r: np.ndarray, q: np.ndarray
) -> dict[str, np.ndarray]:
    """The baseline: Black-Scholes-Merton price and greeks as vectorised numpy/scipy expressions."""
    sqrt_t = np.sqrt(t)
    sd = v * sqrt_t
    d1 = (np.log(s / k) + (r - q) * t) / sd + 0.5 * sd
    d2 = d1 - sd
    dq = np.exp(-q * t)
    dr = np.exp(-r * t)
    n1 = ndtr(w * d1)
    n2 = ndtr(w * d2)
    fwd = s * dq
    kd = k * dr
    fwd_pdf = fwd * np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    return {
        "price": w * (fwd * n1 - kd * n2),
        "delta": w * dq * n1,
        "gamma": fwd_pdf / (s * s * sd),
        "vega": fwd_pdf * sqrt_t,
        "theta": -fwd_pdf * v / (2.0 * sqrt_t) - w * (r * kd * n2 - q * fwd * n1),
        "rho": w * t * kd * n2,
    }


def _greeks_row() -> Row:
    m = _market(GREEKS_N, 1)
    ours = pricing.bs_greeks("call", **m)
    theirs = numpy_greeks(1.0, m["spot"], m["strike"], m["t"], m["vol"], m["rate"], m["div"])
    for name in ours:  # same numbers before comparing speed
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-9, atol=1e-12)
    a = best_of(lambda: pricing.bs_greeks("call", **m), repeat=5)
    b = best_of(
        lambda: numpy_greeks(1.0, m["spot"], m["strike"], m["t"], m["vol"], m["rate"], m["div"]),
        repeat=3,
    )
    return Row(
        "bs_greeks, 1M options (price + 5 greeks)",
        a,
        "numpy/scipy.special.ndtr vectorised",
        b,
        ">= 5x",
        per="per option",
        count=GREEKS_N,
    )


def _brentq_vol(w: float, price: float, s: float, k: float, t: float, r: float, q: float) -> float:
    def objective(v: float) -> float:
        sd = v * math.sqrt(t)
        d1 = (math.log(s / k) + (r - q) * t) / sd + 0.5 * sd
        d2 = d1 - sd
        return w * (s * math.exp(-q * t) * ndtr(w * d1) - k * math.exp(-r * t) * ndtr(w * d2)) - price

    return float(brentq(objective, 1e-4, 10.0, xtol=1e-12, rtol=1e-12))


def _implied_vol_row() -> Row:
    m = _market(IV_N, 2)
    kind = "put"
    prices = pricing.bs_price(kind, **m)
    args = (prices, m["spot"], m["strike"], m["t"], m["rate"], m["div"])
    out = pricing.implied_vol_batch(kind, *args)
    ok = ~np.isnan(out.vol)
    # Only options whose price still carries time value can be solved; the rest are NaN and counted.
    assert out.failed == int((~ok).sum())
    back = pricing.bs_price(kind, m["spot"][ok], m["strike"][ok], m["t"][ok], out.vol[ok], m["rate"][ok], m["div"][ok])
    np.testing.assert_allclose(back, prices[ok], rtol=1e-9, atol=1e-12)
    a = best_of(lambda: pricing.implied_vol_batch(kind, *args), repeat=5)

    # brentq on a subset of solvable options (a bracket [1e-4, 10] that contains every true vol).
    idx = np.flatnonzero(ok & (prices > 1e-8))[:BRENTQ_N]
    sub = [
        (float(prices[i]), 100.0, float(m["strike"][i]), float(m["t"][i]), float(m["rate"][i]), float(m["div"][i]))
        for i in idx
    ]

    def loop() -> None:
        for p, s, k, t, r, q in sub:
            _brentq_vol(-1.0, p, s, k, t, r, q)

    start = time.perf_counter()
    loop()
    per_option = (time.perf_counter() - start) / len(sub)
    return Row(
        f"implied_vol_batch, 100k options ({out.failed} without time value -> NaN)",
        a,
        f"scipy brentq loop, timed on {len(sub)} options with price > 1e-8, scaled to 100k",
        per_option * IV_N,
        "<= 1 us per option",
        per="per option",
        count=IV_N,
    )


def run() -> list[Row]:
    return [_greeks_row(), _implied_vol_row()]
