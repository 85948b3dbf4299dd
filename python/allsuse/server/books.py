"""The books the monitoring sweeps read: every stored portfolio, loaded once a sweep, and one market built once
from the server's history for all the symbols they hold (allsuse.server.marketdata)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from allsuse.protocol.accounts import Account, Portfolio
from allsuse.protocol.market import MarketData
from allsuse.server.marketdata import markets_for
from allsuse.server.portfolios import from_payload

if TYPE_CHECKING:
    from allsuse.protocol.engine import Engine

log = logging.getLogger("allsuse.monitoring")


@dataclass(frozen=True)
class Book:
    """One portfolio with the market to judge it on (the market may hold more symbols than the book)."""

    portfolio: Portfolio
    market: MarketData
    _marked: dict[dt.date, tuple[list[Account], list[float], float]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def equities(self, engine: Engine, today: dt.date) -> tuple[list[Account], list[float], float]:
        """The accounts not merged away, their equity at market and the portfolio's: marked once a day per book,
        so compliance and the metrics of one sweep share the marks."""
        found = self._marked.get(today)
        if found is None:
            merged = {gid for gid, g in self.portfolio.groups.items() if g.merged}
            accounts = [a for a in self.portfolio.accounts.values() if a.group_id not in merged]
            values, total = engine.equities(self.portfolio, accounts, self.market, today)
            found = self._marked[today] = (accounts, values, total)
        return found


def load_books(deps: Any, at: dt.datetime) -> list[Book]:
    """Every stored portfolio with the server's market as of `at`; a portfolio holding a symbol the history lacks
    is left out and logged. Portfolios are kept loaded between sweeps and read again only when their record was
    written since (the engine state, which monitoring does not read, is never loaded)."""
    kept: dict[str, tuple[str, Portfolio]] = vars(deps).setdefault("_books", {})
    stamps = deps.store.portfolio_stamps()
    for pid in set(kept) - set(stamps):
        del kept[pid]
    for pid, stamp in stamps.items():
        if pid in kept and kept[pid][0] == stamp:
            continue
        record = deps.store.get_portfolio(pid)
        if record is not None:
            kept[pid] = (record.updated_at, from_payload(pid, record.payload).portfolio)
    portfolios = [kept[pid][1] for pid in stamps if pid in kept]
    symbols = sorted({p.symbol for pf in portfolios for p in pf.positions.values()})
    market = markets_for(deps).of_history(symbols, at)
    books = []
    for pf in portfolios:
        missing = sorted({p.symbol for p in pf.positions.values()} - set(market.bars))
        if missing:
            log.info("%s not monitored: no market history for %s as of %s", pf.id, ", ".join(missing), at.date())
            continue
        books.append(Book(pf, market))
    return books


__all__ = ["Book", "load_books"]
