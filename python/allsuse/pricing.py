"""Black-Scholes-Merton pricing with a continuous dividend yield: price, greeks, implied volatility
and the strike for a target delta, for European calls and puts.

Conventions follow QuantLib's AnalyticEuropeanEngine: `t` in years; delta and gamma per unit of
spot; vega per 1.00 of volatility; theta per year (the change in value as the valuation date moves
forward, usually negative); rho per 1.00 of the continuously compounded rate. Rates and dividend
yields are continuously compounded.

Every numeric argument is a float or an array; arrays broadcast numpy-style. All-scalar calls
return floats; otherwise results are float64 arrays of the broadcast shape. The work runs in the
compiled core (without the GIL for arrays); bad input raises `InvalidInputError` naming the argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, overload

import numpy as np

from allsuse import _core
from allsuse._arrays import ArrayLike, Batch, FloatArray, broadcast
from allsuse.errors import InvalidInputError

_KINDS = ("call", "put")
_GREEKS = ("price", "delta", "gamma", "vega", "theta", "rho")


class ImpliedVols(NamedTuple):
    """Implied volatilities of a batch: `vol` (NaN where a price has no solution) and how many failed."""

    vol: FloatArray
    failed: int


def _kind(kind: object) -> str:
    """The option kind, checked here so every entry point reports it the same way."""
    if isinstance(kind, str) and kind in _KINDS:
        return kind
    raise InvalidInputError.of("kind", f"must be 'call' or 'put', got {kind!r}")


def _plain_scalars(named: dict[str, Any]) -> list[float] | None:
    """The values as floats when every one is a Python int or float (the fast path skips numpy)."""
    if not all(type(v) is float or type(v) is int for v in named.values()):
        return None
    values = []
    for name, v in named.items():
        try:
            values.append(float(v))
        except OverflowError:
            raise InvalidInputError.of(name, f"must be a finite number, got {v}") from None
    return values


def _scalars(batch: Batch) -> list[float]:
    """The single value of each argument of an all-scalar batch, in order."""
    return [float(a[0]) for a in batch.arrays.values()]


def _vectors(batch: Batch) -> list[FloatArray]:
    """The flattened arrays of a batch, in order."""
    return list(batch.arrays.values())


def _evaluate(
    named: dict[str, Any],
    scalar: Callable[..., float],
    vector: Callable[..., FloatArray],
    kind: str,
) -> float | FloatArray:
    """Runs the scalar core call for scalar input, the batch call otherwise, and restores the shape."""
    plain = _plain_scalars(named)
    if plain is not None:
        return scalar(kind, *plain)
    batch = broadcast(named)
    if batch.scalar:
        return scalar(kind, *_scalars(batch))
    return batch.restore(vector(kind, *_vectors(batch)))


@overload
def bs_price(  # type: ignore[overload-overlap]
    kind: str, spot: float, strike: float, t: float, vol: float, rate: float = 0.0, div: float = 0.0
) -> float: ...
@overload
def bs_price(
    kind: str,
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    div: ArrayLike = 0.0,
) -> FloatArray: ...
def bs_price(
    kind: str,
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    div: ArrayLike = 0.0,
) -> float | FloatArray:
    """Black-Scholes-Merton price of European options ("call" or "put"), `t` in years."""
    k = _kind(kind)
    named = {"spot": spot, "strike": strike, "t": t, "vol": vol, "rate": rate, "div": div}
    return _evaluate(named, _core.bs_price, _core.bs_price_batch, k)


@overload
def bs_greeks(  # type: ignore[overload-overlap]
    kind: str, spot: float, strike: float, t: float, vol: float, rate: float = 0.0, div: float = 0.0
) -> dict[str, float]: ...
@overload
def bs_greeks(
    kind: str,
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    div: ArrayLike = 0.0,
) -> dict[str, FloatArray]: ...
def bs_greeks(
    kind: str,
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    div: ArrayLike = 0.0,
) -> dict[str, float] | dict[str, FloatArray]:
    """Price and greeks in one pass: a dict with price, delta, gamma, vega, theta, rho.

    QuantLib conventions: vega per 1.00 vol, theta per year, rho per 1.00 rate.
    """
    k = _kind(kind)
    named = {"spot": spot, "strike": strike, "t": t, "vol": vol, "rate": rate, "div": div}
    plain = _plain_scalars(named)
    if plain is not None:
        return dict(zip(_GREEKS, _core.bs_greeks(k, *plain), strict=True))
    batch = broadcast(named)
    if batch.scalar:
        return dict(zip(_GREEKS, _core.bs_greeks(k, *_scalars(batch)), strict=True))
    arrays = _core.bs_greeks_batch(k, *_vectors(batch))
    return {name: np.asarray(batch.restore(a), dtype=np.float64) for name, a in zip(_GREEKS, arrays, strict=True)}


@overload
def implied_vol(  # type: ignore[overload-overlap]
    kind: str, price: float, spot: float, strike: float, t: float, rate: float = 0.0, div: float = 0.0
) -> float: ...
@overload
def implied_vol(
    kind: str,
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    rate: ArrayLike = 0.0,
    div: ArrayLike = 0.0,
) -> FloatArray: ...
def implied_vol(
    kind: str,
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    rate: ArrayLike = 0.0,
    div: ArrayLike = 0.0,
) -> float | FloatArray:
    """Implied volatility of option prices.

    For scalars, a price outside the no-arbitrage bounds raises `InvalidInputError` naming `price`;
    for arrays, its element is NaN (use `implied_vol_batch` to get the count as well).
    """
    k = _kind(kind)
    named = {"price": price, "spot": spot, "strike": strike, "t": t, "rate": rate, "div": div}
    plain = _plain_scalars(named)
    if plain is not None:
        return _core.implied_vol(k, *plain)
    batch = broadcast(named)
    if batch.scalar:
        return _core.implied_vol(k, *_scalars(batch))
    vol, _failed = _core.implied_vol_batch(k, *_vectors(batch))
    return batch.restore(vol)


def implied_vol_batch(
    kind: str,
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    rate: ArrayLike = 0.0,
    div: ArrayLike = 0.0,
) -> ImpliedVols:
    """Implied volatilities that never raise on a bad price: NaN in its element, counted in `failed`.

    `vol` has the broadcast shape of the inputs (shape (1,) when all are scalars). Invalid market
    inputs (NaN, non-positive spot, strike or t, ...) still raise `InvalidInputError`.
    """
    k = _kind(kind)
    batch = broadcast({"price": price, "spot": spot, "strike": strike, "t": t, "rate": rate, "div": div})
    vol, failed = _core.implied_vol_batch(k, *_vectors(batch))
    shaped = vol if batch.scalar else vol.reshape(batch.shape)
    return ImpliedVols(shaped, int(failed))


@overload
def strike_for_delta(  # type: ignore[overload-overlap]
    kind: str, delta: float, spot: float, t: float, vol: float, rate: float = 0.0, div: float = 0.0
) -> float: ...
@overload
def strike_for_delta(
    kind: str,
    delta: ArrayLike,
    spot: ArrayLike,
    t: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    div: ArrayLike = 0.0,
) -> FloatArray: ...
def strike_for_delta(
    kind: str,
    delta: ArrayLike,
    spot: ArrayLike,
    t: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    div: ArrayLike = 0.0,
) -> float | FloatArray:
    """Strike at which the option's Black-Scholes-Merton delta equals `delta`.

    A call delta must lie in (0, e^{-div t}). A put delta may be given with either sign (-0.25 and
    0.25 both mean the 25-delta put); its magnitude must lie in (0, e^{-div t}). An unreachable
    delta raises `InvalidInputError` naming `delta`.
    """
    k = _kind(kind)
    named = {"delta": delta, "spot": spot, "t": t, "vol": vol, "rate": rate, "div": div}
    return _evaluate(named, _core.strike_for_delta, _core.strike_for_delta_batch, k)


__all__ = ["ImpliedVols", "bs_greeks", "bs_price", "implied_vol", "implied_vol_batch", "strike_for_delta"]
