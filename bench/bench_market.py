"""A request's market into MarketData: the per-bar conversion of Bar messages (the baseline, what every Decide paid
before issue 9) against packed columns read in the core, a snapshot-cache hit, and the server's history.

The market is the load harness's: two symbols of 520 daily bars (S&P 500 bars scaled), IV and VIX given. Rows:
- packed columns: `SymbolMarket.columns` read and checked in Rust (no cache);
- cache hit: the same snapshot again (BLAKE2b of each symbol's bytes, one dictionary lookup);
- history: a request without bars, served from the server's history as of its date;
each against `convert.market_in` on Bar messages, bar by bar in Python.

    .venv/bin/python -m bench.bench_market
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

from allsuse.server.convert import columns_out, market_in
from allsuse.server.marketdata import MarketHistory, Markets, SnapshotCache
from allsuse.store import Store
from allsuse.store import market as stored
from allsuse.v1 import decision_pb2
from bench.harness import Row, best_of, human

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
DAY = dt.date(2018, 6, 7)
AS_OF = dt.datetime.combine(DAY, dt.time(15, 45))
TARGET = "no per-bar work"


def _full() -> decision_pb2.MarketSnapshot:
    from allsuse.client import snapshot_from_csv

    symbols = []
    one = decision_pb2.MarketSnapshot()
    for symbol, divisor in (("NVDA", 10.0), ("AAPL", 15.0)):
        one = snapshot_from_csv(DATA / "sp500_daily_2009_2018.csv", symbol, DAY, vix=DATA / "vix_daily_2014_2018.csv")
        sm = one.symbols[0]
        sm.sector = "tech"
        for bar in sm.bars:
            bar.open, bar.high, bar.low, bar.close = (x / divisor for x in (bar.open, bar.high, bar.low, bar.close))
        symbols.append(sm)
    return decision_pb2.MarketSnapshot(symbols=symbols, vix=one.vix)


def _packed(full: decision_pb2.MarketSnapshot) -> decision_pb2.MarketSnapshot:
    data = market_in(full)
    out = decision_pb2.MarketSnapshot()
    out.CopyFrom(full)
    for sm in out.symbols:
        del sm.bars[:]
        sm.columns.CopyFrom(columns_out(data.bars[sm.symbol]))
    return out


def run() -> list[Row]:
    """The rows above."""
    full = _full()
    packed = _packed(full)
    baseline = best_of(lambda: market_in(full), repeat=7, number=20)
    no_cache = Markets(SnapshotCache(0), MarketHistory(lambda: None, refresh_seconds=1e9))  # type: ignore[arg-type,return-value]
    cached = Markets(SnapshotCache(16), MarketHistory(lambda: None, refresh_seconds=1e9))  # type: ignore[arg-type,return-value]
    rows = [
        Row(
            "market of a Decide (2 symbols x 520 bars): packed columns",
            best_of(lambda: no_cache.resolve(packed, AS_OF, ("NVDA",)), repeat=7, number=200),
            "Bar messages, per bar",
            baseline,
            TARGET,
        ),
        Row(
            "market of a Decide: the same snapshot again (cache hit)",
            best_of(lambda: cached.resolve(full, AS_OF, ("NVDA",)), repeat=7, number=200),
            "Bar messages, per bar",
            baseline,
            TARGET,
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.db") as store:
        data = market_in(full)
        for symbol, bars in data.bars.items():
            rows_ = list(
                zip(
                    (bars.days - dt.date(1970, 1, 1).toordinal()).tolist(),
                    *(getattr(bars, c).tolist() for c in ("open", "high", "low", "close", "volume")),
                    strict=True,
                )
            )
            store.write(lambda tx, s=symbol, r=rows_: stored.put_bars(tx, s, r, replace=False, actor="bench"))  # type: ignore[misc]
        quotes = {s: {"iv": data.iv[s], "sector": "tech"} for s in data.bars} | {"": {"vix": full.vix}}
        store.write(lambda tx: stored.put_quotes(tx, DAY.toordinal() - 719163, quotes, replace=False, actor="bench"))
        history = Markets(SnapshotCache(16), MarketHistory(lambda: store, refresh_seconds=1.0))
        empty = decision_pb2.MarketSnapshot()
        rows.append(
            Row(
                "market of a Decide: no bars sent, the server's history",
                best_of(lambda: history.resolve(empty, AS_OF, ("NVDA", "AAPL")), repeat=7, number=200),
                "Bar messages, per bar",
                baseline,
                TARGET,
            )
        )
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r.operation}: {human(r.allsuse_seconds)} vs {r.baseline} {human(r.baseline_seconds)} ({r.ratio:.0f}x)")
    sys.exit(0)
