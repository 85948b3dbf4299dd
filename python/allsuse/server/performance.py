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
from allsuse.server.books import Book, load_books
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
    _marks: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=dict)
    _children: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    _gauge: Gauge | None = None
    # One engine for every sweep: building one reads and compiles the rulebook (about 0.1 s).
    engine: Engine = field(default_factory=Engine)

    def sweep(self, at: dt.datetime, books: list[Book] | None = None) -> list[SeriesMetrics]:
        """Marks every book (default: every stored portfolio the history covers), stores today's marks in one
        write, measures each series, refreshes the gauges; returns the numbers measured."""
        store = self.deps.store
        today = at.date()
        day = (today - EPOCH).days
        engine = self.engine
        rows: list[marks.Mark] = []
        pending: list[tuple[str, str, float, float]] = []
        for book in load_books(self.deps, at) if books is None else books:
            pid = book.portfolio.id
            for account_id, equity, es in measure_book(engine, book, today):
                rows.append((pid, account_id, day, equity))
                pending.append((pid, account_id, equity, es))
        if rows:
            store.write(lambda tx: marks.put_marks(tx, rows))
        out = []
        for pid, account_id, equity, es in pending:
            series = self._series(pid, account_id, day, equity)
            m = SeriesMetrics(pid, account_id, at, equity, es, len(series), series_metrics(series))
            self.latest[(pid, account_id)] = m
            out.append(m)
        self._refresh_gauges()
        return out

    def _series(self, portfolio_id: str, account_id: str, day: int, equity: float) -> list[tuple[int, float]]:
        """The stored daily series with today's mark, read from the store once and then kept in memory."""
        key = (portfolio_id, account_id)
        series = self._marks.get(key)
        if series is None:
            series = self._marks[key] = self.deps.store.read(lambda c: marks.read_marks(c, portfolio_id, account_id))
        elif series and series[-1][0] == day:
            series[-1] = (day, equity)
        elif not series or series[-1][0] < day:
            series.append((day, equity))
        else:  # a mark of an earlier day than the last kept: the store has the truth
            series = self._marks[key] = self.deps.store.read(lambda c: marks.read_marks(c, portfolio_id, account_id))
        return series

    def forget_series(self) -> None:
        """Drops the series kept in memory (after the store pruned old marks): the next sweep reads them again."""
        self._marks.clear()

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
        shown = set(sorted({pid for pid, _ in self.latest})[:limit])
        now: set[tuple[str, str, str]] = set()
        for (pid, account_id), m in self.latest.items():
            if pid not in shown:
                continue
            account = account_id or "portfolio"
            for name, value in (("equity", m.equity), ("es", m.es), *m.metrics.items()):
                if not math.isfinite(value):
                    continue
                key = (pid, account, name)
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = self._gauge.labels(portfolio=pid, account=account, metric=name)
                child.set(value)
                now.add(key)
        for key in set(self._children) - now:  # series of portfolios no longer shown (or values now undefined)
            self._gauge.remove(*key)
            del self._children[key]


def measure_book(engine: Engine, book: Book, today: dt.date) -> list[tuple[str, float, float]]:
    """(account_id, equity at market, ES) of each live account of a book and then of the portfolio (account_id
    marks.PORTFOLIO): the numbers the metrics job stores and end-of-day reports show."""
    accounts, values, total = book.equities(engine, today)
    live = {a.id for a in accounts}
    positions = [p for p in book.portfolio.positions.values() if p.account_id in live]
    symbols = sorted({p.symbol for p in positions})
    # P&L is additive across positions: each account's scenario vector once, the portfolio's their sum.
    pnl = {
        a.id: engine.book_pnl(own, book.market, today, symbols)
        for a in accounts
        if (own := [p for p in positions if p.account_id == a.id])
    }
    out = [
        (account.id, equity, engine.es_of(pnl[account.id]) if account.id in pnl else 0.0)
        for account, equity in zip(accounts, values, strict=True)
    ]
    whole = engine.es_of(np.sum(list(pnl.values()), axis=0)) if pnl else 0.0
    out.append((marks.PORTFOLIO, total, whole))
    return out


def series_metrics(series: list[tuple[int, float]]) -> dict[str, float]:
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


__all__ = ["PerformanceWatch", "SeriesMetrics", "measure_book", "performance_watch", "series_metrics"]
