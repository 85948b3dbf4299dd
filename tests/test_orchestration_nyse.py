"""The NYSE calendar against published holidays and early closes, Easter, sessions and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
import QuantLib as ql  # noqa: N813  (the library's usual alias)
from dateutil.easter import easter as dateutil_easter

from allsuse.errors import InvalidInputError
from allsuse.orchestration import EASTERN, NYSE, NyseCalendar, easter

# The exchange's published schedule (nyse.com, "Holidays & Trading Hours").
PUBLISHED_HOLIDAYS = {
    2023: [
        date(2023, 1, 2),  # New Year's Day falls on Sunday: observed Monday
        date(2023, 1, 16),
        date(2023, 2, 20),
        date(2023, 4, 7),
        date(2023, 5, 29),
        date(2023, 6, 19),
        date(2023, 7, 4),
        date(2023, 9, 4),
        date(2023, 11, 23),
        date(2023, 12, 25),
    ],
    2024: [
        date(2024, 1, 1),
        date(2024, 1, 15),
        date(2024, 2, 19),
        date(2024, 3, 29),
        date(2024, 5, 27),
        date(2024, 6, 19),
        date(2024, 7, 4),
        date(2024, 9, 2),
        date(2024, 11, 28),
        date(2024, 12, 25),
    ],
    2025: [
        date(2025, 1, 1),
        date(2025, 1, 9),  # National Day of Mourning for President Carter (special closure)
        date(2025, 1, 20),
        date(2025, 2, 17),
        date(2025, 4, 18),
        date(2025, 5, 26),
        date(2025, 6, 19),
        date(2025, 7, 4),
        date(2025, 9, 1),
        date(2025, 11, 27),
        date(2025, 12, 25),
    ],
    2026: [
        date(2026, 1, 1),
        date(2026, 1, 19),
        date(2026, 2, 16),
        date(2026, 4, 3),  # Good Friday
        date(2026, 5, 25),
        date(2026, 6, 19),
        date(2026, 7, 3),  # Independence Day falls on Saturday: observed Friday
        date(2026, 9, 7),
        date(2026, 11, 26),
        date(2026, 12, 25),
    ],
}

PUBLISHED_EARLY_CLOSES = {
    2023: [date(2023, 7, 3), date(2023, 11, 24)],  # Christmas Eve 2023 is a Sunday
    2024: [date(2024, 7, 3), date(2024, 11, 29), date(2024, 12, 24)],
    2025: [date(2025, 7, 3), date(2025, 11, 28), date(2025, 12, 24)],
    2026: [date(2026, 11, 27), date(2026, 12, 24)],  # July 3 2026 is the holiday itself
}


@pytest.mark.parametrize("year", sorted(PUBLISHED_HOLIDAYS))
def test_holidays_match_the_published_schedule(year: int) -> None:
    assert list(NYSE.holidays(year)) == PUBLISHED_HOLIDAYS[year]


@pytest.mark.parametrize("year", sorted(PUBLISHED_EARLY_CLOSES))
def test_early_closes_match_the_published_schedule(year: int) -> None:
    assert list(NYSE.early_closes(year)) == PUBLISHED_EARLY_CLOSES[year]


@pytest.mark.parametrize(
    ("day", "trading"),
    [
        (date(2023, 1, 2), False),  # observed New Year's Day
        (date(2022, 6, 20), False),  # Juneteenth 2022 (a Sunday) observed Monday
        (date(2021, 6, 18), True),  # Juneteenth was not an NYSE holiday before 2022
        (date(2027, 6, 18), False),  # Juneteenth 2027 (a Saturday) observed Friday
        (date(2027, 12, 31), True),  # Jan 1 2028 is a Saturday: not observed on Dec 31
        (date(2021, 12, 31), True),  # Jan 1 2022 is a Saturday: same rule
        (date(2021, 12, 24), False),  # Christmas 2021 (a Saturday) observed Friday
        (date(2022, 12, 26), False),  # Christmas 2022 (a Sunday) observed Monday
        (date(2026, 4, 3), False),  # Good Friday
        (date(2026, 4, 6), True),  # Easter Monday is a trading day
        (date(2024, 3, 30), False),  # a Saturday
        (date(2024, 3, 31), False),  # a Sunday
        (date(2025, 1, 9), False),  # special closure
        (date(2018, 12, 5), False),  # special closure
        (date(2012, 10, 30), False),  # Hurricane Sandy
    ],
)
def test_known_days(day: date, trading: bool) -> None:
    assert NYSE.is_trading_day(day) is trading
    assert (NYSE.session(day) is not None) is trading


@pytest.mark.parametrize(
    ("day", "early"),
    [
        (date(2024, 7, 3), True),
        (date(2024, 11, 29), True),
        (date(2024, 12, 24), True),
        (date(2024, 12, 23), False),
        (date(2021, 12, 23), False),  # Dec 24 2021 was the observed Christmas: no early close the day before
        (date(2020, 7, 2), False),  # July 3 2020 was the observed holiday: full day before it
        (date(2022, 12, 23), False),  # Christmas Eve 2022 was a Saturday
        (date(2026, 7, 2), False),
    ],
)
def test_early_close_rules(day: date, early: bool) -> None:
    assert NYSE.is_early_close(day) is early


def test_trading_days_agree_with_quantlib_from_1998_to_2099() -> None:
    """An independent implementation of the same rules (QuantLib's UnitedStates.NYSE calendar)."""
    reference = ql.UnitedStates(ql.UnitedStates.NYSE)
    day = date(1998, 1, 1)
    disagreements = []
    while day.year < 2100:
        ours = NYSE.is_trading_day(day)
        theirs = reference.isBusinessDay(ql.Date(day.day, day.month, day.year))
        if ours != theirs:
            disagreements.append((day, ours, theirs))
        day += timedelta(days=1)
    assert disagreements == []


@pytest.mark.parametrize(
    ("year", "sunday"),
    [(2023, date(2023, 4, 9)), (2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5))],
)
def test_easter_known_dates(year: int, sunday: date) -> None:
    assert easter(year) == sunday
    assert easter(year).weekday() == 6


