"""Market label (PROTOCOL section 2): Green, Red or Chop for a symbol from daily bars and an implied volatility.

Three labels are scored on volatility regime, trend, momentum and volume, in the core (rust/src/protocol/decide/
label.rs) with the thresholds compiled once per configuration (`ProtocolConfig.label_rules`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from allsuse._arrays import as_vector
from allsuse._frozen import made
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings


@dataclass(frozen=True)
class MarketLabel:
    """The label, its confidence, the three scores and the readings that produced them."""

    label: str  # green, red or chop
    confidence: float
    scores: dict[str, int]
    iv: float
    vol_regime: str  # low, medium, high
    trend: str  # bullish, bearish, neutral
    trend_strength: float  # R^2 of the 20-day fit
    trend_grade: str  # weak, moderate, strong
    rsi: float
    roc_pct: float
    momentum: str  # bullish, bearish, neutral
    volume_ratio: float

    def explain(self) -> str:
        """One line citing every number the label used."""
        return (
            f"label={self.label} confidence={self.confidence:.2f} scores=green:{self.scores['green']}"
            f"/red:{self.scores['red']}/chop:{self.scores['chop']} iv={self.iv:.3f}({self.vol_regime}) "
            f"trend={self.trend}({self.trend_grade}, R2={self.trend_strength:.2f}) rsi={self.rsi:.1f} "
            f"roc={self.roc_pct:.2f}% momentum={self.momentum} volume_ratio={self.volume_ratio:.2f}"
        )


def _is_vector(x: Any) -> bool:
    """A non-empty 1-D C-contiguous float64 array: what as_vector would return unchanged (bars' columns)."""
    # `is` the native float64 dtype (what bars hold); an equal dtype that is another object takes as_vector's path.
    return type(x) is np.ndarray and x.dtype is _F64 and x.ndim == 1 and x.size > 0 and x.flags.c_contiguous


_F64 = np.dtype(np.float64)


def market_label(
    close: Any, iv: float, volume: Any | None = None, config: settings.ProtocolConfig | None = None
) -> MarketLabel:
    """Labels the last bar of `close` (at least `min_bars` daily closes, oldest first) with implied vol `iv`
    (the symbol's ATM IV; VIX/100 for an index). `volume`, when given, has the same length as `close`."""
    protocol = config or settings.default()
    closes = close if _is_vector(close) else as_vector("close", close)
    min_bars = protocol.label_min_bars
    if closes.size < min_bars:
        raise InvalidInputError.of("close", f"needs at least {min_bars} daily bars, got {closes.size}")
    # math.isfinite, not numpy's: the same answer for a Python number, without a ufunc call per label.
    if not (isinstance(iv, int | float) and math.isfinite(iv) and iv > 0):
        raise InvalidInputError.of("iv", f"must be a finite number > 0, got {iv!r}")
    vols = None
    if volume is not None:
        vols = volume if _is_vector(volume) else as_vector("volume", volume)
        if vols.size != closes.size:
            raise InvalidInputError.of("volume", f"has {vols.size} bars, close has {closes.size}")
    # Finite prices > 0 are checked by the core, which names `close`.
    r = protocol.label_rules.label(closes, float(iv), vols)
    return made(
        MarketLabel,
        label=r.label,
        confidence=round(r.confidence, 10),
        scores={"green": r.green, "red": r.red, "chop": r.chop},
        iv=float(iv),
        vol_regime=r.vol_regime,
        trend=r.trend,
        trend_strength=r.trend_strength,
        trend_grade=r.trend_grade,
        rsi=r.rsi,
        roc_pct=r.roc_pct,
        momentum=r.momentum,
        volume_ratio=r.volume_ratio,
    )
