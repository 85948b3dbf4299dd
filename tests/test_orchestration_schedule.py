"""The scheduler: each window's slots (across weekends, holidays, early closes and DST switches), and the
loop on a manual clock: runs at slots, never outside the window, never overlapping, stops promptly."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allsuse.errors import InvalidInputError
from allsuse.orchestration import (
    EASTERN,
    NYSE,
    DailyAt,
    Event,
    EventBus,
    Every,
    ManualClock,
    MarketHours,
    OrchestrationError,
    Registry,
    Scheduler,
    State,
    SystemClock,
)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def guarded() -> Any:
        async with asyncio.timeout(10):  # a hang fails the test instead of blocking the suite
            return await coro

    return asyncio.run(guarded())


def et(*args: int) -> datetime:
    """A US/Eastern wall-clock time."""
    return datetime(*args, tzinfo=EASTERN)  # type: ignore[misc]


def z(*args: int) -> datetime:
    """A UTC time."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


MINUTE = timedelta(minutes=1)

# --- windows: every minute during market hours ------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (et(2024, 3, 5, 9, 29, 59), et(2024, 3, 5, 9, 30)),  # the open
        (et(2024, 3, 5, 9, 30), et(2024, 3, 5, 9, 31)),  # strictly after
        (et(2024, 3, 5, 9, 30, 0, 1), et(2024, 3, 5, 9, 31)),
        (et(2024, 3, 5, 15, 58, 30), et(2024, 3, 5, 15, 59)),  # the last slot of the day
        (et(2024, 3, 5, 15, 59), et(2024, 3, 6, 9, 30)),  # 16:00 is the close, not a slot
        (et(2024, 3, 5, 3, 0), et(2024, 3, 5, 9, 30)),
        (et(2024, 3, 8, 15, 59), et(2024, 3, 11, 9, 30)),  # Friday -> Monday
        (et(2024, 3, 28, 15, 59), et(2024, 4, 1, 9, 30)),  # Good Friday skipped
        (et(2024, 7, 3, 12, 58), et(2024, 7, 3, 12, 59)),  # early close: last slot 12:59
        (et(2024, 7, 3, 12, 59), et(2024, 7, 5, 9, 30)),  # then July 4 is a holiday
        (et(2025, 1, 8, 16, 0), et(2025, 1, 10, 9, 30)),  # special closure skipped
    ],
)
def test_market_hours_every_minute(after: datetime, expected: datetime) -> None:
    assert MarketHours().next_slot(after) == expected


def test_market_hours_across_the_dst_switches() -> None:
    window = MarketHours()
    # Friday before the March switch opens at 14:30 UTC; the Monday after at 13:30 UTC (same 09:30 ET)
    assert window.next_slot(et(2024, 3, 8, 9, 0)) == z(2024, 3, 8, 14, 30)
    assert window.next_slot(et(2024, 3, 8, 15, 59)) == z(2024, 3, 11, 13, 30)
    assert window.next_slot(et(2024, 11, 1, 15, 59)) == z(2024, 11, 4, 14, 30)
    assert window.next_slot(et(2024, 11, 1, 15, 59)).astimezone(EASTERN).time() == time(9, 30)


def test_market_hours_with_a_longer_step() -> None:
    window = MarketHours(timedelta(minutes=15))
    assert window.next_slot(et(2024, 3, 5, 9, 31)) == et(2024, 3, 5, 9, 45)
    assert window.next_slot(et(2024, 3, 5, 15, 45)) == et(2024, 3, 6, 9, 30)


def test_market_hours_window() -> None:
    window = MarketHours()
    assert window.allows(et(2024, 3, 5, 15, 59), et(2024, 3, 5, 15, 59, 59))
    assert not window.allows(et(2024, 3, 5, 15, 59), et(2024, 3, 5, 16, 0))  # the market closed
    assert not window.allows(et(2024, 3, 5, 9, 30), et(2024, 3, 5, 9, 31))  # the next slot is due
    assert not window.allows(et(2024, 3, 5, 9, 30), et(2024, 3, 5, 9, 29))  # early
    assert not window.allows(et(2024, 7, 3, 13, 0), et(2024, 7, 3, 13, 0))  # after an early close
    assert not window.allows(et(2024, 7, 4, 10, 0), et(2024, 7, 4, 10, 0))  # holiday


