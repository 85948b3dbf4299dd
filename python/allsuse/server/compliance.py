"""Continuous compliance in the service: every minute of market hours the open book of every portfolio is checked
again on the server's stored market history (allsuse.monitoring.compliance); `MonitorService.ListViolations`
checks one portfolio on demand.

The watch remembers the violations of its last sweep by key: a new one raises one alert (COMPLIANCE_<CHECK>, at
the violation's severity), one still present raises nothing, and one gone raises an INFO COMPLIANCE_RESOLVED alert
and marks the original alert resolved. `allsuse_compliance_violations{check}` counts the current violations per
check (seven label values).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from allsuse.monitoring.compliance import Violation, check
from allsuse.protocol.engine import Engine
from allsuse.server.books import Book, load_books
from allsuse.server.marketdata import book_market
from allsuse.server.portfolios import PortfolioRepository

log = logging.getLogger("allsuse.compliance")
CHECKS = (
    "SYMBOL_CONCENTRATION",
    "GROUP_CONCENTRATION",
    "SECTOR_CONCENTRATION",
    "DRAWDOWN",
    "BREAKER",
    "DELTA_DRIFT",
    "BUFFER",
)


@dataclass
class ComplianceWatch:
    """Checks portfolios and remembers the violations (and the alert raised for each) of the last sweep."""

    deps: Any
    current: dict[str, dict[str, tuple[Violation, str]]] = field(default_factory=dict)
    _gauge: Gauge | None = None
    # One engine for every sweep: building one reads and compiles the rulebook (about 0.1 s).
    engine: Engine = field(default_factory=Engine)

    def violations(self, portfolio_id: str, at: dt.datetime) -> list[Violation]:
        """The violations of a stored portfolio on the history up to `at`."""
        portfolio = PortfolioRepository(self.deps.store).load(portfolio_id).portfolio
        return check(self.engine, portfolio, book_market(self.deps, portfolio, at), at.date())

    def sweep(self, at: dt.datetime, books: list[Book] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """Checks every book (default: every stored portfolio): (alerts to raise for new and resolved violations,
        ids of alerts now resolved). `remember(key, alert_id)` must be called for each raised new-violation alert.
        A portfolio left out (no history for a symbol it holds) keeps its last violations."""
        raise_: list[dict[str, Any]] = []
        resolved: list[str] = []
        counts = dict.fromkeys(CHECKS, 0)
        groups: dict[tuple[object, ...], list[tuple[str, ...]]] = {}  # tail groups shared by books this sweep
        for book in load_books(self.deps, at) if books is None else books:
            record = book.portfolio
            marked = book.equities(self.engine, at.date())
            found = check(self.engine, book.portfolio, book.market, at.date(), groups=groups, marked=marked)
            before = self.current.get(record.id, {})
            now: dict[str, tuple[Violation, str]] = {}
            for v in found:
                counts[v.code] = counts.get(v.code, 0) + 1
                if v.key in before:
                    now[v.key] = (v, before[v.key][1])
                    continue
                now[v.key] = (v, "")
                raise_.append(
                    {
                        "severity": v.severity,
                        "code": f"COMPLIANCE_{v.code}",
                        "portfolio_id": v.portfolio_id,
                        "account_id": v.account_id,
                        "message": v.message,
                        "violation": v.key,
                        "value": v.value,
                        "limit": v.limit,
                    }
                )
            for key, (old, alert_id) in before.items():
                if key in now:
                    continue
                raise_.append(
                    {
                        "severity": "INFO",
                        "code": "COMPLIANCE_RESOLVED",
                        "portfolio_id": old.portfolio_id,
                        "account_id": old.account_id,
                        "message": f"resolved: {old.message}",
                        "violation": key,
                    }
                )
                if alert_id:
                    resolved.append(alert_id)
            self.current[record.id] = now
        gauge = self._violations_gauge()
        if gauge is not None:
            for code, n in counts.items():
                gauge.labels(check=code).set(n)
        return raise_, resolved

    def remember(self, portfolio_id: str, key: str, alert_id: str) -> None:
        """Keeps the id of the alert raised for a new violation, to resolve it when the violation clears."""
        held = self.current.get(portfolio_id, {})
        if key in held:
            held[key] = (held[key][0], alert_id)

    def _violations_gauge(self) -> Gauge | None:
        metrics = getattr(self.deps, "metrics", None)
        if metrics is None:
            return None
        if self._gauge is None:
            self._gauge = Gauge(
                "allsuse_compliance_violations",
                "Open compliance violations per check at the last sweep.",
                ["check"],
                registry=metrics.registry,
            )
        return self._gauge


def compliance_watch(deps: Any) -> ComplianceWatch:
    """The one ComplianceWatch of a service."""
    found = vars(deps).get("_compliance")
    if isinstance(found, ComplianceWatch):
        return found
    watch = ComplianceWatch(deps)
    vars(deps)["_compliance"] = watch
    return watch


async def run_sweep(deps: Any, at: dt.datetime, books: list[Book] | None = None) -> list[dict[str, Any]]:
    """One compliance sweep (of `books`, default every stored portfolio) with its alerts raised and the cleared
    violations' alerts resolved; returns the alerts raised (repeats folded by the alert system are left out)."""
    from allsuse.server.alerting import alert_system
    from allsuse.server.rpc import run_blocking

    watch = compliance_watch(deps)
    alerts, resolved = await run_blocking(watch.sweep, at, books)
    system = alert_system(deps)
    raised = []
    for alert in alerts:
        stored = await system.raise_alert(alert)
        if stored is None:
            continue
        raised.append(stored)
        if alert["code"] != "COMPLIANCE_RESOLVED":
            watch.remember(alert["portfolio_id"], alert["violation"], stored["alert_id"])
    for alert_id in resolved:
        await system.acknowledge(alert_id, resolve=True, actor="compliance")
    return raised


__all__ = ["CHECKS", "ComplianceWatch", "compliance_watch", "run_sweep"]
