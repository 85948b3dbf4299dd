"""Scenario sets and tail groups from each symbol's return columns (issue 10, speed): the core lays the scenarios out
and measures the group from the columns themselves, the engine reads a window's returns from the returns of the
read-only series it views, and what it keeps is keyed by the columns' exact identities. Every number must be the one
the matrix of the window's own returns gives, and nothing kept may be served for a market that differs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from allsuse import _core
from allsuse.backtest.data import Source, load_market
from allsuse.backtest.simulation import Simulation, account_symbols, parse_symbols
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.engine import Engine
from allsuse.protocol.market import Bars, MarketData

N = settings.default().doc.section("risk").number("scenario_days", low=1)
STOCKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "stocks20_close_1990_2014.csv"


def _series(seed: int, n: int = 900, *, common: np.ndarray | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    moves = rng.normal(0.0003, 0.015, n)
    if common is not None:
        moves = 0.4 * moves + 0.6 * common[:n]
    return np.asarray(100.0 * np.cumprod(1 + moves), dtype=np.float64)


def _bars(close: np.ndarray, *, read_only: bool = False) -> Bars:
    days = np.arange(700_000, 700_000 + len(close), dtype=np.int64)
    columns = [days, close, close * 1.01, close * 0.99, close, np.full(len(close), 1e6)]
    if read_only:
        columns = [np.array(c) for c in columns]
        for c in columns:
            c.setflags(write=False)
    return Bars.from_days(*columns)


def _fresh_returns(bars: list[Bars], n: int = int(N)) -> np.ndarray:
    """historical_returns as the engine computed it before columns: each window's own last n + 1 closes."""
    columns = []
    for b in bars:
        close = b.close[-(n + 1) :]
        columns.append(close[1:] / close[:-1] - 1.0)
    length = min(len(c) for c in columns)
    return np.column_stack([c[-length:] for c in columns]).astype(np.float64)


def _book(cols: int) -> dict[str, list[float] | list[str] | list[int]]:
    return {
        "kind": ["put", "stock", "call"][:cols],
        "underlying": list(range(cols))[:3],
        "quantity": [-3.0, 200.0, -1.0][:cols],
        "strike": [95.0, 1.0, 110.0][:cols],
        "t": [0.02, 1.0, 0.05][:cols],
    }


def _market(full: dict[str, Bars], end: int, lookback: int = 1252, iv: float = 0.3) -> MarketData:
    """The backtest's view on day `end`: each symbol's last `lookback` bars up to bar `end` (a window of it)."""
    bars = {s: b.window(max(0, end - lookback), end) for s, b in full.items()}
    return MarketData(bars=bars, iv={s: iv for s in full}, vix=16.0, rate=0.02)


# --- the core ----------------------------------------------------------------------------------------------------
def test_the_core_measures_the_group_of_the_columns_as_of_their_matrix() -> None:
    common = np.random.default_rng(0).normal(0, 0.02, 600)
    grouped = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        columns = [np.ascontiguousarray(0.5 * rng.normal(0, 0.02, 600) + rng.uniform(0, 1) * common) for _ in range(4)]
        for limit in (0.2, 0.4, 0.6):
            expected = _core.tail_group(np.column_stack(columns), q=0.05, limit=limit)
            assert _core.tail_group_of_columns(columns, q=0.05, limit=limit) == expected
            grouped += len(expected) > 1
    assert grouped  # some of them are groups, not the symbol alone
    short = [np.zeros(19), np.zeros(19)]
    assert _core.tail_group_of_columns(short, q=0.05, limit=0.5) == [0]


