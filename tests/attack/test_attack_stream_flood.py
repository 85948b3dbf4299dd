"""Stream flood: one viewer key opens 300 StreamAlerts streams and keeps them open.

Throughout, the standard health Check (on a connection of its own) must answer SERVING within 1 s, and a unary
call with the same key must still work: long-lived streams are counted apart from unary calls, and per key
(`server.max_streams_per_key`); the streams over the limit are refused with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from allsuse.v1 import decision_pb2, decision_pb2_grpc, monitor_pb2, monitor_pb2_grpc
from tests.attack.transport_support import HealthProbe, make_keys, serve

STREAMS = 300
CHANNELS = 3
ATTACK_SECONDS = 3.0
STREAMS_PER_KEY = 8  # the default of server.max_streams_per_key


def test_stream_flood_leaves_health_and_calls_working(tmp_path: Path) -> None:
    (token,) = make_keys(tmp_path / "allsuse.db", "viewer")
    with serve(tmp_path, auth=True) as served:
        probe, call_code, codes = asyncio.run(_flood(served.address, token))
        log = served.log_text()
    assert probe.answers, "no health answer at all"
    assert not probe.failures(), f"health not SERVING within 1 s: {probe.failures()[:5]}"
    assert call_code == "OK", call_code
    unexpected = {c for c in codes if c not in ("open", "RESOURCE_EXHAUSTED")}
    assert not unexpected, f"streams ended with {unexpected}"
    assert codes.count("open") == STREAMS_PER_KEY, codes.count("open")
    assert "Traceback" not in log, log[-3000:]


async def _flood(address: str, token: str) -> tuple[HealthProbe, str, list[str]]:
    metadata = (("authorization", f"Bearer {token}"),)
    options = [("grpc.use_local_subchannel_pool", 1)]  # one connection per channel
    channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(CHANNELS)]
    codes: dict[int, str] = {}
    calls: list[grpc.aio.UnaryStreamCall] = []

    async def hold(i: int, call: grpc.aio.UnaryStreamCall) -> None:
        codes[i] = "open"
        try:
            async for _ in call:
                pass
            codes[i] = "OK"
        except grpc.aio.AioRpcError as exc:
            codes[i] = exc.code().name
        except asyncio.CancelledError:
            pass

    holders: list[asyncio.Task[None]] = []
    try:
        for i in range(STREAMS):
            stub = monitor_pb2_grpc.MonitorServiceStub(channels[i % CHANNELS])
            call = stub.StreamAlerts(monitor_pb2.StreamAlertsRequest(), metadata=metadata, timeout=60.0)
            calls.append(call)
            holders.append(asyncio.ensure_future(hold(i, call)))
        await asyncio.sleep(1.0)  # refusals come back at once; the accepted streams stay open
        probe = HealthProbe()
        probing = asyncio.ensure_future(probe.run(address, ATTACK_SECONDS))
        call_code = await _unary_call(address, metadata)
        await probing
        return probe, call_code, [codes.get(i, "never started") for i in range(STREAMS)]
    finally:
        for call in calls:
            call.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        await asyncio.gather(*(channel.close() for channel in channels), return_exceptions=True)


async def _unary_call(address: str, metadata: tuple[tuple[str, str], ...]) -> str:
    """ClassifyWeek with the flooding key, on a connection of its own; the status code name."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        request = decision_pb2.ClassifyWeekRequest(position="SHORT_PUT", move_pct=-1.0, roll_available=True)
        try:
            await stub.ClassifyWeek(request, metadata=metadata, timeout=5.0)
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        return "OK"
