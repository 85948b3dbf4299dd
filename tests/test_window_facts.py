"""A backtest's window facts (issue 10's speed work): the labels, explanation lines and VIX proxy readings the core
computes ahead for every window of a run are exactly (==, the same characters) what the engine's on-demand path
gives for the same window, over the shared data and over edge cases; the backtest reads them instead of labelling
each decision; bad input names its field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from allsuse import _core
from allsuse.backtest.data import Source, load_market
from allsuse.backtest.simulation import Simulation
from allsuse.errors import InvalidInputError
from allsuse.protocol import engine as engine_module
from allsuse.protocol import settings
from allsuse.protocol.engine import Engine
from allsuse.protocol.market import Bars, MarketData
from allsuse.protocol.market_label import MarketLabel, market_label
from allsuse.protocol.window_facts import SeriesWindows, WindowFacts

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STOCKS = DATA / "stocks20_close_1990_2014.csv"
SP500 = DATA / "sp500_daily_2009_2018.csv"
needs_data = pytest.mark.skipif(not (STOCKS.exists() and SP500.exists()), reason=f"shared data not found at {DATA}")


def _numbers() -> list[float]:
    """Many doubles: random magnitudes and signs, exact binary ties at 1-3 decimals, values near a rounding edge,
    whole numbers, tiny and huge ones, signed zeros and the non-finite ones."""
    rng = random.Random(10)
    xs = [0.0, -0.0, math.nan, math.inf, -math.inf, 0.5, 1.5, 2.5, 0.125, 0.375, -0.125, 1e-320, 1e300, -1e22]
    xs += [rng.uniform(-1, 1) * 10 ** rng.randint(-12, 12) for _ in range(4000)]
    xs += [k / 2**m for k in range(-40, 41) for m in range(1, 9)]  # exact ties
    xs += [round(rng.uniform(0, 100), 3) + s for s in (-1e-12, 0, 1e-12) for _ in range(300)]
    xs += [float(rng.randint(-(10**7), 10**7)) for _ in range(200)]
    xs += [rng.uniform(0, 1) for _ in range(2000)]
    return xs


def test_the_core_writes_numbers_as_python_does() -> None:
    for x in _numbers():
        for d in (0, 1, 2, 3):
            assert _core.format_fixed(x, d) == f"{x:.{d}f}", (x, d)
            assert _core.format_pct(x, d) == f"{x:.{d}%}", (x, d)
        assert _core.format_general(x) == f"{x:g}", x
        assert _core.round_decimals(x, 10) == round(x, 10) or (math.isnan(x) and math.isnan(round(x, 10))), x
        r = _core.round_decimals(x, 10)
        assert math.copysign(1.0, r) == math.copysign(1.0, round(x, 10)) or math.isnan(x), x


def _bits(label: MarketLabel) -> tuple[object, ...]:
    """Every field of a label, floats as their exact bits (so NaN equals NaN and -0.0 differs from 0.0)."""
    return tuple(
        struct.pack("<d", v) if isinstance(v, float) else v
        for v in (getattr(label, f.name) for f in dataclasses.fields(label))
    )


def _windows(bars: Bars, lookback: int, step: int) -> tuple[list[int], list[int]]:
    ends = sorted({*range(1, len(bars.days) + 1, step), len(bars.days)})
    return [max(0, n - lookback) for n in ends], ends


def _series() -> dict[str, Bars]:
    market = load_market([Source(STOCKS), Source(SP500, symbol="SPX")])
    keep = ("AMD", "AAPL", "KO", "RRC", "SPX")
    return {s: market.symbols[s].bars for s in keep}


def _engine_reading(engine: Engine, symbol: str, window: Bars) -> tuple[float | None, str, str]:
    engine.use_windows(None)
    return engine.vix_reading(MarketData(bars={symbol: window}, iv={symbol: 0.2}), symbol)


@needs_data
def test_every_window_is_what_the_engine_computes_on_demand() -> None:
    """Real series (close-only stocks, OHLCV S&P 500), windows of the backtest's length and of every length from one
    bar, IVs from the proxy range, VIX-like values and refused ones: label, explanation and proxy reading equal."""
    config = settings.default()
    engine = Engine(config)
    rng = random.Random(3)
    for symbol, bars in _series().items():
        for lookback, step in ((2 * 250 + 252, 7), (60, 13), (10**6, 97)):
            starts, ends = _windows(bars, lookback, step)
            ivs = [rng.choice([rng.uniform(0.05, 0.9), 0.2, 0.1234, 0.3, math.nan, 0.0, -0.1]) for _ in ends]
            facts = WindowFacts(
                {symbol: SeriesWindows(bars, starts, ends, ivs)},
                config=config,
                proxy_window=engine._proxy_window,
                proxy_ratio=engine._proxy_ratio,
            )
            labelled = 0
            for start, end, iv in zip(starts, ends, ivs, strict=True):
                window = bars.window(start, end)
                known = facts.label(symbol, window, iv)
                try:
                    want = market_label(window.close, iv, window.volume, config)
                except InvalidInputError:
                    assert known is None, (symbol, start, end, iv)
                else:
                    assert known is not None, (symbol, start, end, iv)
                    assert _bits(known[0]) == _bits(want)
                    assert known[1] == want.explain()
                    labelled += 1
                assert facts.proxy(symbol, window) == _engine_reading(engine, symbol, window), (symbol, start, end)
            assert labelled > len(ends) // 3


def test_edge_windows() -> None:
    """Too few bars for a label or the proxy, an IV that is not a number > 0, closes with an overflowing return, a
    flat series, a close the core refuses: the facts hold exactly what the on-demand path gives, or nothing where
    it raises."""
    config = settings.default()
    engine = Engine(config)
    n = 120
    days = np.arange(730_000, 730_000 + n, dtype=np.int64)
    wild = np.where(np.arange(n) % 2 == 0, 1e-300, 1e300).astype(np.float64)
    flat = np.full(n, 42.0)
    rising = np.linspace(10.0, 50.0, n)
    cases = {"WILD": wild, "FLAT": flat, "RISE": rising}
    for symbol, close in cases.items():
        bars = Bars.from_days(days, close, close, close, close, np.zeros(n))
        ends = [1, 5, 20, 21, 22, 59, 60, 61, n]
        starts = [0] * len(ends)
        for ivs in ([0.2] * len(ends), [math.nan, math.inf, 0.0, -1.0, 1e-9, 5.0, 0.2, 0.2, 0.2]):
            facts = WindowFacts(
                {symbol: SeriesWindows(bars, starts, ends, ivs)},
                config=config,
                proxy_window=engine._proxy_window,
                proxy_ratio=engine._proxy_ratio,
            )
            for end, iv in zip(ends, ivs, strict=True):
                window = bars.window(0, end)
                known = facts.label(symbol, window, iv)
                try:
                    want = market_label(window.close, iv, window.volume, config)
                except InvalidInputError:
                    assert known is None, (symbol, end, iv)
                else:
                    assert known is not None, (symbol, end)
                    assert _bits(known[0]) == _bits(want) and known[1] == want.explain(), (symbol, end)
                assert facts.proxy(symbol, window) == _engine_reading(engine, symbol, window), (symbol, end)
    # A close the core refuses (not > 0): no fact, and the engine raises on demand as before.
    bad = rising.copy()
    bad[50] = -1.0
    bars = Bars.from_days(days, bad, bad, bad, bad, np.zeros(n))
    facts = WindowFacts(
        {"BAD": SeriesWindows(bars, [0, 30], [n, 60], [0.2, 0.2])},
        config=config,
        proxy_window=engine._proxy_window,
        proxy_ratio=engine._proxy_ratio,
    )
    assert facts.label("BAD", bars, 0.2) is None
    assert facts.proxy("BAD", bars.window(30, 60)) is None
    with pytest.raises(InvalidInputError):
        market_label(bars.close, 0.2, bars.volume, config)
    with pytest.raises(InvalidInputError):
        _engine_reading(engine, "BAD", bars.window(30, 60))


def test_only_the_run_s_own_windows_are_read() -> None:
    """Bars that are not the window held (a prefix, another start, another last close, another IV, another
    symbol, no bars) are not read from the facts: the engine computes them on demand."""
    config = settings.default()
    engine = Engine(config)
    n = 300
    days = np.arange(730_000, 730_000 + n, dtype=np.int64)
    close = 100 + np.sin(np.arange(n) * 0.3) * 5 + np.arange(n) * 0.05
    bars = Bars.from_days(days, close, close, close, close, np.full(n, 1e6))
    engine.use_windows({"X": SeriesWindows(bars, [100], [n], [0.25])})
    window = bars.window(100, n)
    label = engine._label("X", window, 0.25)
    assert engine._explained(label) == label.explain()
    assert engine._label("X", window, 0.25) is label  # one label per window
    facts = engine._facts
    assert facts is not None
    assert facts.label("X", window, 0.25) is not None
    assert facts.label("X", bars.window(101, n), 0.25) is None
    assert facts.label("X", bars.window(100, n - 1), 0.25) is None
    assert facts.label("X", window, 0.26) is None
    assert facts.label("Y", window, 0.25) is None
    assert facts.label("X", bars.window(100, 100), 0.25) is None
    other = close.copy()
    other[-1] += 1.0
    moved = Bars.from_days(days, other, other, other, other, np.full(n, 1e6)).window(100, n)
    assert facts.label("X", moved, 0.25) is None and facts.proxy("X", moved) is None
    # Bars equal at the last close, first day and length but with another earlier close, in other memory: not the
    # run's window (their label could differ), so not read.
    earlier = close.copy()
    earlier[150] += 1.0
    alike = Bars.from_days(days, earlier, earlier, earlier, earlier, np.full(n, 1e6)).window(100, n)
    assert facts.label("X", alike, 0.25) is None and facts.proxy("X", alike) is None
    same = Bars.from_days(days, close, close, close, close.copy(), np.full(n, 1e6)).window(100, n)
    assert facts.label("X", same, 0.25) is None  # equal values in other memory are not the series either
    # Computed on demand, the same label.
    got = engine._label("X", bars.window(101, n), 0.25)
    assert _bits(got) == _bits(market_label(bars.window(101, n).close, 0.25, bars.window(101, n).volume))
    engine.use_windows(None)
    assert engine._facts is None


def test_bad_input_names_the_field() -> None:
    config = settings.default()
    rules = config.label_rules
    close = np.linspace(10.0, 20.0, 80)
    i64 = np.array
    cases = [
        (lambda: _core.label_facts(rules, close, None, i64([0]), i64([81]), np.array([0.2]), 60), "ends"),
        (lambda: _core.label_facts(rules, close, None, i64([5]), i64([4]), np.array([0.2]), 60), "starts"),
        (lambda: _core.label_facts(rules, close, None, i64([-1]), i64([4]), np.array([0.2]), 60), "starts"),
        (lambda: _core.label_facts(rules, close, None, i64([0, 0]), i64([4]), np.array([0.2]), 60), "ends"),
        (lambda: _core.label_facts(rules, close, None, i64([0]), i64([4]), np.array([0.2, 0.3]), 60), "ivs"),
        (lambda: _core.label_facts(rules, close, close[:5], i64([0]), i64([4]), np.array([0.2]), 60), "volume"),
        (lambda: _core.label_facts(rules, close, None, i64([0]), i64([4]), np.array([0.2]), -1), "min_bars"),
        (lambda: _core.label_facts(rules, close[::2], None, i64([0]), i64([4]), np.array([0.2]), 60), "close"),
        (lambda: _core.proxy_facts(close, i64([0]), i64([4]), 1, 1.0, "X"), "window"),
        (lambda: _core.proxy_facts(close, i64([0]), i64([4]), 20, math.nan, "X"), "ratio"),
        (lambda: _core.proxy_facts(close, i64([0]), i64([90]), 20, 1.0, "X"), "ends"),
        (lambda: _core.format_fixed(1.0, -1), "digits"),
        (lambda: _core.round_decimals(1.0, 99), "digits"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidInputError) as err:
            call()
        assert err.value.field == field
    days = np.arange(730_000, 730_080, dtype=np.int64)
    bars = Bars.from_days(days, close, close, close, close, np.zeros(80))
    engine = Engine(config)
    for windows, field in (
        (SeriesWindows(bars, [0.5], [10], [0.2]), "series.X.starts"),
        (SeriesWindows(bars, [0], ["10"], [0.2]), "series.X.ends"),
        (SeriesWindows(bars, [0], [10], [0.2, 0.3]), "series.X.ivs"),
        (SeriesWindows(close, [0], [10], [0.2]), "series.X.bars"),  # type: ignore[arg-type]
        (SeriesWindows(bars, [0], [81], [0.2]), "ends"),
    ):
        with pytest.raises(InvalidInputError) as err:
            engine.use_windows({"X": windows})
        assert err.value.field == field


@needs_data
def test_the_backtest_reads_its_labels_from_the_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A month of the 12-symbol layout labels no decision's window on demand (the facts hold them all), and its
    decisions are those of a run that computes every label and proxy on demand."""
    market = load_market([Source(STOCKS)])
    accounts = {"gen": ("AMD", "BAC"), "rev": ("AAPL", "MSFT"), "com": ("KO", "PG")}

    def run(use_facts: bool) -> list[tuple[object, ...]]:
        sim = Simulation(market, accounts=accounts, capital=1e6)
        if not use_facts:
            monkeypatch.setattr(sim.engine, "use_windows", lambda series: None)
        out: list[tuple[object, ...]] = []
        decide = sim.engine.decide

        def recording(*args: object, **kwargs: object) -> engine_module.Decision:
            d = decide(*args, **kwargs)  # type: ignore[arg-type]
            record = dataclasses.asdict(d)
            record.pop("id")
            out.append(tuple(sorted(record.items(), key=lambda kv: kv[0])))
            return d

        monkeypatch.setattr(sim.engine, "decide", recording)
        sim.run(dt.date(2010, 3, 1), dt.date(2010, 4, 30))
        monkeypatch.undo()
        return out

    calls = [0]
    on_demand = engine_module.market_label

    def counting(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return on_demand(*args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(engine_module, "market_label", counting)
        fast = run(True)
        assert fast and calls[0] == 0
    slow = run(False)
    assert fast == slow
