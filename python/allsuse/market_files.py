"""Market data files for `allsuse data load`: what a CSV holds, as packed columns ready to publish.

Three shapes (see ../shared/data/README.md):

* per-symbol daily bars: `date,open,high,low,close,volume` (e.g. sp500_daily_2009_2018.csv); the symbol is
  `--symbol` or the file name up to its first "_", upper-cased (SP500), as `allsuse simulate` names it;
* a wide close-only file: `date,AAPL,AMD,...` (e.g. stocks20_close_1990_2014.csv): one series per column with
  open = high = low = close and volume 0 (an empty cell skips that day for that column);
* a VIX file: `date,vix_close` (e.g. vix_daily_2014_2018.csv): the market-wide VIX by day (stored as quotes).

Every refusal is an InvalidInputError naming the file and line.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from allsuse.errors import InvalidInputError
from allsuse.v1 import decision_pb2

EPOCH = dt.date(1970, 1, 1)
OHLCV = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Series:
    """One symbol's bars from a file: epoch day numbers and the five columns."""

    symbol: str
    days: npt.NDArray[np.int64]
    columns: tuple[npt.NDArray[np.float64], ...]
    close_only: bool = False
    """From a wide close-only file: open = high = low = close and no volume."""

    def message(self, start: int = 0, stop: int | None = None) -> decision_pb2.BarColumns:
        """The BarColumns message of bars [start, stop)."""
        cut = slice(start, stop)
        o, h, lo, c, v = (col[cut].tolist() for col in self.columns)
        return decision_pb2.BarColumns(days=self.days[cut].tolist(), open=o, high=h, low=lo, close=c, volume=v)


@dataclass(frozen=True)
class MarketFile:
    """What one file holds: bar series, or VIX levels by epoch day."""

    path: Path
    series: tuple[Series, ...] = ()
    vix: tuple[tuple[int, float], ...] = ()


def _day(text: str, path: Path, line: int) -> int:
    try:
        return (dt.date.fromisoformat(text.strip()) - EPOCH).days
    except ValueError:
        raise InvalidInputError.of("date", f"{path.name}: line {line}: {text!r} is not a date YYYY-MM-DD") from None


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError.of(column, f"{path.name}: line {line}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidInputError.of(column, f"{path.name}: line {line}: {text!r} is not finite")
    return value


def read_market_file(path: Path, symbol: str | None = None) -> MarketFile:
    """The series (or VIX levels) in the CSV at `path`; `symbol` names a per-symbol file's series."""
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise InvalidInputError.of("file", f"{path}: cannot be read ({exc.strerror})") from None
    with handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise InvalidInputError.of("file", f"{path.name}: empty")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    body = [(i, r) for i, r in enumerate(rows[1:], start=2) if r and any(c.strip() for c in r)]
    if not body:
        raise InvalidInputError.of("file", f"{path.name}: no data rows")
    if not lower or lower[0] != "date":
        raise InvalidInputError.of("file", f"{path.name}: line 1: the first column must be date")
    if "vix_close" in lower or (lower == ["date", "close"] and "vix" in path.name.lower()):
        col = lower.index("vix_close") if "vix_close" in lower else 1
        vix = tuple((_day(r[0], path, i), _number(r[col], path, i, "vix_close")) for i, r in body)
        return MarketFile(path, vix=vix)
    if all(c in lower for c in OHLCV):
        index = [lower.index(c) for c in OHLCV]
        days = np.array([_day(r[0], path, i) for i, r in body], dtype=np.int64)
        values = np.array([[_number(r[k], path, i, OHLCV[j]) for j, k in enumerate(index)] for i, r in body])
        name = symbol or path.stem.split("_")[0].upper()
        cols = tuple(np.ascontiguousarray(values[:, k]) for k in range(5))
        return MarketFile(path, series=(Series(name, days, cols),))
    if symbol is not None:
        raise InvalidInputError.of("symbol", f"{path.name} is a wide file of several symbols: --symbol does not apply")
    tickers = header[1:]
    if not tickers or any(not t or t.lower() in OHLCV for t in tickers):
        raise InvalidInputError.of(
            "file", f"{path.name}: line 1: expected date,open,high,low,close,volume, date,vix_close or date,TICKER,..."
        )
    all_days = np.array([_day(r[0], path, i) for i, r in body], dtype=np.int64)
    series = []
    for k, ticker in enumerate(tickers, start=1):
        keep = []
        closes = []
        for n, (i, r) in enumerate(body):
            cell = r[k].strip() if k < len(r) else ""
            if cell:
                keep.append(n)
                closes.append(_number(cell, path, i, ticker))
        if not closes:
            continue
        close = np.array(closes, dtype=np.float64)
        cols = (close, close.copy(), close.copy(), close.copy(), np.zeros_like(close))
        series.append(Series(ticker.upper(), all_days[keep], cols, close_only=True))
    return MarketFile(path, series=tuple(series))


__all__ = ["MarketFile", "Series", "read_market_file"]