_MOMENTS = st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(after=_MOMENTS)
def test_market_hours_slots_are_always_inside_a_session_and_none_is_skipped(after: datetime) -> None:
    window = MarketHours()
    slot = window.next_slot(after)
    assert slot > after
    assert NYSE.is_open(slot)
    assert window.allows(slot, slot)
    local = slot.astimezone(EASTERN)
    assert (local.second, local.microsecond, local.minute % 1) == (0, 0, 0)
    previous = slot - MINUTE
    # the slot is the first one after `after`: the minute before it is either not later than `after`
    # or not a market minute
    assert previous <= after or not NYSE.is_open(previous)


# --- windows: every 5 minutes -----------------------------------------------------------------------------


def test_every_five_minutes_is_aligned_and_strictly_after() -> None:
    window = Every(timedelta(minutes=5))
    assert window.next_slot(et(2024, 3, 5, 10, 2, 17)) == et(2024, 3, 5, 10, 5)
    assert window.next_slot(et(2024, 3, 5, 10, 5)) == et(2024, 3, 5, 10, 10)
    assert window.next_slot(et(2024, 3, 9, 23, 58)) == et(2024, 3, 10, 0, 0)  # weekends too
    assert window.allows(et(2024, 3, 5, 10, 5), et(2024, 3, 5, 10, 9, 59))
    assert not window.allows(et(2024, 3, 5, 10, 5), et(2024, 3, 5, 10, 10))


def test_every_five_minutes_counts_elapsed_time_across_dst() -> None:
    window = Every(timedelta(minutes=5))
    # spring forward: 01:58 EST -> 03:00 EDT is two minutes later
    after = et(2024, 3, 10, 1, 58)
    slot = window.next_slot(after)
    assert slot - after == timedelta(minutes=2)
    assert slot.astimezone(EASTERN).replace(tzinfo=None) == datetime(2024, 3, 10, 3, 0)
    # fall back: 01:58 EDT -> 01:00 EST, the repeated hour, also two minutes later
    after = z(2024, 11, 3, 5, 58)
    slot = window.next_slot(after)
    assert slot == z(2024, 11, 3, 6, 0)
    assert slot.astimezone(EASTERN).replace(tzinfo=None) == datetime(2024, 11, 3, 1, 0)


# --- windows: daily at 16:15 on trading days, daily at 02:00 ----------------------------------------------


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (et(2024, 3, 5, 12, 0), et(2024, 3, 5, 16, 15)),
        (et(2024, 3, 5, 16, 15), et(2024, 3, 6, 16, 15)),
        (et(2024, 3, 8, 16, 15), et(2024, 3, 11, 16, 15)),  # Friday -> Monday, across the DST switch
        (et(2024, 3, 28, 17, 0), et(2024, 4, 1, 16, 15)),  # Good Friday skipped
        (et(2024, 7, 3, 9, 0), et(2024, 7, 3, 16, 15)),  # early close days are trading days
        (et(2024, 7, 3, 16, 15), et(2024, 7, 5, 16, 15)),
        (et(2027, 12, 30, 17, 0), et(2027, 12, 31, 16, 15)),  # Dec 31 2027 trades
    ],
)
def test_daily_after_the_close_on_trading_days(after: datetime, expected: datetime) -> None:
    assert DailyAt(time(16, 15), trading_days_only=True).next_slot(after) == expected


def test_daily_after_the_close_counts_utc_offsets() -> None:
    window = DailyAt(time(16, 15), trading_days_only=True)
    assert window.next_slot(et(2024, 3, 8, 12, 0)) == z(2024, 3, 8, 21, 15)
    assert window.next_slot(et(2024, 3, 8, 16, 15)) == z(2024, 3, 11, 20, 15)
    assert window.allows(et(2024, 3, 8, 16, 15), et(2024, 3, 8, 16, 24))
    assert not window.allows(et(2024, 3, 8, 16, 15), et(2024, 3, 8, 16, 25))  # past the 10-minute grace
    assert not window.allows(et(2024, 3, 9, 16, 15), et(2024, 3, 9, 16, 15))  # a Saturday


