"""Market data on the server: snapshots read once per content, history kept by the server, MarketDataService.

* `SnapshotCache`: a converted SymbolMarket by its bytes (hashed, compared exactly), so the market many accounts are
  decided on is read (and checked) once. Bounded (config `market.snapshot_cache_size`, least recently used out),
  thread-safe, counted in Prometheus (allsuse_market_snapshot_cache_total{result="hit"|"miss"}).
* `MarketHistory`: the store's market_bars/market_quotes held in memory per symbol as columns (numpy), sliced as of a
  day in O(log n). It notices rows other processes wrote within `market.history_refresh_seconds`.
* `Markets.resolve`: the MarketData of a request: the snapshot's symbols (bars or packed columns), and for a symbol
  sent without bars, or not sent but needed, the last `market.history_bars` stored bars up to the as-of date with
  the IV/sector/chain/earnings of the latest quotes on or before it; the snapshot's VIX, else the stored one.
* `MarketDataServicer`: PublishBars (unary and client stream), PublishQuotes, GetBars.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

from allsuse import indicators
from allsuse.config import MarketConfig
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.accounts import Portfolio
from allsuse.protocol.market import Bars, MarketData, OptionQuote
from allsuse.server.app import ServiceBinding, ServiceDeps
from allsuse.server.convert import (
    MAX_CHAIN,
    MAX_EARNINGS_DATES,
    MAX_IV,
    MAX_SYMBOLS,
    MAX_VIX,
    SymbolData,
    bars_from_columns,
    date_in,
    kind_in,
    market_of,
    number_in,
    quote_in,
    snapshot_symbols_in,
    symbol_data_in,
    symbol_in,
    text_in,
)
from allsuse.server.errors import FailedPreconditionError
from allsuse.server.request import current_principal
from allsuse.server.rpc import rpc, run_blocking
from allsuse.store import Store
from allsuse.store import market as stored
from allsuse.v1 import decision_pb2, market_pb2, market_pb2_grpc

ROLES = {
    # Market history is shared by every portfolio: only an admin key may write it; any key may read it.
    "PublishBars": "admin",
    "PublishBarsStream": "admin",
    "PublishQuotes": "admin",
    "GetBars": "viewer",
}
MAX_PUBLISH_BARS = 20_000
"""Bars per PublishBars message and per GetBars reply (80 years of daily bars)."""
ORDINAL_OF_EPOCH = dt.date(1970, 1, 1).toordinal()
SLICES_PER_SYMBOL = 64
"""As-of slices (Bars objects) kept per symbol, so a day's bars and their dates are built once."""


def _actor() -> str:
    principal = current_principal()
    return principal.key_id if principal is not None else "system"


# --- the snapshot cache ----------------------------------------------------------------------------------------


class SnapshotCache:
    """Converted SymbolMarkets by content hash: bounded LRU, safe across the worker threads."""

    def __init__(self, size: int, registry: CollectorRegistry | None = None) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, SymbolData] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._counter: Counter | None = None
        self._gauge: Gauge | None = None
        if registry is not None:
            self._counter = Counter(
                "allsuse_market_snapshot_cache",
                "Snapshot symbols looked up in the content-hash cache, by result (hit or miss).",
                ["result"],
                registry=registry,
            )
            self._gauge = Gauge(
                "allsuse_market_snapshot_cache_entries", "Converted snapshot symbols cached.", registry=registry
            )

    @staticmethod
    def key(data: bytes) -> bytes:
        """The key of a SymbolMarket: its bytes themselves. The table hashes them (SipHash, a few us for 520 bars,
        where a cryptographic digest costs 20-80 us) and a hit compares them byte for byte, so two contents never
        share an entry; the price is the bytes kept beside the arrays (about as large)."""
        return data

    def get(self, key: bytes) -> SymbolData | None:
        """The cached conversion, or None (counted as a hit or a miss)."""
        with self._lock:
            part = self._entries.get(key)
            if part is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if self._counter is not None:
            self._counter.labels("hit" if part is not None else "miss").inc()
        return part

    def put(self, key: bytes, part: SymbolData) -> None:
        """Keeps `part`, dropping the least recently used entries beyond the size."""
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = part
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            n = len(self._entries)
        if self._gauge is not None:
            self._gauge.set(n)

    def __len__(self) -> int:
        return len(self._entries)


