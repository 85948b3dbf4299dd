"""The service's alert system, a component ("alerts"): every alert the service raises goes through it.

`raise_alert` normalises the severity, folds a repeat of the last `monitoring.alert_dedupe_seconds` into a count
on the first alert, stores the alert (the history), and delivers it. `deliver` is for an alert already stored in
a write unit, such as a rejected decision's. Delivery does three things:
- it publishes the alert on the event bus, for StreamAlerts subscribers (each filtered by severity, portfolio and
  code);
- it sends the alert to every configured route that matches: a log line, or a webhook POST with a timeout and
  retries; each route has its own rate limit;
- in a burst, it holds alerts back: past `monitoring.alert_burst_count` alerts within
  `monitoring.alert_burst_seconds`, the rest of the window waits and is sent as one ALERT_BURST summary.
`acknowledge` moves an alert to acknowledged or resolved and streams the change. Health is DEGRADED while the last
delivery to some webhook failed after all its retries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Counter

from allsuse.monitoring.alerts import Burst, Dedupe, RateLimit, Route, load_routes, matching, severity
from allsuse.orchestration.lifecycle import State
from allsuse.store.records import now_iso

log = logging.getLogger("allsuse.alerts")
Post = Callable[[str, bytes, float], int]


def _post(url: str, body: bytes, timeout: float) -> int:
    """POSTs JSON; the HTTP status (an error status is returned, not raised)."""
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class AlertSystem:
    """Stores, de-duplicates, aggregates, routes and streams alerts."""

    name = "alerts"
    depends_on: tuple[str, ...] = ("store", "events")

    def __init__(
        self,
        deps: Any,
        routes: tuple[Route, ...] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        post: Post = _post,
        backoff_seconds: float = 0.2,
    ) -> None:
        cfg = deps.config.monitoring
        self.deps = deps
        self.routes = routes if routes is not None else load_routes(cfg.alert_routes_file)
        self.clock = clock
        self.post = post
        self.backoff = backoff_seconds
        self.dedupe = Dedupe(cfg.alert_dedupe_seconds)
        self.burst = Burst(cfg.alert_burst_count, cfg.alert_burst_seconds)
        self.limits = {r.name: RateLimit(r.rate_per_minute) for r in self.routes}
        self.failing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        registry = deps.metrics.registry
        self.delivered = Counter(
            "allsuse_alerts_delivered", "Alerts delivered by route and result.", ["route", "result"], registry=registry
        )
        self.raised = Counter("allsuse_alerts", "Alerts raised by severity.", ["severity"], registry=registry)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Nothing to open: routes were validated when the service was built."""

    async def stop(self) -> None:
        """Sends what a burst held back, then waits (bounded) for webhook deliveries in flight."""
        await self._release(self.burst.flush(self.clock(), force=True))
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)

    async def health(self) -> State:
        return State.DEGRADED if self.failing else State.RUNNING

    # --- raising -----------------------------------------------------------------------------------------------
    async def raise_alert(self, alert: Mapping[str, Any]) -> dict[str, Any] | None:
        """Stores and delivers an alert (code, severity, message, portfolio_id, account_id, any detail); returns the
        stored alert, or None when it repeated one of the window (its count went up instead)."""
        out = dict(alert)
        out["severity"] = severity(str(out.get("severity", "INFO")))
        now = self.clock()
        repeat = self.dedupe.repeat_of(out, now)
        store = self.deps.store
        if repeat is not None:
            alert_id, count = repeat
            first = await store.aio.call(lambda: store.get_alert(alert_id))
            if first is not None:
                payload = {**first.payload, "count": count, "last_at": now_iso()}
                status = str(first.columns.get("status", "open"))
                await store.aio.call(lambda: store.update_alert(alert_id, status=status, payload=payload))
            return None
        stored = await self._store(out)
        self.dedupe.remember(out, stored["alert_id"], now)
        await self.deliver(stored)
        return stored

    async def _store(self, alert: dict[str, Any]) -> dict[str, Any]:
        store = self.deps.store
        code = str(alert.get("code", "ALERT"))
        record = await store.aio.call(
            lambda: store.raise_alert(
                code.lower(), alert["severity"].lower(), alert, portfolio_id=alert.get("portfolio_id") or None
            )
        )
        return {**alert, "alert_id": record.id, "at": record.created_at, "status": "open", "count": 1}

    async def deliver(self, alert: Mapping[str, Any]) -> None:
        """Streams and routes a stored alert, unless a burst holds it back for the summary."""
        out = {**alert, "severity": severity(str(alert.get("severity", "INFO")))}
        self.raised.labels(severity=out["severity"]).inc()
        now = self.clock()
        await self._release(self.burst.flush(now))
        if not self.burst.admit(now):
            self.burst.hold(out, now)
            return
        self._send(out)

    async def flush(self) -> dict[str, Any] | None:
        """Sends what a burst held once its window has closed (the scheduler calls this every minute): one held
        alert as itself, several as one stored ALERT_BURST summary, which is returned."""
        return await self._release(self.burst.flush(self.clock()))

    async def _release(self, held: list[Mapping[str, Any]]) -> dict[str, Any] | None:
        if not held:
            return None
        if len(held) == 1:
            self._send(dict(held[0]))
            return None
        stored = await self._store(Burst.summary(held))
        self.raised.labels(severity=stored["severity"]).inc()
        self._send(stored)
        return stored

    def _send(self, alert: dict[str, Any]) -> None:
        self.deps.bus.publish("alerts", alert)
        for route in matching(self.routes, alert):
            if not self.limits[route.name].allow(self.clock()):
                self.delivered.labels(route=route.name, result="rate_limited").inc()
                continue
            if route.kind == "log":
                log.warning("alert %s %s %s: %s", alert["severity"], alert.get("code"), alert.get("portfolio_id", ""),
                            alert.get("message", ""))  # fmt: skip
                self.delivered.labels(route=route.name, result="ok").inc()
            else:
                task = asyncio.get_running_loop().create_task(self._webhook(route, alert))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _webhook(self, route: Route, alert: Mapping[str, Any]) -> None:
        body = json.dumps({"route": route.name, "alert": alert}, default=str).encode()
        for attempt in range(route.retries + 1):
            try:
                status = await asyncio.to_thread(self.post, route.url, body, route.timeout_seconds)
            except (OSError, TimeoutError) as exc:
                status, reason = 0, str(exc)
            else:
                reason = f"HTTP {status}"
            if 200 <= status < 300:
                self.failing.discard(route.name)
                self.delivered.labels(route=route.name, result="ok").inc()
                return
            log.info("webhook %s attempt %d failed: %s", route.name, attempt + 1, reason)
            if attempt < route.retries:
                await asyncio.sleep(self.backoff * 2**attempt)
        self.failing.add(route.name)
        self.delivered.labels(route=route.name, result="failed").inc()
        log.error("webhook %s gave up on alert %s after %d attempts", route.name, alert.get("alert_id"),
                  route.retries + 1)  # fmt: skip

    # --- acknowledging -----------------------------------------------------------------------------------------
    async def acknowledge(self, alert_id: str, *, resolve: bool, actor: str, note: str = "") -> dict[str, Any]:
        """Acknowledges (or resolves) an alert and streams the change; returns the alert as stored."""
        store = self.deps.store
        status = "resolved" if resolve else "acknowledged"
        first = await store.aio.call(lambda: store.get_alert(alert_id))
        if first is None:
            from allsuse.server.errors import NotFoundError

            raise NotFoundError(f"alert_id: no alert {alert_id!r}")
        stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
        payload = {**first.payload, f"{status}_by": actor, f"{status}_at": stamp, **({"note": note} if note else {})}
        record = await store.aio.call(lambda: store.update_alert(alert_id, status=status, actor=actor, payload=payload))
        out = {**record.payload, "alert_id": record.id, "at": record.created_at, "status": status}
        out["severity"] = severity(str(out.get("severity", "INFO")))
        self.deps.bus.publish("alerts", out)
        return out


def alert_system(deps: Any) -> AlertSystem:
    """The one AlertSystem of a service."""
    found = vars(deps).get("_alerts")
    if isinstance(found, AlertSystem):
        return found
    system = AlertSystem(deps)
    vars(deps)["_alerts"] = system
    return system


__all__ = ["AlertSystem", "alert_system"]
