"""When calling is allowed, and who is held out: pure functions over dates and ids.

Calling happens in Asia/Tokyo windows on calling days: weekdays (Saturdays if the
campaign says so), never on a public holiday — substitute holidays (振替休日) and the
citizens' holidays between two holidays included, from the maintained `holidays`
package — and never in one of the insurer's blackout periods (New Year, Obon).
"""

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from zoneinfo import ZoneInfo

import holidays

TOKYO = ZoneInfo("Asia/Tokyo")
# Time-of-day bands a target's attempts rotate through, so that someone never at home in
# the morning is tried in the evening next.
BANDS = ((time(0), "morning"), (time(12), "afternoon"), (time(17), "evening"))


class Closed(StrEnum):
    """Why a campaign is not calling at a moment (the campaign-wide reason codes)."""

    NOT_RUNNING = "not_running"
    BEFORE_PERIOD = "before_period"
    AFTER_PERIOD = "after_period"
    HOLIDAY = "holiday"
    BLACKOUT = "blackout"
    NON_CALLING_DAY = "non_calling_day"
    OUTSIDE_WINDOW = "outside_window"


@dataclass(frozen=True)
class Calendar:
    """A campaign's calling rules."""

    starts: date
    ends: date
    window_start: time
    window_end: time
    saturdays: bool
    blackouts: tuple[tuple[date, date], ...] = ()


@cache
def _japanese_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("JP", years=year))


def is_holiday(day: date) -> bool:
    return day in _japanese_holidays(day.year)


def local(moment: datetime) -> datetime:
    return moment.astimezone(TOKYO)


def closed_reason(calendar: Calendar, moment: datetime) -> Closed | None:
    """Why no call may be made at `moment` (an aware datetime), or None if one may."""
    now = local(moment)
    day = now.date()
    if day < calendar.starts:
        return Closed.BEFORE_PERIOD
    if day > calendar.ends:
        return Closed.AFTER_PERIOD
    if is_holiday(day):
        return Closed.HOLIDAY
    if any(start <= day <= end for start, end in calendar.blackouts):
        return Closed.BLACKOUT
    if day.weekday() == 6 or (day.weekday() == 5 and not calendar.saturdays):
        return Closed.NON_CALLING_DAY
    if not calendar.window_start <= now.time() < calendar.window_end:
        return Closed.OUTSIDE_WINDOW
    return None


def band(moment: datetime) -> str:
    """The time-of-day band of `moment` in Tokyo."""
    clock = local(moment).time()
    return [name for start, name in BANDS if clock >= start][-1]


def in_another_band(moment: datetime, tried: datetime) -> datetime:
    """`moment`, or if it falls in the same time-of-day band as `tried`, the start of
    the next band after it (Tokyo time), so that someone never in at one time of day is
    next tried at another."""
    if band(moment) != band(tried):
        return moment
    clock = local(moment)
    starts = [start for start, _ in BANDS[1:]]
    later = [s for s in starts if s > clock.time()]
    if later:
        return clock.replace(hour=later[0].hour, minute=0, second=0, microsecond=0)
    # The evening band runs to midnight: from the next day's morning on.
    return (clock + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def default_blackouts(years: Iterable[int]) -> list[tuple[date, date, str]]:
    """New Year (12/29–1/3) and Obon (8/13–8/16) around the given fiscal years."""
    periods = []
    for fiscal_year in years:
        periods.append((date(fiscal_year, 8, 13), date(fiscal_year, 8, 16), "お盆"))
        periods.append((date(fiscal_year, 12, 29), date(fiscal_year + 1, 1, 3), "年末年始"))
    return periods


def holdout(seed: int, target_ids: Sequence[int], share: float) -> frozenset[int]:
    """The targets held out of calling: round(share × n) of them, drawn by a generator
    seeded with `seed` from the ids in ascending order — the same seed and ids give the
    same holdout, whenever and wherever it is drawn again."""
    ordered = sorted(target_ids)
    count = round(share * len(ordered))
    return frozenset(random.Random(seed).sample(ordered, count))  # noqa: S311 - not a secret
