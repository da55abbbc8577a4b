from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp import wareki


@pytest.mark.parametrize(
    ("fiscal_year", "label"),
    [
        (2015, "平成27年度"),
        (2018, "平成30年度"),
        (2019, "令和元年度"),
        (2020, "令和2年度"),
        (2021, "令和3年度"),
        (1989, "平成元年度"),
        (1988, "昭和63年度"),
    ],
)
def test_fiscal_year_labels_follow_official_usage(fiscal_year, label):
    assert wareki.fiscal_year_label(fiscal_year) == label


def test_fiscal_year_turns_on_the_first_of_april():
    assert wareki.fiscal_year_of(date(2022, 3, 31)) == 2021
    assert wareki.fiscal_year_of(date(2022, 4, 1)) == 2022


def test_era_of_a_day_uses_the_exact_start_date():
    assert wareki.era_year_text(*wareki.era_of(date(2019, 4, 30))) == "平成31年"
    assert wareki.era_year_text(*wareki.era_of(date(2019, 5, 1))) == "令和元年"
    assert wareki.era_year_text(*wareki.era_of(date(1989, 1, 7))) == "昭和64年"


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)))
def test_every_day_lies_within_its_fiscal_year(day):
    fy = wareki.fiscal_year_of(day)
    assert wareki.fiscal_year_start(fy) <= day <= wareki.fiscal_year_end(fy)
    assert wareki.fiscal_year_end(fy) + timedelta(days=1) == wareki.fiscal_year_start(fy + 1)
