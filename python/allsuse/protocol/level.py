"""Protocol levels and the ATR regime (PROTOCOL section 5), computed in the core with the thresholds of
config/protocol.yaml. Every threshold is compared on exact values: a quantity within 1e-9 (relative) of a boundary
counts as on it, so an excursion of 2.999999999999992 ATR is level 3.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from allsuse import _core
from allsuse._numbers import number
from allsuse.protocol import settings


class LevelName(enum.StrEnum):
    """The four protocol levels, 0 to 3."""

    NORMAL = "normal"
    ENHANCED = "enhanced"
    RECOVERY = "recovery"
    PRESERVATION = "preservation"

    @property
    def level(self) -> int:
        """0 normal .. 3 preservation."""
        return list(LevelName).index(self)


@dataclass(frozen=True, slots=True)
class ProtocolLevel:
    """A position's level and the two measures behind it: the adverse excursion x in ATR(5) units (negative when the
    position is in our favour) and the loss as a share of account equity (0 when not losing)."""

    level: int
    name: LevelName
    excursion: float
    loss_share: float


class AtrRegime(enum.StrEnum):
    """ATR(14) as % of spot, from very low to very high volatility."""

    VERY_LOW = "very_low"
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    VERY_HIGH = "very_high"


@dataclass(frozen=True, slots=True)
class AtrRegimeReading:
    """The regime of an ATR(14) % of spot and the size multiplier m_ATR it gives."""

    atr_pct: float
    regime: AtrRegime
    size_multiplier: float


def _cfg(config: settings.ProtocolConfig | None) -> settings.ProtocolConfig:
    return config or settings.default()


def protocol_level(
    reference: float,
    spot: float,
    atr: float | None,
    loss: float,
    equity: float,
    *,
    config: settings.ProtocolConfig | None = None,
) -> ProtocolLevel:
    """The level of one position. reference: the strike of a short put, or the cost basis of stock or covered calls;
    atr: ATR(5), or None with fewer than 5 bars (then 2% of spot); loss: the position's loss in dollars (positive =
    losing); equity: the account's equity.

    >>> protocol_level(100.0, 97.9, 0.7, 0.0, 100_000.0).name   # x = 2.1 / 0.7, on the level-3 boundary
    <LevelName.PRESERVATION: 'preservation'>
    """
    lv = _cfg(config).doc.section("protocol_levels")
    exc = lv.numbers("excursion", 3)
    lt = lv.numbers("loss", 3)
    level, x, loss_share = _core.protocol_level(
        number("reference", reference),
        number("spot", spot),
        None if atr is None else number("atr", atr),
        number("loss", loss),
        number("equity", equity),
        (exc[0], exc[1], exc[2]),
        (lt[0], lt[1], lt[2]),
        lv.number("atr_fallback_share"),
    )
    return ProtocolLevel(level, list(LevelName)[level], x, loss_share)


def atr_regime(atr_pct: float, *, config: settings.ProtocolConfig | None = None) -> AtrRegimeReading:
    """The ATR regime of ATR(14) expressed in percent of spot (1.5 = 1.5%); upper bounds are inclusive.

    >>> atr_regime(1.0).regime, atr_regime(1.0).size_multiplier
    (<AtrRegime.LOW: 'low'>, 1.1)
    """
    ar = _cfg(config).doc.section("atr_regime")
    up = ar.numbers("upper_pct", 4)
    mult = ar.numbers("size_multiplier", 5)
    pct = number("atr_pct", atr_pct)
    regime, m = _core.atr_regime(pct, (up[0], up[1], up[2], up[3]), (mult[0], mult[1], mult[2], mult[3], mult[4]))
    return AtrRegimeReading(pct, AtrRegime(regime), m)


def delta_target(band_low: float, band_high: float, regime: AtrRegime | str) -> float:
    """The delta target inside [band_low, band_high] for a regime: the middle of the upper third (very low), of the
    upper half (low), the middle (normal), the middle of the lower half (high), the band minimum (very high).

    >>> delta_target(40, 50, AtrRegime.HIGH)
    42.5
    """
    return _core.delta_target(number("band_low", band_low), number("band_high", band_high), str(regime))


__all__ = [
    "AtrRegime",
    "AtrRegimeReading",
    "LevelName",
    "ProtocolLevel",
    "atr_regime",
    "delta_target",
    "protocol_level",
]
