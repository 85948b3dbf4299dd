"""Runs jobs at the slots of their windows on the NYSE calendar, reading time from an injectable clock.

A window says when a job may run: `MarketHours(step)` (every step from the open, during the session),
`Every(step)` (every step, around the clock, aligned to the Unix epoch), `DailyAt(at, trading_days_only)`
(once a day at a US/Eastern wall-clock time), `WeeklyAt(weekday, at)` (once a week) and `QuarterEndAt(at)` (on the
last NYSE trading day of each calendar quarter). `next_slot(after)` is the first slot strictly after a moment;
`allows(slot, now)` says whether running that slot at `now` is still inside the window.

The scheduler keeps each job's next slot. When a slot comes due it starts the job as an asyncio task, unless
the previous run is still going (then the slot is skipped and counted in `overlaps`, so a job never runs
alongside itself) or the scheduler woke too late for the slot to be inside its window (then it is counted in
`missed`). Either way the next slot is the first one after now. Job errors are logged and counted; they do
not stop the scheduler. `stop()` ends the loop and cancels runs still going after the grace period.

Arithmetic happens in UTC (elapsed time); wall-clock times are US/Eastern, so daily jobs follow daylight
saving time. A daily time that does not exist on the spring-forward day (02:00-02:59) runs at the first
moment after the gap (03:00 EDT); one that happens twice on the fall-back day (01:00-01:59) runs once, at
the first occurrence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from allsuse.errors import InvalidInputError
from allsuse.orchestration.clock import Clock, SystemClock
from allsuse.orchestration.errors import OrchestrationError
from allsuse.orchestration.lifecycle import State
from allsuse.orchestration.nyse import EASTERN, NYSE, NyseCalendar, Session

log = logging.getLogger("allsuse.orchestration.schedule")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY = timedelta(days=1)
_SEARCH_DAYS = 31  # no NYSE closure run lasts this long; bounds every "next trading day" search


class Window(Protocol):
    """When a job may run."""

    def next_slot(self, after: datetime) -> datetime:
        """The first slot strictly after `after` (aware), as an aware UTC datetime."""
        ...

    def allows(self, slot: datetime, now: datetime) -> bool:
        """Whether running `slot` at `now` (both aware) stays inside the window."""
        ...


def _positive_step(step: timedelta) -> None:
    if not isinstance(step, timedelta) or step < timedelta(seconds=1):
        raise InvalidInputError.of("step", f"must be a timedelta of at least one second, got {step!r}")


def _aware_utc(field_name: str, moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError.of(field_name, f"must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _wall_clock(day: date, at: time) -> datetime:
    """`at` on `day` in US/Eastern as UTC; a time in the spring-forward gap lands just after it."""
    return datetime.combine(day, at, tzinfo=EASTERN).astimezone(UTC)


@dataclass(frozen=True)
class MarketHours:
    """Every `step` from the open while the market is open: 09:30, 09:31, ... 15:59 (12:59 on early closes)."""

    step: timedelta = timedelta(minutes=1)
    calendar: NyseCalendar = field(default=NYSE, repr=False, compare=False)

    def __post_init__(self) -> None:
        _positive_step(self.step)

    def next_slot(self, after: datetime) -> datetime:
        """The first slot after `after`: later in this session, or the next session's open."""
        after = _aware_utc("after", after)
        day = after.astimezone(EASTERN).date()
        for _ in range(_SEARCH_DAYS):
            session = self.calendar.session(day)
            if session is not None:
                opens, closes = session.open.astimezone(UTC), session.close.astimezone(UTC)
                if after < opens:
                    return opens
                slot = opens + ((after - opens) // self.step + 1) * self.step
                if slot < closes:
                    return slot
            day += _DAY
        raise OrchestrationError(f"no NYSE session within {_SEARCH_DAYS} days after {after.isoformat()}")

    def allows(self, slot: datetime, now: datetime) -> bool:
        """Inside the slot's session, and before the following slot is due."""
        session = self._session_of(slot)
        return session is not None and slot <= now < min(slot + self.step, session.close)

    def _session_of(self, slot: datetime) -> Session | None:
        session = self.calendar.session(slot.astimezone(EASTERN).date())
        return session if session is not None and session.contains(slot) else None


@dataclass(frozen=True)
class Every:
    """Every `step` around the clock, at multiples of `step` since 1970-01-01 UTC (5 minutes: :00, :05, ...)."""

    step: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        _positive_step(self.step)

    def next_slot(self, after: datetime) -> datetime:
        """The next multiple of `step` after `after`."""
        after = _aware_utc("after", after)
        return _EPOCH + ((after - _EPOCH) // self.step + 1) * self.step

    def allows(self, slot: datetime, now: datetime) -> bool:
        """Before the following slot is due."""
        return slot <= now < slot + self.step


@dataclass(frozen=True)
class DailyAt:
    """Once a day at the US/Eastern wall-clock time `at`; only on NYSE trading days if `trading_days_only`.

    A run may start up to `grace` late (a busy or suspended process); later than that the day is missed.
    """

    at: time
    trading_days_only: bool = False
    grace: timedelta = timedelta(minutes=10)
    calendar: NyseCalendar = field(default=NYSE, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.at, time) or self.at.tzinfo is not None:
            raise InvalidInputError.of("at", f"must be a naive datetime.time (read as US/Eastern), got {self.at!r}")
        if not isinstance(self.grace, timedelta) or not timedelta(0) < self.grace < timedelta(hours=12):
            raise InvalidInputError.of("grace", f"must be a timedelta between 0 and 12 hours, got {self.grace!r}")

    def next_slot(self, after: datetime) -> datetime:
        """The first day's `at` after `after` (skipping non-trading days if asked)."""
        after = _aware_utc("after", after)
        day = after.astimezone(EASTERN).date()
        for _ in range(_SEARCH_DAYS):
            slot = _wall_clock(day, self.at)
            if slot > after and (not self.trading_days_only or self.calendar.is_trading_day(day)):
                return slot
            day += _DAY
        raise OrchestrationError(f"no trading day within {_SEARCH_DAYS} days after {after.isoformat()}")

    def allows(self, slot: datetime, now: datetime) -> bool:
        """Within `grace` of the slot, and on a trading day if asked."""
        day = slot.astimezone(EASTERN).date()
        if self.trading_days_only and not self.calendar.is_trading_day(day):
            return False
        return slot <= now < slot + self.grace


@dataclass(frozen=True)
class WeeklyAt:
    """Once a week on `weekday` (Monday 0 .. Sunday 6) at the US/Eastern wall-clock time `at`, up to `grace` late."""

    weekday: int
    at: time
    grace: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if isinstance(self.weekday, bool) or not isinstance(self.weekday, int) or not 0 <= self.weekday <= 6:
            raise InvalidInputError.of("weekday", f"must be 0 (Monday) .. 6 (Sunday), got {self.weekday!r}")
        DailyAt(self.at, grace=self.grace)  # the same checks of `at` and `grace`

    def next_slot(self, after: datetime) -> datetime:
        """The first `weekday` at `at` after `after`."""
        after = _aware_utc("after", after)
        day = after.astimezone(EASTERN).date()
        for _ in range(8):
            slot = _wall_clock(day, self.at)
            if slot > after and day.weekday() == self.weekday:
                return slot
            day += _DAY
        raise OrchestrationError(f"no weekday {self.weekday} within 8 days after {after.isoformat()}")  # unreachable

    def allows(self, slot: datetime, now: datetime) -> bool:
        """On the weekday and within `grace` of the slot."""
        return slot.astimezone(EASTERN).weekday() == self.weekday and slot <= now < slot + self.grace


@dataclass(frozen=True)
class QuarterEndAt:
    """Once a quarter, at the US/Eastern wall-clock time `at` on the last NYSE trading day of March, June,
    September and December (after that day's session when `at` is past the close), up to `grace` late."""

    at: time
    grace: timedelta = timedelta(minutes=10)
    calendar: NyseCalendar = field(default=NYSE, repr=False, compare=False)

    def __post_init__(self) -> None:
        DailyAt(self.at, grace=self.grace)  # the same checks of `at` and `grace`

    def last_session(self, day: date) -> date:
        """The last trading day of `day`'s calendar quarter."""
        month = 3 * ((day.month - 1) // 3) + 3
        end = (date(day.year + (month == 12), month % 12 + 1, 1)) - _DAY
        while not self.calendar.is_trading_day(end):
            end -= _DAY
        return end

    def next_slot(self, after: datetime) -> datetime:
        """The first quarter's last session at `at` after `after`."""
        after = _aware_utc("after", after)
        day = after.astimezone(EASTERN).date()
        for _ in range(3):
            end = self.last_session(day)
            slot = _wall_clock(end, self.at)
            if slot > after:
                return slot
            day = end + timedelta(days=7)  # into the next quarter
        raise OrchestrationError(f"no quarter end after {after.isoformat()}")  # unreachable

    def allows(self, slot: datetime, now: datetime) -> bool:
        """On a quarter's last session and within `grace` of the slot."""
        day = slot.astimezone(EASTERN).date()
        return day == self.last_session(day) and slot <= now < slot + self.grace


Action = Callable[[datetime], Awaitable[None]]
"""A job's work; called with the slot (US/Eastern datetime) it runs for."""


@dataclass(eq=False)
class Job:
    """A named action, its window, its next slot and its counters."""

    name: str
    window: Window
    action: Action
    next_slot: datetime
    runs: int = 0
    failures: int = 0
    missed: int = 0
    overlaps: int = 0
    last_error: BaseException | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def next_run(self) -> datetime:
        """The next slot as US/Eastern wall-clock time."""
        return self.next_slot.astimezone(EASTERN)

    @property
    def running(self) -> bool:
        """Whether a run of this job is in progress."""
        return self.task is not None and not self.task.done()


class Scheduler:
    """Runs jobs at their windows' slots; also a registry component (named "scheduler" by default)."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        name: str = "scheduler",
        depends_on: Sequence[str] = (),
        stop_grace: float = 0.0,
    ) -> None:
        if not stop_grace >= 0:
            raise InvalidInputError.of("stop_grace", f"must be >= 0 seconds, got {stop_grace!r}")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.name = name
        self.depends_on = tuple(depends_on)
        self.stop_grace = stop_grace
        self._jobs: dict[str, Job] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._parked = False
        self._sleeping = False
        self._parked_until: datetime | None = None

    # --- jobs -----------------------------------------------------------------------------------------

    def add(self, name: str, window: Window, action: Action) -> Job:
        """Adds a job; its first slot is the first one after the clock's now."""
        if not isinstance(name, str) or not name:
            raise InvalidInputError.of("name", f"must be a non-empty string, got {name!r}")
        if name in self._jobs:
            raise InvalidInputError.of("name", f"a job named {name!r} already exists")
        if not callable(action):
            raise InvalidInputError.of("action", f"must be an async callable, got {action!r}")
        job = Job(name, window, action, window.next_slot(self.clock.now()))
        self._jobs[name] = job
        self._changed.set()
        return job

    def remove(self, name: str) -> Job:
        """Removes a job (a run in progress finishes); returns it. KeyError if there is none.

        A job whose window has no next slot (past the calendar's last year) is removed by the scheduler itself.
        """
        job = self._jobs.pop(name)
        self._changed.set()
        return job

    def job(self, name: str) -> Job:
        """The job called `name` (KeyError if none)."""
        return self._jobs[name]

    @property
    def jobs(self) -> tuple[Job, ...]:
        """All jobs, in the order they were added."""
        return tuple(self._jobs.values())

    def next_run(self, name: str) -> datetime:
        """When the job `name` runs next, as US/Eastern wall-clock time."""
        return self._jobs[name].next_run

    def run_due(self) -> list[asyncio.Task[None]]:
        """Starts every job whose slot has come (one pass at the clock's now); returns the runs started.

        The loop started by start() calls this; calling it by hand drives a scheduler without the loop.
        """
        now = self.clock.now()
        started: list[asyncio.Task[None]] = []
        for job in list(self._jobs.values()):
            slot = job.next_slot
            if slot > now:
                continue
            if job.running:
                job.overlaps += 1
                log.warning("job %r still running: slot %s skipped", job.name, slot.astimezone(EASTERN))
            elif job.window.allows(slot, now):
                job.task = asyncio.get_running_loop().create_task(self._run(job, slot), name=f"job:{job.name}")
                started.append(job.task)
            else:
                job.missed += 1
                log.warning("job %r woke at %s, outside the window of slot %s: missed", job.name, now, slot)
            try:
                job.next_slot = job.window.next_slot(now)
            except Exception:  # e.g. past the calendar's last year: this job ends, the others go on
                log.exception("job %r has no next slot after %s: removed", job.name, now)
                self._jobs.pop(job.name, None)
        return started

    async def _run(self, job: Job, slot: datetime) -> None:
        try:
            await job.action(slot.astimezone(EASTERN))
        except Exception as error:
            job.failures += 1
            job.last_error = error
            log.exception("job %r failed for slot %s", job.name, slot.astimezone(EASTERN))
        else:
            job.runs += 1
            job.last_error = None

    # --- the loop -------------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the loop is running."""
        return self._loop_task is not None and not self._loop_task.done()

    async def start(self) -> None:
        """Starts the loop (as a task) and returns at once."""
        if self.started:
            raise OrchestrationError(f"scheduler {self.name!r} is already started")
        self._changed = asyncio.Event()
        self._loop_task = asyncio.get_running_loop().create_task(self._loop(), name=f"scheduler:{self.name}")

    async def _loop(self) -> None:
        while True:
            self._changed.clear()
            self.run_due()
            wake = min((job.next_slot for job in self._jobs.values()), default=None)
            waits: list[asyncio.Task[Any]] = [asyncio.create_task(self._changed.wait())]
            self._sleeping = False
            if wake is not None:
                waits.append(asyncio.create_task(self._sleep_until(wake)))
            self._parked, self._parked_until = True, wake
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._parked = False
                for waiting in waits:
                    waiting.cancel()
                await asyncio.gather(*waits, return_exceptions=True)

    async def _sleep_until(self, wake: datetime) -> None:
        self._sleeping = True  # the clock has been asked (so a manual clock knows its sleeper)
        await self.clock.sleep_until(wake)

    async def stop(self, grace: float | None = None) -> None:
        """Ends the loop; runs still going after `grace` seconds (default `stop_grace`, 0) are cancelled."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        runs = [job.task for job in self._jobs.values() if job.task is not None and not job.task.done()]
        if not runs:
            return
        patience = self.stop_grace if grace is None else grace
        if patience > 0:
            await asyncio.wait(runs, timeout=patience)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Waits until no job is due or running and the loop is asleep (for manually driven clocks in tests)."""
        while not self._idle():
            if self._loop_task is None or self._loop_task.done():
                raise OrchestrationError(f"scheduler {self.name!r} is not running")
            # A run on a worker thread needs the GIL: wait a little rather than spin while one is going.
            await asyncio.sleep(0.001 if any(job.running for job in self._jobs.values()) else 0)

    def _idle(self) -> bool:
        if not self._parked or self._changed.is_set():
            return False
        if self._parked_until is not None and (not self._sleeping or self._parked_until <= self.clock.now()):
            return False
        return not any(job.running for job in self._jobs.values())

    async def health(self) -> State:
        """FAULTED if the loop died, DEGRADED while a job's last run failed, else RUNNING."""
        if not self.started:
            return State.FAULTED
        return State.DEGRADED if any(job.last_error for job in self._jobs.values()) else State.RUNNING


__all__ = ["Action", "DailyAt", "Every", "Job", "MarketHours", "QuarterEndAt", "Scheduler", "WeeklyAt", "Window"]
