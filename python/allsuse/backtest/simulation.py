"""The backtest of the weekly protocol over many symbols in the real account layout, after costs.

Every session of the aligned calendar (see `data`), each account asks the same Engine the service uses about each
of its symbols that has a bar that day, and every decision the rules did not reject is executed: option orders
fill at the model price (Black-Scholes at the day's IV and the cost model's rate) minus half the spread for a sale
and plus it for a purchase, each order pays its commission, and idle cash and put collateral earn interest at the
same rate (costs). Options left at expiry settle: worthless ones expire, in-the-money index options are
cash-settled, stock options are assigned (no early assignment). Every fill is a Trade in the run's log.

IV: VIX/100 for the symbols the VIX stands for (the cash-settled indices of the configuration, or the one symbol of
a single-file run) on days the VIX file covers; otherwise the symbol's 20-day realised volatility x the VIX proxy
ratio (PROTOCOL section 6). The result says which days used which.

Entry point: `run_backtest(BacktestSpec) -> BacktestRun`. Deterministic: the same spec gives the same run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from allsuse import indicators, risk
from allsuse._frozen import made as _made
from allsuse.backtest import benchmarks, summary
from allsuse.backtest.costs import CostModel, RateCurve
from allsuse.backtest.data import MarketSet, Source, SymbolData, load_market, parse_date
from allsuse.backtest.run import BacktestRun, SeriesRun, Trade
from allsuse.errors import InvalidInputError
from allsuse.orchestration.nyse import FIRST_YEAR, LAST_YEAR
from allsuse.protocol import settings
from allsuse.protocol.accounts import Portfolio, Transaction, money
from allsuse.protocol.drawdown import allowed_exposure
from allsuse.protocol.engine import Decision, Engine, Order
from allsuse.protocol.market import Bars, MarketData
from allsuse.protocol.positions import MULTIPLIER, Position
from allsuse.protocol.trust import TrustBook
from allsuse.protocol.window_facts import SeriesWindows

KINDS = ("gen", "rev", "com")
# Bars of history before a symbol is first decided on (the label needs 50, the ATR regime 14, the proxy 20).
WARMUP = 60
# No costs at all: no commission, no spread (not even its one-tick floor), no interest, a zero rate. The
# protocol-only figures of earlier releases, and what `Backtest` (protocol/backtest.py) runs with.
ZERO_COSTS = CostModel(0.0, 0.0, 0.0, RateCurve.constant(0.0))

# A volatility index in percentage points: the VIX closed between 9.1 and 82.7 from 1990 to 2024; a file whose
# values leave [1, 150] holds something else (prices, or volatility as a fraction).
VIX_RANGE = (1.0, 150.0)


def load_vix(path: Path) -> dict[dt.date, float]:
    """Reads a CSV with a date column and a VIX close column (vix_close or close). A missing or unreadable file,
    a malformed row or values that are not a volatility index in points raise InvalidInputError naming them."""
    import csv

    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise InvalidInputError(f"--vix {path}: cannot be read ({exc.strerror})", "vix", "unreadable") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        column = "vix_close" if "vix_close" in header else "close" if "close" in header else None
        if "date" not in header or column is None:
            raise InvalidInputError(
                f"{path.name}: line 1: needs date and vix_close (or close) columns", "vix", "columns"
            )
        reader.fieldnames = header
        out: dict[dt.date, float] = {}
        previous: dt.date | None = None
        for line, row in enumerate(reader, start=2):
            day = parse_date(row["date"] or "", path, line)
            if previous is not None and day <= previous:
                raise InvalidInputError(f"{path.name}: line {line}: dates must be sorted", "date", "unsorted")
            try:
                v = float(row[column] or "")
            except ValueError:
                raise InvalidInputError(
                    f"{path.name}: line {line}: {column} is not a number", column, "bad number"
                ) from None
            if not math.isfinite(v) or v <= 0:
                raise InvalidInputError(f"{path.name}: line {line}: {column} must be > 0", column, "out of range")
            if not VIX_RANGE[0] <= v <= VIX_RANGE[1]:
                raise InvalidInputError(
                    f"{path.name}: line {line}: {column} {v:g} is not a volatility index in points (expected "
                    f"{VIX_RANGE[0]:g}..{VIX_RANGE[1]:g}; prices or fractions are refused)",
                    column,
                    "not a volatility index",
                )
            out[day] = v
            previous = day
    if not out:
        raise InvalidInputError(f"{path.name}: no data rows", "vix", "empty")
    return out


@dataclass(frozen=True)
class BacktestSpec:
    """What one backtest runs: data sources, the symbols of each account type (None: each account's configured
    symbols found in the data; one symbol in the data and no mapping: every account trades it), the period,
    capital, costs, an optional VIX file, the seed and the protocol configuration (None: settings.default())."""

    sources: tuple[Source, ...]
    start: dt.date
    end: dt.date
    capital: float
    symbols: dict[str, tuple[str, ...]] | None = None
    costs: CostModel = field(default_factory=CostModel)
    vix: Path | None = None
    seed: int = 0
    config: settings.ProtocolConfig | None = None


@dataclass
class _Ledger:
    """What the backtest records as it goes."""

    equity: dict[str, list[float]] = field(default_factory=dict)
    # Share of the account's equity committed at the day's close (put collateral and held shares), per day.
    deployment: dict[str, list[float]] = field(default_factory=dict)
    portfolio_deployment: list[float] = field(default_factory=list)
    week_types: dict[str, dict[str, int]] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Each distinct warning (by account, symbol and instrument): [first text, first date, last date, days].
    warnings: dict[str, list[Any]] = field(default_factory=dict)
    # Accounts that held a position at some close this week (the others had an idle week, W-IDL).
    active_this_week: set[str] = field(default_factory=set)
    # Executed decisions per account.
    trades: dict[str, int] = field(default_factory=dict)
    # (day, "vix" or "proxy") per simulated day.
    vol_sources: list[tuple[dt.date, str]] = field(default_factory=list)
    # Every fill.
    fills: list[Trade] = field(default_factory=list)
    # Per account: commissions, spread_costs, interest.
    costs: dict[str, dict[str, float]] = field(default_factory=dict)
    # Sessions a symbol was not traded for lack of its bar.
    skipped: dict[str, int] = field(default_factory=dict)

    def cost(self, account_id: str, what: str, amount: float) -> None:
        row = self.costs.get(account_id)
        if row is None:
            row = self.costs[account_id] = {"commissions": 0.0, "spread_costs": 0.0, "interest": 0.0}
        row[what] += amount


class _Session(NamedTuple):
    """What the day's market is made from, a fact of the data: the symbols listed (bars up to the session) in the
    run's order, each with (first bar of its window, bars up to the session, IV, IV source); the symbols tradable;
    those the market holds whatever is held; each listed symbol's last close; the VIX, the rate and the day's
    volatility source."""

    listed: tuple[tuple[str, int, int, float, str], ...]
    tradable: frozenset[str]
    needed: frozenset[str]
    spot: dict[str, float]
    vix: float | None
    rate: float
    used: str


# The garbage collector's thresholds during a run (see _collecting_less): a young collection every 20,000 new
# container objects rather than 700, and a full one only after 1,000 middle-generation collections rather than 10.
# Memory stays bounded: garbage without cycles is freed at once as ever, and cyclic garbage waits at most that long.
RUN_GC_YOUNG = 20_000
RUN_GC_FULL = 1_000


@contextlib.contextmanager
def _collecting_less() -> Iterator[None]:
    """Raises the collector's young and full thresholds (never lowers them) for a run, and puts back the ones in
    force before it. The thresholds are the process's: runs in concurrent threads share them (the last to finish
    restores what the first found)."""
    before = gc.get_threshold()
    young, middle, full = before[0], before[1], before[2]
    gc.set_threshold(max(young, RUN_GC_YOUNG), middle, max(full, RUN_GC_FULL))
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _read_only(bars: Bars) -> Bars:
    """A copy of `bars` whose columns cannot be written."""
    days = np.array(bars.days)
    columns = [np.array(c) for c in (bars.open, bars.high, bars.low, bars.close, bars.volume)]
    for c in (days, *columns):
        c.setflags(write=False)
    open_, high, low, close, volume = columns
    return Bars.from_days(days, open_, high, low, close, volume)


def _reason(d: Decision) -> str:
    """A decision's reason code in trades.csv: its action, week type and protocol level when above 0."""
    parts = [d.action]
    if d.week_type:
        parts.append(d.week_type)
    if d.protocol_level:
        parts.append(f"L{d.protocol_level}")
    return "/".join(parts)


