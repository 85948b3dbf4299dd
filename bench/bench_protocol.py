"""The protocol engine. Since issue 9's item 1 the whole decision runs in the core (one typed call per decision), so
the old same-run baseline (the same Python flow with its ES revaluation in numpy) no longer exists; each row's
baseline is main's figure before the move (commit 6cb19f6, measured 16:09 UTC on a quiet machine), quoted, not
re-measured. Rows:
- one in-process decision for a portfolio of 10 open positions with 500 historical scenarios (target, issue 9:
  median <= 100 us);
- the 10-year backtest over the shared S&P 500 + VIX data (target, issue 9: <= 1 s).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np

from allsuse.protocol import Bars, Engine, MarketData, Portfolio, Position
from allsuse.protocol.backtest import Backtest, load_bars, load_vix
from bench.harness import Row, best_of

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
THURSDAY = dt.date(2024, 3, 7)
# main before the flow moved into the core (6cb19f6, 16:09 UTC, quiet machine): quoted baselines.
MAIN_FLOW = "main's Python flow (6cb19f6, quoted)"
MAIN_DECISION = 433.43e-6
MAIN_BACKTEST = 7.837


def _bars(rng: np.random.Generator, start: float, end: dt.date, n: int = 600) -> Bars:
    closes = start * np.cumprod(1 + rng.normal(0.003, 0.006, n))
    days: list[dt.date] = []
    d = end
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d -= dt.timedelta(days=1)
    days.reverse()
    spread = closes * 0.006
    return Bars(tuple(days), closes, closes + spread, closes - spread, closes, np.full(n, 1e6))


def _decision_row() -> Row:
    rng = np.random.default_rng(5)
    symbols = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    bars = {s: _bars(rng, 30.0 + 2 * i, THURSDAY) for i, s in enumerate(symbols)}
    market = MarketData(bars=bars, iv={s: 0.45 for s in symbols}, vix=18.0, sectors={s: "tech" for s in symbols})
    portfolio = Portfolio.create("bench", 5_000_000, dt.datetime(2024, 1, 2, 9, 30))
    for i in range(10):
        s = symbols[i % 5]
        spot = bars[s].last_close
        acct = ("bench/rev-1", "bench/com-1")[i % 2]
        portfolio.positions[f"p{i}"] = Position(
            f"p{i}", acct, s, "put", -2.0, THURSDAY, round(spot * 0.95), dt.date(2024, 3, 15), 2.0, iv=0.45
        )
    engine = Engine(symbols={"gen": tuple(symbols)})
    when = dt.datetime.combine(THURSDAY, dt.time(15, 45))

    def decide() -> object:
        return engine.decide(portfolio, "bench/gen-1", "AAA", when, market)

    d = engine.decide(portfolio, "bench/gen-1", "AAA", when, market)
    assert d.action == "OPEN_PUT", d.explanation
    ours = best_of(decide, repeat=15, number=20)
    return Row("decision: 10 positions, 500 scenarios (median)", ours, MAIN_FLOW, MAIN_DECISION, "<= 100 us")


def _backtest_row() -> list[Row]:
    sp500 = DATA / "sp500_daily_2009_2018.csv"
    if not sp500.exists():
        print(f"skipping the backtest row: {sp500} not found")
        return []
    bars = load_bars(sp500)
    vix = load_vix(DATA / "vix_daily_2014_2018.csv")

    def run() -> float:
        bt = Backtest(bars, symbol="SPX", capital=20e6, vix=vix)
        start = time.perf_counter()
        bt.run(dt.date(2009, 1, 1), dt.date(2018, 12, 31))
        return time.perf_counter() - start

    ours = min(run() for _ in range(2))
    return [Row("backtest: 10 years of daily bars, weekly protocol", ours, MAIN_FLOW, MAIN_BACKTEST, "<= 1 s")]


def run() -> list[Row]:
    return [_decision_row(), *_backtest_row()]
