"""The component registry: dependency order, waves, cycle and unknown-name errors, roll-back, health."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from allsuse.errors import InvalidInputError
from allsuse.orchestration import (
    ComponentStartError,
    ComponentStopError,
    DependencyCycleError,
    IllegalTransitionError,
    OrchestrationError,
    Registry,
    State,
    Transition,
    UnknownDependencyError,
    dependency_order,
    serving,
    start_waves,
)

S = State


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def guarded() -> Any:
        async with asyncio.timeout(10):  # a hang fails the test instead of blocking the suite
            return await coro

    return asyncio.run(guarded())


class Part:
    """A test component that records its starts and stops in a shared journal."""

    def __init__(
        self,
        name: str,
        depends_on: Sequence[str] = (),
        journal: list[str] | None = None,
        *,
        fail_start: bool = False,
        fail_stop: bool = False,
        critical: bool = True,
    ) -> None:
        self.name = name
        self.depends_on = tuple(depends_on)
        self.journal = journal if journal is not None else []
        self.fail_start = fail_start
        self.fail_stop = fail_stop
        self.critical = critical
        self.reply: State | BaseException | object = State.RUNNING

    async def start(self) -> None:
        await asyncio.sleep(0)
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        await asyncio.sleep(0)
        if self.fail_stop:
            raise RuntimeError(f"{self.name} cannot stop")
        self.journal.append(f"stop {self.name}")

    async def health(self) -> State:
        if isinstance(self.reply, BaseException):
            raise self.reply
        return self.reply  # type: ignore[return-value]


def registry_of(*parts: Part) -> Registry:
    registry = Registry()
    for part in parts:
        registry.add(part)
    return registry


def test_starts_in_dependency_order_and_stops_in_reverse() -> None:
    journal: list[str] = []
    # registered dependents first, so registration order alone would be wrong
    registry = registry_of(
        Part("api", ["engine", "store"], journal),
        Part("engine", ["store", "cache"], journal),
        Part("store", [], journal),
        Part("cache", [], journal),
    )
    assert registry.order() == ["store", "cache", "engine", "api"]
    run(registry.start_all())
    assert journal == ["start store", "start cache", "start engine", "start api"]
    assert registry.service.state is S.RUNNING
    assert set(registry.states().values()) == {S.RUNNING}
    journal.clear()
    run(registry.stop_all())
    assert journal == ["stop api", "stop engine", "stop cache", "stop store"]
    assert registry.service.state is S.STOPPED
    assert set(registry.states().values()) == {S.STOPPED}


def test_independent_components_of_a_wave_start_concurrently() -> None:
    journal: list[str] = []
    b_started, c_started = asyncio.Event(), asyncio.Event()

    class Waits(Part):
        def __init__(self, name: str, mine: asyncio.Event, other: asyncio.Event) -> None:
            super().__init__(name, ["a"], journal)
            self.mine, self.other = mine, other

        async def start(self) -> None:
            self.mine.set()
            await self.other.wait()  # deadlocks (and times out) if b and c start one after the other
            journal.append(f"start {self.name}")

    registry = registry_of(Part("a", [], journal), Waits("b", b_started, c_started), Waits("c", c_started, b_started))
    registry.add(Part("d", ["b", "c"], journal))
    assert registry.waves() == [["a"], ["b", "c"], ["d"]]
    run(registry.start_all())
    assert journal[0] == "start a"
    assert sorted(journal[1:3]) == ["start b", "start c"]
    assert journal[3] == "start d"


def test_a_cycle_is_named_and_nothing_starts() -> None:
    journal: list[str] = []
    registry = registry_of(
        Part("x", [], journal), Part("a", ["b"], journal), Part("b", ["c"], journal), Part("c", ["a", "x"], journal)
    )
    with pytest.raises(DependencyCycleError) as caught:
        run(registry.start_all())
    assert str(caught.value) == "dependency cycle: a -> b -> c -> a"
    assert caught.value.cycle == ("a", "b", "c", "a")
    assert isinstance(caught.value, ValueError)
    assert journal == []
    assert registry.service.state is S.READY
    assert set(registry.states().values()) == {S.READY}


def test_a_self_dependency_is_a_cycle() -> None:
    with pytest.raises(DependencyCycleError, match=r"dependency cycle: solo -> solo$"):
        dependency_order({"solo": ["solo"]})


def test_a_cycle_reached_from_outside_names_only_the_cycle() -> None:
    with pytest.raises(DependencyCycleError) as caught:
        dependency_order({"api": ["engine"], "engine": ["store"], "store": ["engine"]})
    assert caught.value.cycle == ("engine", "store", "engine")


def test_an_unknown_dependency_is_named() -> None:
    registry = registry_of(Part("api", ["engine"]), Part("engine", ["stroe"]))
    with pytest.raises(UnknownDependencyError) as caught:
        run(registry.start_all())
    assert caught.value.component == "engine"
    assert caught.value.dependency == "stroe"
    assert "'engine' depends on 'stroe'" in str(caught.value)
    assert registry.service.state is S.READY


def test_a_long_chain_orders_without_recursion_limits() -> None:
    graph: dict[str, Sequence[str]] = {f"n{i}": [f"n{i + 1}"] if i < 4999 else [] for i in range(5000)}
    assert dependency_order(graph) == [f"n{i}" for i in reversed(range(5000))]
    assert len(start_waves(graph)) == 5000


def test_a_failed_start_stops_the_started_ones_in_reverse_and_names_the_component() -> None:
    journal: list[str] = []
    registry = registry_of(
        Part("store", [], journal),
        Part("cache", ["store"], journal),
        Part("engine", ["cache"], journal, fail_start=True),
        Part("api", ["engine"], journal),
    )
    with pytest.raises(ComponentStartError) as caught:
        run(registry.start_all())
    assert caught.value.component == "engine"
    assert "'engine' failed to start" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert journal == ["start store", "start cache", "stop cache", "stop store"]
    assert registry.states() == {"store": S.STOPPED, "cache": S.STOPPED, "engine": S.FAULTED, "api": S.READY}
    assert registry.service.state is S.FAULTED
    assert not serving(registry.service.state)


def test_a_failure_in_a_wave_also_stops_its_siblings_that_did_start() -> None:
    journal: list[str] = []
    registry = registry_of(
        Part("store", [], journal),
        Part("good", ["store"], journal),
        Part("bad", ["store"], journal, fail_start=True),
        Part("last", ["good", "bad"], journal),
    )
    with pytest.raises(ComponentStartError, match="'bad'"):
        run(registry.start_all())
    assert journal == ["start store", "start good", "stop good", "stop store"]


def test_a_failed_service_can_be_fixed_and_started_again() -> None:
    journal: list[str] = []
    flaky = Part("engine", ["store"], journal, fail_start=True)
    registry = registry_of(Part("store", [], journal), flaky)

    async def scenario() -> None:
        with pytest.raises(ComponentStartError):
            await registry.start_all()
        flaky.fail_start = False
        await registry.start_all()
        assert registry.service.state is S.RUNNING
        await registry.stop_all()
        await registry.start_all()  # a stopped service starts again
        assert registry.service.state is S.RUNNING

    run(scenario())


def test_a_start_timeout_names_the_component() -> None:
    class Hangs(Part):
        async def start(self) -> None:
            await asyncio.Event().wait()

    journal: list[str] = []
    registry = Registry(start_timeout=0.01)
    registry.add(Part("store", [], journal))
    registry.add(Hangs("feed", ["store"], journal))
    with pytest.raises(ComponentStartError) as caught:
        run(registry.start_all())
    assert caught.value.component == "feed"
    assert isinstance(caught.value.cause, TimeoutError)
    assert journal == ["start store", "stop store"]


def test_cancelling_start_all_rolls_back_then_propagates() -> None:
    journal: list[str] = []
    entered = asyncio.Event()

    class Hangs(Part):
        async def start(self) -> None:
            entered.set()
            await asyncio.Event().wait()

    registry = registry_of(Part("store", [], journal), Hangs("feed", ["store"], journal))

    async def scenario() -> None:
        task = asyncio.create_task(registry.start_all())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert journal == ["start store", "stop store"]
    assert registry.service.state is S.FAULTED
    assert registry.states() == {"store": S.STOPPED, "feed": S.FAULTED}


def test_a_failing_stop_does_not_keep_the_others_running() -> None:
    journal: list[str] = []
    registry = registry_of(
        Part("store", [], journal), Part("engine", ["store"], journal, fail_stop=True), Part("api", ["engine"], journal)
    )
    run(registry.start_all())
    journal.clear()
    with pytest.raises(ComponentStopError) as caught:
        run(registry.stop_all())
    assert [name for name, _ in caught.value.failures] == ["engine"]
    assert journal == ["stop api", "stop store"]
    assert registry.states() == {"store": S.STOPPED, "engine": S.FAULTED, "api": S.STOPPED}
    assert registry.service.state is S.FAULTED


def test_stop_all_before_start_does_nothing_and_double_start_is_illegal() -> None:
    journal: list[str] = []
    registry = registry_of(Part("store", [], journal))

    async def scenario() -> None:
        await registry.stop_all()
        assert registry.service.state is S.READY
        await registry.start_all()
        with pytest.raises(IllegalTransitionError, match="service: illegal transition RUNNING -> STARTING"):
            await registry.start_all()
        await registry.stop_all()
        await registry.stop_all()

    run(scenario())
    assert journal == ["start store", "stop store"]


def test_registration_is_checked() -> None:
    registry = registry_of(Part("store"))
    with pytest.raises(InvalidInputError, match=r"component\.name: 'store' is already registered"):
        registry.add(Part("store"))
    with pytest.raises(InvalidInputError, match=r"component\.name"):
        registry.add(Part(""))
    with pytest.raises(InvalidInputError, match="service's own name"):
        registry.add(Part("service"))
    with pytest.raises(InvalidInputError, match="start_timeout"):
        Registry(start_timeout=0)
    run(registry.start_all())
    with pytest.raises(OrchestrationError, match="while the service is RUNNING"):
        registry.add(Part("late"))
    assert "store" in registry and len(registry) == 1


def test_listeners_hear_component_and_service_transitions_in_order() -> None:
    heard: list[tuple[str, State, State]] = []
    registry = Registry()
    remove = registry.listen(lambda t: heard.append((t.name, t.source, t.target)))
    registry.add(Part("store"))  # added after listen: still heard
    run(registry.start_all())
    assert heard == [
        ("service", S.READY, S.STARTING),
        ("store", S.READY, S.STARTING),
        ("store", S.STARTING, S.RUNNING),
        ("service", S.STARTING, S.RUNNING),
    ]
    remove()
    run(registry.stop_all())
    assert len(heard) == 4


def test_health_checks_move_components_and_the_service() -> None:
    store, feed = Part("store"), Part("feed", critical=False)
    registry = registry_of(store, feed)

    async def scenario() -> None:
        await registry.start_all()
        assert await registry.check_health() is S.RUNNING

        store.reply = S.DEGRADED
        assert await registry.check_health() is S.DEGRADED
        assert registry.lifecycle("store").state is S.DEGRADED
        assert serving(registry.service.state)

        store.reply = S.RUNNING
        assert await registry.check_health() is S.RUNNING

        feed.reply = RuntimeError("socket closed")  # non-critical fault: degraded, still serving
        assert await registry.check_health() is S.DEGRADED
        assert registry.lifecycle("feed").state is S.FAULTED
        feed.reply = S.RUNNING  # a faulted component stays faulted until restarted
        assert await registry.check_health() is S.DEGRADED
        assert registry.lifecycle("feed").state is S.FAULTED

        store.reply = "fine"  # not a state: treated as a fault; store is critical
        assert await registry.check_health() is S.FAULTED
        assert not serving(registry.service.state)
        await registry.stop_all()  # faulted components are still stopped
        assert registry.service.state is S.STOPPED

    run(scenario())


def test_components_report_their_own_state() -> None:
    registry = registry_of(Part("store"), Part("feed", critical=False))

    async def scenario() -> None:
        assert await registry.report("feed", S.DEGRADED) is S.READY  # ignored before start
        await registry.start_all()
        assert await registry.report("feed", S.DEGRADED, "slow quotes") is S.DEGRADED
        assert await registry.report("feed", S.RUNNING) is S.RUNNING
        with pytest.raises(InvalidInputError, match="state"):
            await registry.report("feed", S.STOPPED)

    run(scenario())


def test_grpc_health_follows_the_service_lifecycle() -> None:
    """The subscription the server will make: RUNNING/DEGRADED -> SERVING, anything else NOT_SERVING."""
    serving_status = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    store = Part("store")
    registry = registry_of(store)

    async def scenario() -> None:
        health = health_aio.HealthServicer()
        await health.set("", not_serving)

        async def follow(transition: Transition) -> None:
            if transition.name == registry.service.name:
                await health.set("", serving_status if serving(transition.target) else not_serving)

        registry.listen(follow)

        async def status() -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), None)
            return int(reply.status)

        assert await status() == not_serving
        await registry.start_all()
        assert await status() == serving_status
        store.reply = S.DEGRADED
        await registry.check_health()
        assert await status() == serving_status
        await registry.stop_all()
        assert await status() == not_serving

    run(scenario())