class Simulation:
    """Runs the weekly protocol day by day over aligned symbols; `single` is the one-underlying layout (every
    account trades the one symbol, its concentration limit raised to its deployment target, PROTOCOL section 8)."""

    def __init__(
        self,
        market: MarketSet,
        *,
        accounts: dict[str, tuple[str, ...]],
        capital: float,
        vix: dict[dt.date, float] | None = None,
        seed: int = 0,
        costs: CostModel = ZERO_COSTS,
        config: settings.ProtocolConfig | None = None,
        single: bool = False,
        vix_symbols: frozenset[str] | None = None,
    ) -> None:
        if not math.isfinite(capital) or capital <= 0:
            raise InvalidInputError.of("capital", f"must be > 0, got {capital}")
        self.market = market
        self.sessions = market.sessions
        self.capital = capital
        self.vix = vix or {}
        self.seed = seed
        self.costs = costs
        self.single = single
        config = config or settings.default()
        self.accounts = {k: tuple(accounts.get(k, ())) for k in KINDS}
        self.symbols = tuple(sorted({s for syms in self.accounts.values() for s in syms}))
        weights: dict[str, float] | None = None
        if single:
            # One symbol per account: its concentration limit is its deployment target (section 8, at most 0.95).
            weights = {kind: min(config.account(kind).target_share, 0.95) for kind in KINDS}
        self.engine = Engine(config, trust=TrustBook(), symbols=self.accounts, max_symbol_weights=weights)
        cfg = self.engine.config
        self.max_symbol_weight = {kind: self.engine.max_symbol_weight(kind) for kind in KINDS}
        self._entry_days = {
            kind: {d for label in ("green", "red", "chop") for d in cfg.entry_rule(kind, label).entry_days}
            for kind in KINDS
        }
        settled = set(cfg.doc.strings("cash_settled"))
        self.cash_settled = frozenset(s for s in self.symbols if s in settled)
        self.vix_symbols = vix_symbols if vix_symbols is not None else self.cash_settled
        window = int(cfg.doc.number("vix_proxy_window", low=2))
        # The bars the engine is shown each day: the last `_lookback` (twice the scenario window plus a year).
        # Everything it reads is a window of at most scenario_days returns, or Wilder-smoothed (ATR, RSI) with a
        # memory of (13/14)^n, under a double's precision long before 1,000 bars; so the decisions are those of
        # the full history, without each day's indicators walking decades of bars.
        self._lookback = 2 * int(cfg.doc.section("risk").number("scenario_days", low=1)) + 252
        self._proxy_ratio = cfg.doc.number("vix_proxy_ratio", low=0)
        self._data: dict[str, SymbolData] = {s: market.symbols[s] for s in self.symbols}
        # Each symbol's whole history as read-only copies, the series every daily window is a view of: nothing can
        # change them during the run, so the engine computes each symbol's daily returns once per series and reads
        # every window's from them (Engine._return_column), the very numbers the window's closes give.
        self._bars = {s: _read_only(d.bars) for s, d in self._data.items()}
        self._hv = {s: indicators.hist_vol(d.bars.close, window) for s, d in self._data.items()}
        ordinals = np.fromiter((d.toordinal() for d in self.sessions), dtype=np.int64, count=len(self.sessions))
        # Bars of each symbol up to each session, and whether the symbol has that session's bar.
        self._count = {s: np.searchsorted(d.bars.days, ordinals, side="right") for s, d in self._data.items()}
        self._has = {
            s: (c > 0) & (d.bars.days[np.maximum(c - 1, 0)] == ordinals)
            for (s, d), c in zip(self._data.items(), self._count.values(), strict=True)
        }
        # The same as Python lists (the day loop reads single elements, cheaper from a list than from an array).
        self._count_at = {s: c.tolist() for s, c in self._count.items()}
        self._has_at = {s: h.tolist() for s, h in self._has.items()}
        # Each symbol's IV on each session (from its last bar up to it, see _iv) and whether it is the VIX's, and
        # whether any symbol listed that session read the VIX: facts of the data, computed once for every session.
        self._vol_at: dict[str, list[float]] = {}
        self._vix_at: dict[str, list[bool]] = {}
        used = np.zeros(len(self.sessions), dtype=bool)
        covered = np.fromiter((d in self.vix for d in self.sessions), dtype=bool, count=len(self.sessions))
        points = np.fromiter(
            (self.vix.get(d, 100.0) for d in self.sessions), dtype=np.float64, count=len(self.sessions)
        )
        for s, count in self._count.items():
            hv = self._hv[s][np.maximum(count - 1, 0)]
            with np.errstate(invalid="ignore", over="ignore"):
                vol = np.where(np.isfinite(hv) & (hv > 0), hv * self._proxy_ratio, 0.2)
            from_vix = covered & (count > 0) if s in self.vix_symbols else np.zeros(len(self.sessions), dtype=bool)
            vol = np.where(from_vix, points / 100.0, vol)
            used |= from_vix
            self._vol_at[s] = vol.tolist()
            self._vix_at[s] = from_vix.tolist()
        self._used_at = ["vix" if u else "proxy" for u in used.tolist()]
        # The symbols listed on each session (bars up to it) that have no bar that session: not traded that day.
        self._skipped_at: list[list[str]] = [[] for _ in self.sessions]
        for s in self.symbols:
            for i in np.flatnonzero((self._count[s] > 0) & ~self._has[s]).tolist():
                self._skipped_at[i].append(s)
        self._pos_ids = 0
        # Each symbol's close and IV per simulated day (filled at the run's end, see _record_series), and the day's
        # last closes (set each day).
        self._closes: dict[str, list[float]] = {}
        self._vols: dict[str, list[float]] = {}
        self._spot: dict[str, float] = {}
        # The last valuation of every account at the close (see _equities): what the portfolio looked like, the
        # market and day, and each account's equity.
        self._valued: tuple[tuple[int, int, int], MarketData, dt.date, dict[str, float]] | None = None

    # --- market of one day -------------------------------------------------------------------------------
    def _iv(self, symbol: str, k: int, day: dt.date) -> tuple[float, str]:
        """(IV, source) of `symbol` from its bar k: VIX/100 where the VIX stands for it and covers the day, else
        the proxy (section 6). The definition the per-session table of __init__ (`_vol_at`, `_vix_at`) follows."""
        if symbol in self.vix_symbols and day in self.vix:
            return self.vix[day] / 100.0, "vix"
        hv = float(self._hv[symbol][k])
        return (hv * self._proxy_ratio if math.isfinite(hv) and hv > 0 else 0.2), "proxy"

    def _sessions_of(self, first: int, last: int) -> Iterator[_Session]:
        """The facts of sessions first..last `_market` reads, in order, facts of the data and configuration alone:
        made a symbol at a time over the sessions (numpy and zip), then put together a session at a time as the run
        reads them (none is kept)."""
        names = self.symbols
        size = last - first + 1
        listed_bits = np.zeros(size, dtype=np.int64)
        tradable_bits = np.zeros(size, dtype=np.int64)
        entries: list[list[tuple[str, int, int, float, str]]] = []
        closes: list[list[float]] = []
        for j, s in enumerate(names):
            n = self._count[s][first : last + 1]
            origins = ["vix" if v else "proxy" for v in self._vix_at[s][first : last + 1]]
            lo = np.maximum(n - self._lookback, 0)
            # Per session: (symbol, first bar of its window, bars up to the session, IV, IV source).
            entries.append(list(zip(repeat(s), lo.tolist(), n.tolist(), self._vol_at[s][first : last + 1], origins)))
            # Its last close (the close of its bar n - 1; the value at 0 where it has no bar yet is never read).
            closes.append(self._data[s].bars.close[np.maximum(n - 1, 0)].tolist())
            listed_bits |= (n > 0).astype(np.int64) << j
            tradable_bits |= ((n > WARMUP) & self._has[s][first : last + 1]).astype(np.int64) << j
        members: dict[int, tuple[int, ...]] = {}
        made: dict[tuple[int, int, int], tuple[frozenset[str], frozenset[str]]] = {}
        for k, (listed, tradable) in enumerate(zip(listed_bits.tolist(), tradable_bits.tolist(), strict=True)):
            i = first + k
            day = self.sessions[i]
            weekday = day.weekday()
            at = members.get(listed)
            if at is None:
                at = members[listed] = tuple(j for j in range(len(names)) if listed >> j & 1)
            sets = made.get((listed, tradable, weekday))
            if sets is None:
                can = frozenset(names[j] for j in range(len(names)) if tradable >> j & 1)
                # Needed whatever is held: the index symbols listed, and the tradable symbols of an account type
                # whose entry day it is.
                needed = {names[j] for j in at if names[j] in self.cash_settled}
                for kind, symbols in self.accounts.items():
                    if weekday in self._entry_days[kind]:
                        needed.update(x for x in symbols if x in can)
                sets = made[(listed, tradable, weekday)] = (can, frozenset(needed))
            yield _Session(
                tuple(entries[j][k] for j in at),
                sets[0],
                sets[1],
                {names[j]: closes[j][k] for j in at},
                self.vix.get(day),
                self.costs.rate.on(day),
                self._used_at[i],
            )

    def _market(self, held: set[str], session: _Session) -> tuple[MarketData, frozenset[str], str]:
        """The day's market, the symbols tradable that day (a bar today and the warm-up behind it) and the day's
        volatility source, from the session's facts (see _sessions_of). The market holds the symbols anything reads
        that day: those held, those an account decides on (an entry day of its type, or held), and the index
        symbols (the VIX proxy reads them); the day's last closes of every listed symbol are kept in `_spot`."""
        needed = session.needed | held if held else session.needed
        bars: dict[str, Bars] = {}
        iv: dict[str, float] = {}
        source: dict[str, str] = {}
        series = self._bars
        for s, lo, n, vol, origin in session.listed:
            if s in needed:
                bars[s] = series[s].window(lo, n)
                iv[s] = vol
                source[s] = origin
        # The MarketData(bars=..., iv=..., vix=..., rate=..., iv_source=...) the constructor makes, without its
        # frozen __init__ (one object.__setattr__ per field, every session).
        market = _made(
            MarketData,
            bars=bars,
            iv=iv,
            vix=session.vix,
            rate=session.rate,
            sectors={},
            chains={},
            earnings=None,
            iv_source=source,
        )
        self._spot = session.spot
        return market, session.tradable, session.used

    def _record_series(self, first: int, last: int) -> None:
        """Each symbol's close and IV on the simulated sessions first..last (NaN where it has no bar that day),
        what the benchmarks read."""
        for s in self.symbols:
            has = self._has[s][first : last + 1]
            count = self._count[s][first : last + 1]
            close = self._data[s].bars.close[np.maximum(count - 1, 0)]
            self._closes[s] = np.where(has, close, math.nan).tolist()
            self._vols[s] = np.where(has, np.asarray(self._vol_at[s][first : last + 1]), math.nan).tolist()

    # --- the run -------------------------------------------------------------------------------------
    def _window(self, start: dt.date, end: dt.date) -> tuple[int, int]:
        if end < start:
            raise InvalidInputError.of("end", f"must not be before start ({end} < {start})")
        dates = np.array(self.sessions, dtype="datetime64[D]")
        first = int(np.searchsorted(dates, np.datetime64(start, "D")))
        last = int(np.searchsorted(dates, np.datetime64(end, "D"), side="right")) - 1
        if not self.sessions or first >= len(self.sessions):
            after = self.sessions[-1] if self.sessions else None
            raise InvalidInputError.of("start", f"{start} is after the data's last session ({after})")
        if last < 0:
            raise InvalidInputError.of("end", f"{end} is before the data's first session ({self.sessions[0]})")
        first = max(first, WARMUP)
        if last < first:
            raise InvalidInputError.of(
                "start",
                f"needs {WARMUP} bars of history before the first simulated day; the data's first session is "
                f"{self.sessions[0]}, so the first day that can be simulated is "
                f"{self.sessions[min(WARMUP, len(self.sessions) - 1)]}",
            )
        return first, last

    def simulate(self, start: dt.date, end: dt.date) -> tuple[Portfolio, _Ledger, list[dt.date], list[float]]:
        """Simulates [start, end]: the final portfolio, the ledger, the simulated days and the daily equity.

        The run makes many short-lived objects and keeps some (the ledger grows by the day): what existed before it
        (the loaded data, the engine, the windows' facts) is set aside from the garbage collector's scans for the
        run's length (gc.freeze), and its collections run less often (`_collecting_less`), so the young objects are
        scanned in larger, fewer batches and the ones the run keeps are not scanned again and again by full
        collections as the ledger grows. Nothing else changes; a caller that froze objects itself keeps its own
        freeze untouched. The engine knows the labels and VIX proxy readings of the run's windows ahead
        (`_windows`, Engine.use_windows) for the run's length."""
        first, last = self._window(start, end)
        with _collecting_less():
            self.engine.use_windows(self._windows(first, last))
            try:
                if gc.get_freeze_count():
                    return self._simulate(start, end)
                gc.freeze()
                try:
                    return self._simulate(start, end)
                finally:
                    gc.unfreeze()
            finally:
                self.engine.use_windows(None)

    def _windows(self, first: int, last: int) -> dict[str, SeriesWindows]:
        """Each symbol's windows the days first..last show the engine (`_market`), each with the IV `_iv` gives
        on the day of its last bar (NaN when that day is before the run: its label is then computed on demand)."""
        out: dict[str, SeriesWindows] = {}
        for s in self._data:
            # The session table's IV of the day is `_iv`'s for the symbol's last bar (see __init__).
            count, has, vol = self._count_at[s], self._has_at[s], self._vol_at[s]
            ivs: dict[int, float] = {}
            for i in range(first, last + 1):
                n = count[i]
                if n and has[i]:
                    ivs[n] = vol[i]
                elif n:
                    ivs.setdefault(n, math.nan)
            ends = sorted(ivs)
            starts = [max(0, n - self._lookback) for n in ends]
            # The very series `_market`'s windows view: the table reads only windows sharing its memory.
            out[s] = SeriesWindows(self._bars[s], starts, ends, [ivs[n] for n in ends])
        return out

    def _simulate(self, start: dt.date, end: dt.date) -> tuple[Portfolio, _Ledger, list[dt.date], list[float]]:
        first, last = self._window(start, end)
        t0 = dt.datetime.combine(self.sessions[first], dt.time(9, 30))
        portfolio = Portfolio.create("backtest", self.capital, t0)
        ledger = _Ledger()
        self._closes = {s: [] for s in self.symbols}
        self._vols = {s: [] for s in self.symbols}
        return self._days(first, last, portfolio, ledger)

    def _days(
        self, first: int, last: int, portfolio: Portfolio, ledger: _Ledger
    ) -> tuple[Portfolio, _Ledger, list[dt.date], list[float]]:
        """The day loop of `_simulate` over sessions first..last."""
        daily_equity: list[float] = []
        daily_dates: list[dt.date] = []
        sessions = self.sessions
        positions = portfolio.positions
        actions = ledger.actions
        for i, session in zip(range(first, last + 1), self._sessions_of(first, last), strict=True):
            day = sessions[i]
            weekday = day.weekday()
            market, tradable, source = self._market({p.symbol for p in positions.values()}, session)
            ledger.vol_sources.append((day, source))
            for s in self._skipped_at[i]:
                ledger.skipped[s] = ledger.skipped.get(s, 0) + 1
            if i > first:
                self._accrue(portfolio, sessions[i - 1], day, ledger)
            as_of = dt.datetime.combine(day, dt.time(15, 45))
            held = {(p.account_id, p.symbol) for p in positions.values()}
            # The day's decisions share one valuation of the accounts until a fill changes the portfolio.
            self.engine.keep_equities(portfolio)
            for account in list(portfolio.accounts.values()):
                if portfolio.groups[account.group_id].merged:
                    continue
                entry_day = weekday in self._entry_days[account.kind]
                for symbol in self.accounts[account.kind]:
                    if symbol not in tradable:
                        continue
                    if not entry_day and (account.id, symbol) not in held:
                        # Holding no position in the symbol on a day that is no entry day under any label: the
                        # engine would answer NO_TRADE.
                        actions["NO_TRADE"] = actions.get("NO_TRADE", 0) + 1
                        continue
                    self._decide(portfolio, account.id, account.kind, symbol, as_of, market, day, ledger)
            self.engine.keep_equities(None)
            ledger.active_this_week.update(p.account_id for p in positions.values())
            self._record_deployment(portfolio, market, day, ledger)
            self._settle_expiries(portfolio, market, day, ledger)
            week_end = i == last or sessions[i + 1].isocalendar()[1] != day.isocalendar()[1]
            if week_end:
                self._week_end(portfolio, market, day, ledger)
            in_calendar = FIRST_YEAR <= day.year <= LAST_YEAR
            if in_calendar and day.month in (3, 6, 9, 12) and (i == last or sessions[i + 1].month != day.month):
                # Acts only on the quarter's last NYSE trading day (PROTOCOL section 1).
                for tx in portfolio.reinvest_quarter(dt.datetime.combine(day, dt.time(16, 0))):
                    ledger.events.append(
                        {"date": day.isoformat(), "event": tx.kind, "account": tx.account_id, "amount": str(tx.amount)}
                    )
            total = 0.0
            # Every account's equity at the close, each position marked once (the deployment's valuation when
            # nothing changed since).
            closing = self._equities(portfolio, market, day)
            equity = ledger.equity
            for account in portfolio.accounts.values():
                leaps = float(account.leaps)
                eq = closing[account.id] + leaps
                if eq - leaps > float(account.peak):
                    account.peak = money(eq - leaps)  # the equity high-water mark at the close
                series = equity.get(account.id)
                if series is None:  # an account forked today: NaN before
                    series = equity[account.id] = [math.nan] * len(daily_dates)
                series.append(eq)
                total += eq
            daily_equity.append(total)
            daily_dates.append(day)
        self._record_series(first, last)
        return portfolio, ledger, daily_dates, daily_equity

    def _decide(
        self,
        portfolio: Portfolio,
        account_id: str,
        kind: str,
        symbol: str,
        as_of: dt.datetime,
        market: MarketData,
        day: dt.date,
        ledger: _Ledger,
    ) -> None:
        """Decides (and executes) one account on one symbol, again the same day when a fill freed capital or left
        a covered call to write."""
        for _ in range(3):
            decision = self.engine.decide(portfolio, account_id, symbol, as_of, market)
            for text in decision.warnings:
                seen = ledger.warnings.setdefault(text.split(" needs ")[0], [text, day.isoformat(), "", 0])
                seen[2] = day.isoformat()
                seen[3] += 1
            self._execute(portfolio, decision, market, day, ledger)
            if decision.week_type:
                counts = ledger.week_types.setdefault(account_id, {})
                counts[decision.week_type] = counts.get(decision.week_type, 0) + 1
            # A position closed for profit (or at a stop) frees its capital, and shares just bought (or a Com-Acc's
            # reinvestment put) leave their covered call to write: the account is decided again the same day.
            if decision.outcome == "REJECTED":
                break
            action = decision.action
            if action == "BUY_SHARES" or (action == "OPEN_PUT" and kind == "com"):
                continue
            if action != "CLOSE" or any(
                p.account_id == account_id and p.symbol == symbol for p in portfolio.positions.values()
            ):
                break

    def _accrue(self, portfolio: Portfolio, previous: dt.date, day: dt.date, ledger: _Ledger) -> None:
        """Interest from the previous close to this one on each account's cash (idle cash and put collateral
        alike: puts are cash-secured, so their collateral is cash in the account)."""
        at = dt.datetime.combine(day, dt.time(9, 30))
        costs = self.costs
        rate = costs.rate.on(previous)
        days = (day - previous).days
        groups = portfolio.groups
        for account in portfolio.accounts.values():
            if groups[account.group_id].merged:
                continue
            # costs.interest(balance, previous, day), its rate and days looked up once a day.
            amount = round(costs.accrued(float(account.balance), rate, days), 2)
            if amount != 0.0:
                portfolio.book_pnl(account.id, amount, at, "interest")
                ledger.cost(account.id, "interest", amount)

    def _record_deployment(self, portfolio: Portfolio, market: MarketData, day: dt.date, ledger: _Ledger) -> None:
        """Share of each account's equity, and of the portfolio's, committed at the close: put collateral plus
        held shares at market (section 8's deployment)."""
        committed: dict[str, float] = {}
        # The day's last closes: each held symbol's bars in the market end at its close there.
        spot = self._spot
        for p in portfolio.positions.values():
            stock = max(p.exposure(spot[p.symbol]), 0.0) if p.kind == "stock" else 0.0
            committed[p.account_id] = committed.get(p.account_id, 0.0) + p.collateral() + stock
        total_committed = 0.0
        total_equity = 0.0
        n = len(ledger.portfolio_deployment)
        groups = portfolio.groups
        closing = self._equities(portfolio, market, day)
        deployment = ledger.deployment
        for account in portfolio.accounts.values():
            if groups[account.group_id].merged:
                continue
            eq = closing[account.id] + float(account.leaps)
            used = committed.get(account.id, 0.0)
            series = deployment.get(account.id)
            if series is None:  # an account forked since the last close: NaN before
                series = deployment[account.id] = [math.nan] * n
            series.append(used / eq if eq > 0 else 0.0)
            total_committed += used
            total_equity += eq
        ledger.portfolio_deployment.append(total_committed / total_equity if total_equity > 0 else 0.0)

    def _equities(self, portfolio: Portfolio, market: MarketData, day: dt.date) -> dict[str, float]:
        """Every account's equity at market (cash plus its positions; LEAPS not included), valued once and kept
        until the portfolio changes: each account's equity is the number the engine gives it valued alone (the core
        adds each account's positions in book order either way). Every change of cash or positions is a recorded
        transaction (and positions and accounts are only added or removed with one), so the count of transactions,
        positions and accounts, with the market and day, says when the kept valuation still holds."""
        stamp = (len(portfolio.transactions), len(portfolio.positions), len(portfolio.accounts))
        kept = self._valued
        if kept is not None and kept[0] == stamp and kept[1] is market and kept[2] == day:
            return kept[3]
        accounts = list(portfolio.accounts.values())
        values, _ = self.engine.equities(portfolio, accounts, market, day, portfolio_too=False)
        valued = {a.id: v for a, v in zip(accounts, values, strict=True)}
        self._valued = (stamp, market, day, valued)
        return valued

    # --- execution -------------------------------------------------------------------------------------
    def _next_id(self) -> str:
        self._pos_ids += 1
        return f"pos-{self._pos_ids}"

    def _fill(self, mid: float, *, selling: bool) -> float:
        """The fill of an option order at model price `mid`; a zero spread means no spread at all."""
        if self.costs.spread == 0.0:
            return mid
        return round(self.costs.option_fill(mid, selling=selling), 6)

    def _charge(
        self, portfolio: Portfolio, account_id: str, amount: float, at: dt.datetime, what: str, ledger: _Ledger
    ) -> float:
        """Books a commission (rounded to the cent) against the account's cash; returns it."""
        amount = round(amount, 2)
        if amount > 0:
            portfolio.book_pnl(account_id, -amount, at, f"commission: {what}")
            ledger.cost(account_id, "commissions", amount)
        return amount

    def _log(
        self,
        ledger: _Ledger,
        day: dt.date,
        pos: Position,
        action: str,
        *,
        contracts: int = 0,
        shares: float = 0.0,
        price: float,
        mid: float,
        commission: float = 0.0,
        spread_cost: float = 0.0,
        tx: Transaction | None = None,
        reason: str,
        instrument: str | None = None,
    ) -> None:
        # A closing trade realises its P&L against the entry (premium or cost basis), less its own commission.
        realised = float(tx.realised) - commission if tx is not None else 0.0
        kind = instrument or pos.kind
        option = kind != "stock"
        # Built without the frozen dataclass's __init__ (one object.__setattr__ per field): the same Trade.
        ledger.fills.append(
            _made(
                Trade,
                date=day,
                account=pos.account_id,
                symbol=pos.symbol,
                action=action,
                instrument=kind,
                strike=pos.strike if option else None,
                expiry=pos.expiry if option else None,
                contracts=contracts,
                shares=shares,
                price=price,
                mid=mid,
                commission=commission,
                spread_cost=spread_cost,
                realised_pnl=round(realised, 2),
                reason=reason,
            )
        )

    def _execute(self, portfolio: Portfolio, d: Decision, market: MarketData, day: dt.date, ledger: _Ledger) -> None:
        """Fills every order of an executed decision (children and legs alike), then lets the engine commit the
        decision's effects (rate window, freezes, cuts, REDUCING)."""
        ledger.actions[d.action] = ledger.actions.get(d.action, 0) + 1
        at = d.as_of
        order = d.order
        if d.outcome == "REJECTED" or d.action in ("HOLD", "NO_TRADE"):
            return
        self.engine.forget_equities()  # the fills change the portfolio: the next decision values it again
        why = _reason(d)
        ledger.trades[d.account_id] = ledger.trades.get(d.account_id, 0) + 1
        if d.action in ("OPEN_PUT", "OPEN_CALL") and order is not None:
            self._open(portfolio, d, order, market, day, "premium", ledger, why)
        elif d.action == "BUY_SHARES" and order is not None:
            self._buy_shares(
                portfolio, d.account_id, d.symbol, order.contracts, order.limit_price, day, at, ledger, why
            )
        elif d.action == "CLOSE" and d.position_id in portfolio.positions:
            pos = portfolio.positions[d.position_id]
            if pos.kind != "stock":
                self._close(portfolio, pos, market, day, at, "close", ledger, why)
            for leg in d.orders:
                if leg.kind == "stock":
                    self._sell_shares(portfolio, d.account_id, d.symbol, float(leg.contracts), market, at, ledger, why)
        elif d.action == "ROLL" and d.position_id in portfolio.positions and order is not None:
            old = portfolio.positions[d.position_id]
            self._close(portfolio, old, market, day, at, "roll: close", ledger, why)
            self._open(portfolio, d, order, market, day, "roll", ledger, why)
            ledger.events.append(
                {
                    "date": day.isoformat(),
                    "event": "roll",
                    "account": d.account_id,
                    "from": old.strike,
                    "to": order.strike,
                }
            )
        elif d.action == "REDUCE" and order is not None and order.kind == "stock":
            self._sell_shares(portfolio, d.account_id, d.symbol, float(order.contracts), market, at, ledger, why)
        elif d.action == "REDUCE" and d.position_id in portfolio.positions and order is not None:
            pos = portfolio.positions[d.position_id]
            self._close(portfolio, pos, market, day, at, "reduce", ledger, why, contracts=order.contracts)
            ledger.events.append(
                {"date": day.isoformat(), "event": "reduce", "account": d.account_id, "contracts": order.contracts}
            )
        elif d.action == "ACCEPT_ASSIGNMENT" and d.position_id in portfolio.positions:
            self._expire_in_the_money(portfolio, portfolio.positions[d.position_id], market, day, at, ledger, why)
        self.engine.commit(d, portfolio)

    def _open(
        self,
        portfolio: Portfolio,
        d: Decision,
        order: Order,
        market: MarketData,
        day: dt.date,
        why: str,
        ledger: _Ledger,
        reason: str,
    ) -> None:
        mid = order.limit_price
        price = self._fill(mid, selling=True)
        pos = Position(
            self._next_id(),
            d.account_id,
            d.symbol,
            order.kind,
            -float(order.contracts),
            day,
            order.strike,
            order.expiry,
            price,
            iv=market.iv_for(d.symbol),
            band=order.band,
        )
        portfolio.open_position(
            pos, d.as_of, f"{why}: sold {order.contracts} {order.kind} {order.strike:g} exp {order.expiry}"
        )
        fee = self._charge(
            portfolio, d.account_id, self.costs.option_commission(order.contracts), d.as_of, f"sold {pos.kind}", ledger
        )
        spread = round((mid - price) * MULTIPLIER * order.contracts, 2)
        ledger.cost(d.account_id, "spread_costs", spread)
        self._log(
            ledger,
            day,
            pos,
            "SELL_TO_OPEN",
            contracts=-order.contracts,
            price=price,
            mid=mid,
            commission=fee,
            spread_cost=spread,
            reason=reason,
        )

    @staticmethod
    def _lots(portfolio: Portfolio, account_id: str, symbol: str) -> list[Position]:
        return [
            p
            for p in portfolio.positions.values()
            if p.account_id == account_id and p.kind == "stock" and p.symbol == symbol and p.quantity > 0
        ]

    def _buy_shares(
        self,
        portfolio: Portfolio,
        account_id: str,
        symbol: str,
        shares: float,
        price: float,
        day: dt.date,
        at: dt.datetime,
        ledger: _Ledger,
        reason: str,
    ) -> None:
        """Com-Acc's round lots at today's price (a lot of its own, cost basis the price)."""
        lot = Position(self._next_id(), account_id, symbol, "stock", shares, day, cost_basis=price)
        portfolio.open_position(lot, at, f"round lots: bought {shares:g} {symbol} at {price:g}")
        fee = self._charge(portfolio, account_id, self.costs.share_commission(shares), at, f"bought {symbol}", ledger)
        self._log(ledger, day, lot, "BUY_SHARES", shares=shares, price=price, mid=price, commission=fee, reason=reason)

    def _sell_shares(
        self,
        portfolio: Portfolio,
        account_id: str,
        symbol: str,
        shares: float,
        market: MarketData,
        at: dt.datetime,
        ledger: _Ledger,
        reason: str,
    ) -> None:
        """Sells `shares` of the account's lots in `symbol` at today's close, first lot first (realises P&L)."""
        price = market.bars_for(symbol).last_close
        left = shares
        for lot in self._lots(portfolio, account_id, symbol):
            if left <= 0:
                break
            n = min(left, lot.quantity)
            tx = portfolio.close_position(lot.id, price, at, f"stop-loss: sold {n:g} {symbol} at {price:g}", quantity=n)
            fee = self._charge(portfolio, account_id, self.costs.share_commission(n), at, f"sold {symbol}", ledger)
            self._log(
                ledger,
                at.date(),
                lot,
                "SELL_SHARES",
                shares=-n,
                price=price,
                mid=price,
                commission=fee,
                tx=tx,
                reason=reason,
            )
            left -= n

    def _close(
        self,
        portfolio: Portfolio,
        pos: Position,
        market: MarketData,
        day: dt.date,
        at: dt.datetime,
        why: str,
        ledger: _Ledger,
        reason: str,
        *,
        contracts: float | None = None,
    ) -> None:
        """Buys back `contracts` of a short option (all of them by default) at today's mark plus half the spread."""
        mid = round(pos.mark(market.bars_for(pos.symbol).last_close, market.iv_for(pos.symbol), day, market.rate), 6)
        price = self._fill(mid, selling=False)
        n = -pos.quantity if contracts is None else contracts
        tx = portfolio.close_position(
            pos.id, price, at, f"{why}: bought back {n:g} {pos.kind} {pos.strike:g} at {price:.2f}", quantity=n
        )
        fee = self._charge(
            portfolio, pos.account_id, self.costs.option_commission(int(n)), at, f"bought back {pos.kind}", ledger
        )
        spread = round((price - mid) * MULTIPLIER * n, 2)
        ledger.cost(pos.account_id, "spread_costs", spread)
        self._log(
            ledger,
            day,
            pos,
            "BUY_TO_CLOSE",
            contracts=int(n),
            price=price,
            mid=mid,
            commission=fee,
            spread_cost=spread,
            tx=tx,
            reason=reason,
        )

    def _expire_in_the_money(
        self,
        portfolio: Portfolio,
        opt: Position,
        market: MarketData,
        day: dt.date,
        at: dt.datetime,
        ledger: _Ledger,
        reason: str = "EXPIRY",
    ) -> None:
        """An in-the-money option at expiry: an index option is cash-settled (the short pays the intrinsic value,
        no units change hands); a stock option is assigned (section 3)."""
        spot = market.bars_for(opt.symbol).last_close
        contracts = int(-opt.quantity)
        if opt.symbol in self.cash_settled:
            intrinsic = max(opt.strike - spot, 0.0) if opt.kind == "put" else max(spot - opt.strike, 0.0)
            tx = portfolio.close_position(
                opt.id,
                round(intrinsic, 6),
                at,
                f"cash settlement: {-opt.quantity:g} {opt.kind} {opt.strike:g} at {spot:g}",
                kind="settlement",
            )
            self._log(
                ledger,
                day,
                opt,
                "CASH_SETTLED",
                contracts=contracts,
                price=round(intrinsic, 6),
                mid=round(intrinsic, 6),
                tx=tx,
                reason=reason,
            )
            ledger.events.append(
                {
                    "date": day.isoformat(),
                    "event": f"{opt.kind}_cash_settlement",
                    "account": opt.account_id,
                    "strike": opt.strike,
                    "intrinsic": round(intrinsic, 4),
                }
            )
            return
        shares = -opt.quantity * MULTIPLIER
        account = portfolio.account(opt.account_id)
        if opt.kind == "put" and account.reinvest_cash > 0:
            # A Com-Acc's reinvestment put assigned: that cash is now shares.
            account.reinvest_cash = max(account.reinvest_cash - money(opt.strike * shares), money(0))
        held = sum(p.quantity for p in self._lots(portfolio, opt.account_id, opt.symbol))
        if opt.kind == "call" and held < shares:
            # A call without the shares to deliver (only after a stop-loss sold them): bought back at intrinsic.
            price = round(max(spot - opt.strike, 0.0), 6)
            tx = portfolio.close_position(opt.id, price, at, "call bought back at expiry")
            fee = self._charge(
                portfolio, opt.account_id, self.costs.option_commission(contracts), at, "call bought back", ledger
            )
            self._log(
                ledger,
                day,
                opt,
                "BUY_TO_CLOSE",
                contracts=contracts,
                price=price,
                mid=price,
                commission=fee,
                tx=tx,
                reason=reason,
            )
            return
        stock_id = self._next_id() if opt.kind == "put" else None
        tx = portfolio.assign(
            opt.id, at, f"{opt.kind} assigned: {shares:g} shares at {opt.strike:g}", stock_id=stock_id
        )
        fee = self._charge(
            portfolio, opt.account_id, self.costs.share_commission(shares), at, f"{opt.kind} assignment", ledger
        )
        self._log(
            ledger, day, opt, "ASSIGNED", contracts=contracts, price=0.0, mid=0.0, commission=fee, tx=tx, reason=reason
        )
        delivered = shares if opt.kind == "put" else -shares
        self._log(
            ledger,
            day,
            opt,
            "ASSIGNED_SHARES",
            shares=delivered,
            price=opt.strike,
            mid=opt.strike,
            reason=reason,
            instrument="stock",
        )
        ledger.events.append(
            {
                "date": day.isoformat(),
                "event": f"{opt.kind}_assignment",
                "account": opt.account_id,
                "strike": opt.strike,
                "shares": shares,
            }
        )

    def _settle_expiries(self, portfolio: Portfolio, market: MarketData, day: dt.date, ledger: _Ledger) -> None:
        """Options at or past expiry that no decision handled: ITM ones settle (cash or assignment), the rest
        expire worthless (their premium is realised)."""
        at = dt.datetime.combine(day, dt.time(16, 0))
        for pos in list(portfolio.positions.values()):
            if not pos.is_option or pos.expiry is None or pos.expiry > day:
                continue
            spot = market.bars_for(pos.symbol).last_close
            itm = (pos.kind == "put" and spot < pos.strike) or (pos.kind == "call" and spot > pos.strike)
            if itm:
                self._expire_in_the_money(portfolio, pos, market, day, at, ledger)
            else:
                contracts = int(-pos.quantity)
                tx = portfolio.expire_position(pos.id, at)
                self._log(ledger, day, pos, "EXPIRED", contracts=contracts, price=0.0, mid=0.0, tx=tx, reason="EXPIRY")

    def _week_end(self, portfolio: Portfolio, market: MarketData, day: dt.date, ledger: _Ledger) -> None:
        at = dt.datetime.combine(day, dt.time(16, 5))
        for account in portfolio.accounts.values():
            if portfolio.groups[account.group_id].merged:
                continue
            counts = ledger.week_types.setdefault(account.id, {})
            if account.id not in ledger.active_this_week:
                counts["W-IDL"] = counts.get("W-IDL", 0) + 1
            # The simulated operator: a REDUCING account whose drawdown is back under its cap is reset at the
            # week's end (in the service a person does this; PROTOCOL section 5).
            equity = self._equities(portfolio, market, day)[account.id]
            peak = max(float(account.peak), equity)
            drawdown = (peak - equity) / peak if peak > 0 else 0.0
            spec = self.engine.config.account(account.kind)
            if account.state == "REDUCING" and drawdown < spec.max_drawdown:
                self.engine.reset_account(portfolio, account.id)
                ledger.events.append({"date": day.isoformat(), "event": "operator_reset", "account": account.id})
            elif self._locked_in_cash(portfolio, account.id, account.kind, peak, equity, market):
                # Flat in cash, and the drawdown budget no longer buys one contract or round lot: the account
                # cannot earn its way back to its old peak, so the operator starts a new episode at its equity.
                self.engine.reset_account(portfolio, account.id, new_peak=equity)
                ledger.events.append(
                    {"date": day.isoformat(), "event": "operator_reset_rebased", "account": account.id}
                )
        ledger.active_this_week.clear()
        for group in portfolio.check_forks(at):
            ledger.events.append(
                {"date": day.isoformat(), "event": "fork", "group": group.id, "accounts": list(group.account_ids)}
            )
        # The marks a merge reads: those of the positions of groups still forked (every held symbol is in the
        # day's market, so no other position's mark could be asked for).
        forked = {
            a for g in portfolio.groups.values() if g.parent_id is not None and not g.merged for a in g.account_ids
        }
        marks = {
            p.id: round(p.mark(market.bars_for(p.symbol).last_close, market.iv_for(p.symbol), day, market.rate), 6)
            for p in portfolio.positions.values()
            if p.account_id in forked
        }
        for group in portfolio.check_merges(at, marks):
            ledger.events.append({"date": day.isoformat(), "event": "merge", "group": group.id})

    def _locked_in_cash(
        self, portfolio: Portfolio, account_id: str, kind: str, peak: float, equity: float, market: MarketData
    ) -> bool:
        """Flat, below its peak, and allowed less than one unit (strike ~ spot x 100 of its cheapest symbol) by
        the drawdown budget."""
        if equity <= 0 or equity >= peak or any(p.account_id == account_id for p in portfolio.positions.values()):
            return False
        spots = [self._spot[s] for s in self.accounts[kind] if s in self._spot]
        if not spots:
            return False
        spec = self.engine.config.account(kind)
        k = self.engine.config.doc.section("drawdown_budget").number("multiplier", low=0)
        allowed = allowed_exposure(peak, equity, spec.max_drawdown, k)
        unit = min(spots) * MULTIPLIER
        return allowed * min(spec.target_share, self.max_symbol_weight[kind]) * equity < unit

    # --- result ----------------------------------------------------------------------------------------
    @staticmethod
    def _vol_ranges(sources: list[tuple[dt.date, str]]) -> list[dict[str, str]]:
        """Consecutive days with the same volatility source, as {from, to, source} ranges."""
        ranges: list[dict[str, str]] = []
        for day, source in sources:
            if ranges and ranges[-1]["source"] == source:
                ranges[-1]["to"] = day.isoformat()
            else:
                ranges.append({"from": day.isoformat(), "to": day.isoformat(), "source": source})
        return ranges

    @staticmethod
    def _share_stats(series: list[float]) -> dict[str, float]:
        s = np.asarray(series, dtype=np.float64)
        s = s[np.isfinite(s)]
        if not s.size:
            return {"mean": 0.0, "max": 0.0}
        return {"mean": round(float(np.mean(s)), 6), "max": round(float(np.max(s)), 6)}

    def _result(
        self,
        portfolio: Portfolio,
        ledger: _Ledger,
        dates: list[dt.date],
        equity: list[float],
        start: dt.date,
        end: dt.date,
    ) -> dict[str, Any]:
        eq = np.asarray(equity)
        daily = eq[1:] / eq[:-1] - 1.0 if eq.size > 1 else np.zeros(0)
        metrics = risk.metrics(daily, periods_per_year=252) if daily.size >= 2 else {}
        accounts: dict[str, Any] = {}
        week_ends = [
            i
            for i in range(len(dates))
            if i == len(dates) - 1 or dates[i + 1].isocalendar()[1] != dates[i].isocalendar()[1]
        ]
        config = self.engine.config
        for account_id, series in ledger.equity.items():
            s = np.asarray(series)
            weekly = s[week_ends]
            valid = weekly[np.isfinite(weekly) & (weekly > 0)]
            wr = valid[1:] / valid[:-1] - 1.0 if valid.size > 1 else np.zeros(0)
            finite = s[np.isfinite(s)]
            peak = np.maximum.accumulate(finite) if finite.size else finite
            dd = float(np.max((peak - finite) / peak)) if finite.size else 0.0
            acct = portfolio.accounts[account_id]
            trades = ledger.trades.get(account_id, 0)
            mean_weekly = float(np.mean(wr)) if wr.size else 0.0
            target = config.account(acct.kind).weekly_target
            costs = ledger.costs.get(account_id, {"commissions": 0.0, "spread_costs": 0.0, "interest": 0.0})
            accounts[account_id] = {
                "type": acct.kind,
                "group": acct.group_id,
                "final_equity": round(float(finite[-1]) if finite.size else 0.0, 2),
                "mean_weekly_return": mean_weekly,
                "weekly_target": target,
                "weekly_vs_target": round(mean_weekly - target, 6),
                "weekly_returns": [round(float(x), 6) for x in wr],
                "max_drawdown": round(dd, 6),
                "week_types": dict(sorted(ledger.week_types.get(account_id, {}).items())),
                "state": acct.state,
                "leaps": str(acct.leaps),
                "deployment": self._share_stats(ledger.deployment.get(account_id, [])),
                "trades": trades,
                "symbols": list(self.accounts[acct.kind]),
                "max_symbol_weight": self.max_symbol_weight[acct.kind],
                "costs": {k: round(v, 2) for k, v in costs.items()},
            }
        forks = [e for e in ledger.events if e["event"] == "fork"]
        merges = [e for e in ledger.events if e["event"] == "merge"]
        vol_source = self._vol_ranges(ledger.vol_sources)
        proxy_days = sum(1 for _, s in ledger.vol_sources if s == "proxy")
        totals = {
            k: round(sum(row[k] for row in ledger.costs.values()), 2)
            for k in ("commissions", "spread_costs", "interest")
        }
        settlement = (
            "cash"
            if self.symbols and set(self.symbols) <= self.cash_settled
            else "physical"
            if not self.cash_settled
            else "mixed"
        )
        close_only = [s for s in self.symbols if self._data[s].close_only]
        data_notes = [n for n in self.market.notes if n.split(":")[0] in self.symbols]
        if dates and dates[0].year < FIRST_YEAR:
            data_notes.insert(
                0,
                f"before {FIRST_YEAR} the NYSE calendar is not known to allsuse: sessions are the union of the "
                "data's dates",
            )
        if close_only:
            data_notes.append(
                f"close-only data for {', '.join(close_only)}: ATR from close-to-close moves, the label's volume "
                "term skipped"
            )
        for sym, days in sorted(ledger.skipped.items()):
            data_notes.append(f"{sym}: not traded on {days} simulated session(s) without its bar")
        symbol = self.symbols[0] if len(self.symbols) == 1 else ",".join(self.symbols)
        return {
            "symbol": symbol,
            "symbols": {k: list(v) for k, v in self.accounts.items()},
            "start": start.isoformat(),
            "end": end.isoformat(),
            "first_day": dates[0].isoformat() if dates else None,
            "last_day": dates[-1].isoformat() if dates else None,
            "capital": self.capital,
            "seed": self.seed,
            "settlement": settlement,
            "cash_settled": sorted(self.cash_settled),
            "single_underlying": (
                f"every account trades {symbol} alone, its concentration limit raised to its deployment "
                "target (" + ", ".join(f"{k} {w:.0%}" for k, w in self.max_symbol_weight.items()) + ")"
            )
            if self.single
            else None,
            "final_equity": round(float(eq[-1]), 2) if eq.size else self.capital,
            "total_return": float(eq[-1] / self.capital - 1.0) if eq.size else 0.0,
            "deployment": self._share_stats(ledger.portfolio_deployment),
            "accounts": accounts,
            "actions": dict(sorted(ledger.actions.items())),
            "warnings": [
                f"{text} (on {days} decision days, {first} .. {last})"
                for text, first, last, days in ledger.warnings.values()
            ],
            "vol_source": vol_source,
            "proxy_days": proxy_days,
            "forks": forks,
            "merges": merges,
            "events": ledger.events,
            "metrics": {k: (None if not math.isfinite(v) else v) for k, v in metrics.items()},
            "transactions": len(portfolio.transactions),
            "ledger_cash": str(sum((a.balance for a in portfolio.accounts.values()), Decimal("0.00"))),
            "costs": {
                "commission_per_contract": self.costs.commission_per_contract,
                "commission_per_share": self.costs.commission_per_share,
                "spread": self.costs.spread,
                "rate": self.costs.rate.rates[0] if len(self.costs.rate.rates) == 1 else "curve",
                **totals,
                "fills": len(ledger.fills),
            },
            "data": {
                "close_only": close_only,
                "missing_sessions": {
                    s: len(self.market.gaps[s].missing) for s in self.symbols if s in self.market.gaps
                },
                "notes": data_notes,
            },
        }

    def run(self, start: dt.date, end: dt.date) -> BacktestRun:
        """Simulates [start, end] and returns the run: the result, daily equity and deployment, every fill, and
        the closes and IVs of each traded symbol (what the benchmarks need)."""
        portfolio, ledger, dates, equity = self.simulate(start, end)
        result = self._result(portfolio, ledger, dates, equity, start, end)
        n = len(dates)
        series = {
            a: np.asarray(values + [math.nan] * (n - len(values)), dtype=np.float64)
            for a, values in ledger.equity.items()
        }
        series["portfolio"] = np.asarray(equity, dtype=np.float64)
        return BacktestRun(
            result=result,
            dates=dates,
            equity=series,
            deployment=np.asarray(ledger.portfolio_deployment, dtype=np.float64),
            trades=ledger.fills,
            closes={s: np.asarray(v, dtype=np.float64) for s, v in self._closes.items()},
            vols={s: np.asarray(v, dtype=np.float64) for s, v in self._vols.items()},
            cash_settled=set(self.cash_settled),
            capital=self.capital,
            costs=self.costs,
        )


