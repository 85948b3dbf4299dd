"""Builds, starts and drains the grpc.aio server, and runs the whole service (`allsuse serve`).

`build_server(config, store, bindings)` gives an `AllsuseServer`: the services of the bindings, standard health
for each of them and for "" (driven by an orchestration lifecycle), server reflection, the interceptors
(request id, metrics, access log, error mapping, auth, rate limit), message limits, keepalive, TLS when
configured. A servicer plugs in through a `ServiceBinding`; nothing here names a servicer.

`Service(config)` is what `allsuse serve` runs: a Registry of components started in dependency order
(store, events, metrics | scheduler | grpc) whose service lifecycle drives health; a scheduler job checks
the components' health every 30 s. On SIGTERM/SIGINT health turns NOT_SERVING first (the lifecycle moves to
STOPPING), new RPCs are still answered for `drain_delay_seconds`, then the listener closes and in-flight RPCs
get `shutdown_grace_seconds` before the rest is cancelled and the other components stop.

Service modules (config `server.service_modules`, default allsuse.server.decision / portfolio / monitor /
agent) define `bindings(deps: ServiceDeps) -> Sequence[ServiceBinding]`; a module that does not exist or fails to
import stops start-up with an error naming it (`allsuse serve` exits 2).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from allsuse.cache import TTLCache
from allsuse.config import Config
from allsuse.errors import InvalidInputError
from allsuse.orchestration import EventBus, Every, Lifecycle, Registry, Scheduler, State, Transition
from allsuse.orchestration.clock import Clock
from allsuse.orchestration.errors import OrchestrationError
from allsuse.protocol import settings
from allsuse.server import jobs
from allsuse.server.auth import KeyVerifier
from allsuse.server.decode import tolerant_handler
from allsuse.server.health import HEALTH_SERVICE, HealthReporter
from allsuse.server.interceptors import CallTracker, InterceptorChain, is_public
from allsuse.server.limits import Admission, CallLimits
from allsuse.server.metrics import MetricsEndpoint, ServerMetrics
from allsuse.server.ratelimit import FailedAuthLimiter, TokenBucketLimiter
from allsuse.server.request import ROLES
from allsuse.server.rpc import BlockingPool
from allsuse.server.tls import server_credentials
from allsuse.server.wrapping import WrappingRegistrar
from allsuse.store import Store

if TYPE_CHECKING:
    from allsuse.server.execution import BrokerComponent

log = logging.getLogger("allsuse.server")

HEALTH_CHECK_EVERY = timedelta(seconds=30)
RESPONSE_CACHE_SIZE = 10_000
RESPONSE_CACHE_TTL = 300.0


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service to serve.

    `full_name`: the proto service name ("allsuse.v1.DecisionService"); `add_to_server`: registers the
    servicer (e.g. `lambda s: decision_pb2_grpc.add_DecisionServiceServicer_to_server(servicer, s)`);
    `methods`: every RPC method name -> the minimum role ("viewer", "trader" or "admin").
    """

    full_name: str
    add_to_server: Callable[[grpc.aio.Server], None]
    methods: Mapping[str, str]


def _check_bindings(bindings: Sequence[ServiceBinding]) -> dict[str, str]:
    """Validates the bindings; returns full method path -> minimum role."""
    roles: dict[str, str] = {}
    seen: set[str] = set()
    for binding in bindings:
        name = binding.full_name
        where = f"bindings[{name!r}]"
        if not isinstance(binding, ServiceBinding):
            raise InvalidInputError.of("bindings", f"must hold ServiceBinding objects, got {binding!r}")
        if not name or name in seen:
            raise InvalidInputError.of(f"{where}.full_name", "must be a non-empty name bound once")
        seen.add(name)
        for method, role in binding.methods.items():
            if role not in ROLES:
                raise InvalidInputError.of(f"{where}.methods.{method}", f"must be one of {', '.join(ROLES)}")
            roles[f"/{name}/{method}"] = role
        try:
            descriptor = descriptor_pool.Default().FindServiceByName(name)
        except KeyError:
            continue  # not a protobuf service this process knows: its methods cannot be checked
        declared = {m.name for m in descriptor.methods}
        missing = sorted(declared - set(binding.methods))
        unknown = sorted(set(binding.methods) - declared)
        if missing:
            raise InvalidInputError.of(f"{where}.methods", f"no minimum role for {', '.join(missing)}")
        if unknown:
            raise InvalidInputError.of(f"{where}.methods", f"{name} has no method {', '.join(unknown)}")
    return roles


