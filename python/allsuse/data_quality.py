"""Data quality of market history: the checks a file passes before it is trusted, and the gaps it may have filled.

Checks, each counted per series with the offending dates (`allsuse data check FILE --json`, and on
`allsuse data load`):

* missing_sessions: NYSE sessions inside the series' span with no row (the calendar is known from 1998);
* non_positive_price: a row with open, high, low or close <= 0;
* high_below_low: high < low;
* close_outside_range: close outside [low, high];
* large_jump: a close-to-close move larger than `max_jump` (0.25: 25%) in either direction;
* stale_values: the close repeated unchanged for `stale_sessions` sessions or more (each repeat is counted);
* zero_volume: a bar with volume 0 (does not apply to close-only series, which carry no volume).

A VIX series is checked for missing sessions, non-positive and stale values only: the index jumps by design.

Gaps: a run of at most `max_fill` missing sessions is filled forward (the previous close as open, high, low and
close, volume 0) and the filled days are returned so the store can flag them imputed; a longer run is refused,
naming the symbol and the span, because carrying one price over a long gap invents a market.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from allsuse.errors import InvalidInputError
from allsuse.market_files import EPOCH, MarketFile, Series
from allsuse.orchestration.nyse import FIRST_YEAR, LAST_YEAR, NyseCalendar

CHECKS = (
    "missing_sessions",
    "non_positive_price",
    "high_below_low",
    "close_outside_range",
    "large_jump",
    "stale_values",
    "zero_volume",
)
VIX_CHECKS = ("missing_sessions", "non_positive_price", "stale_values")
_NYSE = NyseCalendar()


@dataclass(frozen=True)
class Limits:
    """The thresholds of the checks and of gap filling (config: market.quality_*)."""

    max_jump: float = 0.25
    stale_sessions: int = 5
    max_fill: int = 3

    def __post_init__(self) -> None:
        if not (self.max_jump > 0):
            raise InvalidInputError.of("max_jump", f"must be > 0, got {self.max_jump!r}")
        if self.stale_sessions < 2:
            raise InvalidInputError.of("stale_sessions", f"must be >= 2, got {self.stale_sessions!r}")
        if self.max_fill < 0:
            raise InvalidInputError.of("max_fill", f"must be >= 0, got {self.max_fill!r}")


@dataclass(frozen=True)
class CheckResult:
    """One check of one series: how many rows (or sessions) failed it, and on which dates."""

    name: str
    count: int
    dates: tuple[str, ...]
    applies: bool = True

    def as_dict(self) -> dict[str, object]:
        return {"count": self.count, "dates": list(self.dates), "applies": self.applies}


@dataclass(frozen=True)
class SeriesQuality:
    """The checks of one series (a symbol, or the VIX)."""

    symbol: str
    rows: int
    first: str
    last: str
    checks: tuple[CheckResult, ...]

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the checks with at least one offending row."""
        return tuple(c.name for c in self.checks if c.count > 0)

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def as_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "rows": self.rows,
            "first": self.first,
            "last": self.last,
            "failed": list(self.failed),
            "checks": {c.name: c.as_dict() for c in self.checks},
        }


@dataclass(frozen=True)
class FileQuality:
    """The data-quality report of one file."""

    path: str
    series: tuple[SeriesQuality, ...]

    @property
    def ok(self) -> bool:
        return not any(s.failed for s in self.series)

    def as_dict(self) -> dict[str, object]:
        return {"file": self.path, "ok": self.ok, "series": [s.as_dict() for s in self.series]}

    def lines(self) -> list[str]:
        """A person's summary: one line per series with the failing checks and their counts."""
        out = []
        for s in self.series:
            failed = ", ".join(f"{name} {s.check(name).count}" for name in s.failed)
            out.append(f"{self.path}: {s.symbol} {s.rows} rows {s.first}..{s.last}: {failed or 'all checks passed'}")
        return out


def _iso(day: int) -> str:
    return (EPOCH + dt.timedelta(days=int(day))).isoformat()


