"""Real-time metrics: every minute of market hours each portfolio's accounts and the portfolio are marked at
market, today's mark is stored (allsuse.store.equity), and the 17 metrics of the stored daily series and the ES
of the book are computed (docs/monitoring.md, "Real-time metrics").

GetMetrics returns the latest snapshot of every portfolio (or of one). Prometheus carries the same numbers as
`allsuse_account_metric{portfolio, account, metric}` for the first `monitoring.metrics_gauge_portfolios` portfolios
by id, so the series count stays bounded whatever the number of portfolios. The account label is `portfolio` for
the portfolio's own row.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Gauge

from allsuse import risk
from allsuse.protocol.engine import Engine
from allsuse.server.marketdata import MissingHistoryError, book_market
from allsuse.server.portfolios import PortfolioRepository
from allsuse.store import equity as marks

log = logging.getLogger("allsuse.performance")
EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class SeriesMetrics:
    """The latest numbers of one account (account_id '' is the portfolio)."""

    portfolio_id: str
    account_id: str
    at: dt.datetime
    equity: float
    es: float
    days: int
    metrics: dict[str, float]


@dataclass
class PerformanceWatch:
    """Marks, stores and measures; keeps the latest snapshot per (portfolio, account)."""

    deps: Any
    latest: dict[tuple[str, str], SeriesMetrics] = field(default_factory=dict)
    _gauge: Gauge | None = None

    def measure(self, portfolio_id: str, at: dt.datetime) -> list[SeriesMetrics]:
        """Marks one portfolio at `at`, stores today's marks, and returns its accounts' and its own numbers."""
        store = self.deps.store
        portfolio = PortfolioRepository(store).load(portfolio_id).portfolio
        market = book_market(self.deps, portfolio, at)
        today = at.date()
        engine = Engine()
        merged = {gid for gid, g in portfolio.groups.items() if g.merged}
        accounts = [a for a in portfolio.accounts.values() if a.group_id not in merged]
        values, total = engine.equities(portfolio, accounts, market, today)
        day = (today - EPOCH).days
        rows: list[marks.Mark] = [(portfolio_id, a.id, day, v) for a, v in zip(accounts, values, strict=True)]
        rows.append((portfolio_id, marks.PORTFOLIO, day, total))
        store.write(lambda tx: marks.put_marks(tx, rows))
        out = []
        for account_id, equity in [(a.id, v) for a, v in zip(accounts, values, strict=True)] + [("", total)]:
            held = [p for p in portfolio.positions.values() if not account_id or p.account_id == account_id]
            if not account_id:
                held = [p for p in held if portfolio.accounts[p.account_id].group_id not in merged]
            es = engine.portfolio_es(held, market, today) if held else 0.0
            series = store.read(lambda c, a=account_id: marks.read_marks(c, portfolio_id, a))
            out.append(SeriesMetrics(portfolio_id, account_id, at, equity, es, len(series), _metrics(series)))
        for m in out:
            self.latest[(portfolio_id, m.account_id)] = m
        return out

    def sweep(self, at: dt.datetime) -> int:
        """Measures every portfolio (a portfolio whose symbols the history lacks is skipped and logged); returns
        how many were measured, and refreshes the gauges."""
        done = 0
        for record in self.deps.store.list_portfolios(limit=100_000):
            try:
                self.measure(record.id, at)
                done += 1
            except MissingHistoryError as exc:
                log.info("metrics of %s not measured: %s", record.id, exc)
        self._refresh_gauges()
        return done

    def snapshot(self, portfolio_id: str = "") -> list[SeriesMetrics]:
        """The latest numbers, of one portfolio or of all, sorted by portfolio and account."""
        rows = [m for (pid, _), m in self.latest.items() if not portfolio_id or pid == portfolio_id]
        return sorted(rows, key=lambda m: (m.portfolio_id, m.account_id))

    def _refresh_gauges(self) -> None:
        metrics = getattr(self.deps, "metrics", None)
        if metrics is None:
            return
        if self._gauge is None:
            self._gauge = Gauge(
                "allsuse_account_metric",
                "The 17 metrics, equity and ES of each account and portfolio (the first monitoring."
                "metrics_gauge_portfolios portfolios by id).",
                ["portfolio", "account", "metric"],
                registry=metrics.registry,
            )
        limit = self.deps.config.monitoring.metrics_gauge_portfolios
        shown = sorted({pid for pid, _ in self.latest})[:limit]
        self._gauge.clear()
        for pid in shown:
            for m in self.snapshot(pid):
                account = m.account_id or "portfolio"
                values = {"equity": m.equity, "es": m.es, **m.metrics}
                for name, value in values.items():
                    if math.isfinite(value):
                        self._gauge.labels(portfolio=pid, account=account, metric=name).set(value)


def _metrics(series: list[tuple[int, float]]) -> dict[str, float]:
    """The 17 metrics of a daily equity series' returns (none with fewer than two returns)."""
    equity = np.array([e for _, e in series], dtype=np.float64)
    if equity.size < 3 or np.any(equity[:-1] <= 0):
        return {}
    return risk.metrics(equity[1:] / equity[:-1] - 1.0)


def performance_watch(deps: Any) -> PerformanceWatch:
    """The one PerformanceWatch of a service."""
    found = vars(deps).get("_performance")
    if isinstance(found, PerformanceWatch):
        return found
    watch = PerformanceWatch(deps)
    vars(deps)["_performance"] = watch
    return watch


__all__ = ["PerformanceWatch", "SeriesMetrics", "performance_watch"]