# --- market history in memory -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    """What the stored quotes of one symbol on one day say."""

    iv: float | None
    sector: str
    chain: dict[str, list[OptionQuote]] | None
    earnings: list[dt.date] | None
    vix: float | None = None

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Quote:
        """From a stored payload (see `quote_payload`)."""
        chain: dict[str, list[OptionQuote]] | None = None
        if payload.get("chain"):
            chain = {"call": [], "put": []}
            for kind, *numbers in payload["chain"]:
                chain[kind].append(OptionQuote(*numbers))
        earnings = [dt.date.fromisoformat(d) for d in payload.get("earnings") or ()] or None
        return cls(payload.get("iv"), payload.get("sector") or "unknown", chain, earnings, payload.get("vix"))


@dataclass
class SymbolHistory:
    """One symbol's stored bars as columns (days as ordinals), and its as-of slices."""

    days: npt.NDArray[np.int64]
    columns: tuple[npt.NDArray[np.float64], ...]
    slices: dict[tuple[int, int], Bars] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Sequence[stored.BarRow]) -> SymbolHistory:
        """From stored rows (epoch days), oldest first."""
        arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), 6)
        days = arr[:, 0].astype(np.int64) + ORDINAL_OF_EPOCH
        return cls(days, tuple(np.ascontiguousarray(arr[:, k]) for k in range(1, 6)))

    def upto(self, day: dt.date, count: int) -> Bars | None:
        """The last `count` bars up to and including `day`, or None when there are none."""
        end = int(self.days.searchsorted(day.toordinal(), side="right"))
        if end == 0:
            return None
        start = max(0, end - count)
        bars = self.slices.get((start, end))
        if bars is None:
            o, h, lo, c, v = (col[start:end] for col in self.columns)
            bars = Bars.from_days(self.days[start:end], o, h, lo, c, v)
            if len(self.slices) >= SLICES_PER_SYMBOL:
                self.slices.clear()
            self.slices[(start, end)] = bars
        return bars


@dataclass
class QuoteHistory:
    """One symbol's stored quotes by day (ordinals), oldest first."""

    days: list[int]
    quotes: list[Quote]

    def upto(self, day: dt.date) -> Quote | None:
        """The latest quotes on or before `day`."""
        i = bisect.bisect_right(self.days, day.toordinal())
        return self.quotes[i - 1] if i else None


