"""Slowloris: 300 raw HTTP/2 streams that send HEADERS and never their message (a fifth of them send the start of
one), without an API key.

Throughout the attack the standard health Check (on a connection of its own) must answer SERVING within 1 s,
and an authenticated unary call must still work; every half-open stream must be ended by the server within the
request-message deadline (config `server.request_message_timeout_seconds`, 5 s by default) plus a margin.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from allsuse.v1 import decision_pb2, decision_pb2_grpc
from tests.attack.h2_support import HalfOpenConnection
from tests.attack.transport_support import HealthProbe, make_keys, serve

STREAMS = 300
PARTIAL_MESSAGE = b"\x00\x00\x00\x00\x64" + b"\x0a" * 10  # a gRPC frame announcing 100 bytes, 10 of them sent
PATHS = ("/grpc.health.v1.Health/Check", "/allsuse.v1.DecisionService/ClassifyWeek")
ATTACK_SECONDS = 3.0
MESSAGE_DEADLINE = 5.0  # the default of server.request_message_timeout_seconds
MARGIN = 2.0


def test_half_open_streams_leave_health_and_calls_working(tmp_path: Path) -> None:
    (token,) = make_keys(tmp_path / "allsuse.db", "viewer")
    with serve(tmp_path, auth=True) as served:
        result = asyncio.run(_attack(served.port, served.address, token))
        log = served.log_text()
    opened, probe, call_code, still_open, elapsed = result
    assert opened >= STREAMS, f"only {opened} half-open streams could be opened"
    assert probe.answers, "no health answer at all"
    assert not probe.failures(), f"health not SERVING within 1 s: {probe.failures()[:5]}"
    assert call_code == "OK", call_code
    assert still_open == 0, f"{still_open} half-open streams still open {elapsed:.1f} s after they were opened"
    assert "Traceback" not in log, log[-3000:]


async def _attack(port: int, address: str, token: str) -> tuple[int, HealthProbe, str, int, float]:
    connections: list[HalfOpenConnection] = []
    try:
        opened = 0
        started = time.monotonic()
        while opened < STREAMS and len(connections) < 20:
            connection = await HalfOpenConnection.open("127.0.0.1", port)
            connections.append(connection)
            per_connection = min(STREAMS - opened, connection.stream_limit, 100)
            for i, path in enumerate(PATHS):
                share = per_connection // len(PATHS) + (1 if i < per_connection % len(PATHS) else 0)
                opened += await connection.open_streams(path, share - share // 5)
                opened += await connection.open_streams(path, share // 5, partial=PARTIAL_MESSAGE)
        await asyncio.sleep(0.2)  # the server has taken every stream in
        probe = HealthProbe()
        probing = asyncio.ensure_future(probe.run(address, ATTACK_SECONDS))
        call_code = await _authenticated_call(address, token)
        await probing
        deadline = started + MESSAGE_DEADLINE + MARGIN
        while time.monotonic() < deadline and sum(c.open_count() for c in connections) > 0:
            await asyncio.sleep(0.1)
        still_open = sum(c.open_count() for c in connections)
        return opened, probe, call_code, still_open, time.monotonic() - started
    finally:
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)


async def _authenticated_call(address: str, token: str) -> str:
    """ClassifyWeek with a valid key, on a connection of its own; the status code name."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        request = decision_pb2.ClassifyWeekRequest(position="SHORT_PUT", move_pct=-1.0, roll_available=True)
        try:
            await stub.ClassifyWeek(request, metadata=(("authorization", f"Bearer {token}"),), timeout=5.0)
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        return "OK"


def test_request_ended_without_its_message_is_invalid_argument(tmp_path: Path) -> None:
    """HEADERS with END_STREAM and no message: answered at once (INVALID_ARGUMENT), not held open."""
    with serve(tmp_path, auth=False) as served:
        statuses = asyncio.run(_ended_without_message(served.port))
        log = served.log_text()
    assert statuses == ["3"] * len(PATHS), statuses  # 3 = INVALID_ARGUMENT
    assert "Traceback" not in log, log[-3000:]


async def _ended_without_message(port: int) -> list[str]:
    connection = await HalfOpenConnection.open("127.0.0.1", port)
    try:
        for path in PATHS:
            await connection.open_streams(path, 1, end_stream=True)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and len(connection.statuses) < len(PATHS):
            await asyncio.sleep(0.05)
        return [connection.statuses.get(s, "none") for s in connection.opened]
    finally:
        await connection.close()