def test_daily_at_two_runs_every_day_including_weekends() -> None:
    window = DailyAt(time(2, 0))
    assert window.next_slot(et(2024, 3, 1, 2, 0)) == et(2024, 3, 2, 2, 0)
    assert window.next_slot(et(2024, 3, 2, 1, 59)) == et(2024, 3, 2, 2, 0)


def test_daily_at_two_across_the_march_switch_runs_right_after_the_gap() -> None:
    window = DailyAt(time(2, 0))
    first = window.next_slot(et(2024, 3, 9, 1, 0))
    second = window.next_slot(first)
    third = window.next_slot(second)
    assert first == z(2024, 3, 9, 7, 0)  # 02:00 EST
    assert second == z(2024, 3, 10, 7, 0)  # 02:00 does not exist that day: 03:00 EDT
    assert second.astimezone(EASTERN).time() == time(3, 0)
    assert third == z(2024, 3, 11, 6, 0)  # 02:00 EDT
    assert (second - first, third - second) == (timedelta(hours=24), timedelta(hours=23))


def test_daily_at_two_across_the_november_switch() -> None:
    window = DailyAt(time(2, 0))
    first = window.next_slot(et(2024, 11, 2, 1, 0))
    second = window.next_slot(first)
    assert first == z(2024, 11, 2, 6, 0)  # 02:00 EDT
    assert second == z(2024, 11, 3, 7, 0)  # 02:00 EST
    assert second - first == timedelta(hours=25)


def test_a_time_in_the_repeated_hour_runs_once() -> None:
    window = DailyAt(time(1, 30))
    first = window.next_slot(et(2024, 11, 3, 0, 0))
    second = window.next_slot(first)
    assert first == z(2024, 11, 3, 5, 30)  # the first 01:30 (EDT)
    assert second == z(2024, 11, 4, 6, 30)  # not the second 01:30 (EST) of Nov 3
    assert second.astimezone(EASTERN).date() == date(2024, 11, 4)


@settings(max_examples=200, deadline=None)
@given(after=_MOMENTS)
def test_daily_trading_day_slots_are_at_the_time_on_a_trading_day_and_the_first_such(after: datetime) -> None:
    window = DailyAt(time(16, 15), trading_days_only=True)
    slot = window.next_slot(after)
    local = slot.astimezone(EASTERN)
    assert slot > after
    assert local.time() == time(16, 15)
    assert NYSE.is_trading_day(local.date())
    day = after.astimezone(EASTERN).date()
    while day < local.date():  # no trading day in between had its 16:15 after `after`
        candidate = datetime.combine(day, time(16, 15), tzinfo=EASTERN)
        assert not (NYSE.is_trading_day(day) and candidate > after)
        day += timedelta(days=1)


def test_window_arguments_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="step"):
        Every(timedelta(0))
    with pytest.raises(InvalidInputError, match="step"):
        MarketHours(timedelta(milliseconds=10))
    with pytest.raises(InvalidInputError, match="at"):
        DailyAt(time(2, 0, tzinfo=UTC))
    with pytest.raises(InvalidInputError, match="grace"):
        DailyAt(time(2, 0), grace=timedelta(0))
    with pytest.raises(InvalidInputError, match="after"):
        Every().next_slot(datetime(2024, 1, 1))


# --- the loop on a manual clock -----------------------------------------------------------------------------


async def jump(clock: ManualClock, scheduler: Scheduler) -> None:
    """Moves the clock to the scheduler's next wake-up and lets everything due run to completion."""
    await scheduler.wait_idle()
    wakeup = clock.next_wakeup
    assert wakeup is not None
    clock.set(wakeup)
    await scheduler.wait_idle()