@pytest.mark.parametrize(
    ("columns", "field"),
    [
        ([np.zeros(30), np.zeros(29)], "columns[1]"),
        ([np.zeros(30), "x"], "columns[1]"),
        ([np.zeros((30, 2))], "columns[0]"),
        ([np.zeros(30, dtype=np.int64)], "columns[0]"),
        ([np.zeros(60)[::2], np.zeros(30)], "columns[0]"),
        ([], "columns"),
        (7, "columns"),
        ([np.full(30, np.nan), np.zeros(30)], "x"),
        ([np.zeros(30), np.full(30, np.inf)], "y"),
    ],
)
def test_bad_columns_are_refused_by_name(columns: object, field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        _core.tail_group_of_columns(columns, q=0.05, limit=0.5)  # type: ignore[arg-type]
    assert err.value.field == field
    if field in ("x", "y"):
        return
    with pytest.raises(InvalidInputError) as err:
        _core.scenario_set_of_columns(
            columns,  # type: ignore[arg-type]
            spot=[100.0, 100.0],
            iv=[0.3, 0.3],
            iv_move_sensitivity=5.0,
            horizon=1 / 365,
            rate=0.0,
        )
    assert err.value.field == field


def test_a_bad_q_is_refused_by_name() -> None:
    columns = [np.linspace(-0.1, 0.1, 40), np.linspace(-0.1, 0.1, 40)]
    with pytest.raises(InvalidInputError) as err:
        _core.tail_group_of_columns(columns, q=1.5, limit=0.5)
    assert err.value.field == "q"


def test_the_core_lays_out_the_scenarios_of_the_columns_as_their_matrix() -> None:
    rng = np.random.default_rng(3)
    columns = [np.ascontiguousarray(rng.normal(0, 0.02, 500)) for _ in range(3)]
    settings_ = {"spot": [100.0, 50.0, 120.0], "iv": [0.3, 0.25, 0.4], "iv_move_sensitivity": 5.0}
    a = _core.scenario_set_of_columns(columns, **settings_, horizon=1 / 365, rate=0.02)  # type: ignore[arg-type]
    b = _core.ScenarioSet(np.column_stack(columns), **settings_, horizon=1 / 365, rate=0.02)  # type: ignore[arg-type]
    assert a.rows == b.rows == 500
    assert np.array_equal(a.book_pnl(**_book(3)), b.book_pnl(**_book(3)))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as err:
        _core.scenario_set_of_columns(columns, spot=[1.0], iv=[0.3] * 3, iv_move_sensitivity=5.0, horizon=0.0, rate=0.0)
    assert err.value.field == "spot"


# --- the engine --------------------------------------------------------------------------------------------------
def _full(read_only: bool) -> dict[str, Bars]:
    common = np.random.default_rng(99).normal(0, 0.02, 900)
    return {s: _bars(_series(i, common=common), read_only=read_only) for i, s in enumerate(("AAA", "BBB", "CCC"))}


def test_window_returns_from_a_read_only_series_are_the_windows_own_bit_for_bit() -> None:
    full = _full(read_only=True)
    engine = Engine()
    symbols = ["AAA", "BBB", "CCC"]
    for end in (1, 2, 3, 40, 501, 502, 700, 900):
        market = _market(full, end, lookback=600)
        bars = [market.bars_for(s) for s in symbols]
        assert all(not b.close.flags.writeable for b in bars)
        if end < 2:
            with pytest.raises(InvalidInputError) as err:
                engine.historical_returns(symbols, market)
            assert err.value.field == "bars"
            continue
        got = engine.historical_returns(symbols, market)
        assert got.dtype == np.float64 and np.array_equal(got, _fresh_returns(bars), equal_nan=False)
        # The same window again (a new Bars object over the same bars) is the same column, kept.
        again = _market(full, end, lookback=600)
        assert engine._return_columns(symbols, again)[1] == engine._return_columns(symbols, market)[1]
    # Windows of different days are different columns.
    ids = {engine._return_columns(["AAA"], _market(full, end))[1] for end in range(600, 620)}
    assert len(ids) == 20


def test_a_symbol_with_fewer_bars_aligns_on_the_common_last_dates() -> None:
    full = _full(read_only=True)
    engine = Engine()
    market = MarketData(
        bars={"AAA": full["AAA"].window(300, 900), "BBB": full["BBB"].window(660, 900)}, iv={"AAA": 0.3, "BBB": 0.3}
    )
    got = engine.historical_returns(["AAA", "BBB"], market)
    assert got.shape == (239, 2)
    assert np.array_equal(got, _fresh_returns([market.bars_for("AAA"), market.bars_for("BBB")]))


def test_kept_groups_and_scenario_sets_are_those_a_fresh_engine_computes() -> None:
    """One engine across many days (windows of read-only series, its caches warm) against a new engine per day over
    writable copies of the same windows (nothing shared or kept): the same groups and the same P&L, bit for bit."""
    full = _full(read_only=True)
    engine = Engine()
    grouped = 0
    for end in range(560, 900, 17):
        for repeat in range(2):
            market = _market(full, end)
            copy = MarketData(
                bars={s: _bars(np.array(b.close)) for s, b in market.bars.items()}, iv=market.iv, vix=16.0, rate=0.02
            )
            fresh = Engine()
            group = engine.tail_group("AAA", ["BBB", "CCC"], market)
            assert group == fresh.tail_group("AAA", ["BBB", "CCC"], copy)
            grouped += len(group) > 1
            symbols = ["AAA", "BBB", "CCC"]
            mine = engine._scenario_set(symbols, market)
            theirs = fresh._scenario_set(symbols, copy)
            direct = _core.ScenarioSet(
                _fresh_returns([market.bars_for(s) for s in symbols]),
                spot=[market.bars_for(s).last_close for s in symbols],
                iv=[0.3] * 3,
                iv_move_sensitivity=5.0,
                horizon=1 / 365,
                rate=0.02,
            )
            assert mine.rows == theirs.rows == direct.rows
            for scen in (theirs, direct):
                assert np.array_equal(mine.book_pnl(**_book(3)), scen.book_pnl(**_book(3)))  # type: ignore[arg-type]
            if repeat:  # the same window again: served from what was kept
                assert engine._scenario_set(symbols, market) is mine
    assert grouped


def test_no_scenarios_are_served_for_a_market_alike_only_at_its_last_close() -> None:
    """Two markets whose bars have the same length, last close, IV and rate but another history: each gets the
    scenarios of its own history (an engine that kept them by symbol, length and last close served the first's)."""
    a = _series(1)
    b = _series(2) * (a[-1] / _series(2)[-1])
    b[-1] = a[-1]
    engine = Engine()
    pnl = []
    for close in (a, b):
        market = MarketData(bars={"AAA": _bars(close)}, iv={"AAA": 0.3}, vix=16.0, rate=0.02)
        book = {k: v[:1] for k, v in _book(1).items()}
        kept = engine._scenario_set(["AAA"], market).book_pnl(**book)  # type: ignore[arg-type]
        alone = Engine()._scenario_set(["AAA"], market).book_pnl(**book)  # type: ignore[arg-type]
        assert np.array_equal(kept, alone)
        pnl.append(kept)
    assert not np.array_equal(pnl[0], pnl[1])


def test_a_writable_series_is_never_read_from_a_kept_copy() -> None:
    """Bars over data that can still be written compute their own returns: a later window over the changed data
    gives the changed returns."""
    close = _series(5)
    full = _bars(close)
    engine = Engine()
    first = engine.historical_returns(["AAA"], MarketData(bars={"AAA": full.window(100, 800)}, iv={"AAA": 0.3}))
    close[700] *= 1.5
    later = MarketData(bars={"AAA": full.window(100, 800)}, iv={"AAA": 0.3})
    again = engine.historical_returns(["AAA"], later)
    assert not np.array_equal(first, again)
    assert np.array_equal(again, _fresh_returns([later.bars_for("AAA")]))


@pytest.mark.skipif(not STOCKS.exists(), reason="shared stock data not present")
def test_the_backtests_daily_windows_view_read_only_series_and_give_their_own_returns() -> None:
    market = load_market((Source(STOCKS),))
    config = settings.default()
    accounts, _, _ = account_symbols(market, parse_symbols(("gen=AMD,BAC", "rev=AAPL,MSFT")), config)
    sim = Simulation(market, accounts=accounts, capital=1e6, config=config)
    start = sim.sessions.index(dt.date(2008, 9, 2))
    held = set(sim.symbols)
    for i in range(start, start + 30):
        day_market, _, _ = sim._market(held, next(sim._sessions_of(i, i)))
        bars = [day_market.bars_for(s) for s in sim.symbols]
        assert all(not b.close.flags.writeable for b in bars)
        got = sim.engine.historical_returns(list(sim.symbols), day_market)
        assert np.array_equal(got, _fresh_returns(bars))
    # The loaded data itself is left writable (the run copies it).
    assert market.symbols["AMD"].bars.close.flags.writeable