def account_symbols(
    market: MarketSet, mapping: dict[str, tuple[str, ...]] | None, config: settings.ProtocolConfig
) -> tuple[dict[str, tuple[str, ...]], list[str], bool]:
    """The symbols each account type trades, warnings for account types left without any, and whether this is
    the one-underlying layout. A mapping naming a symbol with no data, or an unknown account type, is refused."""
    available = market.symbols
    warnings: list[str] = []
    if mapping is None and len(available) == 1:
        only = next(iter(available))
        return {k: (only,) for k in KINDS}, warnings, True
    out: dict[str, tuple[str, ...]] = {}
    if mapping is not None:
        for kind, symbols in mapping.items():
            if kind not in KINDS:
                raise InvalidInputError.of("symbols", f"unknown account type {kind!r} (gen, rev or com)")
            for s in symbols:
                if s not in available:
                    raise InvalidInputError(
                        f"--symbols {kind}: symbol {s} has no data (loaded: {', '.join(sorted(available))})",
                        "symbols",
                        "no data",
                    )
            out[kind] = tuple(dict.fromkeys(symbols))
    for kind in KINDS:
        if kind in out:
            continue
        configured = config.account(kind).symbols
        found = tuple(s for s in configured if s in available)
        out[kind] = found
        if not found:
            warnings.append(
                f"{kind}: none of its configured symbols ({', '.join(configured)}) is in the data; it does not trade"
            )
    return out, warnings, False


