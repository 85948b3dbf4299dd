"""Market data the engine reads: daily bars per symbol, implied vols, the VIX, sectors, chains, earnings."""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from allsuse.errors import InvalidInputError
from allsuse.orchestration.nyse import FIRST_YEAR, LAST_YEAR, NyseCalendar

FloatArray = npt.NDArray[np.float64]


_BAR_COLUMNS = ("open", "high", "low", "close", "volume")


class Bars:
    """Daily bars of one symbol, oldest first, up to and including the as-of day.

    `days` (proleptic ordinals, `date.toordinal()`) is what slicing and the core read; `dates`, the same days as a
    tuple of `datetime.date`, is built from them on first use only, so bars made from columns (`from_days`, the
    server's fast path) never loop over their days in Python unless a caller asks for dates. Immutable.
    """

    __slots__ = ("_dates", "close", "days", "high", "low", "open", "volume")

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    days: npt.NDArray[np.int64]
    _dates: tuple[dt.date, ...] | None

    def __init__(
        self,
        dates: Sequence[dt.date] | None,
        open: FloatArray,
        high: FloatArray,
        low: FloatArray,
        close: FloatArray,
        volume: FloatArray,
        days: npt.NDArray[np.int64] | None = None,
    ) -> None:
        if days is None:
            if dates is None:
                raise InvalidInputError.of("bars.days", "dates or days must be given")
            dates = tuple(dates)
            days = np.fromiter((d.toordinal() for d in dates), dtype=np.int64, count=len(dates))
        elif dates is not None:
            dates = tuple(dates)
            if len(dates) != len(days):
                raise InvalidInputError.of("bars.days", f"has {len(days)} entries, dates has {len(dates)}")
        n = len(days)
        setattr_ = object.__setattr__
        setattr_(self, "_dates", None if dates is None else tuple(dates))
        setattr_(self, "days", days)
        for name, arr in zip(_BAR_COLUMNS, (open, high, low, close, volume), strict=True):
            if arr.shape != (n,):
                raise InvalidInputError.of(f"bars.{name}", f"has shape {arr.shape}, dates has {n} entries")
            setattr_(self, name, arr)
        if n and not np.all(np.isfinite(close)):
            raise InvalidInputError.of("bars.close", "must be finite")

    def window(self, lo: int, hi: int) -> Bars:
        """Bars lo..hi-1 (indexes into these bars, 0 <= lo <= hi <= len), sharing their memory: a slice of bars
        already checked needs no checking again (the backtest's daily window of each symbol). Its dates are derived
        from its days when first read."""
        if lo == 0 and hi == len(self.days):
            return self
        out = object.__new__(Bars)
        setattr_ = object.__setattr__
        setattr_(out, "_dates", None)
        setattr_(out, "days", self.days[lo:hi])
        for name in _BAR_COLUMNS:
            setattr_(out, name, getattr(self, name)[lo:hi])
        return out

    @classmethod
    def from_days(
        cls,
        days: npt.NDArray[np.int64],
        open: FloatArray,
        high: FloatArray,
        low: FloatArray,
        close: FloatArray,
        volume: FloatArray,
    ) -> Bars:
        """Bars from columns whose days are proleptic ordinals; `dates` is derived when first read."""
        return cls(None, open, high, low, close, volume, days)

    @property
    def dates(self) -> tuple[dt.date, ...]:
        """The days as dates (built once, on first use)."""
        dates = self._dates
        if dates is None:
            dates = tuple(map(dt.date.fromordinal, self.days.tolist()))
            object.__setattr__(self, "_dates", dates)
        return dates

    def __len__(self) -> int:
        return len(self.days)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Bars is immutable: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bars):
            return NotImplemented
        return bool(np.array_equal(self.days, other.days)) and all(
            np.array_equal(getattr(self, c), getattr(other, c)) for c in _BAR_COLUMNS
        )

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type[Bars], tuple[object, ...]]:
        """Pickling and copying rebuild through the constructor (the instance refuses attribute assignment)."""
        return (Bars, (self._dates, self.open, self.high, self.low, self.close, self.volume, self.days))

    def __repr__(self) -> str:
        n = len(self.days)
        span = f"{dt.date.fromordinal(int(self.days[0]))}..{dt.date.fromordinal(int(self.days[-1]))}" if n else "empty"
        return f"Bars({n} bars, {span})"

    def upto(self, day: dt.date) -> Bars:
        """The bars up to and including `day`."""
        ordinal = day.toordinal()
        days = self.days
        if not len(days) or days[-1] <= ordinal:  # nothing after the day (the usual case): these bars
            return self
        n = int(days.searchsorted(ordinal, side="right"))
        if n == len(self.days):
            return self
        dates = self._dates
        return Bars(
            None if dates is None else dates[:n],
            self.open[:n],
            self.high[:n],
            self.low[:n],
            self.close[:n],
            self.volume[:n],
            self.days[:n],
        )

    def tail(self, count: int) -> Bars:
        """The last `count` bars (all of them when there are fewer)."""
        if count >= len(self.days):
            return self
        dates = self._dates
        return Bars(
            None if dates is None else dates[-count:],
            self.open[-count:],
            self.high[-count:],
            self.low[-count:],
            self.close[-count:],
            self.volume[-count:],
            self.days[-count:],
        )

    @property
    def last_close(self) -> float:
        """The most recent close."""
        if not len(self.days):
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
        if iv is None or not math.isfinite(iv) or iv <= 0:
            raise InvalidInputError.of("iv", f"no valid implied volatility for {symbol!r}")
        return float(iv)


_NYSE = NyseCalendar()


@functools.lru_cache(maxsize=8192)
def last_trading_day_of_week(day: dt.date) -> dt.date:
    """The last NYSE trading day of `day`'s week: its Friday, or the day before when that Friday is a holiday
    (Good Friday); outside the calendar's years, the Friday. A fact of the fixed calendar, kept per day (every
    decision of a day asks for it)."""
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
