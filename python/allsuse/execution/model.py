"""The paper market's model: a U-shaped intraday volume profile, a spread from IV and moneyness, and square-root
market impact (docs/execution.md, "The paper market").

Every function here is pure and small, so each can be checked against a hand-computed value:

- volume profile: minute m of an M-minute session gets u_m = (1 + c x_m^2) / sum_j (1 + c x_j^2), with
  x_m = (m + 0.5 - M/2) / (M/2) in (-1, 1): c = 2 makes the first and last minutes about three times as busy as
  midday (the shape of US equity and option volume);
- spread share of mid: options base + a x IV + b x |ln(K/S)| (wider with volatility and away from the money),
  stock `stock` + a_s x IV;
- instrument daily volatility: IV / sqrt(252), times the option's elasticity |delta| x S / mid (1 for stock);
- temporary impact share of mid of q units against daily volume V: k x sigma_d x sqrt(q / V) (the square-root law);
- permanent impact share of mid: gamma x sigma_d x q / V, linear in size (so that cutting an order into pieces
  neither adds nor removes permanent impact: Huberman and Stanzl 2004; gamma 0.314 as estimated by Almgren, Thum,
  Hauptmann and Li 2005);
- the spread in price is never under one tick: 0.01 for an option under $3, 0.05 from $3 (as the backtest's cost
  model, allsuse.backtest.costs), 0.01 for a share;
- passive fills: a resting limit order delta from mid on its own side (delta = h, the half spread, at the near
  touch; 0 at mid) is filled at rate lambda(delta) = A exp(-k delta / h) a minute (the fill intensity of Avellaneda
  and Stoikov 2008, used for liquidation with limit orders by Gueant, Lehalle and Fernandez-Tapia 2012), so with
  probability 1 - exp(-lambda) in a minute (Poisson); adverse selection: a fill comes with a move of the mid of
  alpha x h (a share of mid, as a log move) against the filled order and a minute without one with the move away
  from the resting order that keeps the mid a martingale (Glosten and Milgrom 1985): to first order every unit
  filled passively costs alpha h of the spread it captured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from allsuse.errors import InvalidInputError

SESSION_MINUTES = 390
TRADING_DAYS = 252
MAX_ELASTICITY = 100.0


@dataclass(frozen=True)
class MarketParams:
    """The paper market's parameters (config section `execution`, docs/execution.md)."""

    impact_coefficient: float = 0.5
    permanent_impact_coefficient: float = 0.314
    option_daily_volume: float = 2000.0
    stock_daily_volume: float = 2_000_000.0
    spread_base: float = 0.02
    spread_iv: float = 0.03
    spread_moneyness: float = 0.5
    stock_spread: float = 0.0002
    stock_spread_iv: float = 0.0005
    profile_curvature: float = 2.0
    passive_fill_intensity: float = 1.0
    passive_fill_decay: float = 1.0
    adverse_selection_share: float = 0.5

    def __post_init__(self) -> None:
        for name in (
            "impact_coefficient",
            "permanent_impact_coefficient",
            "spread_base",
            "spread_iv",
            "spread_moneyness",
            "stock_spread",
            "stock_spread_iv",
            "profile_curvature",
            "passive_fill_intensity",
            "passive_fill_decay",
            "adverse_selection_share",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidInputError.of(name, f"must be a finite number >= 0, got {value!r}")
        for name in ("option_daily_volume", "stock_daily_volume"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise InvalidInputError.of(name, f"must be a finite number > 0, got {value!r}")


def volume_profile(curvature: float, minutes: int = SESSION_MINUTES) -> tuple[float, ...]:
    """Each minute's share of the day's volume (sums to 1): U-shaped, `curvature` = how much busier the open and
    close are than midday (c = 2: about three times)."""
    if not math.isfinite(curvature) or curvature < 0:
        raise InvalidInputError.of("profile_curvature", f"must be a finite number >= 0, got {curvature!r}")
    if minutes < 1:
        raise InvalidInputError.of("minutes", f"must be >= 1, got {minutes}")
    half = minutes / 2
    raw = [1.0 + curvature * ((m + 0.5 - half) / half) ** 2 for m in range(minutes)]
    total = sum(raw)
    return tuple(r / total for r in raw)


def spread_share(kind: str, iv: float, spot: float, strike: float, params: MarketParams) -> float:
    """The full bid-ask spread as a share of mid."""
    _positive(iv, "iv")
    if kind == "stock":
        return params.stock_spread + params.stock_spread_iv * iv
    if kind not in ("put", "call"):
        raise InvalidInputError.of("kind", f"must be put, call or stock, got {kind!r}")
    _positive(spot, "spot")
    _positive(strike, "strike")
    return params.spread_base + params.spread_iv * iv + params.spread_moneyness * abs(math.log(strike / spot))


def tick(kind: str, price: float) -> float:
    """The minimum price increment: an option's penny under $3 and nickel from $3, a share's penny."""
    if kind == "stock":
        return 0.01
    return 0.01 if price < 3.0 else 0.05


def spread_price(kind: str, mid: float, share: float) -> float:
    """The full spread in price: `share` of mid, at least one tick."""
    return max(share * mid, tick(kind, mid))


def daily_volatility(kind: str, iv: float, spot: float, mid: float, delta: float) -> float:
    """The instrument's daily return volatility: IV / sqrt(252), times |delta| x S / mid for an option (its
    elasticity, bounded to [1, 100])."""
    _positive(iv, "iv")
    sigma = iv / math.sqrt(TRADING_DAYS)
    if kind == "stock":
        return sigma
    _positive(spot, "spot")
    _positive(mid, "mid")
    if not math.isfinite(delta) or not 0 <= delta <= 1:
        raise InvalidInputError.of("delta", f"must be in [0, 1], got {delta!r}")
    elasticity = min(MAX_ELASTICITY, max(1.0, delta * spot / mid))
    return sigma * elasticity


def impact_share(quantity: float, daily_volume: float, sigma_daily: float, coefficient: float) -> float:
    """Temporary impact of `quantity` units as a share of mid: k x sigma_d x sqrt(q / V)."""
    if quantity < 0:
        raise InvalidInputError.of("quantity", f"must be >= 0, got {quantity}")
    _positive(daily_volume, "daily_volume")
    return coefficient * sigma_daily * math.sqrt(quantity / daily_volume)


def permanent_share(quantity: float, daily_volume: float, sigma_daily: float, coefficient: float) -> float:
    """Permanent impact of `quantity` units as a share of mid: gamma x sigma_d x q / V (linear in size)."""
    if quantity < 0:
        raise InvalidInputError.of("quantity", f"must be >= 0, got {quantity}")
    _positive(daily_volume, "daily_volume")
    return coefficient * sigma_daily * quantity / daily_volume


def max_quantity_within(share: float, daily_volume: float, sigma_daily: float, coefficient: float) -> int:
    """The largest whole quantity whose impact share is at most `share` (the inverse of impact_share)."""
    if share <= 0:
        return 0
    if coefficient * sigma_daily <= 0:
        return 2**31
    q = daily_volume * (share / (coefficient * sigma_daily)) ** 2
    return int(min(q, 2**31) + 1e-9)


def fill_intensity(distance: float, half_spread: float, intensity: float, decay: float) -> float:
    """Fills a minute of a resting limit `distance` from mid on its own side (price units; h = `half_spread` at the
    near touch, 0 at mid, negative past mid): A exp(-k distance / h), A = `intensity`, k = `decay` a half spread."""
    for value, name in ((intensity, "passive_fill_intensity"), (decay, "passive_fill_decay")):
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise InvalidInputError.of(name, f"must be a finite number >= 0, got {value!r}")
    _positive(half_spread, "half_spread")
    if not math.isfinite(distance):
        raise InvalidInputError.of("distance", f"must be finite, got {distance!r}")
    return intensity * math.exp(-decay * distance / half_spread)


def fill_probability(intensity: float, minutes: float = 1.0) -> float:
    """The probability of at least one fill in `minutes` at Poisson rate `intensity`: 1 - exp(-lambda t)."""
    if not math.isfinite(intensity) or intensity < 0:
        raise InvalidInputError.of("intensity", f"must be a finite number >= 0, got {intensity!r}")
    return -math.expm1(-intensity * minutes)


def adverse_drift(share: float, half_spread_share: float, probability: float) -> float:
    """The log move of the mid away from a resting order in a minute it was not filled: when a fill (probability
    pi) comes with a move of a = alpha x h (h as a share of mid) against it, exp(-a), the minute without one moves it
    by b = ln((1 - pi exp(-a)) / (1 - pi)), so that pi exp(-a) + (1 - pi) exp(b) = 1: the mid stays a martingale."""
    if not 0 <= probability < 1:
        raise InvalidInputError.of("probability", f"must be in [0, 1), got {probability!r}")
    jump = share * half_spread_share
    return math.log((1 - probability * math.exp(-jump)) / (1 - probability))


def _positive(value: float, name: str) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InvalidInputError.of(name, f"must be a finite number > 0, got {value!r}")


__all__ = [
    "SESSION_MINUTES",
    "MarketParams",
    "adverse_drift",
    "daily_volatility",
    "fill_intensity",
    "fill_probability",
    "impact_share",
    "max_quantity_within",
    "permanent_share",
    "spread_price",
    "spread_share",
    "tick",
    "volume_profile",
]