def _benchmarks(run: BacktestRun) -> None:
    """Buy-and-hold and put-writing on the same data (the traded symbols, their closes and the IVs the protocol
    priced with). A benchmark holds a symbol through a session the symbol has no bar at its previous close, and the
    run's warnings say so; a symbol whose data starts after the first session is left out of the benchmarks, also
    with a warning (an equal weight of it cannot be bought on day one)."""
    closes: dict[str, np.ndarray] = {}
    vols: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for symbol in sorted(run.closes):
        close = np.asarray(run.closes[symbol], dtype=float)
        vol = np.asarray(run.vols.get(symbol, np.full(close.size, np.nan)), dtype=float)
        if close.size == 0 or not math.isfinite(close[0]) or not math.isfinite(vol[0]):
            notes.append(f"benchmarks: {symbol} has no bar on the first session; it is left out of the benchmarks")
            continue
        gaps = int(np.count_nonzero(~np.isfinite(close)))
        if gaps:
            notes.append(
                f"benchmarks: {symbol} has no bar on {gaps} session(s); the benchmarks hold it at its previous close"
            )
        closes[symbol] = _carried(close)
        vols[symbol] = _carried(vol)
    run.result["warnings"] = list(run.result.get("warnings", [])) + notes
    if not closes:
        return
    costs = run.costs or ZERO_COSTS
    series: SeriesRun = benchmarks.buy_and_hold(run.dates, closes, run.capital, costs)
    run.benchmarks[benchmarks.BUY_AND_HOLD] = series
    run.equity[benchmarks.BUY_AND_HOLD] = series.equity
    series = benchmarks.put_write(run.dates, closes, vols, run.capital, costs, cash_settled=set(run.cash_settled))
    run.benchmarks[benchmarks.PUT_WRITE] = series
    run.equity[benchmarks.PUT_WRITE] = series.equity