class AllsuseServer:
    """A built (not yet started) grpc.aio server with health, reflection and the interceptors."""

    def __init__(
        self,
        config: Config,
        store: Store | None,
        bindings: Sequence[ServiceBinding],
        metrics: ServerMetrics | None = None,
    ) -> None:
        roles = _check_bindings(bindings)
        if config.auth.enabled and store is None:
            raise InvalidInputError.of("store", "is needed when auth.enabled is true (API keys live in the store)")
        server_cfg = config.server
        self.config = config
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.draining = asyncio.Event()
        self.tracker = CallTracker()
        self.blocking = BlockingPool(server_cfg.blocking_workers)
        self.verifier = (
            KeyVerifier(
                store,
                config.auth.cache_seconds,
                failures=FailedAuthLimiter(config.auth.failed_rate_per_second, config.auth.failed_burst)
                if config.auth.failed_rate_per_second > 0
                else None,
            )
            if config.auth.enabled and store is not None
            else None
        )
        self.limits = CallLimits(
            calls=server_cfg.max_concurrent_rpcs,
            calls_per_key=server_cfg.max_calls_per_key,
            streams=server_cfg.max_streams,
            streams_per_key=server_cfg.max_streams_per_key,
        )
        admission = Admission(server_cfg.request_message_timeout_seconds, self.limits, is_public)
        self.limiter: TokenBucketLimiter | None = None
        if config.auth.rate_limit_per_second > 0:
            self.limiter = TokenBucketLimiter(config.auth.rate_limit_per_second, config.auth.rate_limit_burst)
        # RequestDecodingInterceptor's check, innermost: a request whose bytes do not parse (or hold NUL in a string)
        # is INVALID_ARGUMENT naming the field, not UNKNOWN/INTERNAL (decode.py).
        self.chain = InterceptorChain(
            roles=roles,
            verifier=self.verifier,
            limiter=self.limiter,
            metrics=self.metrics,
            admission=admission,
            draining=self.draining,
            blocking=self.blocking,
            tracker=self.tracker,
            inner=tolerant_handler,
        )
        ping_interval_ms = int(server_cfg.keepalive_min_ping_interval_seconds * 1000)
        options = [
            ("grpc.max_send_message_length", server_cfg.max_message_bytes),
            ("grpc.max_receive_message_length", server_cfg.max_message_bytes),
            ("grpc.keepalive_time_ms", int(server_cfg.keepalive_time_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(server_cfg.keepalive_timeout_seconds * 1000)),
            ("grpc.http2.min_ping_interval_without_data_ms", ping_interval_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            # Several worker processes share the port (server.workers > 1, allsuse.server.workers); one process
            # alone keeps it exclusive, so a second server on a taken port fails to start instead of sharing it.
            ("grpc.so_reuseport", 1 if server_cfg.workers > 1 else 0),
            ("grpc.max_concurrent_streams", server_cfg.max_streams_per_connection),
        ]
        # No `maximum_concurrent_rpcs`: grpc counts a call from its HEADERS on, before routing, so calls that never
        # send their message (or long streams) would fill it and starve everyone, health included. The limits of
        # `admission` count per caller instead, once the message has arrived, and never health or reflection.
        # No grpc interceptor: every handler is wrapped by the chain once, when its service registers.
        self.server = grpc.aio.server(options=options)
        registrar = WrappingRegistrar(self.server, self.chain.wrap)
        names = [b.full_name for b in bindings]
        for binding in bindings:
            binding.add_to_server(registrar)  # it only registers handlers
        self.health = HealthReporter(names, self.metrics)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, registrar)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer([*names, HEALTH_SERVICE, reflection.SERVICE_NAME]), registrar
        )
        self.services: tuple[str, ...] = tuple(names)
        self.tls = config.tls.enabled
        address = f"{server_cfg.host}:{server_cfg.port}"
        try:
            if config.tls.enabled:
                port = self.server.add_secure_port(address, server_credentials(config.tls))
            else:
                port = self.server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"could not bind {address}: {exc}") from None
        if not port:
            raise OSError(f"could not bind {address}")
        self.host = server_cfg.host
        self.port = int(port)
        self._unfollow: Callable[[], None] | None = None
        self._stopped = False

    @property
    def address(self) -> str:
        """host:port the server listens on."""
        return f"{self.host}:{self.port}"

    def follow(self, lifecycle: Lifecycle) -> None:
        """Lets `lifecycle` drive health from now on (instead of start/stop doing it)."""
        self._unfollow = self.health.follow(lifecycle)

    async def start(self) -> None:
        """Starts listening; health says NOT_SERVING until the followed lifecycle (or, without one, this call)
        says otherwise."""
        await self.health.set_serving(False)
        await self.server.start()
        if self._unfollow is None:
            await self.health.set_serving(True)
        log.info("gRPC listening on %s (%s)", self.address, "TLS" if self.tls else "plaintext")

    async def stop(self, grace: float | None = None, drain_delay: float | None = None) -> None:
        """Drains: NOT_SERVING, serve `drain_delay` more seconds, close the listener, give in-flight RPCs
        `grace` seconds (defaults from the config), cancel what is left."""
        if self._stopped:
            return
        self._stopped = True
        server_cfg = self.config.server
        grace = server_cfg.shutdown_grace_seconds if grace is None else grace
        drain_delay = server_cfg.drain_delay_seconds if drain_delay is None else drain_delay
        await self.health.shutdown()
        self.draining.set()
        if drain_delay > 0:
            await asyncio.sleep(drain_delay)
        started = time.monotonic()
        log.info("closing the listener; %d RPCs in flight get %.1f s", self.tracker.active, grace)
        self.health.close_watches()  # watchers have their NOT_SERVING; their streams would hold the grace
        await asyncio.sleep(0)
        # One stop call only: grpc.aio may crash when a second stop races the first.
        await self.server.stop(grace)
        if self._unfollow is not None:
            self._unfollow()
        self.blocking.shutdown()
        log.info("gRPC stopped after %.2f s of drain", time.monotonic() - started)


