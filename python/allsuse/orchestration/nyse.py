"""The NYSE trading calendar in US/Eastern time: holidays, early closes and session hours.

Full-day holidays (from 1998, when the exchange began closing for Martin Luther King Jr. Day): New Year's
Day, MLK Day (3rd Monday of January), Washington's Birthday (3rd Monday of February), Good Friday (two days
before Easter Sunday), Memorial Day (last Monday of May), Juneteenth (June 19, from 2022), Independence Day,
Labor Day (1st Monday of September), Thanksgiving (4th Thursday of November) and Christmas. A holiday on a
Saturday is observed the Friday before, except New Year's Day, which is then not observed at all (the Friday
is the last trading day of the year); a holiday on a Sunday is observed the Monday after.

Early closes at 13:00: July 3 and December 24 when they are weekday trading days, and the day after
Thanksgiving. Regular hours are 09:30-16:00.

Unscheduled closures (weather, national days of mourning) cannot be derived from rules; `SPECIAL_CLOSURES`
lists the known ones since 1998 and `NyseCalendar(special_closures=...)` takes an updated table.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from allsuse.errors import InvalidInputError

EASTERN = ZoneInfo("America/New_York")
"""US/Eastern (the IANA name; "US/Eastern" is a link to it)."""

MARKET_OPEN = time(9, 30)
MARKET_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
FIRST_YEAR = 1998
LAST_YEAR = 2199

SPECIAL_CLOSURES: Mapping[date, str] = MappingProxyType(
    {
        date(2001, 9, 11): "September 11 attacks",
        date(2001, 9, 12): "September 11 attacks",
        date(2001, 9, 13): "September 11 attacks",
        date(2001, 9, 14): "September 11 attacks",
        date(2004, 6, 11): "National Day of Mourning for President Reagan",
        date(2007, 1, 2): "National Day of Mourning for President Ford",
        date(2012, 10, 29): "Hurricane Sandy",
        date(2012, 10, 30): "Hurricane Sandy",
        date(2018, 12, 5): "National Day of Mourning for President George H. W. Bush",
        date(2025, 1, 9): "National Day of Mourning for President Carter",
    }
)
"""Full-day closures the holiday rules do not produce."""


def easter(year: int) -> date:
    """Easter Sunday in the Gregorian calendar (the anonymous Gregorian computus)."""
    golden = year % 19
    century, year_of_century = divmod(year, 100)
    leap_centuries, century_rest = divmod(century, 4)
    correction = (century + 8) // 25
    moon = (century - correction + 1) // 3
    epact = (19 * golden + century - leap_centuries - moon + 15) % 30
    leap_years, year_rest = divmod(year_of_century, 4)
    weekday = (32 + 2 * century_rest + 2 * leap_years - epact - year_rest) % 7
    shift = (golden + 11 * epact + 22 * weekday) // 451
    month, day = divmod(epact + weekday - 7 * shift + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday (Monday=0) of a month; n=-1 is the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    """Saturday -> the Friday before, Sunday -> the Monday after."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


def _check_year(year: int) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidInputError.of("year", f"must be in {FIRST_YEAR}..{LAST_YEAR} for the NYSE rules, got {year}")


@functools.lru_cache(maxsize=512)
def _rule_holidays(year: int) -> Mapping[date, str]:
    _check_year(year)
    days: dict[date, str] = {}
    new_year = date(year, 1, 1)
    if new_year.weekday() != 5:  # a Saturday New Year's Day is not moved back into the old year
        days[_observed(new_year)] = "New Year's Day"
    days[_nth_weekday(year, 1, 0, 3)] = "Martin Luther King Jr. Day"
    days[_nth_weekday(year, 2, 0, 3)] = "Washington's Birthday"
    days[easter(year) - timedelta(days=2)] = "Good Friday"
    days[_nth_weekday(year, 5, 0, -1)] = "Memorial Day"
    if year >= 2022:
        days[_observed(date(year, 6, 19))] = "Juneteenth National Independence Day"
    days[_observed(date(year, 7, 4))] = "Independence Day"
    days[_nth_weekday(year, 9, 0, 1)] = "Labor Day"
    days[_nth_weekday(year, 11, 3, 4)] = "Thanksgiving Day"
    days[_observed(date(year, 12, 25))] = "Christmas Day"
    return MappingProxyType(dict(sorted(days.items())))


