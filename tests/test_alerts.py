"""The alert system: severities, routes and their validation, de-duplication, burst aggregation and rate limits
with a controllable clock; a webhook against a real local HTTP receiver that fails and then recovers (retries,
timeout, component health); and StreamAlerts resuming from after_alert_id and AcknowledgeAlert over real gRPC."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest

from allsuse import config
from allsuse.errors import InvalidInputError
from allsuse.monitoring.alerts import Burst, Dedupe, RateLimit, Route, at_least, load_routes, severity
from allsuse.orchestration.lifecycle import State
from allsuse.server.app import Service
from allsuse.store import Store
from allsuse.v1 import monitor_pb2, monitor_pb2_grpc
from tests.rpc_support import TIMEOUT, bearer, serve, service_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_severities_order_and_legacy_names() -> None:
    assert [severity(s) for s in ("info", "warning", "critical", "low", "High")] == [
        "INFO", "MEDIUM", "CRITICAL", "LOW", "HIGH",
    ]  # fmt: skip
    assert at_least("HIGH", "MEDIUM") and at_least("CRITICAL", "critical") and not at_least("LOW", "warning")
    with pytest.raises(InvalidInputError) as err:
        severity("urgent", "min_severity")
    assert err.value.field == "min_severity"


def test_routes_file_is_validated_naming_the_route_and_key(tmp_path: Path) -> None:
    good = tmp_path / "routes.yaml"
    good.write_text(
        "routes:\n"
        "  - {name: ops, kind: log}\n"
        "  - {name: pager, kind: webhook, url: 'http://127.0.0.1:9/x', min_severity: HIGH, codes: [AUDIT_BROKEN],\n"
        "     portfolios: [p1], timeout_seconds: 1, retries: 2, rate_per_minute: 6}\n"
    )
    ops, pager = load_routes(good)
    assert ops == Route("ops") and pager.min_severity == "HIGH" and pager.retries == 2
    alert = {"severity": "CRITICAL", "code": "AUDIT_BROKEN", "portfolio_id": "p1"}
    assert pager.matches(alert) and ops.matches(alert)
    assert not pager.matches({**alert, "severity": "MEDIUM"})
    assert not pager.matches({**alert, "code": "EOD_REPORT"}) and not pager.matches({**alert, "portfolio_id": "p2"})
    for text, field in (
        ("routes:\n  - {name: x, kind: email}\n", "routes[0].kind"),
        ("routes:\n  - {name: x, kind: webhook, url: 'ftp://h'}\n", "routes[0].url"),
        ("routes:\n  - {name: x, colour: red}\n", "routes[0].colour"),
        ("routes:\n  - {name: x, retries: 99}\n", "routes[0].retries"),
        ("routes:\n  - {name: x, min_severity: loud}\n", "routes[0].min_severity"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(InvalidInputError) as err:
            load_routes(bad)
        assert err.value.field == field, text
    # A bad file stops the configuration (and so the server start), naming the key.
    with pytest.raises(InvalidInputError) as err:
        config.load("development", {"ALLSUSE_MONITORING_ALERT_ROUTES_FILE": str(tmp_path / "missing.yaml")})
    assert err.value.field == "monitoring.alert_routes_file"


def test_dedupe_burst_and_rate_limit_follow_the_clock() -> None:
    d = Dedupe(window=300)
    a = {"code": "X", "portfolio_id": "p", "message": "m"}
    assert d.repeat_of(a, 0) is None
    d.remember(a, "id1", 0)
    assert d.repeat_of(a, 100) == ("id1", 2) and d.repeat_of(a, 299) == ("id1", 3)
    assert d.repeat_of({**a, "message": "other"}, 100) is None
    assert d.repeat_of(a, 300) is None  # the window has passed: a new alert

    b = Burst(limit=3, window=60)
    assert [b.admit(t) for t in (0, 1, 2)] == [True, True, True]
    assert not b.admit(3)
    b.hold({"code": "A", "severity": "LOW", "alert_id": "h1", "portfolio_id": "p"}, 3)
    assert not b.admit(50)  # held back until the summary is out, even though the first left the window
    b.hold({"code": "A", "severity": "HIGH", "alert_id": "h2", "portfolio_id": "p"}, 50)
    b.hold({"code": "B", "severity": "LOW", "alert_id": "h3", "portfolio_id": "p"}, 51)
    assert b.flush(62) == []  # the held window (from 3) closes at 63
    held = b.flush(63)
    assert [a["alert_id"] for a in held] == ["h1", "h2", "h3"]
    summary = Burst.summary(held)
    assert summary["code"] == "ALERT_BURST" and summary["held"] == 3
    assert summary["severity"] == "HIGH" and summary["codes"] == {"A": 2, "B": 1} and summary["portfolio_id"] == "p"
    assert summary["message"] == "3 alerts held back in a burst: A x2, B x1"
    assert b.admit(64) and b.flush(200) == []

    r = RateLimit(rate_per_minute=2)
    assert [r.allow(0), r.allow(0), r.allow(1)] == [True, True, False]
    assert r.allow(30.5) and not r.allow(31)  # one token back every 30 s


class Receiver:
    """A local HTTP receiver: fails the first `fail` requests with 500 (or sleeps `delay` s), then answers 200."""

    def __init__(self, fail: int = 0, delay: float = 0.0) -> None:
        self.fail, self.delay, self.bodies = fail, delay, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.bodies.append(json.loads(body))
                if owner.delay:
                    time.sleep(owner.delay)
                status = 500 if len(owner.bodies) <= owner.fail else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=2)
    yield r
    r.close()


def _service(tmp_path: Path, routes: str, burst: int = 100) -> Service:
    path = tmp_path / "routes.yaml"
    path.write_text(routes)
    return Service(
        service_config(
            tmp_path,
            ALLSUSE_MONITORING_ALERT_ROUTES_FILE=str(path),
            ALLSUSE_MONITORING_ALERT_BURST_COUNT=str(burst),
            ALLSUSE_MONITORING_ALERT_BURST_SECONDS="60",
        )
    )


def test_webhook_retries_a_failing_receiver_then_delivers(tmp_path: Path, receiver: Receiver) -> None:
    routes = (
        f"routes:\n  - {{name: hook, kind: webhook, url: '{receiver.url}', min_severity: HIGH, retries: 3,"
        " timeout_seconds: 2}\n  - {name: log, kind: log}\n"
    )

    async def scenario() -> None:
        service = _service(tmp_path, routes)
        alerts = service.alerts
        alerts.backoff = 0.01
        await service.start()
        try:
            low = await alerts.raise_alert({"severity": "LOW", "code": "NOISE", "message": "not for the pager"})
            high = await alerts.raise_alert({"severity": "HIGH", "code": "DRAWDOWN", "message": "gen at 12%"})
            assert low is not None and high is not None
            await asyncio.wait_for(asyncio.gather(*alerts._tasks), timeout=TIMEOUT)
            # Two 500s, then delivered on the third attempt; the LOW alert never reached the webhook.
            assert [b["alert"]["code"] for b in receiver.bodies] == ["DRAWDOWN"] * 3
            assert receiver.bodies[-1]["alert"]["alert_id"] == high["alert_id"]
            assert await alerts.health() == State.RUNNING
            sample = service.metrics.registry.get_sample_value
            assert sample("allsuse_alerts_delivered_total", {"route": "hook", "result": "ok"}) == 1.0
            assert sample("allsuse_alerts_delivered_total", {"route": "log", "result": "ok"}) == 2.0
            # A receiver that keeps failing: given up after the retries, the component is DEGRADED until a
            # delivery succeeds again.
            receiver.fail = 100
            await alerts.raise_alert({"severity": "CRITICAL", "code": "AUDIT_BROKEN", "message": "chain"})
            await asyncio.wait_for(asyncio.gather(*alerts._tasks), timeout=TIMEOUT)
            assert len(receiver.bodies) == 3 + 4 and await alerts.health() == State.DEGRADED
            assert sample("allsuse_alerts_delivered_total", {"route": "hook", "result": "failed"}) == 1.0
            receiver.fail = 0
            await alerts.raise_alert({"severity": "HIGH", "code": "DRAWDOWN", "message": "gen at 13%"})
            await asyncio.wait_for(asyncio.gather(*alerts._tasks), timeout=TIMEOUT)
            assert await alerts.health() == State.RUNNING
        finally:
            await service.stop()

    asyncio.run(scenario())


def test_webhook_timeout_counts_as_a_failure(tmp_path: Path) -> None:
    slow = Receiver(delay=1.0)
    routes = f"routes:\n  - {{name: hook, kind: webhook, url: '{slow.url}', retries: 1, timeout_seconds: 0.2}}\n"

    async def scenario() -> None:
        service = _service(tmp_path, routes)
        service.alerts.backoff = 0.01
        await service.start()
        try:
            started = time.monotonic()
            await service.alerts.raise_alert({"severity": "HIGH", "code": "SLOW", "message": "m"})
            await asyncio.wait_for(asyncio.gather(*service.alerts._tasks), timeout=TIMEOUT)
            assert time.monotonic() - started < 5.0 and len(slow.bodies) == 2
            assert await service.alerts.health() == State.DEGRADED
        finally:
            await service.stop()

    try:
        asyncio.run(scenario())
    finally:
        slow.close()


def test_repeats_are_counted_bursts_summarised_and_rate_limits_hold(tmp_path: Path) -> None:
    routes = "routes:\n  - {name: log, kind: log, rate_per_minute: 2}\n"

    async def scenario() -> None:
        service = _service(tmp_path, routes, burst=3)
        clock = Clock()
        alerts = service.alerts
        alerts.clock = clock
        seen: list[dict[str, Any]] = []
        await service.start()

        async def collect(event: Any) -> None:
            seen.append(event.payload)

        sub = service.bus.subscribe("alerts", collect, name="test")
        try:
            first = await alerts.raise_alert({"severity": "warning", "code": "R09", "message": "ES over budget"})
            assert first is not None and first["severity"] == "MEDIUM"
            for _ in range(3):
                clock.now += 10
                assert (
                    await alerts.raise_alert({"severity": "warning", "code": "R09", "message": "ES over budget"})
                    is None
                )
            stored = service.deps.store.get_alert(first["alert_id"])
            assert stored is not None and stored.payload["count"] == 4
            # A burst: the limit is 3 in 60 s; one went out above, two more pass, the rest are held for a summary.
            for i in range(6):
                await alerts.raise_alert({"severity": "LOW", "code": f"B{i % 2}", "message": f"burst {i}"})
            await asyncio.sleep(0.05)
            codes = [a["code"] for a in seen]
            assert codes == ["R09", "B0", "B1"]
            assert len(service.deps.store.list_alerts(limit=100)) == 7  # every alert is in the history
            clock.now += 61
            summary = await alerts.flush()
            assert summary is not None and summary["code"] == "ALERT_BURST" and summary["held"] == 4
            await asyncio.sleep(0.05)
            assert [a["code"] for a in seen][-1] == "ALERT_BURST"
            # The log route allows 2 a minute (a token back every 30 s): R09 at t, B0 and B1 at t + 30, the summary
            # and LATE at t + 91 pass; LATE2 in the same second finds the bucket empty. It is still streamed.
            await alerts.raise_alert({"severity": "HIGH", "code": "LATE", "message": "m"})
            await alerts.raise_alert({"severity": "HIGH", "code": "LATE2", "message": "m"})
            sample = service.metrics.registry.get_sample_value
            assert sample("allsuse_alerts_delivered_total", {"route": "log", "result": "rate_limited"}) == 1.0
            assert sample("allsuse_alerts_delivered_total", {"route": "log", "result": "ok"}) == 5.0
            await asyncio.sleep(0.05)
            assert [a["code"] for a in seen][-2:] == ["LATE", "LATE2"]
        finally:
            await sub.close(timeout=1.0)
            await service.stop()

    asyncio.run(scenario())


def test_stream_resumes_after_an_alert_and_acknowledge_is_streamed(tmp_path: Path) -> None:
    url = str(tmp_path / "allsuse.db")
    with Store(url) as store:
        tokens = {r: store.create_api_key(r).token for r in ("viewer", "trader")}
        ids = [
            store.raise_alert(code.lower(), sev, {"code": code, "severity": sev, "message": code}).id
            for code, sev in (("A1", "info"), ("A2", "HIGH"), ("A3", "CRITICAL"), ("A4", "LOW"))
        ]
    with serve(url, auth=True) as (address, _), grpc.insecure_channel(address) as channel:
        monitor = monitor_pb2_grpc.MonitorServiceStub(channel)
        stream = monitor.StreamAlerts(
            monitor_pb2.StreamAlertsRequest(after_alert_id=ids[0], min_severity="MEDIUM"),
            metadata=bearer(tokens["viewer"]),
            timeout=TIMEOUT,
        )
        got = [next(stream), next(stream)]
        # A4 (LOW) is below the floor; A1 is the cursor (the overlap replays alerts before it, never itself).
        assert [(a.code, a.severity) for a in got] == [("A2", "HIGH"), ("A3", "CRITICAL")]
        acked = monitor.AcknowledgeAlert(
            monitor_pb2.AcknowledgeAlertRequest(alert_id=ids[2], note="looking"),
            metadata=bearer(tokens["trader"]),
            timeout=TIMEOUT,
        )
        assert acked.status == "acknowledged" and acked.code == "A3"
        update = next(stream)
        assert update.alert_id == ids[2] and update.status == "acknowledged"
        stream.cancel()
        with pytest.raises(grpc.RpcError) as err:
            monitor.AcknowledgeAlert(
                monitor_pb2.AcknowledgeAlertRequest(alert_id=ids[2], resolve=True),
                metadata=bearer(tokens["viewer"]),
                timeout=TIMEOUT,
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        resolved = monitor.AcknowledgeAlert(
            monitor_pb2.AcknowledgeAlertRequest(alert_id=ids[2], resolve=True),
            metadata=bearer(tokens["trader"]),
            timeout=TIMEOUT,
        )
        assert resolved.status == "resolved"
        for bad in (
            monitor_pb2.StreamAlertsRequest(after_alert_id="f" * 32),
            monitor_pb2.StreamAlertsRequest(min_severity="loud"),
        ):
            with pytest.raises(grpc.RpcError) as err:
                next(monitor.StreamAlerts(bad, metadata=bearer(tokens["viewer"]), timeout=TIMEOUT))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with Store(url) as store:
        record = store.get_alert(ids[2])
        assert record is not None and record.columns["status"] == "resolved"
        assert record.payload["note"] == "looking" and "resolved_by" in record.payload