def test_the_loop_runs_each_slot_during_market_hours_only() -> None:
    clock = ManualClock(et(2024, 3, 8, 15, 57, 30))
    scheduler = Scheduler(clock)
    slots: list[datetime] = []

    async def record(slot: datetime) -> None:
        slots.append(slot)

    async def scenario() -> None:
        scheduler.add("quotes", MarketHours(), record)
        await scheduler.start()
        for _ in range(4):
            await jump(clock, scheduler)
        await scheduler.stop()

    run(scenario())
    assert slots == [et(2024, 3, 8, 15, 58), et(2024, 3, 8, 15, 59), et(2024, 3, 11, 9, 30), et(2024, 3, 11, 9, 31)]
    assert [s.utcoffset() for s in slots] == [timedelta(hours=-5)] * 2 + [timedelta(hours=-4)] * 2
    assert scheduler.job("quotes").runs == 4


def test_the_loop_runs_the_daily_jobs_across_the_march_switch() -> None:
    clock = ManualClock(et(2024, 3, 8, 12, 0))
    scheduler = Scheduler(clock)
    runs: list[tuple[str, datetime]] = []

    def record(name: str) -> Any:
        async def action(slot: datetime) -> None:
            runs.append((name, slot))

        return action

    async def scenario() -> None:
        scheduler.add("close-report", DailyAt(time(16, 15), trading_days_only=True), record("close-report"))
        scheduler.add("nightly", DailyAt(time(2, 0)), record("nightly"))
        await scheduler.start()
        for _ in range(5):
            await jump(clock, scheduler)
        await scheduler.stop()

    run(scenario())
    assert runs == [
        ("close-report", et(2024, 3, 8, 16, 15)),
        ("nightly", et(2024, 3, 9, 2, 0)),
        ("nightly", et(2024, 3, 10, 3, 0)),  # 02:00 did not exist
        ("nightly", et(2024, 3, 11, 2, 0)),
        ("close-report", et(2024, 3, 11, 16, 15)),
    ]


def test_a_late_wake_up_outside_the_window_is_missed_not_run() -> None:
    clock = ManualClock(et(2024, 3, 8, 15, 58, 30))
    scheduler = Scheduler(clock)
    slots: list[datetime] = []

    async def record(slot: datetime) -> None:
        slots.append(slot)

    async def scenario() -> None:
        job = scheduler.add("quotes", MarketHours(), record)
        report = scheduler.add("report", DailyAt(time(16, 15), trading_days_only=True), record)
        await scheduler.start()
        await scheduler.wait_idle()
        clock.set(et(2024, 3, 8, 16, 0, 30))  # slept through 15:59 until after the close
        await scheduler.wait_idle()
        assert (job.runs, job.missed) == (0, 1)
        assert job.next_run == et(2024, 3, 11, 9, 30)
        clock.set(et(2024, 3, 8, 16, 40))  # 25 minutes late for the 16:15 report
        await scheduler.wait_idle()
        assert (report.runs, report.missed) == (0, 1)
        assert report.next_run == et(2024, 3, 11, 16, 15)
        await scheduler.stop()

    run(scenario())
    assert slots == []


def test_a_job_never_overlaps_itself() -> None:
    clock = ManualClock(et(2024, 3, 5, 10, 0))
    scheduler = Scheduler(clock)
    release = asyncio.Event()
    active = 0
    most_active = 0

    async def slow(slot: datetime) -> None:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        await release.wait()
        active -= 1

    async def scenario() -> None:
        job = scheduler.add("sweep", Every(timedelta(minutes=5)), slow)
        clock.set(et(2024, 3, 5, 10, 5))
        first = scheduler.run_due()
        assert len(first) == 1
        clock.set(et(2024, 3, 5, 10, 10))
        await asyncio.sleep(0)
        assert scheduler.run_due() == []  # still running: the 10:10 slot is skipped
        assert job.overlaps == 1
        assert job.next_run == et(2024, 3, 5, 10, 15)
        release.set()
        await asyncio.gather(*first)
        clock.set(et(2024, 3, 5, 10, 15))
        await asyncio.gather(*scheduler.run_due())
        assert (job.runs, job.overlaps) == (2, 1)

    run(scenario())
    assert most_active == 1