class MarketHistory:
    """The store's market history in memory, refreshed from the store at most every `refresh_seconds`."""

    def __init__(self, store: Callable[[], Store], *, bars: int = 520, refresh_seconds: float = 1.0) -> None:
        self._store = store
        self.history_bars = bars
        self.refresh_seconds = refresh_seconds
        self._bars: dict[str, SymbolHistory] = {}
        self._quotes: dict[str, QuoteHistory] = {}
        self._revisions: tuple[int, int] | None = None
        self._checked = -float("inf")
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Makes the next lookup look in the store (after a publish)."""
        self._checked = -float("inf")

    def _fresh(self) -> None:
        if time.monotonic() - self._checked < self.refresh_seconds:
            return
        with self._lock:
            if time.monotonic() - self._checked < self.refresh_seconds:
                return
            store = self._store()
            revisions = store.read(stored.revisions)
            if revisions != self._revisions:
                after = self._revisions or (0, 0)
                if self._revisions is None:
                    bar_symbols = store.read(lambda c: stored.changed_symbols(c, "market_bars", 0))
                    quote_symbols = store.read(lambda c: stored.changed_symbols(c, "market_quotes", 0))
                else:
                    bar_symbols = store.read(lambda c: stored.changed_symbols(c, "market_bars", after[0]))
                    quote_symbols = store.read(lambda c: stored.changed_symbols(c, "market_quotes", after[1]))
                for symbol in bar_symbols:
                    rows = store.read(lambda c, s=symbol: stored.read_bars(c, s))  # type: ignore[misc]
                    if rows:
                        self._bars[symbol] = SymbolHistory.of(rows)
                for symbol in quote_symbols:
                    entries = store.read(lambda c, s=symbol: stored.read_quotes(c, s))  # type: ignore[misc]
                    self._quotes[symbol] = QuoteHistory(
                        [d + ORDINAL_OF_EPOCH for d, _ in entries], [Quote.of(p) for _, p in entries]
                    )
                self._revisions = revisions
            self._checked = time.monotonic()

    def bars(self, symbol: str, day: dt.date) -> Bars | None:
        """The last `history_bars` stored bars of `symbol` up to and including `day`, or None."""
        self._fresh()
        series = self._bars.get(symbol)
        return None if series is None else series.upto(day, self.history_bars)

    def quote(self, symbol: str, day: dt.date) -> Quote | None:
        """The latest stored quotes of `symbol` on or before `day`, or None."""
        self._fresh()
        series = self._quotes.get(symbol)
        return None if series is None else series.upto(day)

    def vix(self, day: dt.date) -> float | None:
        """The latest stored VIX on or before `day`, or None."""
        q = self.quote(stored.MARKET_WIDE, day)
        return None if q is None else q.vix


# --- a request's market ----------------------------------------------------------------------------------------


class Markets:
    """Turns a request's snapshot into MarketData: the cache first, the server's history for what is missing."""

    def __init__(self, cache: SnapshotCache, history: MarketHistory) -> None:
        self.cache = cache
        self.history = history

    def resolve(
        self,
        snapshot: decision_pb2.MarketSnapshot,
        as_of: dt.datetime,
        wanted: Iterable[str] = (),
        field: str = "market",
    ) -> MarketData:
        """The MarketData of a request as of `as_of` (its date bounds the history used): every snapshot symbol,
        plus the `wanted` ones the history holds. Errors name the snapshot field."""
        snapshot_symbols_in(snapshot, field)
        day = as_of.date()
        parts: dict[str, SymbolData] = {}
        lacking: list[tuple[str, str]] = []
        for i, sm in enumerate(snapshot.symbols):
            at = f"{field}.symbols[{i}]"
            if sm.symbol in parts:
                raise InvalidInputError.of(f"{at}.symbol", f"{sm.symbol} appears twice")
            data = sm.SerializeToString()
            key = SnapshotCache.key(data)
            part = self.cache.get(key)
            if part is None:
                part = symbol_data_in(sm, at, data)
                self.cache.put(key, part)
            parts[sm.symbol] = part
            if part.bars is None or part.iv is None:
                lacking.append((sm.symbol, at))
        vix = number_in(snapshot.vix, f"{field}.vix", low=0.0, high=MAX_VIX) if snapshot.HasField("vix") else None
        if vix is None and (lacking or any(s and s not in parts for s in wanted)):
            vix = self.history.vix(day)
        sources: dict[str, str] = {}
        for symbol, at in lacking:
            parts[symbol], sources[symbol] = self._filled(symbol, parts[symbol], day, at, vix)
        for symbol in wanted:
            if symbol and symbol not in parts:
                bars = self.history.bars(symbol, day)
                if bars is not None:
                    blank = SymbolData(bars, None, "unknown", None, None)
                    parts[symbol], sources[symbol] = self._filled(symbol, blank, day, f"{field}.symbols", vix)
        market = market_of(parts, snapshot, field)
        if (market.vix is None and vix is not None) or sources:
            market = MarketData(
                market.bars,
                market.iv,
                vix,
                market.rate,
                market.sectors,
                market.chains,
                market.earnings,
                {s: src for s, src in sources.items() if src != "given"},
            )
        return market

    def _filled(
        self, symbol: str, part: SymbolData, day: dt.date, at: str, vix: float | None
    ) -> tuple[SymbolData, str]:
        """`part` with bars, IV, sector, chain and earnings it lacks from the history as of `day`, and where its IV
        came from: the request ("given"), the stored quotes ("given"), VIX/100 ("vix") or the realised-volatility
        proxy ("proxy", PROTOCOL section 6), in that order."""
        bars = part.bars
        if bars is None:
            bars = self.history.bars(symbol, day)
            if bars is None:
                raise InvalidInputError.of(
                    f"{at}.bars",
                    f"must hold daily bars, oldest first (the server holds no history of {symbol} up to {day})",
                )
        quote = self.history.quote(symbol, day)
        iv = part.iv if part.iv is not None else (quote.iv if quote is not None else None)
        source = "given"
        if iv is None:
            iv, source = _fallback_iv(bars, vix)
        if quote is None:
            return SymbolData(bars, iv, part.sector, part.chain, part.earnings), source
        filled = SymbolData(
            bars,
            iv,
            part.sector if part.sector != "unknown" else quote.sector,
            part.chain if part.chain is not None else quote.chain,
            part.earnings if part.earnings is not None else quote.earnings,
        )
        return filled, source

    def of_history(self, symbols: Iterable[str], as_of: dt.datetime) -> MarketData:
        """The server's own market as of `as_of`: the stored history of `symbols` (those it holds) and the VIX;
        what monitoring and reports read when no request carries a market."""
        return self.complete(MarketData(bars={}, iv={}, vix=self.history.vix(as_of.date())), symbols, as_of)

    def complete(self, market: MarketData, symbols: Iterable[str], as_of: dt.datetime) -> MarketData:
        """`market` plus the history of the `symbols` it lacks (those the server holds)."""
        missing = [s for s in symbols if s not in market.bars]
        if not missing:
            return market
        day = as_of.date()
        bars, ivs, sectors = dict(market.bars), dict(market.iv), dict(market.sectors)
        chains, earnings = dict(market.chains), dict(market.earnings or {})
        sources = dict(market.iv_source)
        for symbol in missing:
            history = self.history.bars(symbol, day)
            if history is None:
                continue
            blank = SymbolData(history, None, "unknown", None, None)
            part, source = self._filled(symbol, blank, day, "market.symbols", market.vix)
            assert part.bars is not None and part.iv is not None
            bars[symbol], ivs[symbol], sectors[symbol] = part.bars, part.iv, part.sector
            if source != "given":
                sources[symbol] = source
            if part.chain is not None:
                chains[symbol] = part.chain
            if part.earnings is not None:
                earnings[symbol] = part.earnings
        return MarketData(bars, ivs, market.vix, market.rate, sectors, chains, earnings or None, sources)


def _fallback_iv(bars: Bars, vix: float | None) -> tuple[float, str]:
    """An IV for a symbol nobody quoted: VIX/100, else realised volatility x the VIX proxy ratio (as the backtest
    does, PROTOCOL section 6), else 0.2."""
    if vix is not None and vix > 0:
        return min(vix / 100.0, MAX_IV), "vix"
    doc = settings.default().doc
    window = int(doc.number("vix_proxy_window", low=2))
    ratio = doc.number("vix_proxy_ratio", low=0)
    hv = float(indicators.hist_vol(bars.close[-(window + 1) :], window)[-1]) if len(bars) > window else math.nan
    return (min(hv * ratio, MAX_IV) if math.isfinite(hv) and hv > 0 else 0.2), "proxy"


class MissingHistoryError(Exception):
    """The server's market history lacks a symbol a book holds."""


