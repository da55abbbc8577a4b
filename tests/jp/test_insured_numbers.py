import pytest
from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp.insured_numbers import InvalidInsuredNumber, parse_insured_number

symbols = st.from_regex(r"[0-9A-Za-z岐阜あア]{1,8}", fullmatch=True)
numbers = st.from_regex(r"[0-9]{1,10}", fullmatch=True)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("岐01-0001234", "岐01-0001234"),
        ("岐０１－０００１２３４", "岐01-0001234"),
        ("岐01ー0001234", "岐01-0001234"),
        ("岐01‐0001234", "岐01-0001234"),
        ("岐01・0001234", "岐01-0001234"),
        (" 岐01 - 0001234 ", "岐01-0001234"),
        ("12-345678", "12-345678"),
        ("記号12 番号345678", "12-345678"),
        ("記号１２　番号３４５６７８", "12-345678"),
        ("記号:12 番号:345678", "12-345678"),
        ("記号12-番号345678", "12-345678"),
        ("番号345678", "345678"),
        ("0001234", "0001234"),
        ("AB12", "AB12"),
        ("ｱｲ12-34", "アイ12-34"),
    ],
)
def test_every_written_form_of_a_symbol_and_number_gives_symbol_hyphen_number(text, number):
    assert parse_insured_number(text) == number


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("　", "empty"),
        ("=1+2", "format"),
        ("＝HYPERLINK(1)", "format"),
        ("+12345", "format"),
        ("-12345", "format"),
        ("－12345", "format"),
        ("@SUM(A1)", "format"),
        (" =1", "format"),
        ("12-34-56", "format"),
        ("12--34", "format"),
        ("12-", "format"),
        ("12/34", "format"),
        ("12#34", "format"),
        ("記号", "format"),
        ("1" * 21, "length"),
        ("岐" * 10 + "-" + "1" * 10, "length"),
    ],
)
def test_formulas_stray_characters_and_long_values_are_refused_with_a_reason(text, reason):
    with pytest.raises(InvalidInsuredNumber) as excinfo:
        parse_insured_number(text)
    assert excinfo.value.reason == reason


def test_twenty_characters_is_the_limit():
    assert parse_insured_number("1" * 20) == "1" * 20


@given(symbols, numbers)
def test_any_symbol_and_number_give_the_same_value_labelled_or_hyphenated(symbol, number):
    value = f"{symbol}-{number}"
    assert parse_insured_number(value) == value
    assert parse_insured_number(f"記号{symbol} 番号{number}") == value
    assert parse_insured_number(parse_insured_number(value)) == value
