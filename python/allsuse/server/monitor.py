"""MonitorService: the operators' view: metrics, a live alert stream and reports (PROTOCOL section 11)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import AsyncIterator
from typing import Any

import grpc

from allsuse import __version__, build_profile
from allsuse.errors import InvalidInputError
from allsuse.monitoring.alerts import at_least, severity
from allsuse.orchestration.bus import Event
from allsuse.reports import build_report
from allsuse.reports.gather import check_kind
from allsuse.server.alerting import alert_system
from allsuse.server.app import ServiceBinding, ServiceDeps
from allsuse.server.compliance import compliance_watch
from allsuse.server.convert import text_in, timestamp_in, timestamp_out
from allsuse.server.crowding import crowding_watch
from allsuse.server.errors import FailedPreconditionError
from allsuse.server.marketdata import MissingHistoryError
from allsuse.server.performance import performance_watch
from allsuse.server.portfolios import PortfolioRepository
from allsuse.server.request import current_principal, draining
from allsuse.server.rpc import rpc, run_blocking
from allsuse.v1 import common_pb2, monitor_pb2, monitor_pb2_grpc

ROLES = {
    "GetMetrics": "viewer",
    "StreamAlerts": "viewer",
    "GetReport": "viewer",
    "GetCrowding": "viewer",
    "AcknowledgeAlert": "trader",
    "ListViolations": "viewer",
}
REPLAY_OVERLAP = dt.timedelta(seconds=5)
"""A resumed stream also replays alerts stored this long before its cursor (one committed late is not missed)."""


def _iso_minus(stamp: str, delta: dt.timedelta) -> str:
    """A stored ISO timestamp ("...Z") moved back by `delta`, in the same fixed-width form."""
    moment = dt.datetime.fromisoformat(stamp.rstrip("Z")) - delta
    return moment.isoformat(timespec="microseconds") + "Z"


def _portfolio_at(request: Any) -> dt.datetime:
    """A monitoring request's time (its `as_of`, else now), once its portfolio_id is checked."""
    text_in(request.portfolio_id, "portfolio_id", max_length=64, required=True)
    return timestamp_in(request.as_of, "as_of") if request.HasField("as_of") else dt.datetime.now()


def _alert_out(a: dict[str, Any]) -> monitor_pb2.Alert:
    at = a.get("at")
    when = dt.datetime.fromisoformat(at).replace(tzinfo=None) if at else dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return monitor_pb2.Alert(
        alert_id=str(a.get("alert_id", "")),
        at=timestamp_out(when),
        severity=severity(str(a.get("severity", "INFO"))),
        portfolio_id=a.get("portfolio_id", ""),
        account_id=a.get("account_id", ""),
        code=a.get("code", ""),
        message=a.get("message", ""),
        status=str(a.get("status", "open")),
        count=int(a.get("count", 1)),
    )


