"""An in-process async event bus: publish by topic, each subscriber served by its own task and queue.

`publish(topic, payload)` never waits: it appends the event to the queue of every matching subscription
and returns how many there were. Each subscription runs its handler on one event at a time, in publish
order. A queue holds at most `capacity` waiting events; when a new one arrives at a full queue the oldest
waiting event is dropped and the subscription's `dropped` counter grows (a slow subscriber loses old news,
never blocks the publisher). A handler that raises is logged and counted in `failed`; the next event is
still delivered, and other subscribers are unaffected. `close()` stops accepting events and delivers
what is queued.

Topics are dotted names ("decision.made"). A subscription's pattern is a topic, "prefix.*" (every topic
that starts with "prefix.") or "*" (every topic).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from allsuse.errors import InvalidInputError
from allsuse.orchestration.errors import BusClosedError
from allsuse.orchestration.lifecycle import State

log = logging.getLogger("allsuse.orchestration.bus")


@dataclass(frozen=True)
class Event:
    """One published event; `sequence` numbers the bus's events from 1 in publish order."""

    topic: str
    payload: object
    sequence: int


Handler = Callable[[Event], Awaitable[None]]


class Subscription:
    """One subscriber: its pattern, its handler, its bounded queue and its counters."""

    def __init__(self, bus: EventBus, pattern: str, handler: Handler, capacity: int, name: str) -> None:
        self.pattern = pattern
        self.name = name
        self.capacity = capacity
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._bus = bus
        self._handler = handler
        self._queue: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._handling = False
        self._task = asyncio.get_running_loop().create_task(self._serve(), name=f"bus:{name}")

    @property
    def pending(self) -> int:
        """Events waiting in the queue (not counting one being handled)."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        """Whether the subscription no longer accepts events."""
        return self._closing

    def matches(self, topic: str) -> bool:
        """Whether an event on `topic` is for this subscription."""
        if self.pattern == "*":
            return True
        if self.pattern.endswith(".*"):
            return topic.startswith(self.pattern[:-1])
        return topic == self.pattern

    def offer(self, event: Event) -> None:
        """Queues an event, dropping the oldest waiting one if the queue is full."""
        if self._closing:
            return
        if len(self._queue) >= self.capacity:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "subscription %r is full (%d): dropped %d events so far", self.name, self.capacity, self.dropped
                )
        self._queue.append(event)
        self._idle.clear()
        self._wakeup.set()

    async def idle(self) -> None:
        """Waits until the queue is empty and no handler is running."""
        await self._idle.wait()

    @property
    def busy(self) -> bool:
        """Whether events are queued or a handler is running."""
        return not self._idle.is_set()

    async def close(self, timeout: float | None = None) -> None:
        """Unsubscribes: stops accepting events, delivers the queued ones, then ends.

        With a timeout (seconds), the event being handled when it runs out is cancelled, and it and the queued
        ones are counted as dropped.
        """
        self._bus._forget(self)
        await self._drain(timeout)

    async def _drain(self, timeout: float | None) -> None:
        self._closing = True
        self._wakeup.set()
        done, _ = await asyncio.wait([self._task], timeout=timeout)
        if not done:
            self._task.cancel()
            self.dropped += len(self._queue) + int(self._handling)
            self._queue.clear()
            await asyncio.gather(self._task, return_exceptions=True)
            self._idle.set()
            log.warning("subscription %r did not drain in %ss", self.name, timeout)

    async def _serve(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    self._idle.set()
                    return
                self._idle.set()
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            event = self._queue.popleft()
            self._handling = True
            try:
                await self._handler(event)
            except Exception:
                self.failed += 1
                log.exception("handler %r failed on event %s #%d", self.name, event.topic, event.sequence)
            else:
                self.delivered += 1
            finally:
                self._handling = False

    def __repr__(self) -> str:
        return (
            f"Subscription({self.name!r}, {self.pattern!r}, pending={self.pending}, delivered={self.delivered},"
            f" failed={self.failed}, dropped={self.dropped})"
        )


def _check_topic(field: str, topic: str, *, pattern: bool) -> None:
    if not isinstance(topic, str) or not topic:
        raise InvalidInputError.of(field, f"must be a non-empty string, got {topic!r}")
    body = topic[:-2] if pattern and topic.endswith(".*") else topic
    if pattern and topic == "*":
        return
    if "*" in body or not body:
        allowed = 'a topic, "prefix.*" or "*"' if pattern else "a topic without wildcards"
        raise InvalidInputError.of(field, f"must be {allowed}, got {topic!r}")


class EventBus:
    """Topic-based publish/subscribe inside one event loop; also a registry component named "events"."""

    def __init__(self, capacity: int = 1024, *, name: str = "events", depends_on: Sequence[str] = ()) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise InvalidInputError.of("capacity", f"must be a positive integer, got {capacity!r}")
        self.name = name
        self.depends_on = tuple(depends_on)
        self.capacity = capacity
        self._subscriptions: list[Subscription] = []
        self._sequence = itertools.count(1)
        self._names = itertools.count(1)
        self._closed = False
        self._dropped_seen = 0

    @property
    def closed(self) -> bool:
        """Whether close() has been called."""
        return self._closed

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The open subscriptions."""
        return tuple(self._subscriptions)

    def subscribe(
        self, pattern: str, handler: Handler, *, capacity: int | None = None, name: str | None = None
    ) -> Subscription:
        """Calls `handler` for every event whose topic matches `pattern`; must run inside the event loop.

        `capacity` bounds the subscription's queue (default: the bus's); `name` labels logs and counters.
        """
        if self._closed:
            raise BusClosedError(f"bus {self.name!r} is closed")
        _check_topic("pattern", pattern, pattern=True)
        size = self.capacity if capacity is None else capacity
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidInputError.of("capacity", f"must be a positive integer, got {capacity!r}")
        label = name or f"{pattern}#{next(self._names)}"
        subscription = Subscription(self, pattern, handler, size, label)
        self._subscriptions.append(subscription)
        return subscription

    def publish(self, topic: str, payload: object = None) -> int:
        """Queues an event for every matching subscription without waiting; returns how many matched."""
        if self._closed:
            raise BusClosedError(f"bus {self.name!r} is closed: cannot publish {topic!r}")
        _check_topic("topic", topic, pattern=False)
        event = Event(topic, payload, next(self._sequence))
        matched = 0
        for subscription in self._subscriptions:
            if subscription.matches(topic):
                subscription.offer(event)
                matched += 1
        return matched

    async def flush(self) -> None:
        """Waits until every subscription has handled everything queued so far (events published meanwhile too)."""
        while True:
            busy = [s for s in self._subscriptions if s.busy]
            if not busy:
                return
            await asyncio.gather(*(s.idle() for s in busy))

    async def close(self, timeout: float | None = None) -> None:
        """Stops accepting events, delivers everything queued, and ends every subscription.

        With a timeout (seconds, for the whole drain), undelivered events are dropped when it runs out.
        Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(s._drain(timeout) for s in self._subscriptions))

    def stats(self) -> dict[str, dict[str, int]]:
        """Per subscription name: pending, delivered, failed and dropped counts (closed bus: as at close)."""
        return {
            s.name: {"pending": s.pending, "delivered": s.delivered, "failed": s.failed, "dropped": s.dropped}
            for s in self._subscriptions
        }

    def _forget(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    # --- the registry component interface ----------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to acquire: subscriptions start their own tasks."""

    async def stop(self) -> None:
        """Closes the bus, draining the queues."""
        await self.close()

    async def health(self) -> State:
        """RUNNING while open; DEGRADED if a subscriber dropped events since the previous health check."""
        if self._closed:
            return State.FAULTED
        dropped = sum(s.dropped for s in self._subscriptions)
        state = State.DEGRADED if dropped > self._dropped_seen else State.RUNNING
        self._dropped_seen = dropped
        return state


__all__ = ["Event", "EventBus", "Handler", "Subscription"]
