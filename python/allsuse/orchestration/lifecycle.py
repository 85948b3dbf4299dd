"""The lifecycle state machine shared by every component and by the service as a whole.

A `Lifecycle` holds one `State` and moves only along the edges of `TRANSITIONS`; any other move raises
`IllegalTransitionError`. Every move is announced to the listeners as a `Transition`, which is how the gRPC
health servicer learns what to report: `serving(state)` is True for RUNNING and DEGRADED only.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from allsuse.orchestration.errors import IllegalTransitionError

log = logging.getLogger("allsuse.orchestration")


class State(enum.Enum):
    """Where a component (or the service) is in its life."""

    READY = "READY"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    DEGRADED = "DEGRADED"
    FAULTED = "FAULTED"


S = State
TRANSITIONS: Mapping[State, frozenset[State]] = MappingProxyType(
    {
        S.READY: frozenset({S.STARTING}),
        S.STARTING: frozenset({S.RUNNING, S.DEGRADED, S.FAULTED, S.STOPPING}),
        S.RUNNING: frozenset({S.DEGRADED, S.FAULTED, S.STOPPING}),
        S.DEGRADED: frozenset({S.RUNNING, S.FAULTED, S.STOPPING}),
        S.FAULTED: frozenset({S.STARTING, S.STOPPING}),
        S.STOPPING: frozenset({S.STOPPED, S.FAULTED}),
        S.STOPPED: frozenset({S.STARTING}),
    }
)
"""The legal moves: a fault is left only by restarting or stopping; a stopped component may start again."""
del S


@dataclass(frozen=True)
class Transition:
    """One move of the lifecycle called `name`, with an optional reason (an error, a health report)."""

    name: str
    source: State
    target: State
    reason: str = ""


Listener = Callable[[Transition], Awaitable[None] | None]
"""Called on every transition; may be a plain function or a coroutine function."""


def serving(state: State) -> bool:
    """What the health servicer reports: SERVING for RUNNING and DEGRADED, NOT_SERVING for anything else."""
    return state is State.RUNNING or state is State.DEGRADED


def aggregate(states: Iterable[State]) -> State:
    """The one state that sums up several components' states.

    No components: READY. All alike: that state. Otherwise the first present of FAULTED, STOPPING, STARTING;
    then DEGRADED if anything is up (RUNNING or DEGRADED) beside something that is not; else STOPPED.
    """
    seen = set(states)
    if not seen:
        return State.READY
    if len(seen) == 1:
        return next(iter(seen))
    for state in (State.FAULTED, State.STOPPING, State.STARTING):
        if state in seen:
            return state
    if seen & {State.RUNNING, State.DEGRADED}:
        return State.DEGRADED
    return State.STOPPED


class Lifecycle:
    """One state, the legal moves out of it, and the listeners told about each move."""

    def __init__(self, name: str, state: State = State.READY) -> None:
        self.name = name
        self._state = state
        self._listeners: list[Listener] = []

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    def can_move(self, target: State) -> bool:
        """Whether `target` is a legal next state."""
        return target in TRANSITIONS[self._state]

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Adds a listener; returns a function that removes it again."""
        self._listeners.append(listener)
        return lambda: self.unlisten(listener)

    def unlisten(self, listener: Listener) -> None:
        """Removes a listener added with `listen` (no error if it is not there)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def move(self, target: State, reason: str = "") -> Transition:
        """Moves to `target` (IllegalTransitionError if the table forbids it), then tells every listener.

        The state changes before any listener runs, so listeners see the new state; a listener that raises is
        logged and does not stop the others.
        """
        if not self.can_move(target):
            raise IllegalTransitionError(self.name, self._state.value, target.value)
        transition = Transition(self.name, self._state, target, reason)
        self._state = target
        log.debug("%s: %s -> %s %s", self.name, transition.source.value, target.value, reason)
        for listener in list(self._listeners):
            try:
                result = listener(transition)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("%s: lifecycle listener failed on %s -> %s", self.name, transition.source, target)
        return transition

    def __repr__(self) -> str:
        return f"Lifecycle({self.name!r}, {self._state.value})"


__all__ = ["TRANSITIONS", "Lifecycle", "Listener", "State", "Transition", "aggregate", "serving"]