class MonitorServicer(monitor_pb2_grpc.MonitorServiceServicer):
    """The allsuse.v1.MonitorService implementation."""

    def __init__(self, deps: ServiceDeps) -> None:
        self.deps = deps

    @rpc
    async def GetMetrics(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        counters: dict[str, float] = {}
        by_outcome: dict[str, float] = {}
        for family in self.deps.metrics.registry.collect():
            for sample in family.samples:
                if sample.name.endswith(("_created", "_bucket")):
                    continue
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                counters[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
                if sample.name == "allsuse_decisions_total":
                    outcome = sample.labels.get("outcome", "")
                    by_outcome[outcome] = by_outcome.get(outcome, 0.0) + float(sample.value)
        components = [
            monitor_pb2.ComponentState(name=name, state=state.value)
            for name, state in self.deps.registry.states().items()
        ]
        hit_rate = self.deps.metrics.cache_hit_rate._value.get()  # prometheus_client keeps the gauge's value here
        text_in(request.portfolio_id, "portfolio_id", max_length=64)
        accounts = [
            monitor_pb2.AccountMetrics(
                portfolio_id=m.portfolio_id, account_id=m.account_id, at=timestamp_out(m.at), equity=m.equity, es=m.es,
                days=m.days, metrics={k: v for k, v in m.metrics.items() if math.isfinite(v)},
            )
            for m in performance_watch(self.deps).snapshot(request.portfolio_id)
        ]  # fmt: skip
        return monitor_pb2.MetricsSnapshot(
            build=common_pb2.BuildInfo(version=__version__, core_profile=build_profile()),
            counters=counters,
            components=components,
            cache_hit_rate=float(hit_rate),
            decisions_by_outcome=by_outcome,
            accounts=accounts,
        )

    @rpc
    async def StreamAlerts(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        wanted = {severity(v, "severities") for v in request.severities}
        floor = severity(request.min_severity, "min_severity") if request.min_severity else "INFO"
        codes = set(request.codes)
        if request.portfolio_id:  # reading is open to every role; the portfolio must exist
            await run_blocking(PortfolioRepository(self.deps.store).load, request.portfolio_id)

        def passes(alert: dict[str, Any]) -> bool:
            level = severity(str(alert.get("severity", "INFO")))
            if (wanted and level not in wanted) or not at_least(level, floor):
                return False
            if request.portfolio_id and alert.get("portfolio_id") != request.portfolio_id:
                return False
            return not (codes and alert.get("code") not in codes)

        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

        async def deliver(event: Event) -> None:
            alert = event.payload if isinstance(event.payload, dict) else {}
            if not passes(alert):
                return
            if queue.full():
                queue.get_nowait()  # a slow client loses the oldest alert, never blocks the bus
            queue.put_nowait(alert)

        # Subscribe first, then replay: an alert raised meanwhile is in the queue (perhaps also in the replay).
        subscription = self.deps.bus.subscribe("alerts", deliver, name="stream-alerts")
        try:
            if request.after_alert_id:
                for alert in await run_blocking(self._history_after, request.after_alert_id, request.portfolio_id):
                    if passes(alert):
                        yield _alert_out(alert)
            while not context.done() and not draining():  # a drain ends the stream promptly
                try:
                    alert = await asyncio.wait_for(queue.get(), timeout=0.5)
                except TimeoutError:
                    continue
                yield _alert_out(alert)
        finally:
            await subscription.close(timeout=1.0)

    def _history_after(self, alert_id: str, portfolio_id: str) -> list[dict[str, Any]]:
        """Stored alerts raised after `alert_id` (and those committed up to REPLAY_OVERLAP before it: at least
        once), oldest first."""
        store = self.deps.store
        first = store.get_alert(alert_id)
        if first is None:
            raise InvalidInputError.of("after_alert_id", f"no alert {alert_id!r}")
        cursor = (first.created_at, first.id)
        since = _iso_minus(first.created_at, REPLAY_OVERLAP)
        out = []
        for r in store.list_alerts(portfolio_id=portfolio_id or None, limit=100_000):
            if (r.created_at, r.id) > cursor or (r.created_at >= since and r.id != first.id):
                status = r.columns.get("status", "open")
                out.append({**r.payload, "alert_id": r.id, "at": r.created_at, "status": status})
        return out

    async def _acknowledge(self, request: Any) -> monitor_pb2.Alert:
        text_in(request.alert_id, "alert_id", max_length=64, required=True)
        text_in(request.note, "note", max_length=2000)
        principal = current_principal()
        actor = principal.key_id if principal is not None else "anonymous"
        alert = await alert_system(self.deps).acknowledge(
            request.alert_id, resolve=request.resolve, actor=actor, note=request.note
        )
        return _alert_out(alert)

    @rpc
    async def AcknowledgeAlert(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._acknowledge(request)

    def _report(self, request: monitor_pb2.GetReportRequest) -> monitor_pb2.Report:
        """A report built by allsuse.reports (the same one the scheduled jobs write), as text, JSON and HTML."""
        check_kind(request.kind)
        as_of = _portfolio_at(request)
        report = build_report(self.deps, request.portfolio_id, request.kind, as_of)
        return monitor_pb2.Report(
            kind=request.kind,
            portfolio_id=request.portfolio_id,
            as_of=timestamp_out(as_of),
            text=report.text,
            json=report.json,
            html=report.html,
        )

    def _crowding(self, request: monitor_pb2.GetCrowdingRequest) -> monitor_pb2.Crowding:
        at = _portfolio_at(request)
        try:
            crowding = crowding_watch(self.deps).measure(request.portfolio_id, at)
        except MissingHistoryError as exc:
            raise FailedPreconditionError(f"portfolio_id: {exc}") from None
        if crowding is None:
            return monitor_pb2.Crowding(portfolio_id=request.portfolio_id, level="NONE")
        return monitor_pb2.Crowding(
            portfolio_id=request.portfolio_id,
            level=crowding.level,
            hhi=crowding.hhi,
            gini=crowding.gini,
            absorption_ratio=crowding.absorption_ratio,
            clusters=[
                monitor_pb2.CrowdingCluster(symbols=list(c), weight=w)
                for c, w in zip(crowding.clusters, crowding.cluster_weights, strict=True)
            ],
            reasons=list(crowding.reasons),
            crowded_cluster=list(crowding.crowded_cluster),
        )

    def _violations(self, request: monitor_pb2.ListViolationsRequest) -> monitor_pb2.ListViolationsResponse:
        at = _portfolio_at(request)
        try:
            found = compliance_watch(self.deps).violations(request.portfolio_id, at)
        except MissingHistoryError as exc:
            raise FailedPreconditionError(f"portfolio_id: {exc}") from None
        return monitor_pb2.ListViolationsResponse(
            portfolio_id=request.portfolio_id,
            violations=[
                monitor_pb2.Violation(
                    key=v.key, check=v.code, severity=v.severity, account_id=v.account_id, message=v.message,
                    value=v.value, limit=v.limit,
                )
                for v in found
            ],
        )  # fmt: skip

    @rpc
    async def ListViolations(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await run_blocking(self._violations, request)

    @rpc
    async def GetCrowding(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await run_blocking(self._crowding, request)

    @rpc
    async def GetReport(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await run_blocking(self._report, request)


def bindings(deps: ServiceDeps) -> list[ServiceBinding]:
    """The MonitorService binding for `allsuse serve`."""
    servicer = MonitorServicer(deps)
    return [
        ServiceBinding(
            "allsuse.v1.MonitorService",
            lambda server: monitor_pb2_grpc.add_MonitorServiceServicer_to_server(servicer, server),
            ROLES,
        )
    ]


__all__ = ["MonitorServicer", "bindings"]
