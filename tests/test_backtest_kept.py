"""What the backtest computes once and keeps (issue 10, speed) is what it would compute fresh: the per-session table
of each symbol's IV and its source, the sessions a listed symbol has no bar, and the valuation of every account at
the close, kept only while the portfolio, the market and the day are unchanged."""

from __future__ import annotations

import datetime as dt
import gc
import math
from pathlib import Path
from typing import Any

import pytest

from allsuse.backtest.data import Source, load_market
from allsuse.backtest.simulation import (
    RUN_GC_FULL,
    RUN_GC_YOUNG,
    WARMUP,
    ZERO_COSTS,
    Simulation,
    account_symbols,
    load_vix,
    parse_symbols,
)
from allsuse.protocol import settings
from allsuse.protocol.accounts import Portfolio

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SP500 = DATA / "sp500_daily_2009_2018.csv"
VIX = DATA / "vix_daily_2014_2018.csv"
STOCKS = DATA / "stocks20_close_1990_2014.csv"

needs_data = pytest.mark.skipif(not (STOCKS.exists() and SP500.exists()), reason=f"shared data not found at {DATA}")


def _stocks() -> Simulation:
    market = load_market((Source(STOCKS),))
    config = settings.default()
    accounts, _, _ = account_symbols(market, parse_symbols(("gen=AMD,BAC", "rev=AAPL,MSFT", "com=JNJ,PG")), config)
    return Simulation(market, accounts=accounts, capital=1e6, config=config, costs=ZERO_COSTS)


def _spx_with_a_gap(tmp_path: Path) -> Simulation:
    """SPX with one session missing, its VIX from the VIX file (the one-underlying layout)."""
    text = SP500.read_text().splitlines()
    body = [ln for ln in text[1:] if "2013-06-01" <= ln[:10] <= "2014-12-31" and ln[:10] != "2014-02-06"]
    path = tmp_path / "spx_gap.csv"
    path.write_text("\n".join([text[0], *body]) + "\n")
    market = load_market((Source(path),))
    config = settings.default()
    accounts, _, single = account_symbols(market, None, config)
    return Simulation(
        market,
        accounts=accounts,
        capital=20e6,
        vix=load_vix(VIX),
        config=config,
        single=single,
        vix_symbols=frozenset(accounts["gen"]),
    )


def _check_session_table(sim: Simulation) -> int:
    """Every session's table entries against their definitions; returns how many read the VIX."""
    vix_days = 0
    for i, day in enumerate(sim.sessions):
        used = "proxy"
        skipped = []
        for s in sim.symbols:
            n = sim._count_at[s][i]
            if n == 0:
                continue
            vol, origin = sim._iv(s, n - 1, day)
            assert sim._vol_at[s][i] == vol and math.copysign(1, sim._vol_at[s][i]) == math.copysign(1, vol)
            assert ("vix" if sim._vix_at[s][i] else "proxy") == origin
            if origin == "vix":
                used = "vix"
            if not sim._has_at[s][i]:
                skipped.append(s)
        assert sim._used_at[i] == used
        assert sim._skipped_at[i] == skipped
        vix_days += used == "vix"
    return vix_days


@needs_data
def test_the_session_table_is_each_sessions_iv_and_source(tmp_path: Path) -> None:
    assert _check_session_table(_stocks()) == 0
    spx = _spx_with_a_gap(tmp_path)
    assert _check_session_table(spx) > 100  # the VIX file's days read the VIX ...
    assert any(spx._skipped_at)  # ... and the missing session is listed without its bar


@needs_data
def test_the_kept_valuation_is_the_fresh_one_at_every_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """A quarter of 2008: every valuation the run reads (deployment, week's end, closing) equals the engine's fresh
    valuation of every account at that moment; most closes reuse the deployment's."""
    sim = _stocks()
    uses = [0]
    valued = [0]  # valuations made by _equities itself (the others it served kept)
    inside = [False]
    original = Simulation._equities
    equities = sim.engine.equities

    def counted(*args: Any, **kwargs: Any) -> Any:
        valued[0] += inside[0]
        return equities(*args, **kwargs)

    def checked(self: Simulation, portfolio: Portfolio, market: Any, day: dt.date) -> dict[str, float]:
        inside[0] = True
        try:
            got = original(self, portfolio, market, day)
        finally:
            inside[0] = False
        accounts = list(portfolio.accounts.values())
        values, _ = equities(portfolio, accounts, market, day, portfolio_too=False)
        assert got == {a.id: v for a, v in zip(accounts, values, strict=True)}
        uses[0] += 1
        return got

    monkeypatch.setattr(sim.engine, "equities", counted)
    monkeypatch.setattr(Simulation, "_equities", checked)
    _, _, dates, _ = sim.simulate(dt.date(2008, 1, 1), dt.date(2008, 3, 31))
    assert uses[0] >= 2 * len(dates)
    assert valued[0] < 0.7 * uses[0]


