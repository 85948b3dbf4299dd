"""What trading and holding cash cost in a backtest: commissions, the bid/ask spread, and interest.

Fills are at mid minus half the spread for sales and plus half for purchases; the spread is a share of the
option's price with a floor of one tick (0.01 under $3, 0.05 from $3, the options market's usual ticks). Idle cash
and put collateral earn the same rate the options are priced with: a constant annual rate or a daily series read
from a CSV (date, rate), accrued on calendar days (ACT/365) between sessions.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

from allsuse.backtest.data import parse_date
from allsuse.errors import InvalidInputError

# The options market's minimum price increments: a penny under $3, a nickel from $3.
TICK_BELOW_3 = 0.01
TICK_FROM_3 = 0.05


def tick_of(price: float) -> float:
    """The minimum price increment of an option quoted at `price`."""
    return TICK_BELOW_3 if price < 3.0 else TICK_FROM_3


@dataclass(frozen=True)
class RateCurve:
    """Annual interest rates by day: the latest rate on or before a day applies (a constant rate is one point)."""

    days: tuple[dt.date, ...]
    rates: tuple[float, ...]

    @staticmethod
    def constant(rate: float) -> RateCurve:
        """One rate for every day."""
        if not math.isfinite(rate) or not -0.05 <= rate <= 0.5:
            raise InvalidInputError.of("rate", f"must be an annual rate between -0.05 and 0.5, got {rate}")
        return RateCurve((dt.date.min,), (rate,))

    @staticmethod
    def from_csv(path: Path) -> RateCurve:
        """Reads `date,rate` rows (rate as a decimal, 0.02 = 2% a year; a `%`-less value above 0.5 is refused as
        a likely percent). Dates must increase; an error names the file and line."""
        try:
            handle = path.open(newline="")
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot be read ({exc.strerror})", "rate", "unreadable") from None
        days: list[dt.date] = []
        rates: list[float] = []
        with handle:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            if "date" not in header or "rate" not in header:
                raise InvalidInputError(f"{path.name}: line 1: needs columns date and rate", "rate", "missing")
            reader.fieldnames = header
            for line, row in enumerate(reader, start=2):
                day = parse_date(row.get("date") or "", path, line)
                raw = (row.get("rate") or "").strip()
                try:
                    rate = float(raw)
                except ValueError:
                    raise InvalidInputError(
                        f"{path.name}: line {line}: rate {raw!r} is not a number", "rate", "bad number"
                    ) from None
                if not math.isfinite(rate) or not -0.05 <= rate <= 0.5:
                    raise InvalidInputError(
                        f"{path.name}: line {line}: rate {raw!r} must be an annual decimal rate in [-0.05, 0.5]",
                        "rate",
                        "out of range",
                    )
                if days and day <= days[-1]:
                    raise InvalidInputError(
                        f"{path.name}: line {line}: date {day} does not follow {days[-1]}", "rate", "unsorted"
                    )
                days.append(day)
                rates.append(rate)
        if not days:
            raise InvalidInputError(f"{path.name}: has no rates", "rate", "empty")
        return RateCurve(tuple(days), tuple(rates))

    def on(self, day: dt.date) -> float:
        """The annual rate on `day` (the first rate before the curve starts)."""
        i = bisect.bisect_right(self.days, day) - 1
        return self.rates[max(i, 0)]


@dataclass(frozen=True)
class CostModel:
    """Commissions, spread and interest of one backtest; the same model prices the protocol and the benchmarks."""

    commission_per_contract: float = 0.65
    commission_per_share: float = 0.005
    spread: float = 0.05
    rate: RateCurve = field(default_factory=lambda: RateCurve.constant(0.02))

    def __post_init__(self) -> None:
        for name, value, high in (
            ("commission", self.commission_per_contract, 100.0),
            ("share_commission", self.commission_per_share, 1.0),
            ("spread", self.spread, 1.0),
        ):
            if not math.isfinite(value) or not 0.0 <= value <= high:
                raise InvalidInputError.of(name, f"must be between 0 and {high}, got {value}")

    def half_spread(self, mid: float) -> float:
        """Half the bid/ask spread of an option quoted at `mid`: half of max(spread x mid, one tick)."""
        return max(self.spread * mid, tick_of(mid)) / 2.0

    def option_fill(self, mid: float, *, selling: bool) -> float:
        """The price an option order fills at: below mid for a sale, above for a purchase (never below 0)."""
        half = self.half_spread(mid)
        return max(mid - half, 0.0) if selling else mid + half

    def option_commission(self, contracts: int) -> float:
        """Commission of an option order."""
        return self.commission_per_contract * abs(contracts)

    def share_commission(self, shares: float) -> float:
        """Commission of a share order (or an assignment's share delivery)."""
        return self.commission_per_share * abs(shares)

    def interest(self, balance: float, start: dt.date, end: dt.date) -> float:
        """Interest earned by `balance` from the close of `start` to the close of `end` (ACT/365, start's rate)."""
        return self.accrued(balance, self.rate.on(start), (end - start).days)

    @staticmethod
    def accrued(balance: float, rate: float, days: int) -> float:
        """Interest earned by `balance` over `days` calendar days at annual `rate` (ACT/365); what `interest` gives
        for the rate on its start day (a caller accruing many balances over the same days looks it up once)."""
        if days <= 0 or balance == 0.0:
            return 0.0
        return balance * rate * days / 365.0
