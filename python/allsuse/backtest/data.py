"""The market data a backtest runs on: per-symbol OHLCV files and wide close-only files, aligned on the NYSE
calendar.

A `--data` argument is `PATH` or `SYMBOL=PATH`. A file whose header has open, high, low, close and volume is one
symbol's daily bars: its symbol is `SYMBOL`, else the file name up to its first "_", upper-cased (sp500_daily.csv
is SP500), as `allsuse data load` names it. Any other file with a `date` column is wide and close-only: one column
per symbol (upper-cased), an empty cell meaning no bar that day; `SYMBOL=PATH` on a wide file takes that one
column. A close-only series has open = high = low = close and volume 0, so the ATR the protocol reads is the
close-to-close true range and the label's volume term is skipped (its ratio is undefined without volume).

`store:URL` (or `SYMBOL=store:URL`) reads the market history kept in a store instead of a file (a SQLite path or a
PostgreSQL DSN; what `allsuse data load` wrote): every stored symbol, or the one named. A stored series whose
volume is 0 throughout with open = high = low = close is close-only.

Alignment: the simulation's sessions are the NYSE sessions of the data's span (allsuse's calendar starts in 1998;
before it the sessions are the union of the data's dates). A row on a day the exchange was closed is dropped and
reported; a session a symbol lacks between its first and last row is reported, never filled: that day the symbol
is not traded and its positions keep their last close. Every refusal is an InvalidInputError naming the file, line
or symbol.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from allsuse.errors import InvalidInputError
from allsuse.orchestration.nyse import FIRST_YEAR, LAST_YEAR, NyseCalendar
from allsuse.protocol.market import Bars

REQUIRED_COLUMNS = ("date", "open", "high", "low", "close", "volume")
_NYSE = NyseCalendar()


STORE_PREFIX = "store:"


@dataclass(frozen=True)
class Source:
    """One `--data` argument: a file and, with `SYMBOL=PATH`, the symbol it is read as; or, with `store`, a store's
    market history (`store:URL`)."""

    path: Path
    symbol: str | None = None
    store: str | None = None

    @staticmethod
    def parse(text: str) -> Source:
        """`PATH`, `SYMBOL=PATH`, `store:URL` or `SYMBOL=store:URL` (a symbol is letters, digits, '.', '-' or '^')."""
        head, sep, tail = text.partition("=")
        symbol = None
        if sep and head and all(c.isalnum() or c in ".-^" for c in head) and tail and not head.startswith("store:"):
            symbol, text = head.upper(), tail
        if text.startswith(STORE_PREFIX):
            url = text[len(STORE_PREFIX) :]
            if not url:
                raise InvalidInputError.of("data", "store: needs a store URL (a SQLite path or a PostgreSQL DSN)")
            return Source(Path(url), symbol, store=url)
        return Source(Path(text), symbol)

    def __str__(self) -> str:
        where = f"{STORE_PREFIX}{self.store}" if self.store is not None else str(self.path)
        return f"{self.symbol}={where}" if self.symbol else where


@dataclass(frozen=True)
class SymbolData:
    """One symbol's daily bars as read (no day filled in), the file they came from, and whether the file had only
    closes."""

    symbol: str
    bars: Bars
    path: Path
    close_only: bool


def parse_date(text: str, path: Path, line: int, column: str = "date") -> dt.date:
    """An ISO date cell of a CSV file; an error names the file, the line and the column (every backtest input file
    reads its dates through here)."""
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{path.name}: line {line}: {column} {text!r} is not an ISO date (YYYY-MM-DD)", column, "bad date"
        ) from None


def _open(path: Path) -> list[list[str]]:
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be read ({exc.strerror})", "data", "unreadable") from None
    with handle:
        try:
            return list(csv.reader(handle))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path.name}: not a CSV file ({exc})", "data", "not csv") from None


def load_bars(path: Path) -> Bars:
    """Reads a CSV with date, open, high, low, close, volume columns (any order, extra columns ignored).
    A missing column, an unparsable row or unsorted dates raise InvalidInputError with the line number."""
    rows = _open(path)
    header = [h.strip().lower() for h in (rows[0] if rows else [])]
    return _ohlcv(path, header, rows[1:])


def _ohlcv(path: Path, header: list[str], body: list[list[str]]) -> Bars:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InvalidInputError(f"{path.name}: line 1: missing column(s) {', '.join(missing)}", missing[0], "missing")
    at = [header.index(c) for c in REQUIRED_COLUMNS]
    dates: list[dt.date] = []
    values = np.empty((len(body), 5), dtype=np.float64)
    n = 0
    for line, row in enumerate(body, start=2):
        if not "".join(row).strip():  # no cell with anything but blanks: a blank line
            continue
        cells = [row[j] if j < len(row) else "" for j in at]
        day = parse_date(cells[0], path, line)
        for k, col in enumerate(REQUIRED_COLUMNS[1:]):
            raw = cells[k + 1].strip()
            try:
                v = float(raw)
            except ValueError:
                raise InvalidInputError(
                    f"{path.name}: line {line}: {col} {raw!r} is not a number", col, "bad number"
                ) from None
            if not math.isfinite(v) or (col != "volume" and v <= 0) or v < 0:
                raise InvalidInputError(f"{path.name}: line {line}: {col} {raw!r} is out of range", col, "out of range")
            values[n, k] = v
        if values[n, 1] < values[n, 2]:
            raise InvalidInputError(f"{path.name}: line {line}: high is below low", "high", "below low")
        if dates and day <= dates[-1]:
            raise InvalidInputError(
                f"{path.name}: line {line}: date {day} is not after {dates[-1]} (dates must be sorted)",
                "date",
                "unsorted",
            )
        dates.append(day)
        n += 1
    if not n:
        raise InvalidInputError(f"{path.name}: no data rows", "data", "empty")
    arr = values[:n]
    return Bars(tuple(dates), arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy(), arr[:, 4].copy())


def _wide(path: Path, header: list[str], body: list[list[str]], only: str | None) -> list[SymbolData]:
    """The series of a wide close-only file (`date` and one column per symbol)."""
    names = [h.strip().upper() for h in header]
    date_at = [h.strip().lower() for h in header].index("date")
    columns: dict[str, int] = {}
    for j, name in enumerate(names):
        if j == date_at:
            continue
        if not name:
            raise InvalidInputError(f"{path.name}: line 1: column {j + 1} has no symbol name", "data", "no name")
        if name in columns:
            raise InvalidInputError(f"{path.name}: line 1: symbol {name} has two columns", "data", "duplicate")
        columns[name] = j
    if only is not None:
        if only not in columns:
            raise InvalidInputError(
                f"{path.name}: line 1: no column {only} (has {', '.join(columns) or 'none'})", "symbol", "missing"
            )
        columns = {only: columns[only]}
    if not columns:
        raise InvalidInputError(
            f"{path.name}: line 1: neither date,open,high,low,close,volume nor date and symbol columns",
            "data",
            "columns",
        )
    days: list[dt.date] = []
    rows: list[list[float]] = []
    picks = list(columns.values())
    # The picked cells of a row (as a tuple: itemgetter of one index gives the cell alone).
    only_one = picks[0]
    pick: Callable[[list[str]], Iterable[str]] = (
        operator.itemgetter(*picks) if len(picks) > 1 else lambda row: (row[only_one],)
    )
    for line, row in enumerate(body, start=2):
        if not "".join(row).strip():  # no cell with anything but blanks: a blank line
            continue
        day = parse_date(row[date_at] if date_at < len(row) else "", path, line)
        if days and day <= days[-1]:
            raise InvalidInputError(
                f"{path.name}: line {line}: date {day} is not after {days[-1]} (dates must be sorted)",
                "date",
                "unsorted",
            )
        try:
            # The common case in one go: every picked cell a number; anything else is looked at cell by cell.
            values = list(map(float, pick(row)))
            total = sum(values)
            if total != total and any(math.isnan(v) for v in values):  # a NaN makes the sum NaN
                raise ValueError("nan")
        except (ValueError, IndexError):
            values = [_wide_cell(path, line, symbol, row, j) for symbol, j in columns.items()]
        rows.append(values)
        days.append(day)
    n = len(rows)
    # One array of every row at once (cheaper than row by row); NaN where a cell is empty.
    table = np.array(rows, dtype=np.float64) if rows else np.empty((0, len(columns)))
    bad = ~np.isnan(table) & ~(np.isfinite(table) & (table > 0))
    if bad.any():
        r, c = (int(x[0]) for x in np.nonzero(bad))
        symbol = list(columns)[c]
        line = _line_of(body, r)
        raw = body[line - 2][columns[symbol]].strip()
        raise InvalidInputError(
            f"{path.name}: line {line}: {symbol} {raw!r} must be a price > 0", symbol, "out of range"
        )
    closes = {symbol: table[:, k] for k, symbol in enumerate(columns)}
    out: list[SymbolData] = []
    ordinals = np.fromiter((d.toordinal() for d in days), dtype=np.int64, count=n)
    every = tuple(days)
    for symbol, column in closes.items():
        have = ~np.isnan(column)
        if not have.any():
            raise InvalidInputError(f"{path.name}: {symbol} has no prices", symbol, "empty")
        whole = bool(have.all())
        close = column.copy() if whole else column[have].copy()
        kept = ordinals if whole else ordinals[have]
        dates = every if whole else tuple(d for d, h in zip(every, have.tolist(), strict=True) if h)
        bars = Bars(dates, close, close, close, close, np.zeros(close.size), kept)
        out.append(SymbolData(symbol, bars, path, close_only=True))
    return out


def _line_of(body: list[list[str]], index: int) -> int:
    """The file line of the `index`-th non-blank data row."""
    seen = -1
    for k, row in enumerate(body):
        if any(cell.strip() for cell in row):
            seen += 1
            if seen == index:
                return k + 2
    return len(body) + 1


def _wide_cell(path: Path, line: int, symbol: str, row: list[str], j: int) -> float:
    """One cell of a wide file: NaN when empty, else a number (or an error naming the line and symbol)."""
    raw = row[j].strip() if j < len(row) else ""
    if not raw:
        return math.nan
    try:
        v = float(raw)
    except ValueError:
        raise InvalidInputError(
            f"{path.name}: line {line}: {symbol} {raw!r} is not a number", symbol, "bad number"
        ) from None
    if math.isnan(v):
        raise InvalidInputError(
            f"{path.name}: line {line}: {symbol} {raw!r} must be a price > 0", symbol, "out of range"
        )
    return v


def symbol_of(path: Path) -> str:
    """A per-symbol file's symbol from its name: up to the first "_", upper-cased (sp500_daily.csv -> SP500)."""
    return path.stem.split("_")[0].upper()


