"""Clocks the scheduler reads and sleeps on: the system clock, and a manual one for deterministic tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

from allsuse.errors import InvalidInputError

_LONGEST_NAP = 30.0  # seconds; the system clock re-reads the time at least this often while sleeping


class Clock(Protocol):
    """Tells the time (an aware datetime) and sleeps until a given moment."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep_until(self, moment: datetime) -> None:
        """Returns once now() >= moment (at once if it already is)."""
        ...


class SystemClock:
    """Wall-clock time in UTC. Sleeps in naps of at most 30 s, so a wall-clock jump (NTP, suspend) is noticed."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        """Sleeps until the wall clock reaches `moment`."""
        while (remaining := (moment - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, _LONGEST_NAP))


class ManualClock:
    """A clock that moves only when told to (`advance`, `set`), waking the sleepers whose moment has come."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise InvalidInputError.of("start", f"must be a timezone-aware datetime, got {start!r}")
        self._now = start.astimezone(UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        """The time the clock was last set to, in UTC."""
        return self._now

    async def sleep_until(self, moment: datetime) -> None:
        """Waits until the clock is moved to `moment` or later."""
        if moment <= self._now:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (moment, waiter)
        self._sleepers.append(entry)
        try:
            await waiter
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def next_wakeup(self) -> datetime | None:
        """The earliest moment someone is sleeping until, if anyone is."""
        pending = [moment for moment, waiter in self._sleepers if not waiter.done()]
        return min(pending, default=None)

    def advance(self, delta: timedelta) -> None:
        """Moves the clock forward by `delta` (elapsed time)."""
        if delta < timedelta(0):
            raise InvalidInputError.of("delta", f"must not be negative, got {delta}")
        self.set(self._now + delta)

    def set(self, moment: datetime) -> None:
        """Moves the clock forward to `moment` (aware) and wakes the sleepers that are due."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidInputError.of("moment", f"must be a timezone-aware datetime, got {moment!r}")
        if moment < self._now:
            raise InvalidInputError.of("moment", f"must not be before the clock's time {self._now.isoformat()}")
        self._now = moment.astimezone(UTC)
        for due, waiter in list(self._sleepers):
            if due <= self._now and not waiter.done():
                waiter.set_result(None)


__all__ = ["Clock", "ManualClock", "SystemClock"]
