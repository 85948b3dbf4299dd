"""Standard gRPC health (grpc.health.v1.Health: Check, Watch and List) driven by the orchestration lifecycle.

Every bound service name and "" (the server as a whole) report the same status: SERVING while the service's
lifecycle is RUNNING or DEGRADED (`allsuse.orchestration.serving`), NOT_SERVING otherwise. `shutdown()` makes
them NOT_SERVING for good; the server calls it before closing the listener, so load balancers stop sending
work while in-flight RPCs finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from allsuse.orchestration import Lifecycle, Transition, serving
from allsuse.server.metrics import ServerMetrics

log = logging.getLogger("allsuse.server.health")

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _ClosableHealthServicer(health_aio.HealthServicer):  # type: ignore[misc]
    """The standard servicer whose Watch streams end (after a last NOT_SERVING) when `close_watches()` is called,
    so a drain does not wait its whole grace period for health watchers."""

    def __init__(self) -> None:
        super().__init__()
        self._closing = asyncio.Event()

    def close_watches(self) -> None:
        """Ends every Watch stream, now and later."""
        self._closing.set()

    async def List(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method name
        """The standard List (reflection advertises it): the status of "" and of every service."""
        statuses = {name: health_pb2.HealthCheckResponse(status=status) for name, status in self._server_status.items()}
        return health_pb2.HealthListResponse(statuses=statuses)

    async def Watch(self, request: Any, context: Any) -> None:  # noqa: N802 - the gRPC method name
        """The standard Watch, ended by close_watches()."""
        watching = asyncio.ensure_future(super().Watch(request, context))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({watching, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watching, closing):
                task.cancel()
            await asyncio.gather(watching, closing, return_exceptions=True)
        if self._closing.is_set():
            await context.write(health_pb2.HealthCheckResponse(status=NOT_SERVING))


class HealthReporter:
    """Owns the health servicer and sets the status of "" and every service name together."""

    def __init__(self, services: Sequence[str], metrics: ServerMetrics | None = None) -> None:
        self.servicer = _ClosableHealthServicer()
        self.names: tuple[str, ...] = ("", *services)
        self.is_serving = False
        self._metrics = metrics
        self._shut = False

    async def set_serving(self, up: bool) -> None:
        """SERVING (True) or NOT_SERVING (False) for every name; ignored after shutdown()."""
        if self._shut:
            return
        status = SERVING if up else NOT_SERVING
        for name in self.names:
            await self.servicer.set(name, status)
        if up != self.is_serving:
            log.info("health %s", "SERVING" if up else "NOT_SERVING")
        self.is_serving = up
        if self._metrics is not None:
            self._metrics.serving.set(1 if up else 0)

    async def shutdown(self) -> None:
        """NOT_SERVING for every name, for good."""
        if self._shut:
            return
        await self.set_serving(False)
        self._shut = True
        await self.servicer.enter_graceful_shutdown()

    def close_watches(self) -> None:
        """Ends the health Watch streams (the server calls it just before closing the listener)."""
        self.servicer.close_watches()

    def follow(self, lifecycle: Lifecycle) -> Callable[[], None]:
        """Drives the status from `lifecycle`'s transitions from now on; returns a function that stops it."""

        async def on_transition(transition: Transition) -> None:
            await self.set_serving(serving(transition.target))

        return lifecycle.listen(on_transition)


__all__ = ["HEALTH_SERVICE", "NOT_SERVING", "SERVING", "HealthReporter"]