def read_store(source: Source) -> list[SymbolData]:
    """The series a store holds (`store:URL`): every stored symbol, or the one named."""
    from allsuse.store import Store
    from allsuse.store import market as stored
    from allsuse.store.errors import StoreError

    assert source.store is not None
    epoch = dt.date(1970, 1, 1).toordinal()
    try:
        with Store(source.store) as store:
            symbols = (
                [source.symbol]
                if source.symbol
                else store.read(
                    lambda c: sorted(s for s in stored.changed_symbols(c, "market_bars", 0) if s != stored.MARKET_WIDE)
                )
            )
            out = []
            for symbol in symbols:
                rows = store.read(lambda c, s=symbol: stored.read_bars(c, s))  # type: ignore[misc]
                if not rows:
                    raise InvalidInputError(f"{source}: no stored bars for {symbol}", "data", "missing")
                cols = np.array(rows, dtype=np.float64)
                days = cols[:, 0].astype(np.int64) + epoch
                o, h, lo, c, v = (np.ascontiguousarray(cols[:, k]) for k in range(1, 6))
                close_only = bool(np.all(v == 0) and np.all(o == c) and np.all(h == c) and np.all(lo == c))
                out.append(SymbolData(symbol, Bars.from_days(days, o, h, lo, c, v), Path(str(source)), close_only))
    except StoreError as exc:
        raise InvalidInputError(f"--data {source}: {exc}", "data", "store") from None
    if not out:
        raise InvalidInputError(f"{source}: the store holds no market history", "data", "missing")
    return out