@dataclass(frozen=True)
class Session:
    """One trading day: its date, and its open and close as US/Eastern datetimes."""

    day: date
    open: datetime
    close: datetime
    early_close: bool

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` (any aware datetime) is within [open, close)."""
        return self.open <= moment < self.close


class NyseCalendar:
    """Holidays, early closes and sessions of the NYSE; valid for the years FIRST_YEAR..LAST_YEAR."""

    def __init__(self, special_closures: Mapping[date, str] = SPECIAL_CLOSURES) -> None:
        self.special_closures: Mapping[date, str] = MappingProxyType(dict(special_closures))

    def holidays(self, year: int) -> dict[date, str]:
        """The weekdays of `year` the exchange is closed all day, each with its name, in date order."""
        days = dict(_rule_holidays(year))
        days.update({d: name for d, name in self.special_closures.items() if d.year == year})
        return dict(sorted(days.items()))

    def early_closes(self, year: int) -> dict[date, str]:
        """The days of `year` the exchange closes at 13:00, each with the reason, in date order."""
        days: dict[date, str] = {}
        for day, reason in (
            (date(year, 7, 3), "Day before Independence Day"),
            (_nth_weekday(year, 11, 3, 4) + timedelta(days=1), "Day after Thanksgiving"),
            (date(year, 12, 24), "Christmas Eve"),
        ):
            if self.is_trading_day(day):
                days[day] = reason
        return days

    def is_trading_day(self, day: date) -> bool:
        """Whether the exchange opens on `day` (a weekday that is no holiday)."""
        return day.weekday() < 5 and day not in _rule_holidays(day.year) and day not in self.special_closures

    def is_early_close(self, day: date) -> bool:
        """Whether `day` is a trading day that closes at 13:00."""
        return day in self.early_closes(day.year)

    def session(self, day: date) -> Session | None:
        """The session of `day`, or None if the exchange is closed that day."""
        if not self.is_trading_day(day):
            return None
        early = self.is_early_close(day)
        return Session(
            day,
            datetime.combine(day, MARKET_OPEN, tzinfo=EASTERN),
            datetime.combine(day, EARLY_CLOSE if early else MARKET_CLOSE, tzinfo=EASTERN),
            early,
        )

    def sessions(self, start: date) -> Iterator[Session]:
        """The sessions from `start` on (inclusive), without end."""
        day = start
        while True:
            found = self.session(day)
            if found is not None:
                yield found
            day += timedelta(days=1)

    def next_session(self, moment: datetime) -> Session:
        """The session in progress at `moment` (aware), or else the next one to open."""
        _check_aware("moment", moment)
        for found in self.sessions(moment.astimezone(EASTERN).date()):
            if moment < found.close:
                return found
        raise AssertionError("unreachable: sessions() never ends")  # pragma: no cover

    def is_open(self, moment: datetime) -> bool:
        """Whether the market is open at `moment` (aware)."""
        _check_aware("moment", moment)
        found = self.session(moment.astimezone(EASTERN).date())
        return found is not None and found.contains(moment)


def _check_aware(field: str, moment: datetime) -> None:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError.of(field, f"must be a timezone-aware datetime, got {moment!r}")


def eastern(moment: datetime) -> datetime:
    """`moment` (aware) as US/Eastern wall-clock time."""
    _check_aware("moment", moment)
    return moment.astimezone(EASTERN)


def utc(moment: datetime) -> datetime:
    """`moment` (aware) in UTC, where adding a timedelta means elapsed time (not wall-clock time)."""
    _check_aware("moment", moment)
    return moment.astimezone(UTC)


NYSE = NyseCalendar()
"""The calendar with the default table of special closures."""

__all__ = [
    "EARLY_CLOSE",
    "EASTERN",
    "FIRST_YEAR",
    "LAST_YEAR",
    "MARKET_CLOSE",
    "MARKET_OPEN",
    "NYSE",
    "SPECIAL_CLOSURES",
    "NyseCalendar",
    "Session",
    "easter",
    "eastern",
    "utc",
]
