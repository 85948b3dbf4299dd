"""The books the monitoring sweeps read: every stored portfolio, loaded once a sweep, and one market built once
from the server's history for all the symbols they hold (allsuse.server.marketdata)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from allsuse.protocol.accounts import Portfolio
from allsuse.protocol.market import MarketData
from allsuse.server.marketdata import markets_for
from allsuse.server.portfolios import PortfolioRepository

log = logging.getLogger("allsuse.monitoring")


@dataclass(frozen=True)
class Book:
    """One portfolio with the market to judge it on (the market may hold more symbols than the book)."""

    portfolio: Portfolio
    market: MarketData


def load_books(deps: Any, at: dt.datetime) -> list[Book]:
    """Every stored portfolio with the server's market as of `at`; a portfolio holding a symbol the history lacks
    is left out and logged."""
    repo = PortfolioRepository(deps.store)
    portfolios = [repo.load(r.id).portfolio for r in deps.store.list_portfolios(limit=100_000)]
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
