"""Builds, starts and drains the grpc.aio server.

Shutdown order (the grpc examples' habit): health turns NOT_SERVING first, so load balancers stop
sending work, then the server stops with a grace period for in-flight RPCs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from allsuse.config import ServerConfig

log = logging.getLogger("allsuse.server")

# Services the server reports on; the allsuse.v1 services join this list as they are implemented.
SERVICE_NAMES: tuple[str, ...] = ()


@dataclass
class RunningServer:
    """A started server, the port it bound, and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer

    async def drain(self, grace_seconds: float) -> None:
        """NOT_SERVING for every service first, then stop accepting and let in-flight RPCs finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_seconds)


async def start(config: ServerConfig, services: Sequence[str] = SERVICE_NAMES) -> RunningServer:
    """Starts the server on config.host:config.port (port 0 picks a free port)."""
    options = [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options, maximum_concurrent_rpcs=config.max_concurrent_rpcs)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(f"{config.host}:{config.port}")
    if port == 0:
        raise OSError(f"could not bind {config.host}:{config.port}")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    for name in services:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving on %s:%d", config.host, port)
    return RunningServer(server, port, health)


async def serve(config: ServerConfig) -> None:
    """Runs until SIGTERM or SIGINT, then drains within config.shutdown_grace_seconds."""
    running = await start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"allsuse serving on {config.host}:{running.port} (Ctrl-C to stop)", flush=True)
    await stop.wait()
    log.info("signal received: draining")
    await running.drain(config.shutdown_grace_seconds)