def _result(name: str, days: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> CheckResult:
    hit = days[mask]
    return CheckResult(name, int(hit.size), tuple(_iso(d) for d in hit.tolist()))


@functools.lru_cache(maxsize=256)
def _sessions_of(year: int) -> npt.NDArray[np.int64]:
    """The NYSE sessions of `year` as epoch day numbers."""
    day, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    out = []
    while day <= end:
        if day.weekday() < 5 and _NYSE.is_trading_day(day):
            out.append((day - EPOCH).days)
        day += dt.timedelta(days=1)
    return np.array(out, dtype=np.int64)


def missing_sessions(days: Sequence[int] | npt.NDArray[np.int64]) -> list[int]:
    """NYSE sessions (epoch day numbers) strictly inside the span of `days` that `days` lacks. Days outside the
    calendar's years (before 1998) are not judged."""
    values = np.asarray(days, dtype=np.int64)
    if values.size < 2:
        return []
    first = EPOCH + dt.timedelta(days=int(values[0]))
    last = EPOCH + dt.timedelta(days=int(values[-1]))
    years = range(max(first.year, FIRST_YEAR), min(last.year, LAST_YEAR) + 1)
    if not years:
        return []
    sessions = np.concatenate([_sessions_of(y) for y in years])
    inside = sessions[(sessions > values[0]) & (sessions < values[-1])]
    return [int(d) for d in np.setdiff1d(inside, values, assume_unique=True)]


def _stale(close: npt.NDArray[np.float64], run: int) -> npt.NDArray[np.bool_]:
    """Rows that repeat the previous close inside a run of at least `run` equal closes."""
    mask = np.zeros(close.size, dtype=bool)
    start = 0
    for i in range(1, close.size + 1):
        if i == close.size or close[i] != close[start]:
            if i - start >= run:
                mask[start + 1 : i] = True
            start = i
    return mask


def check_series(series: Series, limits: Limits = Limits(), *, close_only: bool = False) -> SeriesQuality:
    """Every check of one bar series."""
    days = series.days
    o, h, lo, c, v = series.columns
    gaps = np.array(missing_sessions(days), dtype=np.int64)
    results = [CheckResult("missing_sessions", int(gaps.size), tuple(_iso(d) for d in gaps.tolist()))]
    results.append(_result("non_positive_price", days, (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)))
    results.append(_result("high_below_low", days, h < lo))
    results.append(_result("close_outside_range", days, (c < lo) | (c > h)))
    jump = np.zeros(c.size, dtype=bool)
    if c.size > 1:
        prev = c[:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            move = np.where(prev > 0, np.abs(c[1:] / prev - 1.0), 0.0)
        jump[1:] = move > limits.max_jump
    results.append(_result("large_jump", days, jump))
    results.append(_result("stale_values", days, _stale(c, limits.stale_sessions)))
    if close_only:
        results.append(CheckResult("zero_volume", 0, (), applies=False))
    else:
        results.append(_result("zero_volume", days, v == 0))
    first = _iso(days[0]) if days.size else ""
    last = _iso(days[-1]) if days.size else ""
    return SeriesQuality(series.symbol, int(days.size), first, last, tuple(results))


def check_vix(levels: Sequence[tuple[int, float]], limits: Limits = Limits()) -> SeriesQuality:
    """The checks that apply to the VIX: missing sessions, non-positive and stale levels."""
    days = np.array([d for d, _ in levels], dtype=np.int64)
    values = np.array([x for _, x in levels], dtype=np.float64)
    gaps = missing_sessions(days)
    results = (
        CheckResult("missing_sessions", len(gaps), tuple(_iso(d) for d in gaps)),
        _result("non_positive_price", days, values <= 0),
        _result("stale_values", days, _stale(values, limits.stale_sessions)),
    )
    first = _iso(days[0]) if days.size else ""
    last = _iso(days[-1]) if days.size else ""
    return SeriesQuality("VIX", int(days.size), first, last, results)


def check_file(market: MarketFile, limits: Limits = Limits()) -> FileQuality:
    """The data-quality report of a file read by `allsuse.market_files.read_market_file`."""
    series = [check_series(s, limits, close_only=s.close_only) for s in market.series]
    if market.vix:
        series.append(check_vix(market.vix, limits))
    return FileQuality(market.path.name, tuple(series))


def fill_gaps(series: Series, limits: Limits = Limits()) -> tuple[Series, tuple[int, ...]]:
    """The series with every run of at most `limits.max_fill` missing sessions filled forward, and the filled
    days; InvalidInputError naming the symbol and the span when a run is longer."""
    gaps = missing_sessions(series.days)
    if not gaps:
        return series, ()
    runs: list[list[int]] = []
    have = series.days
    for day in gaps:
        # Consecutive missing sessions form one run when no row of the series lies between them.
        if runs and int(np.searchsorted(have, runs[-1][-1])) == int(np.searchsorted(have, day)):
            runs[-1].append(day)
        else:
            runs.append([day])
    for run in runs:
        if len(run) > limits.max_fill:
            raise InvalidInputError.of(
                "file",
                f"{series.symbol}: {len(run)} missing NYSE sessions {_iso(run[0])}..{_iso(run[-1])}, more than "
                f"{limits.max_fill} that may be filled forward; load the missing bars or a file without the gap",
            )
    filled = np.array(gaps, dtype=np.int64)
    days = np.concatenate([have, filled])
    order = np.argsort(days, kind="stable")
    previous = np.searchsorted(have, filled) - 1  # every gap lies inside the span, so a row precedes it
    close = series.columns[3]
    carried = close[previous]
    o, h, lo, c, v = (
        np.concatenate([col, carried if k < 4 else np.zeros_like(carried)])[order]
        for k, col in enumerate(series.columns)
    )
    return Series(series.symbol, days[order], (o, h, lo, c, v), close_only=series.close_only), tuple(gaps)


__all__ = [
    "CHECKS",
    "VIX_CHECKS",
    "CheckResult",
    "FileQuality",
    "Limits",
    "SeriesQuality",
    "check_file",
    "check_series",
    "check_vix",
    "fill_gaps",
    "missing_sessions",
]
