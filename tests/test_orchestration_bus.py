"""The event bus: fan-out by topic and pattern, drop-oldest overflow, failing handlers, draining close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import pytest

from allsuse.errors import InvalidInputError
from allsuse.orchestration import BusClosedError, Event, EventBus, Handler, State


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def guarded() -> Any:
        async with asyncio.timeout(10):  # a hang fails the test instead of blocking the suite
            return await coro

    return asyncio.run(guarded())


def recorder(into: list[Event]) -> Handler:
    async def handle(event: Event) -> None:
        await asyncio.sleep(0)
        into.append(event)

    return handle


def test_fan_out_by_topic_prefix_and_wildcard() -> None:
    first: list[Event] = []
    second: list[Event] = []
    risk: list[Event] = []
    everything: list[Event] = []
    other: list[Event] = []

    async def scenario() -> None:
        bus = EventBus()
        bus.subscribe("risk.breach", recorder(first))
        bus.subscribe("risk.breach", recorder(second))
        bus.subscribe("risk.*", recorder(risk))
        bus.subscribe("*", recorder(everything))
        bus.subscribe("decision.made", recorder(other))
        assert bus.publish("risk.breach", {"account": "GEN"}) == 4
        assert bus.publish("risk.limits.updated", 2) == 2
        assert bus.publish("riskless", 3) == 1  # "risk.*" needs the dot
        assert bus.publish("nobody.listens") == 1
        await bus.flush()
        await bus.close()

    run(scenario())
    assert [e.payload for e in first] == [{"account": "GEN"}]
    assert first == second
    assert [e.topic for e in risk] == ["risk.breach", "risk.limits.updated"]
    assert [e.sequence for e in everything] == [1, 2, 3, 4]
    assert other == []


def test_each_subscriber_gets_events_in_publish_order_one_at_a_time() -> None:
    seen: list[int] = []
    active = 0
    most_active = 0

    async def handle(event: Event) -> None:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        for _ in range(3):
            await asyncio.sleep(0)
        seen.append(int(str(event.payload)))
        active -= 1

    async def scenario() -> None:
        bus = EventBus()
        bus.subscribe("tick", handle)
        for i in range(50):
            bus.publish("tick", i)
            if i % 7 == 0:
                await asyncio.sleep(0)
        await bus.close()

    run(scenario())
    assert seen == list(range(50))
    assert most_active == 1


def test_a_full_queue_drops_the_oldest_and_counts() -> None:
    received: list[Event] = []

    async def scenario() -> None:
        bus = EventBus(capacity=3)
        slow = bus.subscribe("quote", recorder(received), name="slow")
        roomy = bus.subscribe("quote", recorder([]), capacity=100, name="roomy")
        for i in range(10):  # no await: the subscriber's task has not run yet
            bus.publish("quote", i)
        assert slow.pending == 3 and slow.dropped == 7
        assert roomy.pending == 10 and roomy.dropped == 0
        await bus.flush()
        assert bus.stats()["slow"] == {"pending": 0, "delivered": 3, "failed": 0, "dropped": 7}
        await bus.close()

    run(scenario())
    assert [e.payload for e in received] == [7, 8, 9]


def test_overflow_while_the_handler_is_busy_keeps_the_newest() -> None:
    received: list[object] = []
    release = asyncio.Event()
    busy = asyncio.Event()

    async def handle(event: Event) -> None:
        busy.set()
        await release.wait()
        received.append(event.payload)

    async def scenario() -> None:
        bus = EventBus()
        subscription = bus.subscribe("fill", handle, capacity=2)
        bus.publish("fill", "first")
        await busy.wait()  # "first" is being handled, so it no longer counts against the queue
        for payload in ("a", "b", "c", "d"):
            bus.publish("fill", payload)
        assert subscription.dropped == 2
        release.set()
        await bus.close()

    run(scenario())
    assert received == ["first", "c", "d"]


def test_a_failing_handler_is_logged_and_stops_nothing(caplog: pytest.LogCaptureFixture) -> None:
    good: list[Event] = []
    survived: list[object] = []

    async def flaky(event: Event) -> None:
        if event.payload == 2:
            raise ValueError("bad payload 2")
        survived.append(event.payload)

    async def scenario() -> None:
        bus = EventBus()
        bad = bus.subscribe("order", flaky, name="flaky")
        bus.subscribe("order", recorder(good))
        for i in (1, 2, 3):
            bus.publish("order", i)
        await bus.flush()
        assert (bad.delivered, bad.failed) == (2, 1)
        await bus.close()

    with caplog.at_level(logging.ERROR, logger="allsuse.orchestration.bus"):
        run(scenario())
    assert survived == [1, 3]
    assert [e.payload for e in good] == [1, 2, 3]
    assert "handler 'flaky' failed on event order #2" in caplog.text
    assert "bad payload 2" in caplog.text


def test_close_drains_then_refuses() -> None:
    received: list[Event] = []

    async def scenario() -> None:
        bus = EventBus()
        bus.subscribe("report", recorder(received))
        for i in range(5):
            bus.publish("report", i)
        await bus.close()  # no flush first: close delivers what is queued
        assert bus.closed
        with pytest.raises(BusClosedError):
            bus.publish("report", 6)
        with pytest.raises(BusClosedError):
            bus.subscribe("report", recorder(received))
        await bus.close()  # again: nothing happens
        assert [s["delivered"] for s in bus.stats().values()] == [5]

    run(scenario())
    assert [e.payload for e in received] == [0, 1, 2, 3, 4]


def test_close_with_a_timeout_drops_what_a_stuck_handler_did_not_take() -> None:
    async def stuck(event: Event) -> None:
        await asyncio.Event().wait()

    async def scenario() -> None:
        bus = EventBus()
        subscription = bus.subscribe("x", stuck)
        for i in range(4):
            bus.publish("x", i)
        await asyncio.sleep(0)
        await bus.close(timeout=0.01)
        assert subscription.dropped == 4  # the one being handled was cancelled, three were still queued
        assert not subscription.busy

    run(scenario())


def test_a_subscription_can_leave() -> None:
    received: list[Event] = []

    async def scenario() -> None:
        bus = EventBus()
        subscription = bus.subscribe("a", recorder(received))
        bus.publish("a", 1)
        await subscription.close()
        assert subscription.closed
        assert bus.publish("a", 2) == 0
        assert bus.subscriptions == ()
        await bus.close()

    run(scenario())
    assert [e.payload for e in received] == [1]


def test_health_reports_recent_drops() -> None:
    async def scenario() -> None:
        bus = EventBus(capacity=1)
        bus.subscribe("a", recorder([]))
        assert await bus.health() is State.RUNNING
        bus.publish("a", 1)
        bus.publish("a", 2)
        assert await bus.health() is State.DEGRADED
        assert await bus.health() is State.RUNNING  # no new drops since the last check
        await bus.stop()
        assert await bus.health() is State.FAULTED

    run(scenario())


def test_bad_arguments_name_the_field() -> None:
    async def scenario() -> None:
        bus = EventBus()
        for pattern in ("", "a*", "*.b", "a.*.c", ".*"):
            with pytest.raises(InvalidInputError, match="pattern"):
                bus.subscribe(pattern, recorder([]))
        for topic in ("", "a.*", "*"):
            with pytest.raises(InvalidInputError, match="topic"):
                bus.publish(topic)
        with pytest.raises(InvalidInputError, match="capacity"):
            bus.subscribe("a", recorder([]), capacity=0)
        await bus.close()

    run(scenario())
    with pytest.raises(InvalidInputError, match="capacity"):
        EventBus(capacity=0)
