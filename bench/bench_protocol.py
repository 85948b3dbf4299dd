"""The protocol engine, measured in the same run against the same engine whose pre-trade ES revaluation is done
by numpy (scipy ndtr) instead of the core. Rows:
- one in-process decision for a portfolio of 10 open positions with 500 historical scenarios (target, issue 9:
  median <= 100 us);
- the 10-year backtest over the shared S&P 500 + VIX data (target, issue 9: <= 1 s).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from allsuse.protocol import Bars, Engine, MarketData, Portfolio, Position
from allsuse.protocol.backtest import Backtest, load_bars, load_vix
from allsuse.protocol.engine import Engine as EngineClass
from bench.harness import Row, best_of

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
THURSDAY = dt.date(2024, 3, 7)


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


def _numpy_pnl(engine: EngineClass) -> Callable[..., np.ndarray]:
    """Engine.book_pnl with the revaluation in numpy: the same scenarios, IV shocks and horizon."""

    def pnl_of(book: list[Position], market: MarketData, today: dt.date, symbols: list[str]) -> np.ndarray:
        index = {s: i for i, s in enumerate(symbols)}
        returns = engine._scenarios(symbols, market)
        spot = np.array([market.bars_for(s).last_close for s in symbols])
        iv = np.array([market.iv_for(s) for s in symbols])
        shifts = np.maximum(-5.0 * returns, -0.9) * iv[None, :]
        pnl = np.zeros(returns.shape[0])
        for p in book:
            j = index[p.symbol]
            s1 = spot[j] * (1 + returns[:, j])
            if not p.is_option:
                pnl += p.quantity * (s1 - spot[j])
                continue
            t0 = p.years_to_expiry(today)
            t1 = max(t0 - 1 / 365, 1e-9)
            w = 1.0 if p.kind == "call" else -1.0

            def price(
                s: np.ndarray | float, v: np.ndarray | float, t: float, w: float = w, k: float = p.strike
            ) -> np.ndarray:
                sd = v * math.sqrt(t)
                d1 = np.log(s / k) / sd + 0.5 * sd
                return w * (s * ndtr(w * d1) - k * ndtr(w * (d1 - sd)))

            v0 = price(spot[j], iv[j], t0)
            v1 = price(s1, iv[j] + shifts[:, j], t1)
            pnl += p.quantity * 100.0 * (v1 - v0)
        return pnl

    return pnl_of


@contextmanager
def _numpy_revaluation(engine: EngineClass) -> Iterator[None]:
    original = engine.book_pnl
    engine.book_pnl = _numpy_pnl(engine)  # type: ignore[method-assign]
    try:
        yield
    finally:
        engine.book_pnl = original  # type: ignore[method-assign]


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
    with _numpy_revaluation(engine):
        d2 = engine.decide(portfolio, "bench/gen-1", "AAA", when, market)
        assert math.isclose(d2.es_after, d.es_after, rel_tol=1e-6), (d2.es_after, d.es_after)
        theirs = best_of(decide, repeat=15, number=20)
    return Row(
        "decision: 10 positions, 500 scenarios (median)", ours, "same engine, numpy revaluation", theirs, "<= 100 us"
    )


def _backtest_row() -> list[Row]:
    sp500 = DATA / "sp500_daily_2009_2018.csv"
    if not sp500.exists():
        print(f"skipping the backtest row: {sp500} not found")
        return []
    bars = load_bars(sp500)
    vix = load_vix(DATA / "vix_daily_2014_2018.csv")

    def run(numpy: bool) -> float:
        bt = Backtest(bars, symbol="SPX", capital=20e6, vix=vix)
        start = time.perf_counter()
        if numpy:
            with _numpy_revaluation(bt.engine):
                bt.run(dt.date(2009, 1, 1), dt.date(2018, 12, 31))
        else:
            bt.run(dt.date(2009, 1, 1), dt.date(2018, 12, 31))
        return time.perf_counter() - start

    ours = min(run(False) for _ in range(2))
    theirs = min(run(True) for _ in range(2))
    return [Row("backtest: 10 years of daily bars, weekly protocol", ours, "same, numpy revaluation", theirs, "<= 1 s")]


def run() -> list[Row]:
    return [_decision_row(), *_backtest_row()]
