"""The component registry: starts components in dependency order and stops them in reverse.

A component is anything with a `name`, the names it `depends_on`, and async `start()` / `stop()`; it may also
have an async `health()` returning RUNNING, DEGRADED or FAULTED, and a `critical` flag (default True: a
critical component's fault takes the whole service down, a non-critical one only degrades it).

`Registry.start_all()` orders the components topologically (an unknown dependency or a cycle is reported
before anything starts), then starts them in waves: every component of a wave has all its dependencies
running, and the components of one wave start concurrently. If one fails, the ones already started are
stopped in reverse order and `ComponentStartError` names the one that failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, cast

from allsuse.errors import InvalidInputError
from allsuse.orchestration.errors import (
    ComponentStartError,
    ComponentStopError,
    DependencyCycleError,
    OrchestrationError,
    UnknownDependencyError,
)
from allsuse.orchestration.lifecycle import Lifecycle, Listener, State, aggregate

log = logging.getLogger("allsuse.orchestration")

_UP = (State.RUNNING, State.DEGRADED)
_REPORTABLE = (State.RUNNING, State.DEGRADED, State.FAULTED)


class Component(Protocol):
    """What the registry needs of a component. `health()` and `critical` are optional extras."""

    @property
    def name(self) -> str:
        """Unique name; other components list it in their `depends_on`."""
        ...

    @property
    def depends_on(self) -> Sequence[str]:
        """Names of the components that must be running before this one starts."""
        ...

    async def start(self) -> None:
        """Acquires resources; returns once the component can serve."""
        ...

    async def stop(self) -> None:
        """Releases resources."""
        ...


def dependency_order(graph: dict[str, Sequence[str]]) -> list[str]:
    """Names in an order where each comes after everything it depends on; ties keep the graph's order.

    Raises UnknownDependencyError naming a missing dependency, or DependencyCycleError naming a cycle
    as "a -> b -> c -> a" (read "a depends on b, which depends on c, which depends on a").
    """
    for name, dependencies in graph.items():
        for dependency in dependencies:
            if dependency not in graph:
                raise UnknownDependencyError(name, dependency)
    order: list[str] = []
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()
    for root in graph:
        if root in done:
            continue
        # Iterative depth-first search: a frame is a name and an iterator over its dependencies.
        frames = [(root, iter(graph[root]))]
        path.append(root)
        on_path.add(root)
        while frames:
            name, pending = frames[-1]
            step = next(pending, None)
            if step is None:
                frames.pop()
                path.pop()
                on_path.discard(name)
                done.add(name)
                order.append(name)
            elif step in on_path:
                raise DependencyCycleError([*path[path.index(step) :], step])
            elif step not in done:
                frames.append((step, iter(graph[step])))
                path.append(step)
                on_path.add(step)
    return order


def start_waves(graph: dict[str, Sequence[str]]) -> list[list[str]]:
    """The dependency order cut into waves: a name's wave is one more than the latest of its dependencies'."""
    depth: dict[str, int] = {}
    waves: list[list[str]] = []
    for name in dependency_order(graph):
        level = 1 + max((depth[d] for d in graph[name]), default=-1)
        depth[name] = level
        if level == len(waves):
            waves.append([])
        waves[level].append(name)
    return waves


class Registry:
    """Holds the components, their lifecycles and the service's aggregate lifecycle (`service`).

    start_all, stop_all, check_health and report run one at a time (a lock), so a stop requested while
    the service is starting waits for the start to finish or fail, then stops what is running.
    """

    def __init__(
        self,
        name: str = "service",
        *,
        start_timeout: float | None = None,
        stop_timeout: float | None = None,
    ) -> None:
        for field, value in (("start_timeout", start_timeout), ("stop_timeout", stop_timeout)):
            if value is not None and not value > 0:
                raise InvalidInputError.of(field, f"must be positive seconds or None, got {value!r}")
        self.service = Lifecycle(name)
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._components: dict[str, Component] = {}
        self._lifecycles: dict[str, Lifecycle] = {}
        self._listeners: list[Listener] = []
        self._order: list[str] = []
        self._started: set[str] = set()
        self._lock = asyncio.Lock()

    # --- registration -------------------------------------------------------------------------------

    def add(self, component: Component) -> Component:
        """Registers a component (before start_all); returns it. A duplicate name is an InvalidInputError."""
        name = component.name
        if not isinstance(name, str) or not name:
            raise InvalidInputError.of("component.name", f"must be a non-empty string, got {name!r}")
        if name == self.service.name:
            raise InvalidInputError.of("component.name", f"{name!r} is the service's own name")
        if name in self._components:
            raise InvalidInputError.of("component.name", f"{name!r} is already registered")
        if self.service.state not in (State.READY, State.STOPPED, State.FAULTED):
            raise OrchestrationError(f"cannot add {name!r} while the service is {self.service.state.value}")
        lifecycle = Lifecycle(name)
        for listener in self._listeners:
            lifecycle.listen(listener)
        self._components[name] = component
        self._lifecycles[name] = lifecycle
        return component

    def __contains__(self, name: object) -> bool:
        return name in self._components

    def __len__(self) -> int:
        return len(self._components)

    def component(self, name: str) -> Component:
        """The component registered as `name` (KeyError if none)."""
        return self._components[name]

    def lifecycle(self, name: str) -> Lifecycle:
        """The lifecycle of the component `name` (KeyError if none)."""
        return self._lifecycles[name]

    def states(self) -> dict[str, State]:
        """Each component's current state, in registration order."""
        return {name: lifecycle.state for name, lifecycle in self._lifecycles.items()}

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Subscribes to every transition of the service and of each component (also ones added later).

        Tell the service's transitions apart by `transition.name == registry.service.name`.
        Returns a function that unsubscribes.
        """
        self._listeners.append(listener)
        self.service.listen(listener)
        for lifecycle in self._lifecycles.values():
            lifecycle.listen(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
            self.service.unlisten(listener)
            for lifecycle in self._lifecycles.values():
                lifecycle.unlisten(listener)

        return remove

    def order(self) -> list[str]:
        """The start order (stop order is its reverse); raises on an unknown dependency or a cycle."""
        return dependency_order(self._graph())

    def waves(self) -> list[list[str]]:
        """The start order grouped into waves that start concurrently."""
        return start_waves(self._graph())

    def _graph(self) -> dict[str, Sequence[str]]:
        return {name: tuple(component.depends_on) for name, component in self._components.items()}

    # --- start and stop -------------------------------------------------------------------------------

    async def start_all(self) -> None:
        """Starts every component in dependency order; the service ends RUNNING.

        On a failure the components already started are stopped (reverse order), the failed one is FAULTED,
        the service is FAULTED and ComponentStartError names the component. If the caller is cancelled,
        the same roll-back happens before the cancellation propagates.
        """
        async with self._lock:
            waves = self.waves()  # raises before any state changes
            await self.service.move(State.STARTING)
            self._order = [name for wave in waves for name in wave]
            self._started = set()
            try:
                for wave in waves:
                    results = await asyncio.gather(*(self._start_one(n) for n in wave), return_exceptions=True)
                    failures = [(n, r) for n, r in zip(wave, results, strict=True) if isinstance(r, BaseException)]
                    if failures:
                        name, cause = failures[0]
                        for other, other_cause in failures[1:]:
                            log.error("component %r also failed to start: %r", other, other_cause)
                        await self.service.move(State.FAULTED, f"{name}: {cause!r}")
                        await self._stop_started()
                        raise ComponentStartError(name, cause) from cause
            except asyncio.CancelledError:
                if self.service.state is State.STARTING:
                    await self.service.move(State.FAULTED, "start cancelled")
                    await self._stop_started()
                raise
            await self.service.move(State.RUNNING)

    async def stop_all(self) -> None:
        """Stops the started components in reverse dependency order; the service ends STOPPED.

        A component whose stop() fails is FAULTED and the others are still stopped; then the service is
        FAULTED and ComponentStopError names every failure. Does nothing if the service never started or
        is already stopped.
        """
        async with self._lock:
            if self.service.state in (State.READY, State.STOPPED):
                return
            await self.service.move(State.STOPPING)
            failures = await self._stop_started()
            if failures:
                await self.service.move(State.FAULTED, "; ".join(f"{n}: {e!r}" for n, e in failures))
                raise ComponentStopError(failures)
            await self.service.move(State.STOPPED)

    async def _start_one(self, name: str) -> None:
        lifecycle = self._lifecycles[name]
        await lifecycle.move(State.STARTING)
        try:
            async with asyncio.timeout(self._start_timeout):
                await self._components[name].start()
        except BaseException as error:
            await lifecycle.move(State.FAULTED, repr(error))
            raise
        self._started.add(name)
        await lifecycle.move(State.RUNNING)

    async def _stop_started(self) -> list[tuple[str, BaseException]]:
        failures: list[tuple[str, BaseException]] = []
        for name in reversed(self._order):
            if name not in self._started:
                continue
            lifecycle = self._lifecycles[name]
            await lifecycle.move(State.STOPPING)
            try:
                async with asyncio.timeout(self._stop_timeout):
                    await self._components[name].stop()
            except Exception as error:
                log.error("component %r failed to stop: %r", name, error)
                failures.append((name, error))
                await lifecycle.move(State.FAULTED, repr(error))
            else:
                await lifecycle.move(State.STOPPED)
            self._started.discard(name)
        return failures

    # --- health ---------------------------------------------------------------------------------------

    async def check_health(self) -> State:
        """Asks each running component with a `health()` how it is, applies the answers, returns the service state.

        A component answering RUNNING, DEGRADED or FAULTED moves there; one that raises, times out (the
        start timeout) or answers anything else is FAULTED. A FAULTED component stays so until restarted.
        """
        async with self._lock:
            if self.service.state not in _UP:
                return self.service.state
            names = [n for n in self._order if n in self._started and self._lifecycles[n].state in _UP]
            reports = await asyncio.gather(*(self._probe(n) for n in names))
            for name, (state, reason) in zip(names, reports, strict=True):
                lifecycle = self._lifecycles[name]
                if state is not lifecycle.state:
                    await lifecycle.move(state, reason)
            return await self._settle_service()

    async def report(self, name: str, state: State, reason: str = "") -> State:
        """Lets a running component report its own state (RUNNING, DEGRADED or FAULTED) between health checks.

        Returns the service state after the report. Ignored (with a log line) unless the service is up.
        """
        if state not in _REPORTABLE:
            raise InvalidInputError.of("state", f"must be RUNNING, DEGRADED or FAULTED, got {state.value}")
        async with self._lock:
            lifecycle = self._lifecycles[name]
            if self.service.state not in _UP or lifecycle.state not in _UP:
                log.info("ignored report %s from %r (service %s)", state.value, name, self.service.state.value)
                return self.service.state
            if state is not lifecycle.state:
                await lifecycle.move(state, reason)
            return await self._settle_service()

    async def _probe(self, name: str) -> tuple[State, str]:
        component = self._components[name]
        probe = getattr(component, "health", None)
        if not callable(probe):
            return self._lifecycles[name].state, ""
        try:
            async with asyncio.timeout(self._start_timeout):
                answer = await cast(Callable[[], Awaitable[object]], probe)()
        except Exception as error:
            return State.FAULTED, f"health() raised {error!r}"
        if isinstance(answer, State) and answer in _REPORTABLE:
            return answer, "health check"
        return State.FAULTED, f"health() returned {answer!r}"

    async def _settle_service(self) -> State:
        effective = []
        for name in self._order:
            if name not in self._started:
                continue
            state = self._lifecycles[name].state
            if state is State.FAULTED and not getattr(self._components[name], "critical", True):
                state = State.DEGRADED
            effective.append(state)
        target = aggregate(effective) if effective else State.RUNNING
        if target is not self.service.state and self.service.can_move(target):
            faulted = [n for n in self._order if self._lifecycles[n].state is State.FAULTED]
            await self.service.move(target, ", ".join(faulted))
        return self.service.state


__all__ = ["Component", "Registry", "dependency_order", "start_waves"]