def test_a_failing_job_is_counted_and_keeps_its_schedule() -> None:
    clock = ManualClock(et(2024, 3, 5, 10, 0))
    scheduler = Scheduler(clock)
    outcomes = iter([RuntimeError("feed down"), None])

    async def sometimes(slot: datetime) -> None:
        error = next(outcomes)
        if error is not None:
            raise error

    async def scenario() -> None:
        job = scheduler.add("sweep", Every(timedelta(minutes=5)), sometimes)
        await scheduler.start()
        await jump(clock, scheduler)
        assert (job.runs, job.failures) == (0, 1)
        assert await scheduler.health() is State.DEGRADED
        await jump(clock, scheduler)
        assert (job.runs, job.failures) == (1, 1)
        assert await scheduler.health() is State.RUNNING
        await scheduler.stop()
        assert await scheduler.health() is State.FAULTED

    run(scenario())


def test_stop_is_prompt_and_cancels_a_stuck_run() -> None:
    clock = ManualClock(et(2024, 3, 5, 10, 0))
    scheduler = Scheduler(clock)
    entered = asyncio.Event()
    cancelled = False

    async def stuck(slot: datetime) -> None:
        nonlocal cancelled
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled = True
            raise

    async def scenario() -> None:
        scheduler.add("stuck", Every(MINUTE), stuck)
        await scheduler.start()
        await scheduler.wait_idle()
        clock.advance(MINUTE)
        await entered.wait()
        await scheduler.stop()
        assert not scheduler.started
        assert not scheduler.job("stuck").running

    run(scenario())
    assert cancelled


def test_jobs_added_while_running_are_picked_up() -> None:
    clock = ManualClock(et(2024, 3, 5, 10, 0, 30))
    scheduler = Scheduler(clock)
    slots: list[datetime] = []

    async def record(slot: datetime) -> None:
        slots.append(slot)

    async def scenario() -> None:
        await scheduler.start()
        await scheduler.wait_idle()
        assert clock.next_wakeup is None  # no jobs: the loop waits for one
        scheduler.add("sweep", Every(MINUTE), record)
        await jump(clock, scheduler)
        scheduler.remove("sweep")
        await scheduler.wait_idle()
        clock.advance(timedelta(hours=1))
        await scheduler.wait_idle()
        with pytest.raises(OrchestrationError, match="already started"):
            await scheduler.start()
        await scheduler.stop()

    run(scenario())
    assert slots == [et(2024, 3, 5, 10, 1)]


def test_job_names_are_checked() -> None:
    scheduler = Scheduler(ManualClock(et(2024, 3, 5, 10, 0)))

    async def nothing(slot: datetime) -> None:
        return None

    scheduler.add("sweep", Every(), nothing)
    with pytest.raises(InvalidInputError, match="name"):
        scheduler.add("sweep", Every(), nothing)
    with pytest.raises(InvalidInputError, match="name"):
        scheduler.add("", Every(), nothing)
    assert scheduler.next_run("sweep") == et(2024, 3, 5, 10, 5)


def test_the_scheduler_and_bus_as_registry_components() -> None:
    """A job publishes to the bus; the registry starts the bus first and stops it last."""
    clock = ManualClock(et(2024, 3, 5, 9, 29))
    bus = EventBus()
    scheduler = Scheduler(clock, depends_on=["events"])
    registry = Registry()
    registry.add(scheduler)
    registry.add(bus)
    received: list[Event] = []

    async def publish_tick(slot: datetime) -> None:
        bus.publish("market.minute", slot)

    async def collect(event: Event) -> None:
        received.append(event)

    async def scenario() -> None:
        bus.subscribe("market.*", collect)
        scheduler.add("minute", MarketHours(), publish_tick)
        await registry.start_all()
        assert registry.order() == ["events", "scheduler"]
        await jump(clock, scheduler)
        await jump(clock, scheduler)
        await registry.stop_all()  # scheduler stops, then the bus drains
        assert registry.states() == {"scheduler": State.STOPPED, "events": State.STOPPED}

    run(scenario())
    assert [e.payload for e in received] == [et(2024, 3, 5, 9, 30), et(2024, 3, 5, 9, 31)]


# --- clocks -----------------------------------------------------------------------------------------------