def test_easter_agrees_with_dateutil_over_the_gregorian_centuries() -> None:
    assert [easter(y) for y in range(1583, 4100)] == [dateutil_easter(y) for y in range(1583, 4100)]


def test_sessions_have_the_right_hours_in_both_offsets() -> None:
    winter = NYSE.session(date(2024, 1, 2))
    summer = NYSE.session(date(2024, 7, 1))
    early = NYSE.session(date(2024, 7, 3))
    assert winter is not None and summer is not None and early is not None
    assert winter.open.astimezone(UTC) == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)  # EST, UTC-5
    assert winter.close.astimezone(UTC) == datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
    assert summer.open.astimezone(UTC) == datetime(2024, 7, 1, 13, 30, tzinfo=UTC)  # EDT, UTC-4
    assert (early.close.time(), early.early_close) == (time(13, 0), True)
    assert not winter.early_close


def test_is_open_and_next_session() -> None:
    friday_close = datetime(2024, 3, 8, 16, 0, tzinfo=EASTERN)
    assert NYSE.is_open(friday_close - timedelta(microseconds=1))
    assert not NYSE.is_open(friday_close)
    assert not NYSE.is_open(datetime(2024, 3, 8, 9, 29, 59, tzinfo=EASTERN))
    monday = NYSE.next_session(friday_close)
    assert monday.day == date(2024, 3, 11)
    assert monday.open.astimezone(UTC) == datetime(2024, 3, 11, 13, 30, tzinfo=UTC)  # after the DST switch
    assert NYSE.next_session(datetime(2024, 3, 8, 12, 0, tzinfo=EASTERN)).day == date(2024, 3, 8)
    # Thursday evening before Good Friday 2024 -> Monday April 1
    assert NYSE.next_session(datetime(2024, 3, 28, 17, 0, tzinfo=EASTERN)).day == date(2024, 4, 1)


def test_special_closures_are_a_table_the_caller_can_replace() -> None:
    rules_only = NyseCalendar(special_closures={})
    assert rules_only.is_trading_day(date(2025, 1, 9))
    snowed_in = NyseCalendar(special_closures={date(2030, 1, 15): "Snowstorm"})
    assert not snowed_in.is_trading_day(date(2030, 1, 15))
    assert snowed_in.holidays(2030)[date(2030, 1, 15)] == "Snowstorm"
    assert NYSE.is_trading_day(date(2030, 1, 15))


def test_bad_input_names_the_field() -> None:
    with pytest.raises(InvalidInputError, match="year"):
        NYSE.holidays(1990)
    with pytest.raises(InvalidInputError, match="moment"):
        NYSE.is_open(datetime(2024, 1, 2, 10, 0))


@pytest.mark.parametrize("year", [2022, 2028, 2033])
def test_a_saturday_new_years_day_is_not_observed_in_either_year(year: int) -> None:
    assert date(year, 1, 1).weekday() == 5
    assert all(day.year == year for day in NYSE.holidays(year))
    assert "New Year's Day" not in NYSE.holidays(year).values()
    assert date(year - 1, 12, 31) not in NYSE.holidays(year - 1)
    assert NYSE.is_trading_day(date(year - 1, 12, 31))


def test_every_year_has_its_rule_holidays_on_weekdays_within_itself() -> None:
    for year in range(1998, 2200):
        days = NYSE.holidays(year)
        assert all(day.year == year and day.weekday() < 5 for day in days), year
        # nine rule holidays plus Juneteenth from 2022, less a Saturday New Year's Day, plus special closures
        expected = 9 + (year >= 2022) - (date(year, 1, 1).weekday() == 5)
        expected += sum(1 for day in NYSE.special_closures if day.year == year)
        assert len(days) == expected, year
