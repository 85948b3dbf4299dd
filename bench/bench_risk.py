"""allsuse.risk against numpy on the same data, measured in the same run. Rows:
- ES of 1,000,000 P&L values (PROTOCOL section 6, k = 25,000) vs numpy's sort-based ES.
- Full revaluation of 50 option positions on 5 underlyings over 10,000 scenarios (returns and IV
  shifts), P&L plus ES and VaR, vs the numpy vectorised equivalent (scipy.special.ndtr over a
  scenarios x positions matrix). Target: <= 5 ms per call.
Both sides are checked to agree before they are timed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from allsuse import risk
from bench.harness import Row, best_of

ES_SIZE = 1_000_000
POSITIONS = 50
UNDERLYINGS = 5
SCENARIOS = 10_000
CONFIDENCE = 0.975


def _numpy_es(pnl: np.ndarray, confidence: float = CONFIDENCE) -> float:
    """ES the usual numpy way: sort everything, average the k worst."""
    k = max(1, math.ceil(round(len(pnl) * (1.0 - confidence), 9)))
    return float(-np.sort(pnl)[:k].mean())


def _es_row(rng: np.random.Generator) -> Row:
    pnl = rng.standard_t(4, ES_SIZE) * 1_000.0
    assert math.isclose(risk.expected_shortfall(pnl), _numpy_es(pnl), rel_tol=1e-12)
    ours = best_of(lambda: risk.expected_shortfall(pnl), repeat=9)
    theirs = best_of(lambda: _numpy_es(pnl), repeat=9)
    return Row("ES(97.5%) of 1,000,000 P&L values", ours, "numpy sort + mean", theirs, ">= 2x")


def _book(rng: np.random.Generator, spot: np.ndarray) -> risk.Book:
    underlying = np.arange(POSITIONS) % UNDERLYINGS
    kind = np.where(rng.random(POSITIONS) < 0.7, risk.PUT, risk.CALL)
    return risk.Book.from_arrays(
        kind,
        underlying,
        -rng.integers(1, 20, POSITIONS).astype(float),
        strike=np.round(spot[underlying] * rng.uniform(0.85, 1.1, POSITIONS)),
        t=rng.integers(2, 60, POSITIONS) / 365.0,
        vol=rng.uniform(0.2, 0.7, POSITIONS),
        rate=0.04,
        div=0.0,
    )


def _numpy_revalue(
    book: risk.Book, spot: np.ndarray, returns: np.ndarray, shifts: np.ndarray, horizon: float
) -> tuple[np.ndarray, float]:
    """The vectorised numpy equivalent: a scenarios x positions matrix priced with ndtr, then ES."""
    u = book.underlying
    w = np.where(book.kind == risk.CALL, 1.0, -1.0)
    k, t, v, r, q = book.strike, book.t, book.vol, book.rate, book.div

    def price(s: np.ndarray, tau: np.ndarray, vol: np.ndarray) -> np.ndarray:
        sd = vol * np.sqrt(tau)
        d1 = (np.log(s / k) + (r - q) * tau) / sd + 0.5 * sd
        d2 = d1 - sd
        return w * (s * np.exp(-q * tau) * ndtr(w * d1) - k * np.exp(-r * tau) * ndtr(w * d2))

    today = price(spot[u], t, v)
    then = price(spot[u] * (1.0 + returns[:, u]), t - horizon, v + shifts[:, u])
    pnl = (then - today) @ (book.quantity * book.multiplier)
    kk = max(1, math.ceil(round(len(pnl) * (1.0 - CONFIDENCE), 9)))
    return pnl, float(-np.partition(pnl, kk - 1)[:kk].mean())


def _revaluation_row(rng: np.random.Generator) -> Row:
    spot = np.array([250.0, 130.0, 180.0, 420.0, 95.0])
    book = _book(rng, spot)
    returns = np.clip(rng.standard_t(4, (SCENARIOS, UNDERLYINGS)) * 0.02, -0.5, 0.5)
    # Implied vol rises as the price falls, in proportion to the move (|return| <= 0.5 keeps it > 0).
    iv = np.array([book.vol[book.underlying == j].min() for j in range(UNDERLYINGS)])
    shifts = -returns * iv[None, :]
    horizon = 1.0 / 252.0
    ours = risk.revalue(book, spot, returns, shifts, horizon=horizon)
    pnl, es = _numpy_revalue(book, spot, returns, shifts, horizon)
    np.testing.assert_allclose(ours.pnl, pnl, rtol=0, atol=1e-9 * np.abs(pnl).max())
    assert math.isclose(ours.expected_shortfall, es, rel_tol=1e-9)
    a = best_of(lambda: risk.revalue(book, spot, returns, shifts, horizon=horizon), repeat=15)
    b = best_of(lambda: _numpy_revalue(book, spot, returns, shifts, horizon), repeat=5)
    return Row(
        f"revalue {POSITIONS} options x {SCENARIOS:,} scenarios (+ ES)",
        a,
        "numpy + scipy ndtr, vectorised",
        b,
        "<= 5 ms per call",
    )


def run() -> list[Row]:
    rng = np.random.default_rng(7)
    return [_es_row(rng), _revaluation_row(rng)]
