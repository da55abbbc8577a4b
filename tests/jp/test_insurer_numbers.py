import pytest
from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp.insurer_numbers import (
    InvalidInsurerNumber,
    check_digit,
    parse_insurer_number,
    with_check_digit,
)

prefecture = st.integers(1, 47).map(lambda n: f"{n:02d}")
three_digits = st.integers(0, 999).map(lambda n: f"{n:03d}")
law_code = st.integers(1, 99).map(lambda n: f"{n:02d}")
nhi_body = st.builds(lambda p, c: p + c, prefecture, three_digits)
other_body = st.builds(lambda lc, p, c: lc + p + c, law_code, prefecture, three_digits)


def test_published_walkthrough_number_is_valid():
    # 3312001 → products 6,3,2,2,0,0,2 → 15 → check digit 5.
    assert check_digit("3312001") == 5
    number = parse_insurer_number("33120015")
    assert number.law_code == "33"
    assert number.prefecture_code == "12"
    assert number.prefecture_name == "千葉県"


def test_six_digit_nhi_number_has_no_law_code():
    number = parse_insurer_number(with_check_digit("21001"))
    assert number.law_code is None
    assert number.prefecture_name == "岐阜県"


def test_full_width_digits_and_spaces_are_accepted():
    assert parse_insurer_number(" ３３１２００１５ ").digits == "33120015"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("33120016", "check_digit"),
        ("3312001", "length"),
        ("331200150", "length"),
        ("", "not_digits"),
        ("3312-0015", "not_digits"),
        ("٣٣١٢٠٠١٥", "not_digits"),  # Arabic-Indic digits pass isdigit() but are not ours
        (with_check_digit("00001"), "prefecture"),
        (with_check_digit("48001"), "prefecture"),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(text, reason):
    with pytest.raises(InvalidInsurerNumber) as excinfo:
        parse_insurer_number(text)
    assert excinfo.value.reason == reason


@given(st.one_of(nhi_body, other_body))
def test_any_body_with_its_check_digit_is_valid(body):
    assert parse_insurer_number(with_check_digit(body)).digits == with_check_digit(body)


@given(st.one_of(nhi_body, other_body), st.data())
def test_changing_one_body_digit_is_caught(body, data):
    # Single-digit errors are what a Luhn-style check digit exists to catch.
    number = with_check_digit(body)
    position = data.draw(st.integers(0, len(body) - 1))
    replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != body[position]]))
    typo = number[:position] + replacement + number[position + 1 :]
    with pytest.raises(InvalidInsurerNumber):
        parse_insurer_number(typo)