def test_manual_clock() -> None:
    clock = ManualClock(et(2024, 3, 5, 10, 0))
    woke: list[str] = []

    async def sleeper(name: str, until: datetime) -> None:
        await clock.sleep_until(until)
        woke.append(name)

    async def scenario() -> None:
        late = asyncio.create_task(sleeper("late", et(2024, 3, 5, 10, 2)))
        early = asyncio.create_task(sleeper("early", et(2024, 3, 5, 10, 1)))
        await asyncio.sleep(0)
        assert clock.next_wakeup == et(2024, 3, 5, 10, 1)
        clock.advance(MINUTE)
        await early
        assert woke == ["early"]
        clock.advance(MINUTE)
        await late
        await clock.sleep_until(et(2024, 3, 5, 9, 0))  # in the past: returns at once

    run(scenario())
    assert woke == ["early", "late"]
    assert clock.now().tzinfo is UTC
    with pytest.raises(InvalidInputError, match="moment"):
        clock.set(et(2024, 3, 5, 9, 0))
    with pytest.raises(InvalidInputError, match="start"):
        ManualClock(datetime(2024, 3, 5, 10, 0))


def test_system_clock_is_aware_and_does_not_sleep_for_the_past() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC
    run(clock.sleep_until(clock.now() - timedelta(hours=1)))


def test_a_job_whose_window_runs_out_is_removed_and_the_others_go_on() -> None:
    clock = ManualClock(et(2199, 12, 31, 15, 58, 30))  # the calendar's last year
    scheduler = Scheduler(clock)
    slots: list[datetime] = []

    async def record(slot: datetime) -> None:
        slots.append(slot)

    async def scenario() -> None:
        scheduler.add("quotes", MarketHours(), record)
        scheduler.add("sweep", Every(MINUTE), record)
        await scheduler.start()
        await jump(clock, scheduler)  # 15:59: both run; the quotes job has no slot in 2200
        assert [job.name for job in scheduler.jobs] == ["sweep"]
        await jump(clock, scheduler)
        assert scheduler.started
        await scheduler.stop()

    run(scenario())
    assert slots == [et(2199, 12, 31, 15, 59), et(2199, 12, 31, 15, 59), et(2199, 12, 31, 16, 0)]


def test_weekly_and_quarter_end_windows() -> None:
    from allsuse.orchestration.schedule import QuarterEndAt, WeeklyAt

    saturday = WeeklyAt(5, time(9, 0))
    slot = saturday.next_slot(datetime(2024, 3, 7, 12, 0, tzinfo=EASTERN))
    assert slot.astimezone(EASTERN) == datetime(2024, 3, 9, 9, 0, tzinfo=EASTERN)
    assert saturday.next_slot(slot).astimezone(EASTERN) == datetime(2024, 3, 16, 9, 0, tzinfo=EASTERN)  # across DST
    assert saturday.allows(slot, slot + timedelta(minutes=9)) and not saturday.allows(
        slot, slot + timedelta(minutes=10)
    )
    assert not saturday.allows(slot - timedelta(days=1), slot - timedelta(days=1))  # a Friday is no slot
    quarter = QuarterEndAt(time(16, 30))
    ends = []
    moment = datetime(2024, 1, 2, tzinfo=EASTERN)
    for _ in range(5):
        moment = quarter.next_slot(moment)
        ends.append(moment.astimezone(EASTERN))
    # Good Friday 2024-03-29 is a holiday; 2024-06-29/30 and 2025-03-29/30 are a weekend.
    assert [e.date() for e in ends] == [date(2024, 3, 28), date(2024, 6, 28), date(2024, 9, 30), date(2024, 12, 31),
                                         date(2025, 3, 31)]  # fmt: skip
    assert all(e.time() == time(16, 30) and NYSE.is_trading_day(e.date()) for e in ends)
    assert quarter.allows(ends[0], ends[0]) and not quarter.allows(ends[0] - timedelta(days=1), ends[0])
    for bad, field in ((lambda: WeeklyAt(7, time(9)), "weekday"), (lambda: WeeklyAt(5, time(9), timedelta(0)), "grace"),
                       (lambda: QuarterEndAt(time(9, tzinfo=UTC)), "at")):  # fmt: skip
        with pytest.raises(InvalidInputError) as err:
            bad()
        assert err.value.field == field
