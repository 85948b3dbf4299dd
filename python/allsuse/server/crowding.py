"""Factor crowding in the service: measured on demand (MonitorService.GetCrowding) and every 5 minutes of market
hours for every portfolio (the "crowding" job), on the server's stored market history.

The sweep keeps each portfolio's last level: entering HIGH raises one HIGH alert naming the crowded cluster
(CROWDING_HIGH), leaving it raises one INFO alert (CROWDING_CLEARED); a level that stays HIGH raises nothing more.
`allsuse_crowding_portfolios{level}` counts the portfolios at each level (four label values, whatever the number
of portfolios).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from allsuse.monitoring.crowding import Crowding, portfolio_crowding
from allsuse.protocol.engine import Engine
from allsuse.server.books import Book, load_books
from allsuse.server.marketdata import book_market
from allsuse.server.portfolios import PortfolioRepository

log = logging.getLogger("allsuse.crowding")
LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")


@dataclass
class CrowdingWatch:
    """Measures portfolios and remembers their last level for alerting."""

    deps: Any
    levels: dict[str, str] = field(default_factory=dict)
    _gauge: Gauge | None = None
    # One engine for every sweep: building one reads and compiles the rulebook (about 0.1 s).
    engine: Engine = field(default_factory=Engine)

    def measure(self, portfolio_id: str, at: dt.datetime) -> Crowding | None:
        """The crowding of a stored portfolio on the history up to `at` (None: no exposure); InvalidInputError for
        an unknown portfolio, MissingHistoryError naming the symbols the history lacks."""
        portfolio = PortfolioRepository(self.deps.store).load(portfolio_id).portfolio
        market = book_market(self.deps, portfolio, at)
        return portfolio_crowding(self.engine, portfolio, market, self.deps.config.monitoring)

    def sweep(self, at: dt.datetime, books: list[Book] | None = None) -> list[dict[str, Any]]:
        """Measures every book (default: every stored portfolio the history covers); returns the alerts of level
        changes into and out of HIGH (not yet raised)."""
        alerts: list[dict[str, Any]] = []
        counts = dict.fromkeys(LEVELS, 0)
        for book in load_books(self.deps, at) if books is None else books:
            record = book.portfolio
            crowding = portfolio_crowding(self.engine, record, book.market, self.deps.config.monitoring)
            level = crowding.level if crowding is not None else "NONE"
            counts[level] += 1
            before = self.levels.get(record.id)
            self.levels[record.id] = level
            if level == "HIGH" and before != "HIGH" and crowding is not None:
                cluster = ", ".join(crowding.crowded_cluster)
                alerts.append(
                    {
                        "severity": "HIGH",
                        "portfolio_id": record.id,
                        "code": "CROWDING_HIGH",
                        "message": f"crowding HIGH ({'; '.join(crowding.reasons)}): crowded cluster {cluster}",
                        "cluster": list(crowding.crowded_cluster),
                    }
                )
            elif before == "HIGH" and level != "HIGH":
                alerts.append(
                    {
                        "severity": "INFO",
                        "portfolio_id": record.id,
                        "code": "CROWDING_CLEARED",
                        "message": f"crowding back to {level}",
                    }
                )
        gauge = self._levels_gauge()
        if gauge is not None:
            for level, n in counts.items():
                gauge.labels(level=level).set(n)
        return alerts

    def _levels_gauge(self) -> Gauge | None:
        metrics = getattr(self.deps, "metrics", None)
        if metrics is None:
            return None
        if self._gauge is None:
            self._gauge = Gauge(
                "allsuse_crowding_portfolios",
                "Portfolios at each factor-crowding level at the last sweep.",
                ["level"],
                registry=metrics.registry,
            )
        return self._gauge


def crowding_watch(deps: Any) -> CrowdingWatch:
    """The one CrowdingWatch of a service (shared by the job and GetCrowding)."""
    found = vars(deps).get("_crowding")
    if isinstance(found, CrowdingWatch):
        return found
    watch = CrowdingWatch(deps)
    vars(deps)["_crowding"] = watch
    return watch


__all__ = ["CrowdingWatch", "crowding_watch"]
