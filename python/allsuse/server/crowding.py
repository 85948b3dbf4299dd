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
from allsuse.server.marketdata import MissingHistoryError, book_market
from allsuse.server.portfolios import PortfolioRepository

log = logging.getLogger("allsuse.crowding")
LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")


@dataclass
class CrowdingWatch:
    """Measures portfolios and remembers their last level for alerting."""

    deps: Any
    levels: dict[str, str] = field(default_factory=dict)
    _gauge: Gauge | None = None

    def measure(self, portfolio_id: str, at: dt.datetime) -> Crowding | None:
        """The crowding of a stored portfolio on the history up to `at` (None: no exposure); InvalidInputError for
        an unknown portfolio, MissingHistoryError naming the symbols the history lacks."""
        portfolio = PortfolioRepository(self.deps.store).load(portfolio_id).portfolio
        market = book_market(self.deps, portfolio, at)
        return portfolio_crowding(Engine(), portfolio, market, self.deps.config.monitoring)

    def sweep(self, at: dt.datetime) -> list[dict[str, Any]]:
        """Measures every portfolio; returns the alerts of level changes into and out of HIGH (not yet raised)."""
        alerts: list[dict[str, Any]] = []
        counts = dict.fromkeys(LEVELS, 0)
        for record in self.deps.store.list_portfolios(limit=100_000):
            try:
                crowding = self.measure(record.id, at)
            except MissingHistoryError as exc:
                log.info("crowding of %s not measured: %s", record.id, exc)
                continue
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
