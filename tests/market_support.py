"""Deterministic synthetic markets for the engine tests: trending (green), falling (red) and sideways (chop) bars."""

from __future__ import annotations

import datetime as dt

import numpy as np

from allsuse.protocol import Bars, MarketData

THURSDAY = dt.date(2024, 3, 7)
MONDAY = dt.date(2024, 3, 4)
WEDNESDAY = dt.date(2024, 3, 6)
# A realistic single-stock IV: with $1 strikes near $200 and one day to expiry, a 0.45 IV puts about 8 delta
# points between strikes, so the 40-50 band always holds one (a 0.15 IV would skip over it).
IV_GREEN = 0.45


def make_bars(end: dt.date, closes: np.ndarray, volume: float = 1e6) -> Bars:
    days: list[dt.date] = []
    d = end
    while len(days) < closes.size:
        if d.weekday() < 5:
            days.append(d)
        d -= dt.timedelta(days=1)
    days.reverse()
    c = closes.astype(np.float64)
    spread = np.maximum(c * 0.004, 0.01)
    return Bars(tuple(days), c.copy(), c + spread, c - spread, c.copy(), np.full(c.size, volume))


def trend(n: int, start: float, daily: float, wiggle: float = 0.0) -> np.ndarray:
    i = np.arange(n)
    return start * (1 + daily) ** i * (1 + wiggle * np.sin(i * 1.7))


def market(bars: Bars, iv: float, symbol: str = "NVDA", vix: float | None = 18.0) -> MarketData:
    return MarketData(bars={symbol: bars}, iv={symbol: iv}, vix=vix, sectors={symbol: "tech"})


def green(end: dt.date) -> Bars:
    return make_bars(end, trend(300, 60.0, 0.004, 0.002))


def red(end: dt.date) -> Bars:
    return make_bars(end, trend(300, 600.0, -0.004, 0.002))


def chop(end: dt.date) -> Bars:
    i = np.arange(300)
    return make_bars(end, 100.0 * (1 + 0.03 * np.sin(i / 3.0)))


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(15, 45))
