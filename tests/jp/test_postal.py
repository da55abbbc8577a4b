import pytest
from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp.postal import InvalidPostalCode, format_postal_code, parse_postal_code

seven_digits = st.from_regex(r"[0-9]{7}", fullmatch=True)


@pytest.mark.parametrize(
    "text",
    [
        "500-8070",
        "5008070",
        "〒500-8070",
        "〒 500-8070",
        "５００－８０７０",
        "〒５００ー８０７０",
        "500ｰ8070",
        "500−8070",
        "〶500-8070",
        " 500 8070 ",
    ],
)
def test_every_written_form_of_a_postal_code_gives_its_seven_digits(text):
    assert parse_postal_code(text) == "5008070"
    assert format_postal_code(text) == "500-8070"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("　", "empty"),
        ("〒", "format"),
        ("500-807", "format"),
        ("50080700", "format"),
        ("500--8070", "format"),
        ("5008-070", "format"),
        ("500-8070-1", "format"),
        ("岐阜県", "format"),
        ("５００８０７", "format"),
    ],
)
def test_what_is_not_a_postal_code_is_refused_with_a_reason(text, reason):
    with pytest.raises(InvalidPostalCode) as excinfo:
        parse_postal_code(text)
    assert excinfo.value.reason == reason


@given(seven_digits)
def test_any_seven_digits_round_trip_through_the_formatted_form(digits):
    formatted = format_postal_code(digits)
    assert formatted == f"{digits[:3]}-{digits[3:]}"
    assert parse_postal_code(formatted) == digits
    assert parse_postal_code("〒" + formatted) == digits
