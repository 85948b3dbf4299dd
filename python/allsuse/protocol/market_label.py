"""Market label (PROTOCOL section 2): Green, Red or Chop for a symbol from daily bars and an implied volatility.

Three labels are scored on volatility regime, trend, momentum and volume; the indicators come from the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from allsuse import indicators
from allsuse._arrays import as_vector
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


def market_label(
    close: Any, iv: float, volume: Any | None = None, config: settings.ProtocolConfig | None = None
) -> MarketLabel:
    """Labels the last bar of `close` (at least `min_bars` daily closes, oldest first) with implied vol `iv`
    (the symbol's ATM IV; VIX/100 for an index). `volume`, when given, has the same length as `close`."""
    cfg = (config or settings.default()).doc.section("market_label")
    closes = as_vector("close", close)
    min_bars = int(cfg.number("min_bars", low=2))
    if closes.size < min_bars:
        raise InvalidInputError.of("close", f"needs at least {min_bars} daily bars, got {closes.size}")
    if not np.all(np.isfinite(closes)) or np.any(closes <= 0):
        raise InvalidInputError.of("close", "must hold finite prices > 0")
    if not (isinstance(iv, int | float) and np.isfinite(iv) and iv > 0):
        raise InvalidInputError.of("iv", f"must be a finite number > 0, got {iv!r}")
    sc = cfg.section("scores")
    scores = {"green": 0, "red": 0, "chop": 0}

    # Volatility regime.
    if iv < cfg.number("iv_low"):
        vol_regime = "low"
        scores["green"] += int(sc.number("vol_low_green"))
    elif iv > cfg.number("iv_high"):
        vol_regime = "high"
        scores["red"] += int(sc.number("vol_high_red"))
        scores["chop"] += int(sc.number("vol_chop"))
    else:
        vol_regime = "medium"
        scores["chop"] += int(sc.number("vol_chop"))

    # Trend: moving-average stack and the R^2 of a linear fit.
    last = float(closes[-1])
    ma10 = float(indicators.sma(closes, 10)[-1])
    ma20 = float(indicators.sma(closes, 20)[-1])
    ma50 = float(indicators.sma(closes, 50)[-1])
    if ma10 > ma20 > ma50 and last > ma10:
        trend = "bullish"
    elif ma10 < ma20 < ma50 and last < ma10:
        trend = "bearish"
    else:
        trend = "neutral"
    r2 = float(indicators.trend_strength(closes, int(cfg.number("trend_window", low=2)))[-1])
    grade = "weak" if r2 < cfg.number("trend_weak") else "strong" if r2 > cfg.number("trend_strong") else "moderate"
    if trend == "bullish" and grade != "weak":
        scores["green"] += int(sc.number("trend"))
    elif trend == "bearish" and grade != "weak":
        scores["red"] += int(sc.number("trend"))
    else:
        scores["chop"] += int(sc.number("trend_chop"))

    # Momentum: RSI (Wilder) and rate of change.
    rsi = float(indicators.rsi(closes, int(cfg.number("rsi_period", low=1)))[-1])
    roc_n = int(cfg.number("roc_period", low=1))
    roc = (last / float(closes[-1 - roc_n]) - 1.0) * 100.0
    if rsi > cfg.number("rsi_bull") and roc > cfg.number("roc_bull"):
        momentum = "bullish"
        scores["green"] += int(sc.number("momentum"))
    elif rsi < cfg.number("rsi_bear") and roc < cfg.number("roc_bear"):
        momentum = "bearish"
        scores["red"] += int(sc.number("momentum"))
    else:
        momentum = "neutral"
        scores["chop"] += int(sc.number("momentum_chop"))

    # Volume spike adds to whichever of Green or Red leads.
    volume_ratio = float("nan")
    if volume is not None:
        vols = as_vector("volume", volume)
        if vols.size != closes.size:
            raise InvalidInputError.of("volume", f"has {vols.size} bars, close has {closes.size}")
        window = int(cfg.number("volume_window", low=1))
        previous = vols[-1 - window : -1]
        avg = float(np.mean(previous)) if previous.size else float("nan")
        volume_ratio = float(vols[-1]) / avg if avg > 0 else float("nan")
        if volume_ratio > cfg.number("volume_spike") and scores["green"] != scores["red"]:
            scores["green" if scores["green"] > scores["red"] else "red"] += int(sc.number("volume"))

    win = cfg.number("win_min_score")
    # A label wins only with the strictly highest score above the minimum; a tie is Chop.
    g, r, c = scores["green"], scores["red"], scores["chop"]
    if g > r and g > c and g > win:
        label = "green"
    elif r > g and r > c and r > win:
        label = "red"
    else:
        label = "chop"

    conf = cfg.section("confidence")
    confidence = conf.number("base")
    confidence += (
        conf.number("strong_trend")
        if grade == "strong"
        else conf.number("moderate_trend")
        if grade == "moderate"
        else 0.0
    )
    if vol_regime in ("low", "high"):
        confidence += conf.number("clear_vol")
    if momentum != "neutral" and momentum == trend:
        confidence += conf.number("momentum_agrees")
    confidence = min(confidence, conf.number("cap"))
    return MarketLabel(
        label,
        round(confidence, 10),
        scores,
        float(iv),
        vol_regime,
        trend,
        r2,
        grade,
        rsi,
        roc,
        momentum,
        volume_ratio,
    )