def book_market(deps: ServiceDeps, portfolio: Portfolio, at: dt.datetime) -> MarketData:
    """The server's own market for a portfolio's book as of `at` (monitoring and reports); MissingHistoryError
    naming the held symbols the history lacks."""
    symbols = sorted({p.symbol for p in portfolio.positions.values()})
    market = markets_for(deps).of_history(symbols, at)
    missing = [s for s in symbols if s not in market.bars]
    if missing:
        raise MissingHistoryError(f"no market history for {', '.join(missing)} as of {at:%Y-%m-%d}")
    return market


def markets_for(deps: ServiceDeps) -> Markets:
    """The one Markets object of a service (shared by DecisionService and MarketDataService)."""
    found = vars(deps).get("_markets")
    if isinstance(found, Markets):
        return found
    cfg = getattr(deps, "config", None)
    config = cfg.market if cfg is not None else MarketConfig()  # a bare deps object (tests): the defaults
    metrics = getattr(deps, "metrics", None)
    markets = Markets(
        SnapshotCache(config.snapshot_cache_size, metrics.registry if metrics is not None else None),
        MarketHistory(lambda: deps.store, bars=config.history_bars, refresh_seconds=config.history_refresh_seconds),
    )
    vars(deps)["_markets"] = markets
    return markets


# --- MarketDataService ------------------------------------------------------------------------------------------


