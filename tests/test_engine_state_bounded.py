"""The engine's per-account state stays bounded over a long run: the cuts it remembers (a protection cut per
position and level, a drawdown-budget cut per position or symbol and day) are pruned once they can no longer be
read, so neither the decision input nor the state a service stores with each portfolio (export_state) grows with
the number of days decided."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from allsuse.backtest.costs import CostModel
from allsuse.backtest.data import Source, load_market
from allsuse.backtest.simulation import Simulation, account_symbols, parse_symbols
from allsuse.protocol import settings
from allsuse.protocol.accounts import Portfolio
from allsuse.protocol.engine import Effects, Engine

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STOCKS = DATA / "stocks20_close_1990_2014.csv"
LAYOUT = ("gen=AMD,BAC,RRC,BBY", "rev=AAPL,MSFT,JPM,HD", "com=JNJ,PG,KO,WMT")


@pytest.mark.skipif(not STOCKS.exists(), reason=f"shared data not found at {DATA}")
def test_remembered_cuts_are_only_those_still_readable_after_a_year_of_2008(monkeypatch: pytest.MonkeyPatch) -> None:
    cuts: list[str] = []
    apply = Engine.apply_effects

    def counting(self: Engine, effects: Effects, portfolio: Portfolio) -> None:
        if effects.cut_key is not None:
            cuts.append(effects.cut_key)
        apply(self, effects, portfolio)

    monkeypatch.setattr(Engine, "apply_effects", counting)
    market = load_market((Source(STOCKS),))
    accounts, _, _ = account_symbols(market, parse_symbols(LAYOUT), settings.default())
    sim = Simulation(market, accounts=accounts, capital=1e6, costs=CostModel())
    portfolio, _, days, _ = sim.simulate(dt.date(2008, 1, 1), dt.date(2008, 12, 31))
    last = days[-1].isoformat()
    state = sim.engine.export_state()["accounts"]
    for account_id, rt in state.items():
        held = {p.id for p in portfolio.positions.values() if p.account_id == account_id}
        symbols = {p.symbol for p in portfolio.positions.values() if p.account_id == account_id}
        for key in rt["cut_at"]:
            if key.startswith("budget:"):
                # A budget cut is once a day: only today's key is ever read again.
                assert key.rsplit(":", 1)[1] >= last, f"{account_id}: stale {key}"
            elif not key.startswith("shares:"):
                assert key in held, f"{account_id}: cut of a position no longer held: {key}"
        # At most one protection and one budget key per held position, and two per symbol of shares.
        assert len(rt["cut_at"]) <= 2 * len(held) + 2 * len(symbols) + 2 * len(sim.accounts["com"]), account_id
    # 2008's drawdowns made the Com-Acc cut its shares again and again: the run did remember cuts, on many days.
    budget = [key for key in cuts if key.startswith("budget:")]
    assert len(budget) >= 40 and len({key.rsplit(":", 1)[1] for key in budget}) >= 10
