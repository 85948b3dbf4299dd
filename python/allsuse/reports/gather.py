"""What a report reads: the stored portfolio and its engine state, the period's decisions, transactions, alerts
and orders, the stored daily equity marks, and, on the server's market history as of the report, each account's
equity at market and ES (the metrics job's own function), the stress results (the stress watch's engine) and the
compliance violations (the compliance check the watch runs). Nothing here computes a figure of its own.

Periods: a daily report covers the day before `as_of` (24 hours), a weekly one the 7 days before, a quarterly
one the calendar quarter of `as_of` up to it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from allsuse.errors import InvalidInputError
from allsuse.monitoring.compliance import Violation, check
from allsuse.protocol.market import MarketData
from allsuse.protocol.stress import StressResult, stress_portfolio
from allsuse.reports.execution import orders_for_report
from allsuse.server.books import Book
from allsuse.server.compliance import compliance_watch
from allsuse.server.marketdata import MissingHistoryError, book_market
from allsuse.server.performance import measure_book, performance_watch
from allsuse.server.portfolios import PortfolioRepository, StoredPortfolio
from allsuse.server.stress_watch import stress_watch
from allsuse.store import equity as marks

KINDS = ("daily", "weekly", "quarterly")
EPOCH = dt.date(1970, 1, 1)
EOD_CODE = "EOD_REPORT"
"""The alert the 16:15 job raises with each daily report; it carries the day's ES, so the store keeps ES history."""


def check_kind(kind: str) -> str:
    """`kind` if it is a report kind, else InvalidInputError naming "kind"."""
    if kind not in KINDS:
        raise InvalidInputError.of("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


def period_start(kind: str, as_of: dt.datetime) -> dt.datetime:
    """Where a report's period begins (see the module docstring)."""
    check_kind(kind)
    if kind == "daily":
        return as_of - dt.timedelta(days=1)
    if kind == "weekly":
        return as_of - dt.timedelta(days=7)
    return dt.datetime(as_of.year, 3 * ((as_of.month - 1) // 3) + 1, 1)


def day_of(day: int) -> dt.date:
    """A stored mark's day number as a date."""
    return EPOCH + dt.timedelta(days=day)


def _stamp(text: str) -> dt.datetime:
    """A stored ISO time as a naive UTC datetime."""
    return dt.datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=None)


@dataclass(frozen=True)
class Gathered:
    """Everything one report is made of, read once."""

    kind: str
    as_of: dt.datetime
    since: dt.datetime
    stored: StoredPortfolio
    decisions: list[dict[str, Any]]  # in the period
    transactions: list[dict[str, Any]]  # every one up to as_of (capital since the start needs them all)
    alerts: list[dict[str, Any]]  # raised in the period, with status
    open_alerts: int  # of the portfolio, whenever raised
    series: dict[str, list[tuple[int, float]]]  # account id ('' = portfolio) -> daily equity up to as_of's day
    measured: dict[str, tuple[float, float]] | None  # account id -> (equity at market, ES) as of as_of
    market: MarketData | None
    market_note: str  # why there is no market ("" when there is one)
    stress: list[StressResult] | None
    violations: list[Violation] | None
    es_history: list[tuple[dt.date, float]]  # the portfolio's ES at each stored end of day, and as_of's
    orders: list[dict[str, Any]]


def _es_history(store: Any, portfolio_id: str, as_of: dt.datetime, today: float | None) -> list[tuple[dt.date, float]]:
    """The portfolio's ES at each end of day the 16:15 job recorded (its EOD_REPORT alerts) before as_of's day,
    then as_of's own when measured."""
    by_day: dict[dt.date, float] = {}
    for r in store.list_alerts(portfolio_id=portfolio_id, limit=100_000):
        p = r.payload
        es = p.get("es")
        if p.get("code") != EOD_CODE or not isinstance(es, (int, float)) or not p.get("report_date"):
            continue
        day = dt.date.fromisoformat(str(p["report_date"]))
        if day < as_of.date():
            by_day[day] = float(es)
    if today is not None:
        by_day[as_of.date()] = today
    return sorted(by_day.items())


def gather(deps: Any, portfolio_id: str, kind: str, as_of: dt.datetime) -> Gathered:
    """Reads a report's material (InvalidInputError for a bad kind, NotFoundError for an unknown portfolio)."""
    check_kind(kind)
    since = period_start(kind, as_of)
    store = deps.store
    stored = PortfolioRepository(store).load(portfolio_id)
    p = stored.portfolio
    decisions = [
        r.payload
        for r in store.list_decisions(portfolio_id=portfolio_id, limit=100_000)
        if since <= dt.datetime.fromisoformat(r.payload["as_of"]) <= as_of
    ]
    transactions = [
        r.payload
        for r in store.list_transactions(portfolio_id=portfolio_id, limit=100_000)
        if dt.datetime.fromisoformat(r.payload["at"]) <= as_of
    ]
    alerts, open_alerts = [], 0
    for r in store.list_alerts(portfolio_id=portfolio_id, limit=100_000):
        status = str(r.columns.get("status", "open"))
        open_alerts += status == "open"
        if since <= _stamp(r.created_at) <= as_of:
            alerts.append({**r.payload, "alert_id": r.id, "at": r.created_at, "status": status})
    market: MarketData | None = None
    note = ""
    try:
        market = book_market(deps, p, as_of)
    except MissingHistoryError as exc:
        note = str(exc)
    today = as_of.date()
    measured = stress = violations = None
    if market is not None:
        book = Book(p, market)
        watch = performance_watch(deps)
        measured = {a: (e, es) for a, e, es in measure_book(watch.engine, book, today)}
        if p.positions:
            # The stress watch's engine: building one per report would read and compile the rulebook each time.
            stress = stress_portfolio(stress_watch(deps).engine, p, market, today)
        violations = check(compliance_watch(deps).engine, p, market, today)
    ids = [marks.PORTFOLIO, *p.accounts]
    day = (today - EPOCH).days
    stored_series = store.read(lambda c: {a: marks.read_marks(c, portfolio_id, a) for a in ids})
    series: dict[str, list[tuple[int, float]]] = {}
    for account_id in ids:
        kept = [(d, e) for d, e in stored_series[account_id] if d < day]
        if measured is not None and account_id in measured:
            kept.append((day, measured[account_id][0]))  # as of the report, as a sweep at as_of would mark it
        else:
            kept += [(d, e) for d, e in stored_series[account_id] if d == day]
        series[account_id] = kept
    whole = measured.get(marks.PORTFOLIO) if measured is not None else None
    return Gathered(
        kind=kind,
        as_of=as_of,
        since=since,
        stored=stored,
        decisions=decisions,
        transactions=transactions,
        alerts=alerts,
        open_alerts=open_alerts,
        series=series,
        measured=measured,
        market=market,
        market_note=note,
        stress=stress,
        violations=violations,
        es_history=_es_history(store, portfolio_id, as_of, whole[1] if whole else None),
        orders=orders_for_report(store, portfolio_id, since, as_of),
    )


__all__ = ["EOD_CODE", "KINDS", "Gathered", "check_kind", "day_of", "gather", "period_start"]