def quote_payload(q: market_pb2.SymbolQuotes, at: str) -> dict[str, Any]:
    """The stored form of one symbol's quotes, checked (errors name `at`)."""
    payload: dict[str, Any] = {"iv": number_in(q.iv, f"{at}.iv", low=0.0, high=MAX_IV, low_open=True)}
    payload["sector"] = text_in(q.sector, f"{at}.sector", max_length=64)
    if len(q.chain) > MAX_CHAIN:
        raise InvalidInputError.of(f"{at}.chain", f"must hold at most {MAX_CHAIN} quotes, got {len(q.chain)}")
    if q.chain:
        chain = []
        for j, quote in enumerate(q.chain):
            kind = kind_in(quote.kind, f"{at}.chain[{j}].kind")
            o = quote_in(quote, f"{at}.chain[{j}]")
            chain.append([kind, o.strike, o.bid, o.ask, o.iv, o.open_interest, o.volume])
        payload["chain"] = chain
    if len(q.earnings_dates) > MAX_EARNINGS_DATES:
        raise InvalidInputError.of(f"{at}.earnings_dates", f"must hold at most {MAX_EARNINGS_DATES} dates")
    if q.earnings_dates:
        payload["earnings"] = [
            date_in(d, f"{at}.earnings_dates[{j}]").isoformat() for j, d in enumerate(q.earnings_dates)
        ]
    return payload