@needs_data
def test_the_kept_valuation_is_dropped_when_the_portfolio_market_or_day_changes() -> None:
    sim = _stocks()
    sim._closes = {s: [] for s in sim.symbols}
    sim._vols = {s: [] for s in sim.symbols}
    i = sim.sessions.index(dt.date(2008, 3, 3))
    day = sim.sessions[i]
    portfolio = Portfolio.create("backtest", 1e6, dt.datetime.combine(day, dt.time(9, 30)))
    market, _, _ = sim._market(set(), next(sim._sessions_of(i, i)))
    first = sim._equities(portfolio, market, day)
    assert sim._equities(portfolio, market, day) is first  # kept
    account = next(iter(portfolio.accounts))
    portfolio.book_pnl(account, 100.0, dt.datetime.combine(day, dt.time(10, 0)), "test")
    changed = sim._equities(portfolio, market, day)
    assert changed[account] == first[account] + 100.0
    again, _, _ = sim._market(set(), next(sim._sessions_of(i, i)))  # the same day's market built again: another object
    assert sim._equities(portfolio, again, day) is not changed
    assert sim._equities(portfolio, again, day + dt.timedelta(days=1)) is not changed


def _session_by_definition(sim: Simulation, i: int) -> tuple[Any, ...]:
    """Session i's facts as `_market` once computed them each day, symbol by symbol."""
    day = sim.sessions[i]
    listed, tradable, spot = [], set(), {}
    for s in sim.symbols:
        n = sim._count_at[s][i]
        if n == 0:
            continue
        vol, origin = sim._iv(s, n - 1, day)
        listed.append((s, max(0, n - sim._lookback), n, vol, origin))
        spot[s] = float(sim._data[s].bars.close[n - 1])
        if n > WARMUP and sim._has_at[s][i]:
            tradable.add(s)
    needed = {s for s, *_ in listed if s in sim.cash_settled}
    for kind, symbols in sim.accounts.items():
        if day.weekday() in sim._entry_days[kind]:
            needed.update(s for s in symbols if s in tradable)
    return (tuple(listed), tradable, needed, spot, sim.vix.get(day), sim.costs.rate.on(day), sim._used_at[i])


@needs_data
def test_a_runs_session_facts_made_at_once_are_each_sessions_own(tmp_path: Path) -> None:
    """The facts `_market` reads, made for a whole run at its start, are those of each session made alone and by
    their definition (the stocks' first sessions list fewer symbols; SPX has a gap and reads the VIX)."""
    for sim in (_stocks(), _spx_with_a_gap(tmp_path)):
        first, last = 0, len(sim.sessions) - 1
        made = list(sim._sessions_of(first, last))
        assert len(made) == last - first + 1
        for i in list(range(0, 80)) + list(range(first, last + 1, 7)):
            want = _session_by_definition(sim, i)
            assert tuple(made[i - first]) == want
            assert tuple(next(sim._sessions_of(i, i))) == want


@needs_data
def test_a_run_collects_garbage_less_and_puts_the_collector_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """During a run the collector's young and full thresholds are raised and the objects from before it frozen;
    after it, the thresholds and freeze a caller had are back (its own freeze untouched)."""
    sim = _stocks()
    seen: list[tuple[tuple[int, int, int], int]] = []
    days = Simulation._days

    def watched(self: Simulation, *args: Any) -> Any:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        return days(self, *args)

    monkeypatch.setattr(Simulation, "_days", watched)
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        sim.simulate(dt.date(2008, 1, 1), dt.date(2008, 1, 31))
        ((during, frozen),) = seen
        assert during == (RUN_GC_YOUNG, 10, RUN_GC_FULL) and frozen > 0
        assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0
        # Higher thresholds of the caller's are kept, and so is a freeze it made.
        gc.set_threshold(50_000, 20, 5_000)
        gc.freeze()
        mine = gc.get_freeze_count()
        sim.simulate(dt.date(2008, 1, 1), dt.date(2008, 1, 31))
        # (Frozen objects freed since leave the count; none is added or thawed by the run.)
        assert seen[1][0] == (50_000, 20, 5_000) and 0 < seen[1][1] <= mine
        assert gc.get_threshold() == (50_000, 20, 5_000) and 0 < gc.get_freeze_count() <= mine
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
