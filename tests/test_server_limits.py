"""The limits one caller can hold (allsuse.server.limits), the failed-authentication buckets
(allsuse.server.ratelimit) and their configuration keys; in-process, with real channels where a call is needed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from allsuse import config
from allsuse.errors import InvalidInputError
from allsuse.server import ServiceBinding, build_server, rpc
from allsuse.server.errors import LimitExceededError, MessageTimeoutError, status_for
from allsuse.server.limits import CallLimits, principal_key
from allsuse.server.ratelimit import FailedAuthLimiter, TokenBucketLimiter
from allsuse.server.request import ANONYMOUS, CallState, Principal
from allsuse.v1 import decision_pb2, decision_pb2_grpc, monitor_pb2, monitor_pb2_grpc

TIMEOUT = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_call_limits_count_calls_and_streams_apart_per_key_and_in_total() -> None:
    limits = CallLimits(calls=3, calls_per_key=2, streams=2, streams_per_key=1)
    a1 = limits.acquire("key:a", stream=False)
    limits.acquire("key:a", stream=False)
    with pytest.raises(LimitExceededError, match="too many calls in progress for a: at most 2"):
        limits.acquire("key:a", stream=False)
    s1 = limits.acquire("key:a", stream=True)  # streams are counted apart from calls
    with pytest.raises(LimitExceededError, match="too many streams in progress for a: at most 1"):
        limits.acquire("key:a", stream=True)
    limits.acquire("key:b", stream=False)
    with pytest.raises(LimitExceededError, match="limit of 3 calls"):
        limits.acquire("key:c", stream=False)
    assert (limits.held(False), limits.held(True), limits.held(False, "key:a")) == (3, 1, 2)
    a1()
    a1()  # a second release changes nothing
    assert limits.held(False, "key:a") == 1
    limits.acquire("key:c", stream=False)
    s1()
    assert limits.held(True) == 0 and limits.held(True, "key:a") == 0
    code, details = status_for(LimitExceededError("too many streams"))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and details == "too many streams"
    with pytest.raises(InvalidInputError, match="streams_per_key"):
        CallLimits(calls=1, calls_per_key=1, streams=1, streams_per_key=0)


def test_principal_key_is_the_key_id_or_the_peer_host() -> None:
    call = CallState("r", "/m", "ipv4:10.0.0.7:5555", Principal("k1", "viewer"))
    assert principal_key(call, "ipv4:10.0.0.7:5555") == "key:k1"
    call.principal = ANONYMOUS
    assert principal_key(call, "ipv4:10.0.0.7:5555") == "peer:ipv4:10.0.0.7"
    assert principal_key(None, "ipv6:[::1]:6000") == "peer:ipv6:[::1]"


def test_message_timeout_is_deadline_exceeded_with_its_reason() -> None:
    code, details = status_for(MessageTimeoutError("request message not received within 5 s"))
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED and details == "request message not received within 5 s"


def test_failed_auth_limiter_counts_failures_per_peer_and_per_key_id() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(1.0, 3, clock=clock)
    for _ in range(3):
        assert limiter.begin("peer-a", "k1") == 0.0
    assert limiter.begin("peer-a", "k2") == pytest.approx(1.0)  # the peer's bucket is empty
    assert limiter.begin("peer-b", "k1") == pytest.approx(1.0)  # and so is the key id's
    assert limiter.begin("peer-b", "k2") == 0.0
    limiter.succeeded("peer-b", "k2")  # a valid key gives its tokens back
    for _ in range(2):
        assert limiter.begin("peer-b", "k2") == 0.0
    clock.now = 1.0  # one token back per second
    assert limiter.begin("peer-a", "k3") == 0.0
    assert limiter.begin("peer-a", "k3") > 0


def test_token_bucket_wait_and_refund_take_nothing_and_never_overfill() -> None:
    clock = Clock()
    bucket = TokenBucketLimiter(2.0, 2, clock=clock)
    assert bucket.wait("x") == 0.0
    assert bucket.acquire("x") == 0.0 and bucket.acquire("x") == 0.0
    assert bucket.wait("x") == pytest.approx(0.5)
    bucket.refund("x")
    bucket.refund("x")
    bucket.refund("x")  # capped at the burst
    assert bucket.acquire("x") == 0.0 and bucket.acquire("x") == 0.0 and bucket.acquire("x") > 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALLSUSE_SERVER_MAX_CALLS_PER_KEY": "300"}, r"^server\.max_calls_per_key: must be <= server\.max_concurrent"),
        ({"ALLSUSE_SERVER_MAX_STREAMS_PER_KEY": "0"}, r"^server\.max_streams_per_key: must be >= 1"),
        (
            {"ALLSUSE_SERVER_MAX_STREAMS_PER_KEY": "999"},
            r"^server\.max_streams_per_key: must be <= server\.max_streams",
        ),
        ({"ALLSUSE_SERVER_REQUEST_MESSAGE_TIMEOUT_SECONDS": "0"}, r"request_message_timeout_seconds: must be >= 0.1"),
        ({"ALLSUSE_AUTH_FAILED_BURST": "0"}, r"^auth\.failed_burst: must be >= 1"),
        ({"ALLSUSE_AUTH_FAILED_RATE_PER_SECOND": "-1"}, r"^auth\.failed_rate_per_second: must be >= 0"),
    ],
)
def test_limit_keys_are_validated(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        config.load("development", environ=env)


def test_limit_defaults() -> None:
    server = config.load("development", environ={}).server
    auth = config.load("production", environ={}).auth
    assert (server.max_concurrent_rpcs, server.max_calls_per_key, server.max_streams, server.max_streams_per_key) == (
        256,
        64,
        256,
        8,
    )
    assert (server.max_streams_per_connection, server.request_message_timeout_seconds) == (256, 5.0)
    assert (auth.failed_rate_per_second, auth.failed_burst) == (1.0, 10)


# --- on a real server --------------------------------------------------------------------------------------------


class Streams(monitor_pb2_grpc.MonitorServiceServicer):  # type: ignore[misc]
    """StreamAlerts stays open until cancelled; GetMetrics answers at once."""

    @rpc
    async def StreamAlerts(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        yield monitor_pb2.Alert(alert_id="first")
        await asyncio.Event().wait()

    @rpc
    async def GetMetrics(self, request: Any, context: Any) -> Any:  # noqa: N802
        return monitor_pb2.MetricsSnapshot()


class Slow(decision_pb2_grpc.DecisionServiceServicer):  # type: ignore[misc]
    """ClassifyWeek sleeps `move_pct` seconds."""

    @rpc
    async def ClassifyWeek(self, request: Any, context: Any) -> Any:  # noqa: N802
        await asyncio.sleep(request.move_pct)
        return decision_pb2.ClassifyWeekResponse(code="done")


def _server(**env: str) -> Any:
    base = {"ALLSUSE_SERVER_PORT": "0", "ALLSUSE_METRICS_ENABLED": "false", "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0"}
    cfg = config.load("development", environ={**base, **env})
    streams, slow = Streams(), Slow()
    monitor_roles = {m.name: "viewer" for m in monitor_pb2.DESCRIPTOR.services_by_name["MonitorService"].methods}
    decision_roles = {m.name: "viewer" for m in decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].methods}
    return build_server(
        cfg,
        None,
        [
            ServiceBinding(
                "allsuse.v1.MonitorService",
                lambda s: monitor_pb2_grpc.add_MonitorServiceServicer_to_server(streams, s),
                monitor_roles,
            ),
            ServiceBinding(
                "allsuse.v1.DecisionService",
                lambda s: decision_pb2_grpc.add_DecisionServiceServicer_to_server(slow, s),
                decision_roles,
            ),
        ],
    )


def test_streams_per_caller_are_limited_and_released_when_they_end() -> None:
    async def scenario() -> None:
        server = _server(ALLSUSE_SERVER_MAX_STREAMS_PER_KEY="2")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = monitor_pb2_grpc.MonitorServiceStub(channel)
                first = [stub.StreamAlerts(monitor_pb2.StreamAlertsRequest(), timeout=TIMEOUT) for _ in range(2)]
                for call in first:
                    assert (await call.read()).alert_id == "first"
                third = stub.StreamAlerts(monitor_pb2.StreamAlertsRequest(), timeout=TIMEOUT)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await third.read()
                assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "too many streams in progress" in (refused.value.details() or "")
                assert server.limits.held(True) == 2
                await stub.GetMetrics(monitor_pb2.GetMetricsRequest(), timeout=TIMEOUT)  # calls are apart
                first[0].cancel()
                for _ in range(100):
                    if server.limits.held(True) == 1:
                        break
                    await asyncio.sleep(0.01)
                assert server.limits.held(True) == 1  # the cancelled stream gave its slot back
                again = stub.StreamAlerts(monitor_pb2.StreamAlertsRequest(), timeout=TIMEOUT)
                assert (await again.read()).alert_id == "first"
                again.cancel()
                first[1].cancel()
        finally:
            await server.stop(grace=0, drain_delay=0)

    asyncio.run(scenario())


def test_calls_per_caller_are_limited_once_their_message_arrived() -> None:
    async def scenario() -> None:
        server = _server(ALLSUSE_SERVER_MAX_CALLS_PER_KEY="2")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = decision_pb2_grpc.DecisionServiceStub(channel)
                slow = [
                    asyncio.ensure_future(
                        stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(move_pct=0.5), timeout=TIMEOUT)
                    )
                    for _ in range(2)
                ]
                for _ in range(100):
                    if server.limits.held(False) == 2:
                        break
                    await asyncio.sleep(0.01)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(), timeout=TIMEOUT)
                assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                assert [r.code for r in await asyncio.gather(*slow)] == ["done", "done"]
                reply = await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(), timeout=TIMEOUT)
                assert reply.code == "done" and server.limits.held(False) == 0
        finally:
            await server.stop(grace=0, drain_delay=0)

    asyncio.run(scenario())
