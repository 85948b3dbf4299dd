"""The grpc.aio server over real channels on 127.0.0.1: health, reflection, the interceptors, errors, TLS.

A throwaway DecisionService / MonitorService servicer (below) exercises the interceptors; every call has a
timeout.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from allsuse import config
from allsuse.errors import InvalidInputError
from allsuse.orchestration import Lifecycle, State
from allsuse.server import (
    ServiceBinding,
    build_server,
    check_deadline,
    current_principal,
    current_request_id,
    rpc,
    run_blocking,
)
from allsuse.server import monitor as monitor_module
from allsuse.server.app import AllsuseServer
from allsuse.server.errors import NotFoundError
from allsuse.server.metrics import MetricsEndpoint
from allsuse.store import Store
from allsuse.v1 import decision_pb2, decision_pb2_grpc, monitor_pb2, monitor_pb2_grpc

TIMEOUT = 5.0
DECISION = "allsuse.v1.DecisionService"
MONITOR = "allsuse.v1.MonitorService"
CLASSIFY = f"/{DECISION}/ClassifyWeek"


class DecisionStub(decision_pb2_grpc.DecisionServiceServicer):  # type: ignore[misc]
    """ClassifyWeek (viewer) answers per `position`; SizePosition (trader, @rpc); ApproveDecision (admin)."""

    async def ClassifyWeek(self, request: Any, context: Any) -> Any:  # noqa: N802
        position = request.position
        if position == "boom":
            raise RuntimeError("cannot read /var/lib/allsuse/secret.db: SELECT secret_hash FROM api_keys")
        if position == "invalid":
            raise InvalidInputError.of("move_pct", "must be finite, got nan")
        if position == "missing":
            raise NotFoundError("portfolio 'p9' does not exist")
        if position == "deadline":
            check_deadline(context, need_seconds=30.0)
        if position == "slow":
            await asyncio.sleep(request.move_pct)
        if position == "blocking":
            import threading

            name = await run_blocking(lambda: threading.current_thread().name)
            return decision_pb2.ClassifyWeekResponse(code=name, action=current_request_id())
        if position == "whoami":
            principal = current_principal()
            assert principal is not None
            return decision_pb2.ClassifyWeekResponse(
                code=principal.key_id, name=principal.role, action=current_request_id()
            )
        return decision_pb2.ClassifyWeekResponse(code="P-EW", name="put expired worthless", confidence=0.9)

    @rpc
    async def SizePosition(self, request: Any, context: Any) -> Any:  # noqa: N802
        if request.strike < 0:
            raise InvalidInputError.of("strike", f"must be positive, got {request.strike}")
        return decision_pb2.SizePositionResponse(contracts=3, binding="size")

    async def ApproveDecision(self, request: Any, context: Any) -> Any:  # noqa: N802
        return decision_pb2.Decision(decision_id=request.decision_id)


class MonitorStub(monitor_pb2_grpc.MonitorServiceServicer):  # type: ignore[misc]
    """StreamAlerts (viewer) yields three alerts, or fails after one when portfolio_id is "boom"."""

    @rpc
    async def StreamAlerts(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        for n in range(3):
            if n == 1 and request.portfolio_id == "boom":
                raise InvalidInputError.of("portfolio_id", "stream broke")
            yield monitor_pb2.Alert(alert_id=f"a{n}", severity="info", message=current_request_id())


DECISION_ROLES = {
    "Decide": "trader",
    "AssessRisk": "viewer",
    "SizePosition": "trader",
    "SelectStrike": "viewer",
    "ClassifyWeek": "viewer",
    "CheckCompliance": "viewer",
    "ApproveDecision": "admin",
    "RecordOutcome": "trader",
}
MONITOR_ROLES = dict(monitor_module.ROLES)


def bindings() -> list[ServiceBinding]:
    decision, monitor = DecisionStub(), MonitorStub()
    return [
        ServiceBinding(
            DECISION, lambda s: decision_pb2_grpc.add_DecisionServiceServicer_to_server(decision, s), DECISION_ROLES
        ),
        ServiceBinding(
            MONITOR, lambda s: monitor_pb2_grpc.add_MonitorServiceServicer_to_server(monitor, s), MONITOR_ROLES
        ),
    ]


def make_config(**env: str) -> config.Config:
    base = {"ALLSUSE_SERVER_PORT": "0", "ALLSUSE_METRICS_ENABLED": "false", "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0"}
    return config.load("development", environ={**base, **env})


@asynccontextmanager
async def serving(cfg: config.Config, store: Store | None = None) -> AsyncIterator[AllsuseServer]:
    server = build_server(cfg, store, bindings())
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0, drain_delay=0)


@asynccontextmanager
async def channel_to(server: AllsuseServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield channel


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def keyed_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = Store(tmp_path_factory.mktemp("store") / "allsuse.db")
    tokens = {role: store.create_api_key(role).token for role in ("viewer", "trader", "admin")}
    revoked = store.create_api_key("trader")
    store.revoke_api_key(revoked.key_id)
    tokens["revoked"] = revoked.token
    tokens["operator"] = store.create_api_key("operator").token  # a role the server does not know
    tokens["wrong-secret"] = tokens["viewer"].split(".")[0] + ".not-the-secret"
    yield store, tokens
    store.close()


def run(scenario: Callable[[], Any]) -> None:
    asyncio.run(scenario())


# --- health and reflection --------------------------------------------------------------------------------------


def test_health_and_reflection_list_every_service() -> None:
    async def scenario() -> None:
        async with serving(make_config()) as server, channel_to(server) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", DECISION, MONITOR):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await health.Check(health_pb2.HealthCheckRequest(service="nope.Service"), timeout=TIMEOUT)
            assert unknown.value.code() is grpc.StatusCode.NOT_FOUND

            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            names: list[str] = []
            async for response in stub.ServerReflectionInfo(iter([request]), timeout=TIMEOUT):
                names.extend(s.name for s in response.list_services_response.service)
            assert {DECISION, MONITOR, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(
                names
            )

    run(scenario)


def test_health_follows_the_lifecycle() -> None:
    async def scenario() -> None:
        cfg = make_config()
        server = build_server(cfg, None, bindings())
        lifecycle = Lifecycle("allsuse")
        server.follow(lifecycle)
        await server.start()
        try:
            async with channel_to(server) as channel:
                health = health_pb2_grpc.HealthStub(channel)

                async def status(name: str = DECISION) -> int:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
                    return int(reply.status)

                serving_, not_serving = (
                    health_pb2.HealthCheckResponse.SERVING,
                    health_pb2.HealthCheckResponse.NOT_SERVING,
                )
                assert await status() == not_serving  # listening, but the service is not RUNNING yet
                expected = [
                    (State.STARTING, not_serving),
                    (State.RUNNING, serving_),
                    (State.DEGRADED, serving_),
                    (State.FAULTED, not_serving),
                    (State.STARTING, not_serving),
                    (State.RUNNING, serving_),
                    (State.STOPPING, not_serving),
                ]
                for target, want in expected:
                    await lifecycle.move(target)
                    assert await status() == want, target
                    assert await status("") == want, target
        finally:
            await server.stop(grace=0, drain_delay=0)

    run(scenario)


def test_stop_turns_not_serving_first_and_drains_in_flight_calls() -> None:
    async def scenario() -> None:
        server = build_server(make_config(), None, bindings())
        await server.start()
        async with channel_to(server) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            decision = decision_pb2_grpc.DecisionServiceStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=DECISION), timeout=TIMEOUT)
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            slow = asyncio.ensure_future(
                decision.ClassifyWeek(decision_pb2.ClassifyWeekRequest(position="slow", move_pct=0.8), timeout=TIMEOUT)
            )
            while server.tracker.active == 0:  # the slow call has reached the handler
                await asyncio.sleep(0.01)
            stopping = asyncio.ensure_future(server.stop(grace=3.0, drain_delay=0.3))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            # the listener is still open during the drain delay and answers NOT_SERVING
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert (await slow).code == "P-EW"  # the in-flight call completed
            await asyncio.wait_for(stopping, TIMEOUT)
            # the Watch stream was ended by the server (OK), not cut off when the grace ran out
            while (message := await watch.read()) is not grpc.aio.EOF:
                assert message.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await watch.code() is grpc.StatusCode.OK
            with pytest.raises(grpc.aio.AioRpcError) as after:
                await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            assert after.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

    run(scenario)


# --- auth ---------------------------------------------------------------------------------------------------------


async def _code_of(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_auth_matrix(keyed_store: Any) -> None:
    store, tokens = keyed_store
    ok, denied, unauth = grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED
    # credential -> expected code for (ClassifyWeek: viewer, SizePosition: trader, ApproveDecision: admin)
    matrix: dict[str | None, tuple[grpc.StatusCode, ...]] = {
        None: (unauth, unauth, unauth),
        "garbage": (unauth, unauth, unauth),
        "wrong-secret": (unauth, unauth, unauth),
        "revoked": (unauth, unauth, unauth),
        "operator": (denied, denied, denied),
        "viewer": (ok, denied, denied),
        "trader": (ok, ok, denied),
        "admin": (ok, ok, ok),
    }

    async def scenario() -> None:
        cfg = make_config(ALLSUSE_AUTH_ENABLED="true")
        async with serving(cfg, store) as server, channel_to(server) as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            for credential, expected in matrix.items():
                if credential is None:
                    metadata: tuple[tuple[str, str], ...] = ()
                elif credential == "garbage":
                    metadata = bearer("no-dot-in-this-token")
                else:
                    metadata = bearer(tokens[credential])
                got = (
                    await _code_of(
                        stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(), metadata=metadata, timeout=TIMEOUT)
                    ),
                    await _code_of(
                        stub.SizePosition(decision_pb2.SizePositionRequest(), metadata=metadata, timeout=TIMEOUT)
                    ),
                    await _code_of(
                        stub.ApproveDecision(decision_pb2.ApproveDecisionRequest(), metadata=metadata, timeout=TIMEOUT)
                    ),
                )
                assert got == expected, credential

            # x-api-key works too, and the handler sees the principal
            reply = await stub.ClassifyWeek(
                decision_pb2.ClassifyWeekRequest(position="whoami"),
                metadata=(("x-api-key", tokens["trader"]),),
                timeout=TIMEOUT,
            )
            assert reply.code == tokens["trader"].split(".")[0] and reply.name == "trader"

            # the denial names the role and the method; the missing key says how to send one
            with pytest.raises(grpc.aio.AioRpcError) as denied_call:
                await stub.ApproveDecision(
                    decision_pb2.ApproveDecisionRequest(), metadata=bearer(tokens["viewer"]), timeout=TIMEOUT
                )
            assert "viewer" in denied_call.value.details() and "ApproveDecision" in denied_call.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(), timeout=TIMEOUT)
            assert "authorization: Bearer" in missing.value.details()
            assert tokens["viewer"].split(".")[1] not in denied_call.value.details()

            # health and reflection never need a key
            health = health_pb2_grpc.HealthStub(channel)
            reply_h = await health.Check(health_pb2.HealthCheckRequest(service=DECISION), timeout=TIMEOUT)
            assert reply_h.status == health_pb2.HealthCheckResponse.SERVING
            stub_r = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for response in stub_r.ServerReflectionInfo(iter([request]), timeout=TIMEOUT):
                assert response.list_services_response.service

    run(scenario)


def test_auth_disabled_makes_every_caller_the_anonymous_admin() -> None:
    async def scenario() -> None:
        async with serving(make_config()) as server, channel_to(server) as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            reply = await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(position="whoami"), timeout=TIMEOUT)
            assert (reply.code, reply.name) == ("anonymous", "admin")
            await stub.ApproveDecision(decision_pb2.ApproveDecisionRequest(decision_id="d1"), timeout=TIMEOUT)

    run(scenario)


def test_rate_limit_answers_resource_exhausted_per_key(keyed_store: Any) -> None:
    store, tokens = keyed_store

    async def scenario() -> None:
        # 0.001 tokens/s: nothing refills during the test, so the outcome does not depend on timing
        cfg = make_config(
            ALLSUSE_AUTH_ENABLED="true", ALLSUSE_AUTH_RATE_LIMIT_PER_SECOND="0.001", ALLSUSE_AUTH_RATE_LIMIT_BURST="2"
        )
        async with serving(cfg, store) as server, channel_to(server) as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            viewer = bearer(tokens["viewer"])
            for _ in range(2):
                await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(), metadata=viewer, timeout=TIMEOUT)
            with pytest.raises(grpc.aio.AioRpcError) as limited:
                await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(), metadata=viewer, timeout=TIMEOUT)
            assert limited.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            trailers = dict(limited.value.trailing_metadata())
            assert int(trailers["retry-after-ms"]) > 0 and trailers["x-request-id"]
            # another key has its own bucket; health is never limited
            await stub.ClassifyWeek(
                decision_pb2.ClassifyWeekRequest(), metadata=bearer(tokens["admin"]), timeout=TIMEOUT
            )
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(5):
                await health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)

    run(scenario)


# --- errors, request id, deadlines ----------------------------------------------------------------------------------


def test_unexpected_exception_is_internal_without_details_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with serving(make_config()) as server, channel_to(server) as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.ClassifyWeek(
                    decision_pb2.ClassifyWeekRequest(position="boom"),
                    metadata=(("x-request-id", "req-boom-1"),),
                    timeout=TIMEOUT,
                )
            error = failed.value
            assert error.code() is grpc.StatusCode.INTERNAL
            assert error.details() == "internal error (request id req-boom-1)"
            for leak in ("/var/lib", "SELECT", "Traceback", "RuntimeError", ".py"):
                assert leak not in error.details()
            assert dict(error.trailing_metadata())["x-request-id"] == "req-boom-1"

    with caplog.at_level(logging.INFO):
        run(scenario)
    logged = [r for r in caplog.records if r.name == "allsuse.server.errors"]
    assert logged and logged[0].exc_info is not None and "req-boom-1" in logged[0].getMessage()
    access = [r for r in caplog.records if r.name == "allsuse.access"]
    fields = access[-1].__dict__["access_fields"]
    assert fields["code"] == "INTERNAL" and fields["request_id"] == "req-boom-1" and fields["method"] == CLASSIFY


def test_mapped_errors_name_the_field_and_keep_the_request_id() -> None:
    async def scenario() -> None:
        async with serving(make_config()) as server, channel_to(server) as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as invalid:
                await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(position="invalid"), timeout=TIMEOUT)
            assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert invalid.value.details() == "move_pct: must be finite, got nan"
            trailers = dict(invalid.value.trailing_metadata())
            assert trailers["x-invalid-field"] == "move_pct" and re.fullmatch(r"[0-9a-f]{32}", trailers["x-request-id"])

            with pytest.raises(grpc.aio.AioRpcError) as via_decorator:  # @rpc maps with the same table
                await stub.SizePosition(decision_pb2.SizePositionRequest(strike=-1.0), timeout=TIMEOUT)
            assert via_decorator.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert via_decorator.value.details().startswith("strike: ")

            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(position="missing"), timeout=TIMEOUT)
            assert missing.value.code() is grpc.StatusCode.NOT_FOUND

            with pytest.raises(grpc.aio.AioRpcError) as late:
                await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(position="deadline"), timeout=TIMEOUT)
            assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

            with pytest.raises(grpc.aio.AioRpcError) as unimplemented:
                await stub.Decide(decision_pb2.DecideRequest(), timeout=TIMEOUT)
            assert unimplemented.value.code() is grpc.StatusCode.UNIMPLEMENTED

            with pytest.raises(grpc.aio.AioRpcError) as too_big:  # 4 MiB receive limit
                await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(position="x" * (5 << 20)), timeout=TIMEOUT)
            assert too_big.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED

    run(scenario)


def test_request_id_is_echoed_and_visible_to_handlers() -> None:
    async def scenario() -> None:
        async with serving(make_config()) as server, channel_to(server) as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            call = stub.ClassifyWeek(
                decision_pb2.ClassifyWeekRequest(position="whoami"),
                metadata=(("x-request-id", "abc-123"),),
                timeout=TIMEOUT,
            )
            reply = await call
            assert reply.action == "abc-123"
            assert dict(await call.trailing_metadata())["x-request-id"] == "abc-123"

            generated = stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(position="whoami"), timeout=TIMEOUT)
            reply = await generated
            assert re.fullmatch(r"[0-9a-f]{32}", reply.action)
            assert dict(await generated.trailing_metadata())["x-request-id"] == reply.action

            # an id that could forge log lines is replaced
            bad = stub.ClassifyWeek(
                decision_pb2.ClassifyWeekRequest(position="whoami"),
                metadata=(("x-request-id", 'x" injected'),),
                timeout=TIMEOUT,
            )
            assert re.fullmatch(r"[0-9a-f]{32}", (await bad).action)

            # run_blocking: off the loop, on the server's pool, with the request id
            blocking = await stub.ClassifyWeek(
                decision_pb2.ClassifyWeekRequest(position="blocking"),
                metadata=(("x-request-id", "r-7"),),
                timeout=TIMEOUT,
            )
            assert blocking.code.startswith("allsuse-blocking") and blocking.action == "r-7"

    run(scenario)


def test_server_streaming_passes_the_same_interceptors(keyed_store: Any) -> None:
    store, tokens = keyed_store

    async def scenario() -> None:
        async with serving(make_config(ALLSUSE_AUTH_ENABLED="true"), store) as server, channel_to(server) as channel:
            stub = monitor_pb2_grpc.MonitorServiceStub(channel)
            call = stub.StreamAlerts(
                monitor_pb2.StreamAlertsRequest(),
                metadata=(*bearer(tokens["viewer"]), ("x-request-id", "stream-1")),
                timeout=TIMEOUT,
            )
            assert dict(await call.initial_metadata())["x-request-id"] == "stream-1"
            alerts = [alert async for alert in call]
            assert [a.alert_id for a in alerts] == ["a0", "a1", "a2"]
            assert {a.message for a in alerts} == {"stream-1"}
            assert await call.code() is grpc.StatusCode.OK

            unauthenticated = stub.StreamAlerts(monitor_pb2.StreamAlertsRequest(), timeout=TIMEOUT)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in unauthenticated:
                    pass
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED

            broken = stub.StreamAlerts(
                monitor_pb2.StreamAlertsRequest(portfolio_id="boom"), metadata=bearer(tokens["viewer"]), timeout=TIMEOUT
            )
            received: list[str] = []
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                async for alert in broken:
                    received.append(alert.alert_id)
            assert received == ["a0"]
            assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert failed.value.details().startswith("portfolio_id: ")

    run(scenario)


# --- metrics ------------------------------------------------------------------------------------------------------


def test_metrics_endpoint_serves_the_counters() -> None:
    async def scenario() -> None:
        async with serving(make_config()) as server, channel_to(server) as channel:
            endpoint = MetricsEndpoint(server.metrics, "127.0.0.1", 0)
            await endpoint.start()
            try:
                stub = decision_pb2_grpc.DecisionServiceStub(channel)
                for _ in range(2):
                    await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(), timeout=TIMEOUT)
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(position="invalid"), timeout=TIMEOUT)

                def fetch() -> str:
                    url = f"http://127.0.0.1:{endpoint.port}/metrics"
                    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                        return str(response.read().decode())

                text = await asyncio.to_thread(fetch)
            finally:
                await endpoint.stop()
        ok = f'allsuse_grpc_requests_total{{code="OK",method="{CLASSIFY}"}} 2.0'
        invalid = f'allsuse_grpc_requests_total{{code="INVALID_ARGUMENT",method="{CLASSIFY}"}} 1.0'
        assert ok in text and invalid in text
        assert f'allsuse_grpc_request_duration_seconds_count{{method="{CLASSIFY}"}} 3.0' in text
        assert "allsuse_grpc_requests_in_flight 0.0" in text
        assert "allsuse_service_serving 1.0" in text

    run(scenario)


# --- TLS ----------------------------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 / localhost and its key."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    cfg = make_config(ALLSUSE_TLS_CERT_FILE=str(cert), ALLSUSE_TLS_KEY_FILE=str(key))
    assert cfg.tls.enabled

    async def scenario() -> None:
        async with serving(cfg) as server:
            credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
            async with grpc.aio.secure_channel(server.address, credentials) as channel:
                stub = decision_pb2_grpc.DecisionServiceStub(channel)
                assert (await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(), timeout=TIMEOUT)).code == "P-EW"
            async with grpc.aio.insecure_channel(server.address) as plain:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=2.0)
                assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            from allsuse.cli import main

            ok = await asyncio.to_thread(main, ["healthcheck", "--address", server.address, "--tls-ca", str(cert)])
            assert ok == 0

    run(scenario)


# --- building -----------------------------------------------------------------------------------------------------


def test_bindings_need_a_known_role_for_every_method() -> None:
    cfg = make_config()

    def binding(methods: dict[str, str]) -> ServiceBinding:
        return ServiceBinding(DECISION, lambda s: None, methods)

    async def scenario() -> None:
        partial = {k: v for k, v in DECISION_ROLES.items() if k != "Decide"}
        with pytest.raises(InvalidInputError, match=r"methods: no minimum role for Decide"):
            build_server(cfg, None, [binding(partial)])
        with pytest.raises(InvalidInputError, match=r"methods\.Decide: must be one of viewer, trader, admin"):
            build_server(cfg, None, [binding({**DECISION_ROLES, "Decide": "root"})])
        with pytest.raises(InvalidInputError, match=r"has no method Nope"):
            build_server(cfg, None, [binding({**DECISION_ROLES, "Nope": "admin"})])
        with pytest.raises(InvalidInputError, match=r"store: is needed when auth\.enabled"):
            build_server(make_config(ALLSUSE_AUTH_ENABLED="true"), None, [binding(DECISION_ROLES)])

    run(scenario)
