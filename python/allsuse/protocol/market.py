"""Market data the engine reads: daily bars per symbol, implied vols, the VIX, sectors, chains, earnings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from allsuse.errors import InvalidInputError
from allsuse.orchestration.nyse import FIRST_YEAR, LAST_YEAR, NyseCalendar

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Bars:
    """Daily bars of one symbol, oldest first, up to and including the as-of day."""

    dates: tuple[dt.date, ...]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    # Day numbers (proleptic ordinals) for O(log n) slicing by date; derived from `dates` when not given.
    days: npt.NDArray[np.int64] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.dates)
        if self.days is None:
            days = np.fromiter((d.toordinal() for d in self.dates), dtype=np.int64, count=n)
            object.__setattr__(self, "days", days)
        for name in ("open", "high", "low", "close", "volume"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise InvalidInputError.of(f"bars.{name}", f"has shape {arr.shape}, dates has {n} entries")
        if n and not np.all(np.isfinite(self.close)):
            raise InvalidInputError.of("bars.close", "must be finite")

    def upto(self, day: dt.date) -> Bars:
        """The bars up to and including `day`."""
        assert self.days is not None
        n = int(np.searchsorted(self.days, day.toordinal(), side="right"))
        if n == len(self.dates):
            return self
        return Bars(
            self.dates[:n], self.open[:n], self.high[:n], self.low[:n], self.close[:n], self.volume[:n], self.days[:n]
        )

    @property
    def last_close(self) -> float:
        """The most recent close."""
        if not self.dates:
            raise InvalidInputError.of("bars", "no bars up to the as-of date")
        return float(self.close[-1])


@dataclass(frozen=True)
class OptionQuote:
    """One strike of a chain: bid/ask, IV, open interest and volume."""

    strike: float
    bid: float
    ask: float
    iv: float
    open_interest: float = 0.0
    volume: float = 0.0


@dataclass(frozen=True)
class MarketData:
    """Everything the engine needs about markets at the as-of time."""

    bars: dict[str, Bars]
    iv: dict[str, float]
    vix: float | None = None
    rate: float = 0.0
    sectors: dict[str, str] = field(default_factory=dict)
    chains: dict[str, dict[str, list[OptionQuote]]] = field(default_factory=dict)  # symbol -> kind -> quotes
    earnings: dict[str, list[dt.date]] | None = None
    # Where each symbol's IV came from when no chain was given: "given" (the caller's number), "vix", "proxy"
    # (realised volatility x the VIX proxy ratio) or "hist_vol"; absent means "given".
    iv_source: dict[str, str] = field(default_factory=dict)

    def bars_for(self, symbol: str) -> Bars:
        """The bars of `symbol`, or InvalidInputError naming `symbol`."""
        if symbol not in self.bars:
            raise InvalidInputError.of("symbol", f"no bars for {symbol!r}")
        return self.bars[symbol]

    def iv_for(self, symbol: str) -> float:
        """The implied volatility of `symbol`, or InvalidInputError."""
        iv = self.iv.get(symbol)
        if iv is None or not np.isfinite(iv) or iv <= 0:
            raise InvalidInputError.of("iv", f"no valid implied volatility for {symbol!r}")
        return float(iv)


_NYSE = NyseCalendar()


def last_trading_day_of_week(day: dt.date) -> dt.date:
    """The last NYSE trading day of `day`'s week: its Friday, or the day before when that Friday is a holiday
    (Good Friday); outside the calendar's years, the Friday."""
    friday = day + dt.timedelta(days=4 - day.weekday())
    if not FIRST_YEAR <= friday.year <= LAST_YEAR:
        return friday
    candidate = friday
    while candidate > friday - dt.timedelta(days=4) and not _NYSE.is_trading_day(candidate):
        candidate -= dt.timedelta(days=1)
    return candidate


def weekly_expiry(day: dt.date) -> dt.date:
    """The weekly expiry a new entry on `day` takes: this week's last trading day, or next week's once today is
    that day or later (PROTOCOL section 3, DTE 1..7 except around a holiday)."""
    expiry = last_trading_day_of_week(day)
    if expiry <= day:
        expiry = last_trading_day_of_week(day + dt.timedelta(days=7 - day.weekday()))
    return expiry


def next_weekly_expiry(expiry: dt.date) -> dt.date:
    """The weekly expiry after `expiry` (where a roll goes)."""
    return last_trading_day_of_week(expiry + dt.timedelta(days=7 - expiry.weekday()))