def build_server(
    config: Config,
    store: Store | None,
    bindings: Sequence[ServiceBinding],
    *,
    metrics: ServerMetrics | None = None,
) -> AllsuseServer:
    """Builds the server for `bindings` (validated: every RPC method needs a minimum role); call `start()`.

    `store` holds the API keys (required when `config.auth.enabled`).
    """
    return AllsuseServer(config, store, bindings, metrics)


# --- the service: components in a registry -------------------------------------------------------------------


class StoreComponent:
    """Opens the store on start (migrating it) and closes it on stop; health reads from it."""

    name = "store"
    depends_on: tuple[str, ...] = ()

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The open store (OrchestrationError before start)."""
        if self._store is None:
            raise OrchestrationError("the store is not open (the service has not started)")
        return self._store

    async def start(self) -> None:
        """Opens the store off the event loop."""
        self._store = await asyncio.to_thread(Store, self.url)

    async def stop(self) -> None:
        """Finishes queued writes and closes."""
        store, self._store = self._store, None
        if store is not None:
            await asyncio.to_thread(store.close)

    async def health(self) -> State:
        """RUNNING if a read succeeds (a failure makes the registry mark it FAULTED)."""
        store = self.store
        await store.aio.call(store.schema_versions)
        return State.RUNNING


@dataclass
class ServiceDeps:
    """What a service module's `bindings(deps)` may use: config, registry, bus, scheduler, metrics, store."""

    config: Config
    registry: Registry
    bus: EventBus
    scheduler: Scheduler
    metrics: ServerMetrics
    store_component: StoreComponent = field(repr=False)
    # Answers of the pure RPCs (ClassifyWeek, SelectStrike, SizePosition) by request bytes, in the core's TTL cache.
    response_cache: TTLCache = field(default_factory=lambda: TTLCache(RESPONSE_CACHE_SIZE, RESPONSE_CACHE_TTL))

    @property
    def store(self) -> Store:
        """The open store (available once the service runs, i.e. inside RPC handlers and jobs)."""
        return self.store_component.store


