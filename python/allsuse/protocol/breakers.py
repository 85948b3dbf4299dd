"""VIX breakers and trading states (PROTOCOL section 6), computed in the core with the thresholds of
config/protocol.yaml: VIX >= 50 a hedged week (new deployment x 0.5), >= 65 REDUCING, >= 80 HALTED, each threshold
compared on exact values. The breaker reads the VIX value itself; when a proxy stands in for the VIX (realised
volatility), pass `proxy=True` so the reading says so.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from allsuse import _core
from allsuse._numbers import number
from allsuse.protocol import settings


class TradingState(enum.StrEnum):
    """What orders an account, or the whole system, may place."""

    ACTIVE = "ACTIVE"
    """Anything the rules allow."""
    REDUCING = "REDUCING"
    """Only orders that reduce exposure."""
    HALTED = "HALTED"
    """Only cancels, closes and reduce orders."""


@dataclass(frozen=True, slots=True)
class VixReading:
    """What the VIX allows: the system trading state, whether the week is hedged, the new-deployment multiplier
    m_VIX (1.0, 0.5 hedged, 0 when REDUCING or HALTED), and whether the value was a proxy."""

    vix: float
    state: TradingState
    hedged: bool
    multiplier: float
    proxy: bool = False


def vix_breaker(vix: float, *, proxy: bool = False, config: settings.ProtocolConfig | None = None) -> VixReading:
    """Applies the VIX breakers to a VIX value (a level such as 18.5, not a fraction).

    >>> vix_breaker(50.0)
    VixReading(vix=50.0, state=<TradingState.ACTIVE: 'ACTIVE'>, hedged=True, multiplier=0.5, proxy=False)
    """
    v = (config or settings.default()).doc.section("vix_breakers")
    value = number("vix", vix)
    multiplier, hedged, state = _core.vix_breaker(
        value, v.number("hedged_at"), v.number("hedged_multiplier"), v.number("reducing_at"), v.number("halted_at")
    )
    return VixReading(value, TradingState(state), hedged, multiplier, bool(proxy))


__all__ = ["TradingState", "VixReading", "vix_breaker"]
