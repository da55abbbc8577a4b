from datetime import date, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp.dates import InvalidDate, age_on, parse_date, slash_date
from yobikake.jp.wareki import ERAS, era_of, wareki_date

ERA_CODES = {era.name: code for code, era in enumerate(reversed(ERAS), start=1)}
# 明治 before 1873 followed the lunisolar calendar, so wareki dates start with 大正 here.
wareki_days = st.dates(min_value=date(1912, 7, 30), max_value=date(2099, 12, 31))


@pytest.mark.parametrize(
    "text",
    [
        "1970-03-02",
        "1970/3/2",
        "1970.3.2",
        "19700302",
        "1970年3月2日",
        "昭和45年3月2日",
        "昭和45年03月02日",
        "昭45.3.2",
        "昭45/03/02",
        "S45.3.2",
        "S45/03/02",
        "s45.3.2",
        "3450302",
        "１９７０／０３／０２",
        "  昭和４５年３月２日　",
        "昭和45年 3月 2日",
        "㍼45年3月2日",
    ],
)
def test_every_documented_form_of_one_birthday_parses_to_it(text):
    assert parse_date(text) == date(1970, 3, 2)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("平成元年1月8日", date(1989, 1, 8)),
        ("H1.1.8", date(1989, 1, 8)),
        ("R1.5.1", date(2019, 5, 1)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("平成31年4月30日", date(2019, 4, 30)),
        ("昭和64年1月7日", date(1989, 1, 7)),
        ("4010108", date(1989, 1, 8)),
        ("5010501", date(2019, 5, 1)),
        ("2150101", date(1926, 1, 1)),
        ("T15.12.24", date(1926, 12, 24)),
    ],
)
def test_the_first_and_last_days_of_eras_parse(text, day):
    assert parse_date(text) == day


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("　 ", "empty"),
        ("1970-02-30", "impossible"),
        ("19700230", "impossible"),
        ("1970-13-01", "impossible"),
        ("昭和45年2月30日", "impossible"),
        ("平成31年2月29日", "impossible"),
        ("3450230", "impossible"),
        ("昭和65年1月1日", "era"),
        ("昭和64年1月8日", "era"),
        ("平成31年5月1日", "era"),
        ("令和元年4月30日", "era"),
        ("平成0年1月1日", "era"),
        ("3650101", "era"),
        ("45.3.2", "format"),
        ("1970", "format"),
        ("X45.3.2", "format"),
        ("9450302", "format"),
        ("345030", "format"),
        ("三月二日", "format"),
        ("不明", "format"),
    ],
)
def test_impossible_and_out_of_era_dates_are_refused_with_a_reason(text, reason):
    with pytest.raises(InvalidDate) as excinfo:
        parse_date(text)
    assert excinfo.value.reason == reason


def test_each_era_ends_the_day_before_the_next_one_starts():
    for newer, older in pairwise(ERAS):
        assert older.ends == newer.starts - timedelta(days=1)
    assert ERAS[0].ends is None


@given(wareki_days)
def test_any_date_written_in_kanji_wareki_parses_back_to_itself(day):
    era, year = era_of(day)
    assert parse_date(f"{era.name}{year}年{day.month}月{day.day}日") == day


@given(wareki_days)
def test_any_date_written_with_an_era_letter_parses_back_to_itself(day):
    era, year = era_of(day)
    assert parse_date(f"{era.letter}{year:02d}.{day.month:02d}.{day.day:02d}") == day
    assert parse_date(f"{era.name[0]}{year}/{day.month}/{day.day}") == day


@given(wareki_days)
def test_any_date_in_era_coded_digits_parses_back_to_itself(day):
    era, year = era_of(day)
    assert parse_date(f"{ERA_CODES[era.name]}{year:02d}{day:%m%d}") == day


@given(st.dates(min_value=date(1000, 1, 1)))
def test_any_gregorian_date_parses_back_from_iso_and_compact_forms(day):
    assert parse_date(day.isoformat()) == day
    assert parse_date(day.strftime("%Y%m%d")) == day
    assert parse_date(f"{day.year}年{day.month}月{day.day}日") == day


def test_age_turns_on_the_birthday():
    birth = date(1970, 3, 2)
    assert age_on(birth, date(2010, 3, 1)) == 39
    assert age_on(birth, date(2010, 3, 2)) == 40


def test_a_leap_day_birthday_ages_on_the_first_of_march_in_common_years():
    birth = date(1984, 2, 29)
    assert age_on(birth, date(2025, 2, 28)) == 40
    assert age_on(birth, date(2025, 3, 1)) == 41
    assert age_on(birth, date(2028, 2, 29)) == 44


def _birthday(birth, year):
    try:
        return birth.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 3, 1)


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)), st.integers(1, 120))
def test_age_goes_up_by_one_on_each_birthday(birth, years):
    birthday = _birthday(birth, birth.year + years)
    assert age_on(birth, birthday) == years
    assert age_on(birth, birthday - timedelta(days=1)) == years - 1


@given(wareki_days)
def test_a_date_written_in_wareki_or_with_slashes_reads_back_as_itself(day):
    assert parse_date(wareki_date(day)) == day
    assert parse_date(slash_date(day)) == day
    assert len(slash_date(day)) == 10


def test_the_first_year_of_an_era_is_written_gannen():
    assert wareki_date(date(2019, 5, 1)) == "令和元年5月1日"
    assert wareki_date(date(1975, 1, 2)) == "昭和50年1月2日"
    assert slash_date(date(1975, 1, 2)) == "1975/01/02"