def read_source(source: Source) -> list[SymbolData]:
    """The series one `--data` argument holds."""
    if source.store is not None:
        return read_store(source)
    rows = _open(source.path)
    if not rows:
        raise InvalidInputError(f"{source.path.name}: empty file", "data", "empty")
    header = [h.strip().lower() for h in rows[0]]
    if all(c in header for c in REQUIRED_COLUMNS[1:5]):
        bars = _ohlcv(source.path, header, rows[1:])
        return [SymbolData(source.symbol or symbol_of(source.path), bars, source.path, close_only=False)]
    if "date" not in header:
        raise InvalidInputError(
            f"{source.path.name}: line 1: needs a date column (date,open,high,low,close,volume or date,SYMBOL,...)",
            "date",
            "missing",
        )
    return _wide(source.path, rows[0], rows[1:], source.symbol)


def load_sources(sources: Sequence[Source]) -> dict[str, SymbolData]:
    """Every symbol of every source. A symbol coming from two sources is refused, naming both files."""
    if not sources:
        raise InvalidInputError.of("data", "no data files given")
    for s in sources:
        if s.store is None and not s.path.is_file():
            raise InvalidInputError(f"--data {s.path}: no such file", "data", "missing")
    out: dict[str, SymbolData] = {}
    for s in sources:
        for series in read_source(s):
            if series.symbol in out:
                first = out[series.symbol].path
                raise InvalidInputError(
                    f"symbol {series.symbol} comes from both {first} and {series.path}: pass it once "
                    "(SYMBOL=PATH reads one column of a wide file)",
                    "data",
                    "overlap",
                )
            out[series.symbol] = series
    return out


@dataclass(frozen=True)
class Gaps:
    """What alignment found for one symbol: sessions it lacks between its first and last row, and rows it has on
    days the exchange was closed (dropped)."""

    missing: tuple[dt.date, ...] = ()
    dropped: tuple[dt.date, ...] = ()


