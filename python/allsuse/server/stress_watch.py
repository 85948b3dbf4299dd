"""Stress results in Prometheus: every 5 minutes of market hours (with crowding, on the same books) each portfolio's
held book goes through the named scenarios and the worst historical window (allsuse.protocol.stress).

`allsuse_stress_pnl_share{portfolio, scenario}` is the P&L as a share of the portfolio's equity, for the first
`monitoring.metrics_gauge_portfolios` portfolios by id (so at most that many x the scenarios, plus one, series).
AssessRisk's `stress` and the reports compute the same on demand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from allsuse.protocol.engine import Engine
from allsuse.protocol.stress import StressResult, stress_portfolio
from allsuse.server.books import Book, load_books


@dataclass
class StressWatch:
    """Stresses the books and keeps the latest results per portfolio."""

    deps: Any
    latest: dict[str, list[StressResult]] = field(default_factory=dict)
    engine: Engine = field(default_factory=Engine)
    _gauge: Gauge | None = None

    def sweep(self, at: dt.datetime, books: list[Book] | None = None) -> int:
        """Stresses the first `metrics_gauge_portfolios` books by id (default: the stored portfolios); returns how
        many, and refreshes the gauge."""
        chosen = sorted(load_books(self.deps, at) if books is None else books, key=lambda b: b.portfolio.id)
        chosen = chosen[: self.deps.config.monitoring.metrics_gauge_portfolios]
        self.latest = {b.portfolio.id: stress_portfolio(self.engine, b.portfolio, b.market, at.date()) for b in chosen}
        metrics = getattr(self.deps, "metrics", None)
        if metrics is not None:
            if self._gauge is None:
                self._gauge = Gauge(
                    "allsuse_stress_pnl_share",
                    "The held book's stress P&L over the portfolio's equity, per named scenario and the worst window.",
                    ["portfolio", "scenario"],
                    registry=metrics.registry,
                )
            self._gauge.clear()
            for pid, results in self.latest.items():
                for r in results:
                    self._gauge.labels(portfolio=pid, scenario=r.scenario).set(r.share_of_equity)
        return len(chosen)


def stress_watch(deps: Any) -> StressWatch:
    """The one StressWatch of a service."""
    found = vars(deps).get("_stress")
    if isinstance(found, StressWatch):
        return found
    watch = StressWatch(deps)
    vars(deps)["_stress"] = watch
    return watch


__all__ = ["StressWatch", "stress_watch"]