def load_bindings(modules: Sequence[str], deps: ServiceDeps) -> list[ServiceBinding]:
    """Imports each module and collects `module.bindings(deps)`. A module that does not exist or fails to import
    stops start-up: InvalidInputError naming `server.service_modules` and the module (health never says SERVING
    with a service missing)."""
    found: list[ServiceBinding] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                raise InvalidInputError.of("server.service_modules", f"no module named {name!r}") from None
            raise InvalidInputError.of(
                "server.service_modules", f"{name} failed to import: {type(exc).__name__}: {exc}"
            ) from None
        except Exception as exc:
            raise InvalidInputError.of(
                "server.service_modules", f"{name} failed to import: {type(exc).__name__}: {exc}"
            ) from None
        factory = getattr(module, "bindings", None)
        if not callable(factory):
            raise InvalidInputError.of("server.service_modules", f"{name} has no bindings(deps) function")
        for binding in factory(deps):
            if not isinstance(binding, ServiceBinding):
                raise InvalidInputError.of("server.service_modules", f"{name}.bindings gave {binding!r}")
            found.append(binding)
    return found


class GrpcComponent:
    """The gRPC server as a registry component: built on start (the store is open then), drained on stop."""

    name = "grpc"
    depends_on = ("store", "events", "scheduler")

    def __init__(self, deps: ServiceDeps, bindings: Sequence[ServiceBinding]) -> None:
        self.deps = deps
        self.bindings = tuple(bindings)
        self.server: AllsuseServer | None = None

    async def start(self) -> None:
        """Builds the server, ties its health to the service lifecycle, starts listening."""
        deps = self.deps
        self.server = build_server(deps.config, deps.store, self.bindings, metrics=deps.metrics)
        self.server.follow(deps.registry.service)
        await self.server.start()

    async def stop(self) -> None:
        """Drains (see AllsuseServer.stop)."""
        if self.server is not None:
            await self.server.stop()