def _carried(values: np.ndarray) -> np.ndarray:
    """`values` with each NaN replaced by the last finite value before it (the first value must be finite)."""
    out = values.copy()
    for i in range(1, out.size):
        if not math.isfinite(out[i]):
            out[i] = out[i - 1]
    return out


def run_backtest(spec: BacktestSpec) -> BacktestRun:
    """Loads and aligns the data, runs the protocol over it with the spec's costs, and the benchmarks on the same
    data. Deterministic."""
    check_spec(spec)
    vix = load_vix(spec.vix) if spec.vix is not None else None
    market = load_market(spec.sources)
    run = run_market(market, spec, vix)
    run.result["data"]["sources"] = [str(s) for s in spec.sources]
    return run


def check_spec(spec: BacktestSpec) -> None:
    """What a spec must satisfy before any data is read."""
    if not math.isfinite(spec.capital) or spec.capital <= 0:
        raise InvalidInputError.of("capital", f"must be > 0, got {spec.capital}")
    if spec.end < spec.start:
        raise InvalidInputError.of("end", f"must not be before start ({spec.end} < {spec.start})")


def run_market(
    market: MarketSet, spec: BacktestSpec, vix: dict[dt.date, float] | None, *, with_benchmarks: bool = True
) -> BacktestRun:
    """The backtest of `spec` over data already loaded and aligned (`spec.sources` is not read): what a sweep runs
    for each point on data loaded once. `with_benchmarks=False` skips the benchmarks (a sweep's points do not
    change them)."""
    check_spec(spec)
    config = spec.config or settings.default()
    accounts, warnings, single = account_symbols(market, spec.symbols, config)
    vix_symbols = frozenset(accounts["gen"]) if single else None
    sim = Simulation(
        market,
        accounts=accounts,
        capital=spec.capital,
        vix=vix,
        seed=spec.seed,
        costs=spec.costs,
        config=config,
        single=single,
        vix_symbols=vix_symbols,
    )
    run = sim.run(spec.start, spec.end)
    run.result["warnings"] = warnings + run.result["warnings"]
    if with_benchmarks:
        _benchmarks(run)
        run.result["benchmarks"] = _benchmark_figures(run)
    return run


