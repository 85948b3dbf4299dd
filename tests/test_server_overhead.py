"""The cheap per-call path of the server (issue 9, item 4): handlers wrapped once at registration, no grpc
interceptor per call, nothing built for the access log while it is off, request ids, the request-message deadline
kept by one timer, and the access line's JSON identical to the general encoder's.

Speed itself is shown by bench/serve_overhead.py (docs/performance.md), never by a timed test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import random
import re
import string
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from allsuse import config as config_module
from allsuse.config import Config, LoggingConfig
from allsuse.server import app, interceptors
from allsuse.server.app import AllsuseServer, ServiceBinding
from allsuse.server.errors import MessageTimeoutError
from allsuse.server.interceptors import REQUEST_IDS
from allsuse.server.limits import MessageDeadlines
from allsuse.server.logs import JsonFormatter, configure_logging
from allsuse.v1 import decision_pb2, decision_pb2_grpc

TIMEOUT = 10.0
CLASSIFY = "/allsuse.v1.DecisionService/ClassifyWeek"


class _Decisions(decision_pb2_grpc.DecisionServiceServicer):  # type: ignore[misc]
    async def ClassifyWeek(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method name
        if request.position == "boom":
            raise RuntimeError("boom")
        return decision_pb2.ClassifyWeekResponse(code="P-EW", name=request.position)


def _config() -> Config:
    cfg = config_module.load("development", {"ALLSUSE_SERVER_PORT": "0", "ALLSUSE_STORE_URL": ":memory:"})
    return cfg


def _binding() -> ServiceBinding:
    servicer = _Decisions()
    methods = {m.name: "viewer" for m in decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].methods}
    return ServiceBinding(
        "allsuse.v1.DecisionService",
        lambda s: decision_pb2_grpc.add_DecisionServiceServicer_to_server(servicer, s),
        methods,
    )


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[AllsuseServer, grpc.aio.Channel]]:
    server = AllsuseServer(_config(), None, [_binding()])
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield server, channel
    finally:
        await channel.close()
        await server.stop(grace=0, drain_delay=0)


@contextmanager
def access_level(level: int) -> Iterator[None]:
    logger = logging.getLogger("allsuse.access")
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


def test_handlers_are_wrapped_once_at_registration_and_no_interceptor_runs_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wraps: list[str] = []
    real = interceptors.InterceptorChain.wrap

    def counting(self: Any, handler: Any, method: str) -> Any:
        wraps.append(method)
        return real(self, handler, method)

    monkeypatch.setattr(interceptors.InterceptorChain, "wrap", counting)
    built: list[dict[str, Any]] = []
    real_server = grpc.aio.server

    def recording(**kwargs: Any) -> Any:
        built.append(kwargs)
        return real_server(**kwargs)

    monkeypatch.setattr(app.grpc.aio, "server", recording)

    async def scenario() -> None:
        async with serving() as (_server, channel):
            registered = len(wraps)
            assert wraps.count(CLASSIFY) >= 1 and "/grpc.health.v1.Health/Check" in wraps
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(5):
                reply = await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(position="CASH"), timeout=TIMEOUT)
                assert reply.name == "CASH"
                await health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
            assert len(wraps) == registered  # calls wrap nothing

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert built and not built[0].get("interceptors")


def test_access_log_off_builds_no_line_and_on_writes_every_field(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    built: list[dict[str, Any]] = []
    real = interceptors.access_log

    def spy(fields: dict[str, Any]) -> None:
        built.append(fields)
        real(fields)

    monkeypatch.setattr(interceptors, "access_log", spy)

    async def calls(channel: grpc.aio.Channel, request_id: str) -> None:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        await stub.ClassifyWeek(
            decision_pb2.ClassifyWeekRequest(position="CASH"), metadata=(("x-request-id", request_id),), timeout=TIMEOUT
        )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.ClassifyWeek(decision_pb2.ClassifyWeekRequest(position="boom"), timeout=TIMEOUT)
        assert failed.value.code() is grpc.StatusCode.INTERNAL

    async def scenario() -> None:
        async with serving() as (_server, channel):
            with access_level(logging.WARNING):
                await calls(channel, "off-1")
            assert built == []  # off: not one field dict
            with access_level(logging.INFO), caplog.at_level(logging.INFO, logger="allsuse.access"):
                await calls(channel, "on-1")

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [f["code"] for f in built] == ["OK", "INTERNAL"]
    first = built[0]
    assert set(first) == {"event", "method", "code", "duration_ms", "request_id", "key_id", "role", "peer"}
    assert first["method"] == CLASSIFY and first["request_id"] == "on-1" and first["role"] == "admin"
    assert first["key_id"] == "anonymous" and first["peer"].startswith("ipv4:127.0.0.1:")
    assert re.fullmatch(r"[0-9a-f]{32}", built[1]["request_id"])
    records = [r for r in caplog.records if r.name == "allsuse.access"]
    assert [r.__dict__["access_fields"]["code"] for r in records] == ["OK", "INTERNAL"]


def test_new_request_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [REQUEST_IDS.new() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_message_deadline_ends_a_silent_read_and_leaves_others_alone() -> None:
    class Silent:
        async def read(self) -> Any:
            await asyncio.sleep(3600)

    class Prompt:
        async def read(self) -> Any:
            await asyncio.sleep(0.01)
            return "message"

    async def scenario() -> None:
        deadlines = MessageDeadlines(0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        silent = asyncio.ensure_future(deadlines.read(Silent()))
        prompt = [asyncio.ensure_future(deadlines.read(Prompt())) for _ in range(5)]
        assert await asyncio.gather(*prompt) == ["message"] * 5
        with pytest.raises(MessageTimeoutError, match=r"request message not received within 0\.2 s"):
            await silent
        took = loop.time() - started
        assert 0.2 <= took < 0.2 + deadlines.interval + 0.5
        assert silent.cancelling() == 0  # the task is not left marked as cancelled
        # A cancellation that is not the deadline's stays a cancellation.
        other = asyncio.ensure_future(deadlines.read(Silent()))
        await asyncio.sleep(0.01)
        other.cancel()
        with pytest.raises(asyncio.CancelledError):
            await other

    asyncio.run(asyncio.wait_for(scenario(), 30))


def _general(formatter: JsonFormatter, record: logging.LogRecord) -> str:
    out: dict[str, Any] = {
        "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
    }
    out.update(record.__dict__["access_fields"])
    return json.dumps(out, separators=(",", ":"), default=str)


def test_access_line_json_is_what_json_dumps_gives() -> None:
    rng = random.Random(9)
    formatter = JsonFormatter()
    alphabet = string.printable + 'é\u2028\x00"\\ü日'

    def value() -> Any:
        pick = rng.randrange(8)
        if pick == 0:
            return None
        if pick == 1:
            return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        if pick == 2:
            return rng.random() * 10 ** rng.randrange(-3, 20)
        if pick == 3:
            return rng.choice([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e300])
        if pick == 4:
            return rng.randrange(-(10**20), 10**20)
        if pick == 5:
            return rng.choice([True, False])
        if pick == 6:
            return [1, "a", None]
        return dt.date(2026, 1, 2)  # default=str

    for _ in range(2000):
        fields = {f"k{i}{rng.choice(alphabet)}": value() for i in range(rng.randrange(1, 9))}
        record = logging.LogRecord("allsuse.access", logging.INFO, "", 0, "rpc", (), None)
        record.created = rng.uniform(0, 4e9)
        record.__dict__["access_fields"] = fields
        assert formatter.format(record) == _general(formatter, record)
    # A password-looking value is masked on this path too.
    record = logging.LogRecord("allsuse.access", logging.INFO, "", 0, "rpc", (), None)
    record.__dict__["access_fields"] = {"request_id": "password=hunter2"}
    assert "hunter2" not in formatter.format(record)


def test_configure_logging_keeps_every_line_format(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(LoggingConfig(level="INFO", json=True))
        logging.getLogger("allsuse.test").info("hello %s", "there")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["message"] == "hello there" and line["logger"] == "allsuse.test"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["ts"])
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
