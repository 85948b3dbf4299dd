"""Reflection and health as a careless or hostile client uses them.

- Health/List, which reflection advertises (it is in grpc/health/v1/health.proto), answers every service's status.
- Reflection streams cancelled at every point (before the request, before the answer is read, after it) leave
  no asyncio error in the server's log ("Token was created in a different Context" came from streaming handlers
  abandoned by grpc.aio on cancellation and closed later by asyncio's async-generator finaliser, in another
  context).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.attack.transport_support import serve

ROUNDS = 60
TIMEOUT = 5.0


def test_health_list_answers_every_status(tmp_path: Path) -> None:
    with serve(tmp_path, auth=True) as served:
        statuses, listed = asyncio.run(_list(served.address))
    assert statuses[""] == "SERVING", statuses
    assert {"allsuse.v1.DecisionService", "allsuse.v1.MonitorService"} <= set(statuses), statuses
    assert "grpc.health.v1.Health" in listed


def test_cancelled_reflection_streams_leave_no_asyncio_error(tmp_path: Path) -> None:
    with serve(tmp_path, auth=True) as served:
        listed = asyncio.run(_cancel_reflection(served.address))
        served.process.terminate()  # the drain closes whatever async generator is left
        served.process.wait(timeout=10)
        log = served.log_text()
    assert "grpc.health.v1.Health" in listed
    assert "different Context" not in log, log[-3000:]
    assert "error occurred during closing" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


async def _list(address: str) -> tuple[dict[str, str], list[str]]:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).List(health_pb2.HealthListRequest(), timeout=TIMEOUT)
        statuses = {
            name: health_pb2.HealthCheckResponse.ServingStatus.Name(s.status) for name, s in reply.statuses.items()
        }
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        listed: list[str] = []
        async for response in stub.ServerReflectionInfo(iter([request]), timeout=TIMEOUT):
            listed = [s.name for s in response.list_services_response.service]
    return statuses, listed


async def _cancel_reflection(address: str) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        listed: list[str] = []
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        for n in range(ROUNDS):
            call = stub.ServerReflectionInfo(timeout=TIMEOUT)
            if n % 4 != 0:
                await call.write(request)
            if n % 4 == 2:
                response = await call.read()
                listed = [s.name for s in response.list_services_response.service]
            if n % 4 == 3:
                await call.write(request)  # a second request whose answer is never read
            await asyncio.sleep(0.01 * (n % 3))
            call.cancel()
        await asyncio.sleep(0.5)  # the server has seen every cancellation
    return listed