@dataclass(frozen=True)
class MarketSet:
    """Symbols aligned on the simulation's sessions: `sessions` (sorted), each symbol's bars with the rows on
    closed days dropped, its gaps, and notes a reader of the result needs."""

    sessions: tuple[dt.date, ...]
    symbols: dict[str, SymbolData]
    gaps: dict[str, Gaps] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def close_only(self) -> tuple[str, ...]:
        """The symbols read from close-only files."""
        return tuple(s for s, d in self.symbols.items() if d.close_only)


def _in_calendar(day: dt.date) -> bool:
    return FIRST_YEAR <= day.year <= LAST_YEAR


def _sessions(first: dt.date, last: dt.date, data_days: Iterable[int]) -> tuple[dt.date, ...]:
    """NYSE sessions in [first, last]; before the calendar's first year, the data's own days."""
    out: set[dt.date] = {dt.date.fromordinal(d) for d in data_days if not _in_calendar(dt.date.fromordinal(d))}
    day = max(first, dt.date(FIRST_YEAR, 1, 1))
    end = min(last, dt.date(LAST_YEAR, 12, 31))
    one = dt.timedelta(days=1)
    while day <= end:
        if day.weekday() < 5 and _NYSE.is_trading_day(day):
            out.add(day)
        day += one
    return tuple(sorted(out))


def _span(days: Sequence[dt.date]) -> str:
    shown = ", ".join(d.isoformat() for d in days[:5])
    return shown + (f" and {len(days) - 5} more" if len(days) > 5 else "")


def align(symbols: dict[str, SymbolData]) -> MarketSet:
    """Aligns every symbol on the NYSE sessions of the data's span: rows on closed days are dropped, sessions a
    symbol lacks are listed; both are reported in `notes`, nothing is filled in."""
    if not symbols:
        raise InvalidInputError.of("data", "no symbols")
    first = min(dt.date.fromordinal(int(s.bars.days[0])) for s in symbols.values())
    last = max(dt.date.fromordinal(int(s.bars.days[-1])) for s in symbols.values())
    # The distinct days of the data (np.unique's answer; sorted and deduplicated here, which spares a process the
    # import of numpy.ma that np.unique makes on its first call).
    every = np.sort(np.concatenate([s.bars.days for s in symbols.values()]))
    all_days = every[np.concatenate(([True], every[1:] != every[:-1]))] if every.size else every
    sessions = _sessions(first, last, all_days.tolist())
    ordinals = np.fromiter((d.toordinal() for d in sessions), dtype=np.int64, count=len(sessions))
    notes: list[str] = []
    if first.year < FIRST_YEAR:
        notes.append(
            f"before {FIRST_YEAR} the NYSE calendar is not known to allsuse: sessions are the union of the data's dates"
        )
    out: dict[str, SymbolData] = {}
    gaps: dict[str, Gaps] = {}
    for name, data in symbols.items():
        days = data.bars.days
        on_session = np.isin(days, ordinals)
        bars = data.bars
        dropped: tuple[dt.date, ...] = ()
        if not on_session.all():
            dropped = tuple(dt.date.fromordinal(int(d)) for d in days[~on_session])
            keep = np.flatnonzero(on_session)
            if not keep.size:
                raise InvalidInputError(f"{data.path.name}: {name} has no row on an NYSE session", name, "no sessions")
            bars = Bars(
                tuple(bars.dates[k] for k in keep.tolist()),
                bars.open[keep].copy(),
                bars.high[keep].copy(),
                bars.low[keep].copy(),
                bars.close[keep].copy(),
                bars.volume[keep].copy(),
            )
            notes.append(f"{name}: {len(dropped)} row(s) on days the NYSE was closed dropped: {_span(dropped)}")
        lo, hi = np.searchsorted(ordinals, [bars.days[0], bars.days[-1]])
        inside = ordinals[lo : hi + 1]
        lacking = inside[~np.isin(inside, bars.days)]
        missing = tuple(dt.date.fromordinal(int(d)) for d in lacking)
        if missing:
            notes.append(
                f"{name}: missing {len(missing)} NYSE session(s) (not filled: not traded those days, positions keep "
                f"the last close): {_span(missing)}"
            )
        if dropped or missing:
            gaps[name] = Gaps(missing, dropped)
        out[name] = SymbolData(name, bars, data.path, data.close_only)
    close_only = [s for s, d in out.items() if d.close_only]
    if close_only:
        notes.append(
            f"close-only data for {', '.join(close_only)}: ATR from close-to-close moves, the label's volume term "
            "skipped"
        )
    return MarketSet(sessions, out, gaps, tuple(notes))


def load_market(sources: Sequence[Source]) -> MarketSet:
    """Reads and aligns every source."""
    return align(load_sources(sources))
