"""The grpc.aio server answers health and reflection on loopback, and drains NOT_SERVING first."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from allsuse import config
from allsuse.server import app

TIMEOUT = 5.0


def _server_config(port: int) -> config.ServerConfig:
    base = config.load("development").server
    return config.ServerConfig(
        host="127.0.0.1",
        port=port,
        shutdown_grace_seconds=1.0,
        max_message_bytes=base.max_message_bytes,
        max_concurrent_rpcs=base.max_concurrent_rpcs,
    )


def test_health_and_reflection(free_port: int) -> None:
    async def scenario() -> None:
        running = await app.start(_server_config(free_port))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING

                stub = reflection_pb2_grpc.ServerReflectionStub(channel)
                request = reflection_pb2.ServerReflectionRequest(list_services="")
                names: list[str] = []
                async for response in stub.ServerReflectionInfo(iter([request]), timeout=TIMEOUT):
                    names.extend(s.name for s in response.list_services_response.service)
                assert "grpc.health.v1.Health" in names

                await running.health.enter_graceful_shutdown()
                reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
                assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        finally:
            await running.server.stop(0)

    asyncio.run(scenario())


def test_config_rejects_bad_port_naming_the_key() -> None:
    import pytest

    from allsuse.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"server\.port"):
        config.load("development", environ={"ALLSUSE_SERVER_PORT": "70000"})
    with pytest.raises(InvalidInputError, match=r"server\.port"):
        config.load("development", environ={"ALLSUSE_SERVER_PORT": "abc"})
