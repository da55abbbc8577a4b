"""Calling days and hours across a whole year, with the clock frozen at each moment; the
holdout's draw."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st

from tests.calling.conftest import running_campaign
from yobikake.calling import rules, services
from yobikake.calling.models import Campaign
from yobikake.calling.rules import TOKYO, Calendar, Closed
from yobikake.tenancy.models import Contract

YEAR = Calendar(
    starts=date(2025, 4, 1),
    ends=date(2026, 3, 31),
    window_start=time(9),
    window_end=time(20),
    saturdays=False,
    blackouts=((date(2025, 8, 13), date(2025, 8, 16)), (date(2025, 12, 29), date(2026, 1, 3))),
)
# The 2025 fiscal year's public holidays, substitute holidays (振替休日) included, from the
# Cabinet Office's table (not from the library under test).
HOLIDAYS_FY2025 = {
    date(2025, 4, 29), date(2025, 5, 3), date(2025, 5, 4), date(2025, 5, 5), date(2025, 5, 6),
    date(2025, 7, 21), date(2025, 8, 11), date(2025, 9, 15), date(2025, 9, 23),
    date(2025, 10, 13), date(2025, 11, 3), date(2025, 11, 23), date(2025, 11, 24),
    date(2026, 1, 1), date(2026, 1, 12), date(2026, 2, 11), date(2026, 2, 23),
    date(2026, 3, 20),
}  # fmt: skip


def expected(day: date, clock: time) -> Closed | None:
    if day in HOLIDAYS_FY2025:
        return Closed.HOLIDAY
    if any(start <= day <= end for start, end in YEAR.blackouts):
        return Closed.BLACKOUT
    if day.weekday() >= 5:
        return Closed.NON_CALLING_DAY
    if not time(9) <= clock < time(20):
        return Closed.OUTSIDE_WINDOW
    return None


def test_every_moment_of_a_year_is_open_or_closed_for_the_right_reason():
    day = YEAR.starts
    while day <= YEAR.ends:
        for clock in (time(8, 59), time(9), time(13, 30), time(19, 59), time(20), time(23)):
            moment = datetime.combine(day, clock, tzinfo=TOKYO)
            # Read in UTC, as the server's clock gives it: the day is Tokyo's.
            assert rules.closed_reason(YEAR, moment.astimezone(UTC)) == expected(day, clock), moment
        day += timedelta(days=1)


def test_before_and_after_the_period():
    assert (
        rules.closed_reason(YEAR, datetime(2025, 3, 31, 10, tzinfo=TOKYO)) == Closed.BEFORE_PERIOD
    )
    assert rules.closed_reason(YEAR, datetime(2026, 4, 1, 10, tzinfo=TOKYO)) == Closed.AFTER_PERIOD


def test_saturdays_when_the_campaign_calls_on_them():
    saturday = datetime(2025, 6, 7, 10, tzinfo=TOKYO)
    assert rules.closed_reason(YEAR, saturday) == Closed.NON_CALLING_DAY
    with_saturdays = Calendar(**{**YEAR.__dict__, "saturdays": True})
    assert rules.closed_reason(with_saturdays, saturday) is None
    assert (
        rules.closed_reason(with_saturdays, saturday + timedelta(days=1)) == Closed.NON_CALLING_DAY
    )


def test_the_queue_follows_the_calendar_through_a_frozen_year(world):
    """ "Next call" itself, with the clock frozen on each day of a fiscal year at 10:00
    and 20:00 Tokyo: it offers a call exactly on calling days within the hours."""
    # The insurer's contract lets its residents be called all through the fiscal year.
    Contract.objects.filter(insurer=world.insurer_a, fiscal_year=2022).update(
        calling_starts=date(2022, 4, 1), calling_ends=date(2023, 3, 31)
    )
    with time_machine.travel(datetime(2022, 4, 1, 10, tzinfo=TOKYO), tick=False) as clock:
        campaign, _, _ = running_campaign(
            world, count=5, holdout_share=0, starts=date(2022, 4, 1), ends=date(2023, 3, 31)
        )
        Campaign.objects.filter(pk=campaign.pk).update(max_attempts=10_000)
        holidays = {
            date(2022, 7, 18), date(2022, 8, 11), date(2022, 9, 19), date(2022, 9, 23),
            date(2022, 10, 10), date(2022, 11, 3), date(2022, 11, 23), date(2023, 1, 2),
            date(2023, 1, 9), date(2023, 2, 23), date(2023, 3, 21),
        }  # fmt: skip
        day, offered_days = date(2022, 4, 1), set()
        while day <= date(2023, 3, 31):
            for hour in (10, 20):
                clock.move_to(datetime.combine(day, time(hour), tzinfo=TOKYO))
                try:
                    checkout = services.next_call(operator=world.operator)
                except services.NothingToCall as nothing:
                    assert nothing.code in {c.value for c in Closed}, nothing.code
                    continue
                assert hour == 10
                offered_days.add(day)
                # Released at once, so that the next day's call is not a reloaded one.
                services.record_outcome(
                    actor=world.operator, call_target_id=checkout.call_target.pk, code="busy"
                )
            day += timedelta(days=1)
    calling_days = {
        d
        for d in (date(2022, 4, 1) + timedelta(days=n) for n in range(365))
        if d.weekday() < 5
        and d not in holidays
        and d not in {date(2022, 4, 29), date(2022, 5, 3), date(2022, 5, 4), date(2022, 5, 5)}
        and not date(2022, 8, 13) <= d <= date(2022, 8, 16)
        and not date(2022, 12, 29) <= d <= date(2023, 1, 3)
    }
    assert offered_days == calling_days


@given(
    ids=st.sets(st.integers(min_value=1, max_value=10**12), max_size=300),
    seed=st.integers(min_value=0, max_value=2**62),
    share=st.sampled_from([0.0, 0.05, 0.1, 0.5]),
)
def test_the_holdout_is_its_share_and_depends_only_on_seed_and_ids(ids, seed, share):
    held = rules.holdout(seed, list(ids), share)
    assert held <= ids
    assert len(held) == round(share * len(ids))
    assert held == rules.holdout(seed, sorted(ids, reverse=True), share)


@pytest.mark.parametrize("moment", ["2025-01-13T10:00", "2025-02-24T10:00", "2025-05-06T10:00"])
def test_substitute_and_monday_holidays_are_holidays(moment):
    assert rules.is_holiday(datetime.fromisoformat(moment).date())


@pytest.mark.parametrize(
    ("tried", "due", "expected"),
    [
        ("10:00", "14:00", "14:00"),  # already another band
        ("10:00", "11:00", "12:00"),  # same band: the afternoon's start
        ("13:00", "16:00", "17:00"),
        ("18:00", "19:30", "+1 00:00"),  # the evening: the next morning
    ],
)
def test_an_unanswered_call_is_retried_in_another_band(tried, due, expected):
    day = date(2025, 6, 3)

    def at(text, base=day):
        if text.startswith("+1 "):
            return at(text[3:], base + timedelta(days=1))
        return datetime.combine(base, time.fromisoformat(text), tzinfo=TOKYO)

    assert rules.in_another_band(at(due), at(tried)) == at(expected)