class MarketDataServicer(market_pb2_grpc.MarketDataServiceServicer):
    """The allsuse.v1.MarketDataService implementation."""

    def __init__(self, deps: ServiceDeps) -> None:
        self.deps = deps
        self.markets = markets_for(deps)
        self._bars_counter: Counter | None = None

    def _publish_bars(self, request: market_pb2.PublishBarsRequest) -> stored.PublishCounts:
        symbol = symbol_in(request.symbol, "symbol")
        bars, _ = bars_from_columns(request.columns.SerializeToString(), "columns", max_bars=MAX_PUBLISH_BARS)
        if bars is None:
            raise InvalidInputError.of("columns", "must hold at least one bar")
        days = (bars.days - ORDINAL_OF_EPOCH).tolist()
        rows: list[stored.BarRow] = list(
            zip(
                days,
                bars.open.tolist(),
                bars.high.tolist(),
                bars.low.tolist(),
                bars.close.tolist(),
                bars.volume.tolist(),
                strict=True,
            )
        )
        imputed = list(request.imputed_days)
        if set(imputed) - set(days):
            raise InvalidInputError.of("imputed_days", "every imputed day must be one of columns.days")
        actor = _actor()
        try:
            counts = self.deps.store.write(
                lambda tx: stored.put_bars(tx, symbol, rows, replace=request.replace, actor=actor, imputed=imputed)
            )
        except stored.MarketConflictError as exc:
            raise FailedPreconditionError(f"columns.days[{exc.index}]: {exc}") from None
        if counts.inserted or counts.replaced:
            self.markets.history.invalidate()
        self._published(len(rows) - len(imputed), len(imputed))
        return counts

    def _published(self, given: int, imputed: int) -> None:
        """Counts published bars as given by a source or filled forward (`imputed_days`)."""
        metrics = getattr(self.deps, "metrics", None)
        if metrics is None:
            return
        if self._bars_counter is None:
            self._bars_counter = Counter(
                "allsuse_market_bars_published",
                "Bars published through MarketDataService, given by a source or imputed (filled forward).",
                ["kind"],
                registry=metrics.registry,
            )
        self._bars_counter.labels(kind="given").inc(given)
        self._bars_counter.labels(kind="imputed").inc(imputed)

    @staticmethod
    def _bars_reply(counts: stored.PublishCounts) -> market_pb2.PublishBarsResponse:
        return market_pb2.PublishBarsResponse(
            inserted=counts.inserted, replaced=counts.replaced, unchanged=counts.unchanged
        )

    @rpc
    async def PublishBars(self, request: market_pb2.PublishBarsRequest, context: grpc.aio.ServicerContext) -> Any:
        return self._bars_reply(await run_blocking(self._publish_bars, request))

    @rpc
    async def PublishBarsStream(
        self, request_iterator: AsyncIterator[market_pb2.PublishBarsRequest], context: grpc.aio.ServicerContext
    ) -> Any:
        inserted = replaced = unchanged = 0
        async for request in request_iterator:
            counts = await run_blocking(self._publish_bars, request)
            inserted += counts.inserted
            replaced += counts.replaced
            unchanged += counts.unchanged
        return market_pb2.PublishBarsResponse(inserted=inserted, replaced=replaced, unchanged=unchanged)

    def _publish_quotes(self, request: market_pb2.PublishQuotesRequest) -> market_pb2.PublishQuotesResponse:
        day = date_in(request.date, "date")
        if len(request.symbols) > MAX_SYMBOLS:
            raise InvalidInputError.of("symbols", f"must hold at most {MAX_SYMBOLS}, got {len(request.symbols)}")
        quotes: dict[str, dict[str, Any]] = {}
        for i, q in enumerate(request.symbols):
            at = f"symbols[{i}]"
            symbol_in(q.symbol, f"{at}.symbol")
            if q.symbol in quotes:
                raise InvalidInputError.of(f"{at}.symbol", f"{q.symbol} appears twice")
            quotes[q.symbol] = quote_payload(q, at)
        if request.HasField("vix"):
            quotes[stored.MARKET_WIDE] = {"vix": number_in(request.vix, "vix", low=0.0, high=MAX_VIX)}
        if not quotes:
            raise InvalidInputError.of("symbols", "must hold at least one symbol (or set vix)")
        epoch_day = day.toordinal() - ORDINAL_OF_EPOCH
        actor = _actor()
        try:
            counts = self.deps.store.write(
                lambda tx: stored.put_quotes(tx, epoch_day, quotes, replace=request.replace, actor=actor)
            )
        except stored.MarketConflictError as exc:
            where = "vix" if exc.index >= len(request.symbols) else f"symbols[{exc.index}]"
            raise FailedPreconditionError(f"{where}: {exc}") from None
        if counts.inserted or counts.replaced:
            self.markets.history.invalidate()
        return market_pb2.PublishQuotesResponse(
            inserted=counts.inserted, replaced=counts.replaced, unchanged=counts.unchanged
        )

    @rpc
    async def PublishQuotes(self, request: market_pb2.PublishQuotesRequest, context: grpc.aio.ServicerContext) -> Any:
        return await run_blocking(self._publish_quotes, request)

    def _get_bars(self, request: market_pb2.GetBarsRequest) -> market_pb2.GetBarsResponse:
        symbol = symbol_in(request.symbol, "symbol")
        start = date_in(request.start, "start").toordinal() - ORDINAL_OF_EPOCH if request.start else None
        end = date_in(request.end, "end").toordinal() - ORDINAL_OF_EPOCH if request.end else None
        if start is not None and end is not None and end < start:
            raise InvalidInputError.of("end", f"must not be before start {request.start}")
        if not 0 <= request.limit <= MAX_PUBLISH_BARS:
            raise InvalidInputError.of("limit", f"must be in 0..{MAX_PUBLISH_BARS}, got {request.limit}")
        rows = self.deps.store.read(lambda c: stored.read_bars(c, symbol, start, end))
        if request.limit:
            rows = rows[-request.limit :]
        elif len(rows) > MAX_PUBLISH_BARS:
            raise InvalidInputError.of(
                "limit", f"the range holds {len(rows)} bars, more than {MAX_PUBLISH_BARS}: narrow it or set a limit"
            )
        columns = decision_pb2.BarColumns()
        if rows:
            arr = np.asarray(rows, dtype=np.float64)
            columns.days.extend(r[0] for r in rows)
            for k, name in enumerate(("open", "high", "low", "close", "volume"), start=1):
                getattr(columns, name).extend(arr[:, k].tolist())
        return market_pb2.GetBarsResponse(symbol=symbol, columns=columns)

    @rpc
    async def GetBars(self, request: market_pb2.GetBarsRequest, context: grpc.aio.ServicerContext) -> Any:
        return await run_blocking(self._get_bars, request)


def bindings(deps: ServiceDeps) -> list[ServiceBinding]:
    """The MarketDataService binding for `allsuse serve`."""
    servicer = MarketDataServicer(deps)
    return [
        ServiceBinding(
            "allsuse.v1.MarketDataService",
            lambda server: market_pb2_grpc.add_MarketDataServiceServicer_to_server(servicer, server),
            ROLES,
        )
    ]


__all__ = [
    "MAX_PUBLISH_BARS",
    "ROLES",
    "MarketDataServicer",
    "MarketHistory",
    "Markets",
    "SnapshotCache",
    "bindings",
    "markets_for",
]