def _benchmark_figures(run: BacktestRun) -> dict[str, Any]:
    """result.json's `benchmarks`: each benchmark's final equity, CAGR, volatility, max drawdown, Sharpe, the 17
    metrics, its costs and trades, next to the protocol's (the same figures the CLI prints and the report shows)."""
    out: dict[str, Any] = {}
    for fig in summary.series_figures(run)[1:]:
        bench = run.benchmarks[fig.name]
        out[fig.name] = {
            "label": fig.label,
            "final_equity": round(fig.final_equity, 2),
            "cagr": _finite(fig.cagr),
            "volatility": _finite(fig.volatility),
            "max_drawdown": _finite(fig.max_drawdown),
            "sharpe": _finite(fig.sharpe),
            "metrics": {k: _finite(v) for k, v in fig.metrics.items()},
            "costs": {
                "commissions": round(bench.commissions, 2),
                "spread_costs": round(bench.spread_costs, 2),
                "interest": round(bench.interest, 2),
            },
            "trades": len(bench.trades),
            "warnings": list(bench.warnings),
        }
    return out


def _finite(value: float) -> float | None:
    """A figure for JSON: None where it is undefined (NaN or infinite)."""
    return float(value) if math.isfinite(value) else None


def parse_symbols(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`gen=AMD,BAC rev=AAPL ...` as {account type: symbols}; a malformed item names itself."""
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        kind, sep, rest = item.partition("=")
        kind = kind.strip().lower()
        symbols = tuple(s.strip().upper() for s in rest.split(",") if s.strip())
        if not sep or not symbols:
            raise InvalidInputError.of("symbols", f"{item!r} is not TYPE=SYMBOL,SYMBOL,... (e.g. gen=AMD,BAC)")
        if kind not in KINDS:
            raise InvalidInputError.of("symbols", f"{item!r}: unknown account type {kind!r} (gen, rev or com)")
        if kind in out:
            raise InvalidInputError.of("symbols", f"account type {kind} is given twice")
        out[kind] = symbols
    return out
