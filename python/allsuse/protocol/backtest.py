"""The one-underlying backtest of earlier releases: every account trades one symbol, its concentration limit raised
to its deployment target (PROTOCOL section 8), with no costs (fills at the model price, no commission, no
interest, a zero rate), over the bars as given.

Kept for existing callers; the simulation itself (many symbols, the real account layout, costs) is
`allsuse.backtest.simulation`, which this module runs with one symbol and `ZERO_COSTS`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from allsuse.backtest.data import REQUIRED_COLUMNS, MarketSet, SymbolData, load_bars, symbol_of
from allsuse.backtest.simulation import KINDS, VIX_RANGE, ZERO_COSTS, Simulation, load_vix
from allsuse.protocol import settings
from allsuse.protocol.market import Bars

__all__ = ["REQUIRED_COLUMNS", "VIX_RANGE", "Backtest", "load_bars", "load_vix", "simulate"]


class Backtest(Simulation):
    """Runs the weekly protocol day by day over one underlying, with no costs; `run` returns the JSON-ready
    result."""

    def __init__(
        self,
        bars: Bars,
        *,
        symbol: str,
        capital: float,
        vix: dict[dt.date, float] | None = None,
        seed: int = 0,
        config: settings.ProtocolConfig | None = None,
    ) -> None:
        market = MarketSet(tuple(bars.dates), {symbol: SymbolData(symbol, bars, Path(symbol), close_only=False)})
        super().__init__(
            market,
            accounts={k: (symbol,) for k in KINDS},
            capital=capital,
            vix=vix,
            seed=seed,
            costs=ZERO_COSTS,
            config=config,
            single=True,
            vix_symbols=frozenset({symbol}),
        )
        self.bars = bars
        self.symbol = symbol

    def run(self, start: dt.date, end: dt.date) -> dict[str, Any]:  # type: ignore[override]
        """Simulates [start, end] and returns the JSON-ready result."""
        portfolio, ledger, dates, equity = self.simulate(start, end)
        return self._result(portfolio, ledger, dates, equity, start, end)


def simulate(
    data: Path,
    *,
    start: dt.date,
    end: dt.date,
    capital: float,
    vix: Path | None = None,
    symbol: str | None = None,
    seed: int = 0,
    config: settings.ProtocolConfig | None = None,
) -> dict[str, Any]:
    """Runs the backtest on a CSV of daily bars (and optionally a VIX CSV); returns the JSON-ready result.
    `config` replaces the protocol file's configuration (None: settings.default())."""
    vix_map = load_vix(vix) if vix is not None else None
    bars = load_bars(data)
    name = symbol or symbol_of(data)
    return Backtest(bars, symbol=name, capital=capital, vix=vix_map, seed=seed, config=config).run(start, end)
