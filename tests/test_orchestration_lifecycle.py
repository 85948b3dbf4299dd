"""The lifecycle state machine: its transition table, listener notifications, serving and aggregation."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Coroutine
from typing import Any

import pytest

from allsuse.orchestration import (
    TRANSITIONS,
    IllegalTransitionError,
    Lifecycle,
    OrchestrationError,
    State,
    Transition,
    aggregate,
    serving,
)

S = State


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def guarded() -> Any:
        async with asyncio.timeout(10):  # a hang fails the test instead of blocking the suite
            return await coro

    return asyncio.run(guarded())


EXPECTED_EDGES = {
    (S.READY, S.STARTING),
    (S.STARTING, S.RUNNING),
    (S.STARTING, S.DEGRADED),
    (S.STARTING, S.FAULTED),
    (S.STARTING, S.STOPPING),
    (S.RUNNING, S.DEGRADED),
    (S.RUNNING, S.FAULTED),
    (S.RUNNING, S.STOPPING),
    (S.DEGRADED, S.RUNNING),
    (S.DEGRADED, S.FAULTED),
    (S.DEGRADED, S.STOPPING),
    (S.FAULTED, S.STARTING),
    (S.FAULTED, S.STOPPING),
    (S.STOPPING, S.STOPPED),
    (S.STOPPING, S.FAULTED),
    (S.STOPPED, S.STARTING),
}


def test_the_table_has_exactly_the_intended_edges() -> None:
    table = {(source, target) for source, targets in TRANSITIONS.items() for target in targets}
    assert table == EXPECTED_EDGES
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(State, State)))
def test_every_move_is_legal_exactly_when_the_table_says(source: State, target: State) -> None:
    lifecycle = Lifecycle("store", source)

    async def scenario() -> None:
        if (source, target) in EXPECTED_EDGES:
            transition = await lifecycle.move(target, "why")
            assert transition == Transition("store", source, target, "why")
            assert lifecycle.state is target
        else:
            assert not lifecycle.can_move(target)
            with pytest.raises(IllegalTransitionError) as caught:
                await lifecycle.move(target)
            assert str(caught.value) == f"store: illegal transition {source.value} -> {target.value}"
            assert isinstance(caught.value, OrchestrationError)
            assert lifecycle.state is source  # unchanged

    run(scenario())


def test_listeners_hear_every_transition_in_order_sync_and_async() -> None:
    heard_sync: list[Transition] = []
    heard_async: list[tuple[Transition, State]] = []
    lifecycle = Lifecycle("feed")

    async def async_listener(transition: Transition) -> None:
        await asyncio.sleep(0)
        heard_async.append((transition, lifecycle.state))

    lifecycle.listen(heard_sync.append)
    lifecycle.listen(async_listener)

    async def scenario() -> None:
        for target in (S.STARTING, S.RUNNING, S.DEGRADED, S.RUNNING, S.STOPPING, S.STOPPED):
            await lifecycle.move(target)

    run(scenario())
    path = [(t.source, t.target) for t in heard_sync]
    assert path == [
        (S.READY, S.STARTING),
        (S.STARTING, S.RUNNING),
        (S.RUNNING, S.DEGRADED),
        (S.DEGRADED, S.RUNNING),
        (S.RUNNING, S.STOPPING),
        (S.STOPPING, S.STOPPED),
    ]
    assert [t for t, _ in heard_async] == heard_sync
    # listeners run after the state changed, so they see the new state
    assert all(state is t.target for t, state in heard_async)


def test_a_failing_listener_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[State] = []
    lifecycle = Lifecycle("feed")

    def broken(transition: Transition) -> None:
        raise RuntimeError("listener bug")

    lifecycle.listen(broken)
    lifecycle.listen(lambda t: heard.append(t.target))
    with caplog.at_level(logging.ERROR, logger="allsuse.orchestration"):
        run(lifecycle.move(S.STARTING))
    assert heard == [S.STARTING]
    assert lifecycle.state is S.STARTING
    assert "listener failed" in caplog.text
    assert "listener bug" in caplog.text


def test_removed_listeners_hear_nothing() -> None:
    heard: list[State] = []
    lifecycle = Lifecycle("feed")
    remove = lifecycle.listen(lambda t: heard.append(t.target))
    run(lifecycle.move(S.STARTING))
    remove()
    remove()  # twice is harmless
    run(lifecycle.move(S.RUNNING))
    assert heard == [S.STARTING]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (S.READY, False),
        (S.STARTING, False),
        (S.RUNNING, True),
        (S.DEGRADED, True),
        (S.STOPPING, False),
        (S.STOPPED, False),
        (S.FAULTED, False),
    ],
)
def test_serving_maps_states_to_health(state: State, expected: bool) -> None:
    assert serving(state) is expected


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], S.READY),
        ([S.RUNNING, S.RUNNING], S.RUNNING),
        ([S.STOPPED], S.STOPPED),
        ([S.RUNNING, S.DEGRADED], S.DEGRADED),
        ([S.RUNNING, S.FAULTED, S.DEGRADED], S.FAULTED),
        ([S.RUNNING, S.STOPPING, S.STARTING], S.STOPPING),
        ([S.RUNNING, S.STARTING], S.STARTING),
        ([S.READY, S.RUNNING], S.DEGRADED),
        ([S.STOPPED, S.RUNNING], S.DEGRADED),
        ([S.READY, S.STOPPED], S.STOPPED),
    ],
)
def test_aggregate(states: list[State], expected: State) -> None:
    assert aggregate(states) is expected