class Service:
    """The running service: registry, components, health job, signal handling."""

    def __init__(
        self,
        config: Config,
        *,
        bindings: Sequence[ServiceBinding] = (),
        service_modules: Sequence[str] | None = None,
        worker: int = 0,
        clock: Clock | None = None,
    ) -> None:
        # Every key of config/protocol.yaml the code reads, read now: a bad value stops start-up with a
        # ConfigError naming the file and the key (`allsuse serve` prints it and exits 2).
        settings.validate_default()
        self.config = config
        # Worker `worker` of `server.workers` (allsuse.server.workers): the scheduled jobs that must run once run in
        # worker 0 only, and worker i serves its metrics on metrics.port + i.
        self.worker = worker
        self.registry = Registry("allsuse", start_timeout=30.0)
        self.metrics = ServerMetrics()
        self.store_component = StoreComponent(config.store.url)
        self.bus = EventBus()
        # `clock`: the scheduler's time (a ManualClock drives a simulated day in tests); the system clock otherwise.
        self.scheduler = Scheduler(clock, depends_on=["events"])
        self.deps = ServiceDeps(config, self.registry, self.bus, self.scheduler, self.metrics, self.store_component)
        modules = config.server.service_modules if service_modules is None else service_modules
        all_bindings = [*bindings, *load_bindings(modules, self.deps)]
        self.grpc = GrpcComponent(self.deps, all_bindings)
        self.metrics_endpoint: MetricsEndpoint | None = None
        self.registry.add(self.store_component)
        self.registry.add(self.bus)
        self.registry.add(self.scheduler)
        from allsuse.server.alerting import alert_system

        self.alerts = alert_system(self.deps)
        self.registry.add(self.alerts)
        self.broker: BrokerComponent | None = None
        if config.execution.enabled:
            # Approved decisions become orders worked on the broker (allsuse.server.execution, docs/execution.md).
            from allsuse.server.execution import BrokerComponent

            self.broker = BrokerComponent(self.deps)
            self.registry.add(self.broker)
        if config.metrics.enabled:
            port = config.metrics.port + worker if config.metrics.port else 0
            self.metrics_endpoint = MetricsEndpoint(self.metrics, config.metrics.host, port)
            self.registry.add(self.metrics_endpoint)
        if config.web.enabled and worker == 0:
            # The operator page (allsuse.web): component "web", on this event loop; one process serves it.
            from allsuse.web import WebComponent

            self.registry.add(WebComponent(self.deps))
        self.registry.add(self.grpc)
        self.scheduler.add("health-check", Every(HEALTH_CHECK_EVERY), self._check_health)
        if worker == 0:
            jobs.install(self)
        self.registry.listen(self._on_transition)

    async def _check_health(self, slot: datetime) -> None:
        state = await self.registry.check_health()
        log.debug("health check %s: %s", slot, state.value)

    def _on_transition(self, transition: Transition) -> None:
        up = transition.target in (State.RUNNING, State.DEGRADED)
        if transition.name == self.registry.service.name:
            log.info("service %s%s", transition.target.value, f" ({transition.reason})" if transition.reason else "")
        else:
            self.metrics.component_up.labels(transition.name).set(1 if up else 0)
            if transition.target in (State.FAULTED, State.DEGRADED):
                log.warning("component %s %s: %s", transition.name, transition.target.value, transition.reason)

    @property
    def server(self) -> AllsuseServer:
        """The gRPC server (after start)."""
        if self.grpc.server is None:
            raise OrchestrationError("the gRPC server is not built (the service has not started)")
        return self.grpc.server

    async def start(self) -> None:
        """Starts every component in dependency order; health turns SERVING when the service is RUNNING."""
        started = time.monotonic()
        await self.registry.start_all()
        log.info(
            "started in %.0f ms: gRPC %s, store %s, metrics %s",
            (time.monotonic() - started) * 1000.0,
            self.server.address,
            self.config.store.describe(),
            "off" if self.metrics_endpoint is None else f"{self.config.metrics.host}:{self.metrics_endpoint.port}",
        )

    async def stop(self) -> None:
        """NOT_SERVING, drain, stop every component in reverse order."""
        started = time.monotonic()
        await self.registry.stop_all()
        log.info("stopped in %.2f s", time.monotonic() - started)

    async def run(self, *, announce: bool = True) -> None:
        """Starts, serves until SIGTERM or SIGINT, then stops."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            if announce:
                print(f"allsuse serving on {self.server.address} (Ctrl-C to stop)", flush=True)
            await stop.wait()
            log.info("signal received: draining")
        finally:
            try:
                await self.stop()  # a second signal meanwhile changes nothing: the drain is bounded
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)


async def serve(config: Config, *, worker: int | None = None) -> None:
    """Runs the service for `config` until SIGTERM or SIGINT (what `allsuse serve` does, or one of its workers:
    `worker` is the index given by the supervisor of `server.workers` > 1)."""
    if worker is None:
        log.info("configuration %s: %s", config.environment, config.describe())
    await Service(config, worker=worker or 0).run(announce=worker is None)


__all__ = [
    "HEALTH_CHECK_EVERY",
    "AllsuseServer",
    "GrpcComponent",
    "Service",
    "ServiceBinding",
    "ServiceDeps",
    "StoreComponent",
    "build_server",
    "load_bindings",
    "serve",
]
